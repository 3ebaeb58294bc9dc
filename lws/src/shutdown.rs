//! Graceful shutdown ([`Context::shutdown`]) and broadcasting
//! ([`Context::broadcast`]).

use crate::connection::State;
use crate::{CloseCode, Connection, Context, Error, Message, TimerId};
use lws_sys as sys;
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How a [`Context::shutdown`] went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Connections that were open when the shutdown began.
    pub connections: usize,
    /// Of those, the ones whose close finished before the deadline (the
    /// close frame sent and the connection ended).
    pub closed: usize,
    /// Of those, the ones still open at the deadline and cut.
    pub forced: usize,
    /// Client connections still connecting, abandoned at once.
    pub abandoned: usize,
}

/// What [`Context::broadcast`] did.
#[derive(Debug, Default)]
pub struct Broadcast {
    /// Connections the message was queued on.
    pub sent: usize,
    /// Connections whose send queue was at its limit
    /// (`max_send_queue`): the message was not queued on them. Retry from
    /// their `on_drain`, or close slow consumers.
    pub full: Vec<Connection>,
}

/// How often a shutdown looks whether everything has closed.
const CHECK_EVERY: Duration = Duration::from_millis(10);

impl Context {
    /// Queues `message` on every open connection (those
    /// [`Context::connections`] lists that are not closing), respecting
    /// each one's queue limit: a full queue is skipped and reported, never
    /// overfilled.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn f(cx: &lws::Context) {
    /// let report = cx.broadcast(&lws::Message::Text("hello, all".into()));
    /// for slow in report.full {
    ///     slow.close(lws::CloseCode::POLICY, "too slow");
    /// }
    /// # }
    /// # f(&lws::Context::new(lws::ContextOptions::default()).unwrap());
    /// ```
    pub fn broadcast(&self, message: &Message) -> Broadcast {
        let mut report = Broadcast::default();
        for conn in self.connections() {
            if conn.state() != State::Connected {
                continue;
            }
            match conn.send_ref(message) {
                Ok(()) => report.sent += 1,
                Err(Error::QueueFull(_)) => report.full.push(conn),
                Err(_) => {} // closed meanwhile
            }
        }
        report
    }

    /// Shuts the server side down gracefully (UniEvent's `stop`): stops
    /// every listener, closes every open connection with `code` and
    /// `reason` once its queue has drained (so everything queued before is
    /// delivered), waits up to `timeout` for the close handshakes, cuts
    /// what is still open, then calls `done` with the counts. Clients still
    /// connecting are abandoned (their `on_error` runs). The loop keeps
    /// running: call [`Context::stop`] from `done` to end [`Context::run`]
    /// (as [`Handle::shutdown`](crate::Handle::shutdown) does).
    ///
    /// # Examples
    ///
    /// A server with one client (on the same context, so both ends are
    /// counted) shuts down once the client is in:
    ///
    /// ```
    /// use lws::{Callbacks, CloseCode, ConnectOptions, Context, ContextOptions, ListenOptions};
    /// use std::{cell::RefCell, rc::Rc, time::Duration};
    ///
    /// let cx = Context::new(ContextOptions::default())?;
    /// let port = cx.listen(ListenOptions::new(0), Callbacks::new())?.port();
    /// let codes = Rc::new(RefCell::new(Vec::new()));
    /// let report = Rc::new(RefCell::new(None));
    /// let (seen, done) = (codes.clone(), report.clone());
    /// let client = Callbacks::new()
    ///     .on_connect(move |conn, _| {
    ///         let done = done.clone();
    ///         conn.context().shutdown(CloseCode::AWAY, "restarting", Duration::from_secs(5),
    ///             move |cx, r| {
    ///                 *done.borrow_mut() = Some((r.connections, r.forced));
    ///                 cx.stop();
    ///             });
    ///     })
    ///     .on_close(move |_conn, code, _reason| seen.borrow_mut().push(code));
    /// cx.connect(ConnectOptions::new(format!("ws://127.0.0.1:{port}/")), client)?;
    /// cx.set_timeout(Duration::from_secs(10), |cx| cx.stop()); // a bound on the run
    /// cx.run()?;
    /// assert_eq!(*report.borrow(), Some((2, 0))); // two ends open, none cut
    /// assert_eq!(*codes.borrow(), [CloseCode::AWAY]);
    /// assert!(!cx.is_listening(cx.listeners()[0].id()));
    /// # Ok::<(), lws::Error>(())
    /// ```
    pub fn shutdown(
        &self,
        code: CloseCode,
        reason: &str,
        timeout: Duration,
        done: impl FnOnce(&Context, ShutdownReport) + 'static,
    ) {
        for listener in self.listeners() {
            self.stop_listening(listener.id());
        }
        let mut report = ShutdownReport::default();
        let mut open = Vec::new();
        let all: Vec<(u64, State)> = {
            let conns = self.shared().conns.borrow();
            conns.iter().map(|(_, s)| (s.id, s.state)).collect()
        };
        for (id, state) in all {
            let Some(conn) = self.connection(id) else {
                continue;
            };
            match state {
                State::Connected | State::Closing => {
                    conn.close(code, reason); // no-op if already closing
                    open.push(id);
                }
                State::Connecting => {
                    report.abandoned += 1;
                    crate::client::abandon(self.shared(), &conn, "shutting down");
                }
                State::Closed | State::Destroyed => {}
            }
        }
        report.connections = open.len();
        let deadline = Instant::now() + timeout;
        let done = Cell::new(Some(done));
        let timer: Rc<Cell<Option<TimerId>>> = Rc::default();
        let timer_in = timer.clone();
        let finish = move |cx: &Context| {
            let still: Vec<u64> = open
                .iter()
                .copied()
                .filter(|&id| {
                    cx.connection(id)
                        .is_some_and(|c| matches!(c.state(), State::Connected | State::Closing))
                })
                .collect();
            if !still.is_empty() && Instant::now() < deadline {
                return;
            }
            for &id in &still {
                kill(cx, id);
            }
            report.forced = still.len();
            report.closed = report.connections - report.forced;
            if let Some(t) = timer_in.take() {
                cx.cancel_timer(t);
            }
            if let Some(done) = done.take() {
                done(cx, report);
            }
        };
        timer.set(Some(self.set_interval(CHECK_EVERY, finish)));
    }
}

/// Cuts connection `id` now (no close handshake).
fn kill(cx: &Context, id: u64) {
    let wsi = cx
        .connection(id)
        .and_then(|c| c.with_slot(|s| s.wsi))
        .unwrap_or(std::ptr::null_mut());
    if !wsi.is_null() {
        // SAFETY: the slot still holds the wsi, so lws has not freed it;
        // LWS_TO_KILL_ASYNC closes it at lws's next service.
        unsafe { sys::lws_set_timeout(wsi, sys::PENDING_TIMEOUT_USER_OK, sys::LWS_TO_KILL_ASYNC) };
    }
}
