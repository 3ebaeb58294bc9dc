//! A logged echo client: one client in a fresh context that sends messages
//! on connect, checks their echoes, closes, and returns what happened as a
//! log of lines; with a watch that ends the run if the connection vanishes
//! without on_error or on_close.

use lws::{Callbacks, CloseCode, ConnectOptions, Context, ContextOptions, Message};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Ends `cx`'s run once all connections `ids` are gone from the context:
/// a connection that vanishes without on_error or on_close then fails its
/// test instead of hanging it. A helper thread asks the loop every 20 ms;
/// it stops when dropped.
pub struct GoneWatch {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl GoneWatch {
    pub fn start(cx: &Context, ids: Vec<u64>) -> GoneWatch {
        let handle = cx.handle();
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let thread = thread::spawn(move || {
            while !d.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(20));
                let ids = ids.clone();
                let _ = handle.run_on_loop(move |cx| {
                    if ids.iter().all(|&id| cx.connection(id).is_none()) {
                        cx.stop();
                    }
                });
            }
        });
        GoneWatch {
            done,
            thread: Some(thread),
        }
    }
}

impl Drop for GoneWatch {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs one client in a fresh context until it closes or fails. It sends
/// `send` on connect and closes (1000) once every message came back. Logs
/// "connected", "echo I ok" (or how echo I differs), "error: ..." and
/// "closed CODE"; "vanished" if the connection went away without either.
pub fn run_client(options: ConnectOptions, send: Vec<Message>) -> Vec<String> {
    let cx = Context::new(ContextOptions::default()).expect("client context");
    let log: Rc<RefCell<Vec<String>>> = Rc::default();
    let (l1, l2, l3, l4) = (log.clone(), log.clone(), log.clone(), log.clone());
    let (stop1, stop2) = (cx.handle(), cx.handle());
    let to_send = send.clone();
    let mut received = 0;
    let callbacks = Callbacks::new()
        .on_connect(move |conn, _| {
            l1.borrow_mut().push("connected".into());
            for m in &to_send {
                conn.send(m.clone()).expect("send");
            }
            if to_send.is_empty() {
                conn.close(CloseCode::NORMAL, "");
            }
        })
        .on_message(move |conn, msg| {
            let i = received;
            received += 1;
            l2.borrow_mut().push(match send.get(i) {
                Some(m) if *m == msg => format!("echo {i} ok"),
                Some(m) => format!("echo {i} differs: sent {m:?}, got {msg:?}"),
                None => format!("unexpected message {i}: {msg:?}"),
            });
            if received == send.len() {
                conn.close(CloseCode::NORMAL, "");
            }
        })
        .on_error(move |_, e| {
            l3.borrow_mut().push(format!("error: {e}"));
            stop1.stop().unwrap();
        })
        .on_close(move |_, code, _| {
            l4.borrow_mut().push(format!("closed {}", code.0));
            stop2.stop().unwrap();
        });
    let conn = cx.connect(options, callbacks).expect("connect");
    let watch = GoneWatch::start(&cx, vec![conn.id()]);
    cx.run().expect("client loop");
    drop(watch);
    let mut out = log.borrow().clone();
    if !out
        .last()
        .is_some_and(|l| l.starts_with("error: ") || l.starts_with("closed "))
    {
        out.push("vanished".into());
    }
    out
}

/// What a successful [`run_client`] logs, for `n` messages.
pub fn echoed(n: usize) -> Vec<String> {
    let mut log = vec!["connected".to_string()];
    log.extend((0..n).map(|i| format!("echo {i} ok")));
    log.push("closed 1000".into());
    log
}
