//! Timers and fd watchers on the loop: a one-shot timer fires once, never
//! before its delay; an interval repeats until cancelled; a cancelled timer
//! never fires (cancel is true once, then false); timers can be set and
//! cancelled from timer callbacks and from connection callbacks through
//! `Connection::context`; fd watchers are level-triggered (called again
//! while data remains, not again until more comes), `unwatch` stops them,
//! and they also work in an embedded context.

mod util;

use lws::{Callbacks, CloseCode, Context, ContextOptions, ListenOptions, TimerId};
use mio::{Events, Poll};
use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};
use util::Failures;

/// Stops `cx`'s loop after `after` regardless of what the test waits for,
/// so a timer that never fires fails an assertion instead of hanging.
fn stop_in(cx: &Context, after: Duration) {
    cx.set_timeout(after, |cx| cx.stop());
}

#[test]
fn a_one_shot_timer_fires_once_and_not_before_its_delay() {
    let _wd = util::watchdog("one_shot", 30);
    let cx = Context::new(ContextOptions::default()).unwrap();
    let fired: Rc<RefCell<Vec<Duration>>> = Rc::default();
    let f = fired.clone();
    let delay = Duration::from_millis(200);
    let start = Instant::now();
    let id = cx.set_timeout(delay, move |_| f.borrow_mut().push(start.elapsed()));
    // Long enough after the delay for a second (wrong) firing to show.
    stop_in(&cx, Duration::from_millis(700));
    cx.run().unwrap();
    let fired = fired.borrow();
    assert_eq!(fired.len(), 1, "fired at {fired:?}");
    assert!(
        fired[0] >= delay,
        "fired after {:?}, before its delay",
        fired[0]
    );
    assert!(!cx.cancel_timer(id), "a one-shot timer that ran is gone");
}

#[test]
fn an_interval_repeats_until_cancelled() {
    let _wd = util::watchdog("interval", 30);
    let cx = Context::new(ContextOptions::default()).unwrap();
    let period = Duration::from_millis(20);
    let count = Rc::new(Cell::new(0u32));
    let c = count.clone();
    let interval = cx.set_interval(period, move |_| c.set(c.get() + 1));
    // A checker (a second, faster interval) cancels the first once it has
    // fired five times, then looks again ten periods later.
    let at_cancel: Rc<Cell<Option<(u32, bool, bool)>>> = Rc::default();
    let later: Rc<Cell<Option<u32>>> = Rc::default();
    let (count2, ac, l) = (count.clone(), at_cancel.clone(), later.clone());
    let checker: Rc<Cell<Option<TimerId>>> = Rc::default();
    let me = checker.clone();
    let id = cx.set_interval(Duration::from_millis(5), move |cx| {
        if count2.get() < 5 {
            return;
        }
        let first = cx.cancel_timer(interval);
        let second = cx.cancel_timer(interval);
        ac.set(Some((count2.get(), first, second)));
        cx.cancel_timer(me.get().unwrap());
        let (count3, l) = (count2.clone(), l.clone());
        cx.set_timeout(period * 10, move |cx| {
            l.set(Some(count3.get()));
            cx.stop();
        });
    });
    checker.set(Some(id));
    cx.run().unwrap();
    let (n, first, second) = at_cancel.get().expect("the interval never fired 5 times");
    assert!(n >= 5);
    assert!(first, "cancelling a live interval returns true");
    assert!(!second, "cancelling it again returns false");
    assert_eq!(
        later.get(),
        Some(n),
        "the interval fired after it was cancelled"
    );
}

#[test]
fn a_timer_cancelled_before_it_fires_never_fires() {
    let _wd = util::watchdog("cancel_before", 30);
    let cx = Context::new(ContextOptions::default()).unwrap();
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    let id = cx.set_timeout(Duration::from_millis(100), move |_| f.set(true));
    let f = fired.clone();
    let every = cx.set_interval(Duration::from_millis(50), move |_| f.set(true));
    assert!(cx.cancel_timer(id));
    assert!(!cx.cancel_timer(id), "cancelling twice");
    assert!(cx.cancel_timer(every));
    assert!(!cx.cancel_timer(every), "cancelling twice");
    stop_in(&cx, Duration::from_millis(400));
    cx.run().unwrap();
    assert!(!fired.get(), "a cancelled timer fired");
}

#[test]
fn timer_callbacks_set_and_cancel_timers() {
    let _wd = util::watchdog("timers_in_timers", 30);
    let cx = Context::new(ContextOptions::default()).unwrap();
    let log: Rc<RefCell<Vec<String>>> = Rc::default();
    let l = log.clone();
    cx.set_timeout(Duration::from_millis(10), move |cx| {
        l.borrow_mut().push("outer".into());
        let inner = l.clone();
        cx.set_timeout(Duration::from_millis(10), move |_| {
            inner.borrow_mut().push("inner".into())
        });
        let doomed = l.clone();
        let id = cx.set_timeout(Duration::from_millis(20), move |_| {
            doomed.borrow_mut().push("doomed".into())
        });
        let cancelled = cx.cancel_timer(id);
        l.borrow_mut().push(format!("cancelled {cancelled}"));
    });
    // An interval that cancels itself from its own callback on its third turn.
    let turns = Rc::new(Cell::new(0u32));
    let own: Rc<Cell<Option<TimerId>>> = Rc::default();
    let (t, o, l) = (turns.clone(), own.clone(), log.clone());
    let id = cx.set_interval(Duration::from_millis(10), move |cx| {
        t.set(t.get() + 1);
        if t.get() == 3 {
            let cancelled = cx.cancel_timer(o.get().unwrap());
            l.borrow_mut().push(format!("self-cancelled {cancelled}"));
        }
    });
    own.set(Some(id));
    // Stops 100 ms after all four are in (the doomed timer was due 10 ms
    // after the inner one), or at a 10 s bound: a slow run (valgrind under
    // load) gets there too, where a fixed 300 ms did not.
    let (l, start) = (log.clone(), std::time::Instant::now());
    let all_in: Rc<Cell<Option<std::time::Instant>>> = Rc::default();
    cx.set_interval(Duration::from_millis(10), move |cx| {
        let all = ["inner", "self-cancelled true"]
            .iter()
            .all(|w| l.borrow().iter().any(|e| e == w));
        if all && all_in.get().is_none() {
            all_in.set(Some(std::time::Instant::now()));
        }
        let settled = all_in
            .get()
            .is_some_and(|t| t.elapsed() > Duration::from_millis(100));
        if settled || start.elapsed() > Duration::from_secs(10) {
            cx.stop();
        }
    });
    cx.run().unwrap();
    let log = log.borrow();
    for want in ["outer", "cancelled true", "inner", "self-cancelled true"] {
        assert!(
            log.iter().any(|l| l == want),
            "{want:?} missing from {log:?}"
        );
    }
    assert!(!log.iter().any(|l| l == "doomed"), "{log:?}");
    assert_eq!(log.len(), 4, "{log:?}");
    // "outer" runs before what it set up ("inner" and the interval's
    // third turn may come in either order).
    assert_eq!(&log[..2], ["outer", "cancelled true"]);
    assert_eq!(turns.get(), 3, "the interval ran after cancelling itself");
}

#[test]
fn connection_callbacks_set_and_cancel_timers_through_their_context() {
    let _wd = util::watchdog("timers_from_connection", 30);
    let cx = Context::new(ContextOptions::default()).unwrap();
    let cancelled: Rc<Cell<Option<bool>>> = Rc::default();
    let doomed_fired = Rc::new(Cell::new(false));
    let view_owns: Rc<Cell<Option<bool>>> = Rc::default();
    let (c, d, v) = (cancelled.clone(), doomed_fired.clone(), view_owns.clone());
    // The server answers a connection 50 ms later, from a timer set in
    // on_connect; a second timer set there is cancelled at once.
    let server = Callbacks::new().on_connect(move |conn, _| {
        let view = conn.context();
        v.set(Some(view.is_owner()));
        let id = conn.id();
        view.set_timeout(Duration::from_millis(50), move |cx| {
            if let Some(conn) = cx.connection(id) {
                conn.send_text("from a timer").unwrap();
            }
        });
        let d = d.clone();
        let doomed = view.set_timeout(Duration::from_millis(20), move |_| d.set(true));
        c.set(Some(view.cancel_timer(doomed)));
    });
    let port = cx.listen(ListenOptions::new(0), server).unwrap().port();
    let got: Rc<RefCell<Vec<String>>> = Rc::default();
    let (g, e) = (got.clone(), got.clone());
    let stop = cx.handle();
    let client = Callbacks::new()
        .on_message(move |conn, msg| {
            g.borrow_mut()
                .push(String::from_utf8(msg.into_bytes()).unwrap());
            // Wait a little longer than the cancelled timer's delay before
            // stopping, from a timer set through this connection's view.
            let stop = stop.clone();
            conn.context()
                .set_timeout(Duration::from_millis(100), move |_| {
                    stop.stop().unwrap();
                });
            conn.close(CloseCode::NORMAL, "");
        })
        .on_error(move |_, err| e.borrow_mut().push(format!("client error: {err}")));
    cx.connect(util::connect_options(util::url(port)), client)
        .unwrap();
    stop_in(&cx, Duration::from_secs(5));
    cx.run().unwrap();
    assert_eq!(
        view_owns.get(),
        Some(false),
        "a connection's view owns nothing"
    );
    assert_eq!(*got.borrow(), vec!["from a timer".to_string()]);
    assert_eq!(cancelled.get(), Some(true));
    assert!(!doomed_fired.get(), "the cancelled timer fired");
}

/// One end of a socket pair, non-blocking, and the other end.
fn pair() -> (Rc<UnixStream>, Rc<RefCell<UnixStream>>) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    (Rc::new(a), Rc::new(RefCell::new(b)))
}

#[test]
fn a_readable_watcher_is_level_triggered_and_unwatch_stops_it() {
    let _wd = util::watchdog("watch_readable", 30);
    let cx = Context::new(ContextOptions::default()).unwrap();
    let failures = Failures::new(cx.handle());
    let (rx, tx) = pair();
    let fd = rx.as_raw_fd();
    tx.borrow_mut().write_all(b"abc").unwrap();
    // Each call reads exactly one byte; a call with nothing to read is a
    // failure (the watcher must not be called when the fd is not readable).
    let bytes: Rc<RefCell<Vec<u8>>> = Rc::default();
    let (b, r, fail) = (bytes.clone(), rx.clone(), failures.clone());
    let phases: Rc<RefCell<Vec<String>>> = Rc::default();
    let ph = phases.clone();
    let tx2 = tx.clone();
    cx.watch_readable(fd, move |cx, called_fd| {
        if called_fd != fd {
            fail.push(format!("called with fd {called_fd}, watching {fd}"));
        }
        let mut byte = [0u8; 1];
        match (&*r).read(&mut byte) {
            Ok(1) => b.borrow_mut().push(byte[0]),
            Ok(n) => fail.push(format!("read {n} bytes")),
            Err(e) if e.kind() == ErrorKind::WouldBlock => fail.push(format!(
                "called with nothing to read after {:?}",
                b.borrow()
            )),
            Err(e) => fail.push(format!("read: {e}")),
        }
        let n = b.borrow().len();
        if n == 3 {
            // Drained: no call may come until more data does; look again
            // 100 ms later, then send two more bytes.
            let (b, ph, tx) = (b.clone(), ph.clone(), tx2.clone());
            cx.set_timeout(Duration::from_millis(100), move |_| {
                ph.borrow_mut()
                    .push(format!("after drain: {}", b.borrow().len()));
                tx.borrow_mut().write_all(b"de").unwrap();
            });
        }
        if n == 5 {
            // Unwatched from its own callback; one more byte must then
            // stay unread.
            ph.borrow_mut().push(format!("unwatch {}", cx.unwatch(fd)));
            ph.borrow_mut()
                .push(format!("unwatch again {}", cx.unwatch(fd)));
            tx2.borrow_mut().write_all(b"f").unwrap();
            cx.set_timeout(Duration::from_millis(100), |cx| cx.stop());
        }
    })
    .unwrap();
    stop_in(&cx, Duration::from_secs(5));
    cx.run().unwrap();
    failures.assert_none();
    assert_eq!(*bytes.borrow(), b"abcde");
    assert_eq!(
        *phases.borrow(),
        vec!["after drain: 3", "unwatch true", "unwatch again false"]
    );
    let mut rest = [0u8; 4];
    assert_eq!(
        (&*rx).read(&mut rest).unwrap(),
        1,
        "the byte sent after unwatch"
    );
    assert_eq!(rest[0], b'f');
}

#[test]
fn a_readable_watcher_is_not_called_before_data_comes() {
    let _wd = util::watchdog("watch_readable_empty", 30);
    let cx = Context::new(ContextOptions::default()).unwrap();
    let (rx, peer) = pair();
    let fd = rx.as_raw_fd();
    let calls: Rc<RefCell<Vec<Option<u8>>>> = Rc::default();
    let (c, r) = (calls.clone(), rx.clone());
    cx.watch_readable(fd, move |_, _| {
        let mut byte = [0u8; 1];
        c.borrow_mut()
            .push((&*r).read(&mut byte).ok().map(|_| byte[0]));
    })
    .unwrap();
    let before: Rc<Cell<Option<usize>>> = Rc::default();
    // The timer holds a clone: the peer stays open (at EOF the socket would
    // be readable for good).
    let (c, b, tx) = (calls.clone(), before.clone(), peer.clone());
    cx.set_timeout(Duration::from_millis(100), move |cx| {
        b.set(Some(c.borrow().len()));
        tx.borrow_mut().write_all(b"z").unwrap();
        cx.set_timeout(Duration::from_millis(100), |cx| cx.stop());
    });
    stop_in(&cx, Duration::from_secs(5));
    cx.run().unwrap();
    assert_eq!(
        before.get(),
        Some(0),
        "called on an empty socket: {:?}",
        calls.borrow()
    );
    let calls = calls.borrow();
    assert_eq!(
        calls[..calls.len().min(5)],
        [Some(b'z')],
        "{} calls in all",
        calls.len()
    );
    drop(peer);
}

#[test]
fn a_writable_watcher_fires_while_writable_and_unwatch_stops_it() {
    let _wd = util::watchdog("watch_writable", 30);
    let cx = Context::new(ContextOptions::default()).unwrap();
    let (ours, peer) = pair();
    let fd = ours.as_raw_fd();
    // Fill the socket so it is not writable when the watch starts.
    let chunk = [7u8; 4096];
    let mut filled = 0usize;
    loop {
        match (&*ours).write(&chunk) {
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("fill: {e}"),
        }
    }
    let calls = Rc::new(Cell::new(0u32));
    let c = calls.clone();
    let when_full: Rc<Cell<Option<u32>>> = Rc::default();
    let unwatched: Rc<Cell<Option<(bool, bool)>>> = Rc::default();
    let after: Rc<Cell<Option<(u32, u32)>>> = Rc::default();
    let (u, a) = (unwatched.clone(), after.clone());
    // Nothing is written from the watcher: the socket stays writable, so
    // it must be called on turn after turn (level-triggered).
    cx.watch_writable(fd, move |_, _| c.set(c.get() + 1))
        .unwrap();
    // After 100 ms of a full socket: how many calls came; then drain the
    // peer so the socket is writable again.
    let (c, wf, p) = (calls.clone(), when_full.clone(), peer.clone());
    cx.set_timeout(Duration::from_millis(100), move |cx| {
        wf.set(Some(c.get()));
        let mut peer = p.borrow_mut();
        peer.set_nonblocking(true).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0;
        while total < filled {
            match peer.read(&mut buf) {
                Ok(n) => total += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("drain: {e}"),
            }
        }
        c.set(0);
        // Let it run for 50 ms of writable turns, then unwatch and look
        // again 100 ms later.
        let (c, u, a) = (c.clone(), u.clone(), a.clone());
        cx.set_timeout(Duration::from_millis(50), move |cx| {
            let n = c.get();
            let first = cx.unwatch_writable(fd);
            let second = cx.unwatch_writable(fd);
            u.set(Some((first, second)));
            let c2 = c.clone();
            cx.set_timeout(Duration::from_millis(100), move |cx| {
                a.set(Some((n, c2.get())));
                cx.stop();
            });
        });
    });
    stop_in(&cx, Duration::from_secs(5));
    cx.run().unwrap();
    assert_eq!(when_full.get(), Some(0), "called while the socket was full");
    let (n, later) = after.get().expect("the unwatch timer never ran");
    assert!(
        n >= 2,
        "called {n} times in 50 ms of a writable socket: not level-triggered"
    );
    assert_eq!(later, n, "called after unwatch_writable");
    assert_eq!(unwatched.get(), Some((true, false)));
}

#[test]
fn watchers_work_in_an_embedded_context() {
    let _wd = util::watchdog("watch_embedded", 30);
    let mut poll = Poll::new().unwrap();
    let cx = Context::embedded(poll.registry(), ContextOptions::default()).unwrap();
    let (rx, tx) = pair();
    let fd = rx.as_raw_fd();
    let got: Rc<RefCell<Vec<u8>>> = Rc::default();
    let (g, r) = (got.clone(), rx.clone());
    cx.watch_readable(fd, move |_, _| {
        let mut buf = [0u8; 16];
        if let Ok(n) = (&*r).read(&mut buf) {
            g.borrow_mut().extend_from_slice(&buf[..n]);
        }
    })
    .unwrap();
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    cx.set_timeout(Duration::from_millis(20), move |_| f.set(true));
    let mut events = Events::with_capacity(64);
    let start = Instant::now();
    let mut sent = false;
    while got.borrow().len() < 5 || !fired.get() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "got {:?}, timer fired {}",
            got.borrow(),
            fired.get()
        );
        if !sent && start.elapsed() > Duration::from_millis(10) {
            // Data that arrives while the Poll waits: mio's event must reach
            // the watcher through handle_events.
            tx.borrow_mut().write_all(b"hello").unwrap();
            sent = true;
        }
        let timeout = cx.poll_timeout().unwrap_or(Duration::from_millis(100));
        poll.poll(&mut events, Some(timeout.min(Duration::from_millis(5))))
            .unwrap();
        cx.handle_events(&events);
    }
    assert_eq!(*got.borrow(), b"hello");
    assert!(cx.unwatch(fd));
}
