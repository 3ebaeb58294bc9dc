//! [`Handle`]: reaching a context from other threads.

use crate::{CloseCode, Context, Error, Message, Result};
use lws_sys as sys;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Something another thread asked the loop to do.
pub(crate) enum Command {
    Send(u64, Message),
    Close(u64, CloseCode, String),
    Stop,
    Call(Box<dyn FnOnce(&Context) + Send>),
}

/// The part of a context other threads share.
pub(crate) struct Remote {
    /// The lws context, 0 once it is destroyed. Locked while waking it, so
    /// destruction waits for a wake in progress.
    cx: Mutex<usize>,
    queue: Mutex<Vec<Command>>,
    pending: AtomicBool,
}

impl Remote {
    pub(crate) fn new() -> Self {
        Remote {
            cx: Mutex::new(0),
            queue: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
        }
    }

    pub(crate) fn set_context(&self, cx: *mut sys::lws_context) {
        *self.cx.lock().unwrap_or_else(|e| e.into_inner()) = cx as usize;
    }

    /// Commands queued since the last call (cheap when there are none).
    pub(crate) fn take(&self) -> Vec<Command> {
        if !self.pending.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn has_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    fn push(&self, command: Command) -> Result<()> {
        let cx = self.cx.lock().unwrap_or_else(|e| e.into_inner());
        if *cx == 0 {
            return Err(Error::ContextGone);
        }
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(command);
        self.pending.store(true, Ordering::Release);
        // SAFETY: cx is non-zero, so the context is alive, and stays so while
        // we hold the lock (Context::drop takes it first). lws_cancel_service
        // is the call lws documents as safe from other threads.
        unsafe { sys::lws_cancel_service(*cx as *mut sys::lws_context) };
        Ok(())
    }
}

/// A `Send + Clone` handle to a [`Context`] for other threads (and for
/// callbacks that need to stop the loop). Commands are queued and run on
/// the loop thread, in order, at its next turn.
///
/// lws itself may be called from one thread only; the handle queues a
/// command and wakes the loop with `lws_cancel_service`, the one call lws
/// allows from other threads.
///
/// # Examples
///
/// A worker thread pushes a message to a connection by its id, then
/// stops the loop.
///
/// ```
/// use lws::{Callbacks, ConnectOptions, Context, ContextOptions, ListenOptions};
/// use std::{cell::RefCell, rc::Rc, time::Duration};
///
/// let cx = Context::new(ContextOptions::default())?;
/// let server = Callbacks::new().on_connect(|conn, _| {
///     let (handle, id) = (conn.handle(), conn.id());
///     std::thread::spawn(move || {
///         // ... some slow work, off the loop ...
///         let _ = handle.send(id, "result from a thread");
///     });
/// });
/// let port = cx.listen(ListenOptions::new(0), server)?.port();
///
/// let got = Rc::new(RefCell::new(None));
/// let seen = got.clone();
/// let handle = cx.handle();
/// let client = Callbacks::new().on_message(move |_conn, msg| {
///     *seen.borrow_mut() = Some(msg);
///     let _ = handle.stop(); // as a thread would; Context::stop works here too
/// });
/// cx.connect(ConnectOptions::new(format!("ws://127.0.0.1:{port}/")), client)?;
/// cx.set_timeout(Duration::from_secs(10), |cx| cx.stop()); // a bound on the run
/// cx.run()?;
/// assert_eq!(*got.borrow(), Some(lws::Message::Text("result from a thread".into())));
/// # Ok::<(), lws::Error>(())
/// ```
#[derive(Clone)]
pub struct Handle {
    remote: Arc<Remote>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

impl Handle {
    pub(crate) fn new(remote: Arc<Remote>) -> Self {
        Handle { remote }
    }

    /// Queues `message` for the connection with id `conn_id`. If that
    /// connection is not open when the loop gets to it, the message is
    /// dropped (as a send on a closed [`crate::Connection`] would fail).
    ///
    /// # Errors
    /// [`Error::ContextGone`] if the context was dropped.
    pub fn send(&self, conn_id: u64, message: impl Into<Message>) -> Result<()> {
        self.remote.push(Command::Send(conn_id, message.into()))
    }

    /// Closes the connection with id `conn_id` (see [`crate::Connection::close`]).
    ///
    /// # Errors
    /// [`Error::ContextGone`] if the context was dropped.
    pub fn close(&self, conn_id: u64, code: CloseCode, reason: &str) -> Result<()> {
        self.remote
            .push(Command::Close(conn_id, code, reason.to_owned()))
    }

    /// Makes [`Context::run`] return after its current turn.
    ///
    /// # Errors
    /// [`Error::ContextGone`] if the context was dropped.
    pub fn stop(&self) -> Result<()> {
        self.remote.push(Command::Stop)
    }

    /// Shuts the context down gracefully ([`Context::shutdown`]) and then
    /// makes [`Context::run`] return: e.g. from a signal handler thread.
    ///
    /// # Errors
    /// [`Error::ContextGone`] if the context was dropped.
    pub fn shutdown(&self, code: CloseCode, timeout: std::time::Duration) -> Result<()> {
        self.run_on_loop(move |cx| {
            cx.shutdown(code, "server shutting down", timeout, |cx, report| {
                log::info!(
                    "shutdown: {} connections, {} closed, {} cut, {} connecting abandoned",
                    report.connections,
                    report.closed,
                    report.forced,
                    report.abandoned
                );
                cx.stop();
            })
        })
    }

    /// Runs `f` on the loop thread with the context: anything a callback
    /// could do (connect, listen, broadcast, set timers).
    ///
    /// # Errors
    /// [`Error::ContextGone`] if the context was dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{sync::mpsc, time::Duration};
    /// let cx = lws::Context::new(lws::ContextOptions::default())?;
    /// cx.set_timeout(Duration::from_secs(10), |cx| cx.stop()); // a bound on the run
    /// let handle = cx.handle();
    /// let (tx, rx) = mpsc::channel();
    /// let worker = std::thread::spawn(move || {
    ///     handle.run_on_loop(move |cx| {
    ///         let _ = tx.send(cx.connections().len());
    ///         cx.stop();
    ///     })
    /// });
    /// cx.run()?;
    /// worker.join().unwrap()?;
    /// assert_eq!(rx.recv().unwrap(), 0);
    /// # Ok::<(), lws::Error>(())
    /// ```
    pub fn run_on_loop(&self, f: impl FnOnce(&Context) + Send + 'static) -> Result<()> {
        self.remote.push(Command::Call(Box::new(f)))
    }
}
