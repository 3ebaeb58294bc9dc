//! Several cores: [`ServerThreads`] runs one [`Context`] per thread, all
//! listening on one port through `SO_REUSEPORT`, so the kernel spreads
//! new connections over the threads. Each connection then lives on one
//! thread; threads share nothing (reach another thread's connections
//! through its [`Handle`]).

use crate::{CloseCode, Context, ContextOptions, Error, Handle, Handler, ListenOptions, Result};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Server threads started by [`ServerThreads::spawn`]; stopped and joined
/// on drop.
#[derive(Debug)]
pub struct ServerThreads {
    port: u16,
    handles: Vec<Handle>,
    threads: Vec<JoinHandle<Result<()>>>,
}

impl ServerThreads {
    /// Starts `n` threads (at least 1), each with its own context that
    /// listens with `options` (`reuse_port` is turned on; port 0 picks one
    /// port for all) and serves with the handler `make_handler(i)` makes on
    /// thread `i` (so handlers need not be `Send`). Returns once every
    /// thread listens.
    ///
    /// # Errors
    /// What [`Context::new`] or [`Context::listen`] returned on the first
    /// thread that failed; the others are stopped.
    ///
    /// # Examples
    ///
    /// Two server threads on one port, a client on this thread, then a
    /// graceful stop:
    ///
    /// ```
    /// use lws::{Callbacks, CloseCode, ConnectOptions, Context, ContextOptions, ListenOptions};
    /// use std::{cell::RefCell, rc::Rc, time::Duration};
    ///
    /// let threads = lws::ServerThreads::spawn(2, ListenOptions::new(0), |_thread| {
    ///     Callbacks::new().on_message(|conn, msg| {
    ///         let _ = conn.send(msg);
    ///     })
    /// })?;
    /// assert_eq!(threads.handles().len(), 2);
    ///
    /// let cx = Context::new(ContextOptions::default())?;
    /// let got = Rc::new(RefCell::new(None));
    /// let seen = got.clone();
    /// let client = Callbacks::new()
    ///     .on_connect(|conn, _| {
    ///         let _ = conn.send_text("which thread?");
    ///     })
    ///     .on_message(move |conn, msg| {
    ///         *seen.borrow_mut() = Some(msg);
    ///         conn.close(CloseCode::NORMAL, "");
    ///     })
    ///     .on_close(|conn, _, _| conn.context().stop());
    /// let url = format!("ws://127.0.0.1:{}/", threads.port());
    /// cx.connect(ConnectOptions::new(url), client)?;
    /// cx.set_timeout(Duration::from_secs(10), |cx| cx.stop()); // a bound on the run
    /// cx.run()?;
    /// assert!(got.borrow().is_some());
    ///
    /// threads.shutdown(CloseCode::AWAY, Duration::from_secs(1));
    /// threads.join()?;
    /// # Ok::<(), lws::Error>(())
    /// ```
    pub fn spawn<H, F>(n: usize, options: ListenOptions, make_handler: F) -> Result<ServerThreads>
    where
        H: Handler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        let make_handler = Arc::new(make_handler);
        let mut options = options;
        options.reuse_port = true;
        let mut started = ServerThreads {
            port: 0,
            handles: Vec::new(),
            threads: Vec::new(),
        };
        for i in 0..n.max(1) {
            let mut options = options.clone();
            if i > 0 && options.unix_path.is_none() {
                options.port = started.port; // the one the first thread got
            }
            let make_handler = make_handler.clone();
            let (tx, rx) = mpsc::channel();
            let thread = std::thread::Builder::new()
                .name(format!("lws-server-{i}"))
                .spawn(move || -> Result<()> {
                    let cx = match Context::new(ContextOptions::default()) {
                        Ok(cx) => cx,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return Ok(());
                        }
                    };
                    match cx.listen(options, make_handler(i)) {
                        Ok(listener) => {
                            let _ = tx.send(Ok((listener.port(), cx.handle())));
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return Ok(());
                        }
                    }
                    cx.run()
                })?;
            let ready = rx
                .recv()
                .unwrap_or_else(|_| Err(Error::Lws("a server thread died while starting".into())));
            started.threads.push(thread);
            let (port, handle) = ready?; // on error, drop stops the others
            if i == 0 {
                started.port = port;
            }
            started.handles.push(handle);
        }
        Ok(started)
    }

    /// The TCP port every thread listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// One handle per thread, in thread order.
    pub fn handles(&self) -> &[Handle] {
        &self.handles
    }

    /// Shuts every thread's context down gracefully
    /// ([`Handle::shutdown`]): each stops listening, closes its
    /// connections with `code`, and its thread ends.
    pub fn shutdown(&self, code: CloseCode, timeout: Duration) {
        for handle in &self.handles {
            let _ = handle.shutdown(code, timeout);
        }
    }

    /// Waits for every thread to end (after [`ServerThreads::shutdown`], or
    /// a [`Handle::stop`] to each).
    ///
    /// # Errors
    /// The first loop error, or [`Error::Lws`] if a thread panicked.
    pub fn join(mut self) -> Result<()> {
        let mut result = Ok(());
        for thread in std::mem::take(&mut self.threads) {
            let r = thread
                .join()
                .unwrap_or_else(|_| Err(Error::Lws("a server thread panicked".into())));
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

impl Drop for ServerThreads {
    fn drop(&mut self) {
        for handle in &self.handles {
            let _ = handle.stop();
        }
        for thread in std::mem::take(&mut self.threads) {
            let _ = thread.join();
        }
    }
}
