//! Helpers shared by the integration tests: a watchdog so a hang fails
//! loudly, and an echo server on its own thread.
#![allow(dead_code)] // each test file uses a different subset

pub mod proxy;
pub mod tls;

use lws::{Callbacks, Context, ContextOptions, Handle, ListenOptions};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Exits the whole test process if still armed after `secs`, so a hang
/// fails loudly instead of stalling the run. Disarmed when dropped: keep it
/// alive for the whole test (`let _wd = util::watchdog(..)`).
pub struct Watchdog(#[allow(dead_code)] mpsc::Sender<()>);

pub fn watchdog(name: &'static str, secs: u64) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(secs)) {
            eprintln!("watchdog: {name} still running after {secs} s: failing");
            std::process::exit(1);
        }
    });
    Watchdog(tx)
}

/// An lws echo server on 127.0.0.1 in its own thread; stopped on drop.
pub struct EchoServer {
    pub port: u16,
    pub handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl EchoServer {
    pub fn start() -> EchoServer {
        Self::start_with(ListenOptions::new(0))
    }

    pub fn start_with(options: ListenOptions) -> EchoServer {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let cx = Context::new(ContextOptions::default()).expect("server context");
            let echo = Callbacks::new().on_message(|conn, msg| {
                conn.send(msg).expect("echo send");
            });
            let port = cx.listen(options, echo).expect("listen");
            tx.send((port, cx.handle())).expect("report port");
            cx.run().expect("server loop");
        });
        let (port, handle) = rx.recv().expect("server started");
        EchoServer {
            port,
            handle,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.port)
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.handle.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A deterministic payload, different per (seed, index).
pub fn payload(seed: usize, size: usize) -> Vec<u8> {
    (0..size)
        .map(|j| (seed.wrapping_mul(131).wrapping_add(j * 7) % 251) as u8)
        .collect()
}
