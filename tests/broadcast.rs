//! `Context::broadcast` queues a message once on every open connection
//! (not on closing ones) and respects each one's `max_send_queue`: a slow
//! consumer's full queue is skipped and reported in `full`, never filled
//! past its limit, while the others keep receiving everything.

mod util;

use lws::{Callbacks, CloseCode, Connection, ListenOptions, Message};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;
use tungstenite::Message as TMessage;
use util::raw_ws;
use util::ServerThread;

/// A tungstenite client that sends `hello` on connect, reads until the
/// text "end", closes and returns what came before "end" (the close frame
/// excluded).
fn client(port: u16, hello: &'static str) -> thread::JoinHandle<Result<Vec<TMessage>, String>> {
    thread::spawn(move || {
        let mut ws = util::blocking_client(port)?;
        ws.send(TMessage::text(hello)).map_err(|e| e.to_string())?;
        let mut got = Vec::new();
        loop {
            match ws.read() {
                Ok(TMessage::Text(t)) if t.as_str() == "end" => break,
                Ok(TMessage::Close(_)) => return Err(format!("closed after {got:?}")),
                Ok(m) => got.push(m),
                Err(e) => return Err(format!("after {} messages: {e}", got.len())),
            }
        }
        let _ = ws.close(None);
        while ws.read().is_ok() {}
        Ok(got)
    })
}

#[test]
fn broadcast_reaches_every_open_connection_once() {
    const OPEN: usize = 5;
    let _wd = util::watchdog("broadcast_all", 30);
    let (report_tx, reports) = mpsc::channel();
    let (_server, port) = ServerThread::start(move |cx| {
        let said_hello = Cell::new(0);
        let callbacks = Callbacks::new().on_message(move |conn, msg| {
            // A sixth client asks to be closed: a closing connection is
            // not broadcast to.
            if msg.as_bytes() == b"close me" {
                conn.close(CloseCode::NORMAL, "closing");
            }
            said_hello.set(said_hello.get() + 1);
            if said_hello.get() < OPEN + 1 {
                return;
            }
            let cx = conn.context();
            for m in [
                Message::Text("hello, all".into()),
                Message::Text("end".into()),
            ] {
                let report = cx.broadcast(&m);
                report_tx.send((report.sent, report.full.len())).unwrap();
            }
        });
        cx.listen(ListenOptions::new(0), callbacks).unwrap().port()
    });
    let open: Vec<_> = (0..OPEN).map(|_| client(port, "hello")).collect();
    // The sixth, closed before the broadcast: it must get a close frame
    // and nothing else.
    let (mut closing, _) = raw_ws::upgrade(port, &[]);
    std::io::Write::write_all(&mut closing, &raw_ws::masked(raw_ws::TEXT, b"close me")).unwrap();
    for (i, c) in open.into_iter().enumerate() {
        let got = c
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("client {i}: {e}"));
        assert_eq!(got, vec![TMessage::text("hello, all")], "client {i}");
    }
    for _ in 0..2 {
        assert_eq!(reports.recv().unwrap(), (OPEN, 0), "(sent, full)");
    }
    let frame = raw_ws::read_frame(&mut closing).unwrap();
    assert_eq!(
        frame.close_code(),
        Some((1000, "closing".into())),
        "{frame:?}"
    );
}

const LIMIT: usize = 128 << 10;
const SIZE: usize = 32 << 10;
/// Broadcasts before giving up on the slow consumer's queue ever filling.
const MAX_ROUNDS: usize = 4000;

/// What the server saw in the slow-consumer test.
#[derive(Debug, Default)]
struct Outcome {
    /// Broadcasts queued on the slow connection before it was full.
    slow_got: usize,
    /// Every broadcast: (sent, the full ones were exactly [slow]).
    rounds: Vec<(usize, bool)>,
    /// The largest queue the slow connection ever had.
    slow_max_queue: usize,
    /// Its queue when it was first reported full.
    slow_queue_when_full: usize,
    failures: Vec<String>,
}

#[test]
fn a_full_queue_is_skipped_and_reported_while_the_others_keep_receiving() {
    let _wd = util::watchdog("broadcast_slow", 60);
    let (outcome_tx, outcomes) = mpsc::channel();
    let (_server, port) = ServerThread::start(move |cx| {
        let fast: Rc<RefCell<Vec<Connection>>> = Rc::default();
        let slow: Rc<RefCell<Option<Connection>>> = Rc::default();
        let (f, s) = (fast.clone(), slow.clone());
        let callbacks = Callbacks::new().on_connect(move |conn, headers| {
            if headers.get("x-role") == Some("slow") {
                *s.borrow_mut() = Some(conn.clone());
            } else {
                f.borrow_mut().push(conn.clone());
            }
            if f.borrow().len() < 2 || s.borrow().is_none() {
                return;
            }
            // All three are in: one broadcast per turn while both fast
            // queues are empty, until the slow one is reported full.
            let (fast, slow) = (f.borrow().clone(), s.borrow().clone().unwrap());
            let outcome = Rc::new(RefCell::new(Outcome::default()));
            let next = Rc::new(Cell::new(0usize));
            let tx = outcome_tx.clone();
            let id: Rc<Cell<Option<lws::TimerId>>> = Rc::default();
            let me = id.clone();
            let timer = conn
                .context()
                .set_interval(Duration::from_millis(1), move |cx| {
                    let mut o = outcome.borrow_mut();
                    o.slow_max_queue = o.slow_max_queue.max(slow.send_queue_size());
                    if fast.iter().any(|c| c.send_queue_size() > 0) {
                        return;
                    }
                    let i = next.get();
                    next.set(i + 1);
                    let report = cx.broadcast(&Message::Binary(util::payload(i, SIZE)));
                    let only_slow = report.full.len() == 1 && report.full[0].id() == slow.id();
                    o.rounds.push((report.sent, only_slow));
                    if !report.full.is_empty() && !only_slow {
                        let ids: Vec<u64> = report.full.iter().map(|c| c.id()).collect();
                        o.failures
                            .push(format!("round {i}: full {ids:?}, slow is {}", slow.id()));
                    }
                    let done = if only_slow {
                        o.slow_got = i;
                        o.slow_queue_when_full = slow.send_queue_size();
                        // The fast ones get the end marker; the slow one is
                        // still full (it reads nothing), so it is skipped again.
                        let end = cx.broadcast(&Message::Text("end".into()));
                        let again = end.full.len() == 1 && end.full[0].id() == slow.id();
                        o.rounds.push((end.sent, again));
                        o.slow_max_queue = o.slow_max_queue.max(slow.send_queue_size());
                        // close() sends what is queued, then its close frame.
                        slow.close(CloseCode::NORMAL, "slow");
                        true
                    } else if i >= MAX_ROUNDS || !o.failures.is_empty() {
                        o.failures.push(format!("never full after {i} rounds"));
                        true
                    } else {
                        false
                    };
                    if done {
                        cx.cancel_timer(me.get().unwrap());
                        tx.send(std::mem::take(&mut *o)).unwrap();
                    }
                });
            id.set(Some(timer));
        });
        let mut options = ListenOptions::new(0);
        options.max_send_queue = LIMIT;
        cx.listen(options, callbacks).unwrap().port()
    });
    // The slow one: after its handshake it reads nothing until the server
    // reports it full.
    let (mut slow, _) = raw_ws::upgrade(port, &[("X-Role", "slow")]);
    let fast: Vec<_> = (0..2).map(|_| client(port, "hi")).collect();
    let outcome: Outcome = outcomes.recv_timeout(Duration::from_secs(40)).unwrap();
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    let n = outcome.slow_got;
    assert!(n > 0, "the slow queue was full from the start");
    // Every round before the last went to all three; the last two (the
    // first refused one and "end") to the fast two only, with exactly the
    // slow one reported full.
    let mut want = vec![(3, false); n];
    want.extend([(2, true), (2, true)]);
    assert_eq!(outcome.rounds, want);
    assert!(
        outcome.slow_max_queue <= LIMIT,
        "{} bytes queued for the slow one, limit {LIMIT}",
        outcome.slow_max_queue
    );
    assert!(
        outcome.slow_queue_when_full + SIZE > LIMIT,
        "reported full with only {} bytes queued (limit {LIMIT}, message {SIZE})",
        outcome.slow_queue_when_full
    );
    // The fast ones got every broadcast, in order.
    for (k, c) in fast.into_iter().enumerate() {
        let got = c
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("fast client {k}: {e}"));
        assert_eq!(got.len(), n + 1, "fast client {k}");
        for (i, m) in got.iter().enumerate() {
            assert!(
                *m == TMessage::binary(util::payload(i, SIZE)),
                "fast client {k}: message {i} differs"
            );
        }
    }
    // The slow one now reads: exactly the n broadcasts queued for it, then
    // the close.
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    for i in 0..n {
        let frame =
            raw_ws::read_frame(&mut slow).unwrap_or_else(|e| panic!("slow, frame {i}: {e}"));
        assert_eq!(
            (frame.opcode, frame.fin),
            (raw_ws::BINARY, true),
            "slow, frame {i}"
        );
        assert!(
            frame.payload == util::payload(i, SIZE),
            "slow: message {i} differs"
        );
    }
    let frame = raw_ws::read_frame(&mut slow).unwrap();
    assert_eq!(
        frame.close_code(),
        Some((1000, "slow".into())),
        "{:?}",
        frame.opcode
    );
}
