//! Helpers shared by the integration tests: a watchdog so a hang fails
//! loudly, lws servers on their own thread, and small pieces many tests'
//! callbacks need (stopping the loop after the nth event or once a
//! connection is gone, collecting failures).
#![allow(dead_code)] // each test file uses a different subset

pub mod echo_log;
pub mod hostile;
pub mod http;
pub mod proxy;
pub mod raw_ws;
pub mod tls;

use lws::{Callbacks, ConnectOptions, Context, ContextOptions, Handle, ListenOptions, Proxy};
use std::cell::{Cell, RefCell};
use std::io::Write;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Exits the whole test process if still armed after `secs`, so a hang
/// fails loudly instead of stalling the run. Disarmed when dropped: keep it
/// alive for the whole test (`let _wd = util::watchdog(..)`).
pub struct Watchdog(#[allow(dead_code)] mpsc::Sender<()>);

/// Under valgrind (which runs code some 10-50 times slower) the limit is
/// ten times longer.
pub fn watchdog(name: &'static str, secs: u64) -> Watchdog {
    let secs = if under_valgrind() { secs * 10 } else { secs };
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(secs)) {
            // Straight to fd 2: the test harness would swallow eprintln!
            // output of a process that exits.
            let _ = writeln!(
                std::io::stderr(),
                "watchdog: {name} still running after {secs} s: failing"
            );
            std::process::exit(1);
        }
    });
    Watchdog(tx)
}

/// True when the test runs under valgrind (its preload is in the
/// environment valgrind gives the program).
pub fn under_valgrind() -> bool {
    std::env::var("LD_PRELOAD").is_ok_and(|v| v.contains("vgpreload"))
}

/// An lws context running on its own thread (so blocking raw or
/// tungstenite clients can run on the test thread); stopped on drop.
pub struct ServerThread {
    pub handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// Makes the context on the new thread and lets `setup` add listeners
    /// to it there (so the callbacks need not be Send); returns once they
    /// are listening, with what `setup` returned.
    pub fn start<T: Send + 'static>(
        setup: impl FnOnce(&Context) -> T + Send + 'static,
    ) -> (ServerThread, T) {
        Self::start_with(ContextOptions::default(), setup)
    }

    /// As [`ServerThread::start`], with a context made with `options`.
    pub fn start_with<T: Send + 'static>(
        options: ContextOptions,
        setup: impl FnOnce(&Context) -> T + Send + 'static,
    ) -> (ServerThread, T) {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let cx = Context::new(options).expect("server context");
            let ready = setup(&cx);
            tx.send((ready, cx.handle())).expect("report ports");
            cx.run().expect("server loop");
        });
        let (ready, handle) = rx.recv().expect("server started");
        let server = ServerThread {
            handle,
            thread: Some(thread),
        };
        (server, ready)
    }

    /// Stops the loop and joins the thread: Err if it panicked.
    pub fn stop(&mut self) -> std::thread::Result<()> {
        let _ = self.handle.stop();
        match self.thread.take() {
            Some(t) => t.join(),
            None => Ok(()),
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Runs `f` on the server's loop and returns what it returned.
pub fn on_loop<R: Send + 'static>(
    server: &ServerThread,
    f: impl FnOnce(&Context) -> R + Send + 'static,
) -> R {
    let (tx, rx) = mpsc::channel();
    server
        .handle
        .run_on_loop(move |cx| {
            let _ = tx.send(f(cx));
        })
        .expect("run_on_loop");
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the loop ran the closure")
}

/// One lws listener in a [`ServerThread`]; stopped on drop.
pub struct Server {
    pub port: u16,
    thread: ServerThread,
}

impl Server {
    /// Listens with `options` and the handler `build` makes on the loop
    /// thread (closures there need not be Send).
    pub fn start(
        options: ListenOptions,
        build: impl FnOnce() -> Callbacks + Send + 'static,
    ) -> Server {
        let (thread, port) =
            ServerThread::start(move |cx| cx.listen(options, build()).expect("listen").port());
        Server { port, thread }
    }

    /// An echo server on 127.0.0.1.
    pub fn echo() -> Server {
        Self::echo_with(ListenOptions::new(0))
    }

    /// An echo server listening with `options`.
    pub fn echo_with(options: ListenOptions) -> Server {
        Self::start(options, || {
            Callbacks::new().on_message(|conn, msg| {
                conn.send(msg).expect("echo send");
            })
        })
    }

    pub fn url(&self) -> String {
        url(self.port)
    }

    /// Stops the server and joins its thread: Err if it panicked.
    pub fn stop(&mut self) -> std::thread::Result<()> {
        self.thread.stop()
    }
}

/// A blocking tungstenite client on 127.0.0.1:`port` whose reads give up
/// after 20 s (a server that goes quiet fails the test, not hangs it).
pub fn blocking_client(port: u16) -> Result<tungstenite::WebSocket<std::net::TcpStream>, String> {
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let (ws, _) = tungstenite::client(url(port), stream).map_err(|e| format!("handshake: {e}"))?;
    Ok(ws)
}

/// The ws:// URL of `port` on 127.0.0.1.
pub fn url(port: u16) -> String {
    format!("ws://127.0.0.1:{port}/")
}

/// Connect options for `url` that never go through a proxy from the
/// environment.
pub fn connect_options(url: impl Into<String>) -> ConnectOptions {
    let mut options = ConnectOptions::new(url);
    options.proxy = Proxy::None;
    options
}

/// A closure that stops `cx`'s loop on its `n`th call (e.g. once both
/// sides' on_close ran: a single context holds server and client).
pub fn stop_after(cx: &Context, n: usize) -> impl Fn() + Clone {
    let count = Rc::new(Cell::new(0));
    let stop = cx.handle();
    move || {
        count.set(count.get() + 1);
        if count.get() == n {
            let _ = stop.stop();
        }
    }
}

/// Stops the loop once connection `id` no longer exists (so nothing it
/// could still report, such as a stray on_close, is missed), or after a
/// bounded number of loop turns.
pub fn stop_when_gone(handle: Handle, id: u64, turns_left: u32) {
    let h = handle.clone();
    let _ = handle.run_on_loop(move |cx| {
        if cx.connection(id).is_none() || turns_left == 0 {
            cx.stop();
        } else {
            stop_when_gone(h, id, turns_left - 1);
        }
    });
}

/// Failures seen inside callbacks; each one also stops the loop.
#[derive(Clone)]
pub struct Failures {
    list: Rc<RefCell<Vec<String>>>,
    stop: Handle,
}

impl Failures {
    pub fn new(stop: Handle) -> Self {
        Failures {
            list: Rc::default(),
            stop,
        }
    }

    pub fn push(&self, what: impl Into<String>) {
        self.list.borrow_mut().push(what.into());
        let _ = self.stop.stop();
    }

    pub fn assert_none(&self) {
        assert!(self.list.borrow().is_empty(), "{:?}", self.list.borrow());
    }
}

/// A deterministic payload, different per (seed, index).
pub fn payload(seed: usize, size: usize) -> Vec<u8> {
    (0..size)
        .map(|j| (seed.wrapping_mul(131).wrapping_add(j * 7) % 251) as u8)
        .collect()
}

/// True under CI (`CI=true`, as .ci/run is run).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A test's outside tool (a venv, a browser) is missing: under CI that is
/// a failure (CI installs it: scripts/setup-interop.sh), elsewhere the test
/// skips, saying so loudly. Returns so the caller can `return`.
pub fn missing_tool(test: &str, what: &str) {
    if in_ci() {
        panic!("{test}: {what} (CI=true: scripts/setup-interop.sh must install it)");
    }
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED {test}: {what}; run scripts/setup-interop.sh ***\n"
    );
}

/// The port in a child's first stdout line, `listening on
/// SCHEME://127.0.0.1:PORT/` (what our examples and the C programs print
/// once they listen); Err with the line when it is not that.
pub fn listening_port(child: &mut std::process::Child, scheme: &str) -> Result<u16, String> {
    use std::io::BufRead;
    let stdout = child.stdout.take().ok_or("stdout is not piped")?;
    let mut first = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut first)
        .map_err(|e| format!("reading the first line: {e}"))?;
    first
        .trim()
        .strip_prefix(&format!("listening on {scheme}://127.0.0.1:"))
        .and_then(|r| r.strip_suffix('/'))
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("first line {first:?}"))
}

/// `size` bytes of compressible ASCII text, different per seed: numbered
/// lines of one sentence (tests/interop/peer.py makes the same).
pub fn compressible_text(seed: usize, size: usize) -> String {
    let mut s = String::with_capacity(size + 80);
    let mut line = 0;
    while s.len() < size {
        s.push_str(&format!(
            "{seed} line {line}: the quick brown fox jumps over the lazy dog\n"
        ));
        line += 1;
    }
    s.truncate(size);
    s
}
