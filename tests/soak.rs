//! Soak: 200 clients connect, exchange messages and leave, over and over,
//! while a sender thread broadcasts a numbered message every 10 ms, for
//! `LWS_RS_SOAK_SECS` seconds (default 60).
//!
//! Asserted:
//! - no lost data: a client that leaves gracefully has received every
//!   broadcast from the first one after its welcome to the last one before
//!   its close, in order, and each of its echoes, in order;
//! - no broadcast ever finds a full queue;
//! - no connection is left behind: once the clients are gone the server
//!   has none, and it saw as many closes as opens;
//! - memory settles: the process's RSS in the last quarter of the run is
//!   no more than `RSS_SLACK` above its peak in the second quarter (after
//!   warm-up).
//!
//! One client cycle in five leaves abruptly (drops its socket with no close
//! frame, often with data unread, so the server sees a reset).
//!
//! Under valgrind (which runs one thread at a time, some 10-50 times
//! slower) the same churn runs at a tenth of the scale: 20 clients for 20 s.
//! There memcheck's leak check stands in for the RSS bound, since valgrind's
//! own shadow memory and freed-block quarantine are part of the RSS.

mod util;

use lws::{Callbacks, CloseCode, ListenOptions, Message};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use tungstenite::Message as TMessage;

const BROADCAST_EVERY: Duration = Duration::from_millis(10);
const RSS_SLACK_KIB: u64 = 16 * 1024;

/// Seconds and clients: 60 s (or `LWS_RS_SOAK_SECS`) and 200, or a tenth
/// of the scale under valgrind.
fn scale() -> (u64, usize) {
    let (secs, clients) = if util::under_valgrind() {
        (20, 20)
    } else {
        (60, 200)
    };
    let secs = std::env::var("LWS_RS_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(secs);
    (secs, clients)
}

/// The server's side of the books, shared with the sender thread (its
/// closure runs on the loop thread, as the callbacks do).
#[derive(Default)]
struct Books {
    /// Number of the last broadcast.
    seq: AtomicU64,
    open: AtomicUsize,
    peak_open: AtomicUsize,
    opened: AtomicUsize,
    closed: AtomicUsize,
    /// Broadcasts that found a full queue.
    full: AtomicUsize,
}

/// What one client thread did.
#[derive(Default, Debug)]
struct Tally {
    graceful: usize,
    abrupt: usize,
    broadcasts: u64,
    echoes: usize,
}

/// A small xorshift: each client's own repeatable choices.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn number(text: &str, prefix: &str) -> Option<u64> {
    text.strip_prefix(prefix)?.parse().ok()
}

/// One connection's life: welcome, `wait` broadcasts with an echo every
/// few, then a graceful goodbye (checked) or an abrupt drop.
fn cycle(port: u16, me: usize, rng: &mut Rng, tally: &mut Tally) -> Result<(), String> {
    let mut ws = util::blocking_client(port)?;
    let read = |ws: &mut tungstenite::WebSocket<_>| match ws.read() {
        Ok(TMessage::Text(t)) => Ok(t.as_str().to_owned()),
        Ok(TMessage::Binary(b)) => Ok(format!("binary {}", b.len())),
        Ok(other) => Err(format!("unexpected {other:?}")),
        Err(e) => Err(e.to_string()),
    };
    let welcome = read(&mut ws)?;
    let mut next = number(&welcome, "welcome ").ok_or(format!("first came {welcome:?}"))? + 1;
    let wait = 20 + rng.below(100);
    let abrupt = rng.below(5) == 0;
    let mut echoes = std::collections::VecDeque::new();
    let mut got = 0;
    let mut echoed_at = None;
    while got < wait {
        // One echo per eight broadcasts.
        if got % 8 == 0 && echoed_at != Some(got) {
            echoed_at = Some(got);
            let text = format!("echo {me} {}", tally.echoes + echoes.len());
            ws.send(TMessage::text(text.clone()))
                .map_err(|e| e.to_string())?;
            echoes.push_back(text);
        }
        let m = read(&mut ws)?;
        if let Some(n) = number(&m, "b ") {
            if n != next {
                return Err(format!("broadcast {n} where {next} was due"));
            }
            next += 1;
            got += 1;
        } else if echoes.front() == Some(&m) {
            echoes.pop_front();
            tally.echoes += 1;
        } else {
            return Err(format!("{m:?} where an echo {:?} was due", echoes.front()));
        }
    }
    if abrupt {
        tally.abrupt += 1;
        return Ok(()); // dropped: no close frame, maybe data unread
    }
    ws.send(TMessage::text("bye")).map_err(|e| e.to_string())?;
    loop {
        match ws.read() {
            Ok(TMessage::Text(t)) => {
                let t = t.as_str();
                if let Some(n) = number(t, "b ") {
                    if n != next {
                        return Err(format!("broadcast {n} where {next} was due"));
                    }
                    next += 1;
                } else if let Some(last) = number(t, "end ") {
                    // The server's last word before close(): every
                    // broadcast up to `last` has come.
                    if last + 1 != next {
                        return Err(format!("end {last}, but {next} was due next"));
                    }
                } else if echoes.front().map(String::as_str) == Some(t) {
                    echoes.pop_front();
                    tally.echoes += 1;
                } else {
                    return Err(format!("{t:?} while closing"));
                }
            }
            Ok(TMessage::Close(frame)) => {
                let code = frame.map(|f| u16::from(f.code));
                if code != Some(1000) {
                    return Err(format!("closed with {code:?}"));
                }
                break;
            }
            Ok(other) => return Err(format!("unexpected {other:?} while closing")),
            Err(e) => return Err(format!("while closing: {e}")),
        }
    }
    if !echoes.is_empty() {
        return Err(format!("echoes never came back: {echoes:?}"));
    }
    while ws.read().is_ok() {}
    tally.graceful += 1;
    tally.broadcasts += next - 1 - number(&welcome, "welcome ").unwrap();
    Ok(())
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

#[test]
fn churn_under_broadcast_loses_nothing_and_leaves_nothing() {
    let (secs, clients) = scale();
    let _wd = util::watchdog("soak", secs + 120);
    let books = Arc::new(Books::default());
    let b = books.clone();
    let (server, port) = util::ServerThread::start(move |cx| {
        let (on_open, on_msg, on_close) = (b.clone(), b.clone(), b);
        let callbacks = Callbacks::new()
            .on_connect(move |conn, _| {
                let open = on_open.open.fetch_add(1, SeqCst) + 1;
                on_open.peak_open.fetch_max(open, SeqCst);
                on_open.opened.fetch_add(1, SeqCst);
                let _ = conn.send_text(&format!("welcome {}", on_open.seq.load(SeqCst)));
            })
            .on_message(move |conn, msg| {
                if msg.as_bytes() == b"bye" {
                    let _ = conn.send_text(&format!("end {}", on_msg.seq.load(SeqCst)));
                    conn.close(CloseCode::NORMAL, "bye");
                } else {
                    let _ = conn.send(msg);
                }
            })
            .on_close(move |_, _, _| {
                on_close.open.fetch_sub(1, SeqCst);
                on_close.closed.fetch_add(1, SeqCst);
            });
        cx.listen(ListenOptions::new(0), callbacks).unwrap().port()
    });

    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let clients_done = Arc::new(AtomicUsize::new(0));
    // The sender: broadcasts until every client has finished (a client
    // mid-cycle at the deadline still waits for its broadcasts).
    let sender = {
        let (handle, books, done) = (server.handle.clone(), books.clone(), clients_done.clone());
        thread::spawn(move || {
            while done.load(SeqCst) < clients {
                let books = books.clone();
                let _ = handle.run_on_loop(move |cx| {
                    let n = books.seq.fetch_add(1, SeqCst) + 1;
                    let report = cx.broadcast(&Message::Text(format!("b {n}")));
                    books.full.fetch_add(report.full.len(), SeqCst);
                });
                thread::sleep(BROADCAST_EVERY);
            }
        })
    };
    // RSS once a second until the clients are done.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let on = sampling.clone();
        thread::spawn(move || {
            let mut samples = Vec::new();
            while on.load(SeqCst) {
                samples.push((start.elapsed(), rss_kib()));
                thread::sleep(Duration::from_secs(1));
            }
            samples
        })
    };
    let failures = Arc::new(Mutex::new(Vec::new()));
    let (tally_tx, tallies) = mpsc::channel();
    for me in 0..clients {
        let (failures, done, tx) = (failures.clone(), clients_done.clone(), tally_tx.clone());
        thread::spawn(move || {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((me as u64 + 1) * 0x2545_f491));
            let mut tally = Tally::default();
            // Start spread over the first second.
            thread::sleep(Duration::from_millis(rng.below(1000)));
            while Instant::now() < deadline {
                if let Err(e) = cycle(port, me, &mut rng, &mut tally) {
                    failures.lock().unwrap().push(format!("client {me}: {e}"));
                    break;
                }
                thread::sleep(Duration::from_millis(rng.below(300)));
            }
            done.fetch_add(1, SeqCst);
            tx.send(tally).unwrap();
        });
    }
    drop(tally_tx);
    let mut total = Tally::default();
    for t in tallies.iter() {
        total.graceful += t.graceful;
        total.abrupt += t.abrupt;
        total.broadcasts += t.broadcasts;
        total.echoes += t.echoes;
    }
    sender.join().unwrap();
    sampling.store(false, SeqCst);
    let samples = sampler.join().unwrap();

    // Abrupt leavers' connections close as the server reads their EOF or
    // reset: give it a moment.
    let settle = Instant::now();
    while books.open.load(SeqCst) > 0 && settle.elapsed() < Duration::from_secs(20) {
        thread::sleep(Duration::from_millis(50));
    }
    let (count_tx, count) = mpsc::channel();
    server
        .handle
        .run_on_loop(move |cx| count_tx.send(cx.connections().len()).unwrap())
        .unwrap();
    let left = count.recv().unwrap();

    let quarter = Duration::from_secs(secs) / 4;
    let peak_in = |from: Duration, to: Duration| {
        samples
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|(_, kib)| *kib)
            .max()
    };
    let warm = peak_in(quarter, 2 * quarter);
    let late = peak_in(3 * quarter, 4 * quarter);
    eprintln!(
        "soak: {secs} s, {clients} clients, {} opens ({} graceful, {} abrupt), {} broadcasts \
         delivered to graceful leavers, {} echoes, {} broadcast rounds, peak {} open; \
         RSS peak after warm-up {warm:?} KiB, in the last quarter {late:?} KiB",
        books.opened.load(SeqCst),
        total.graceful,
        total.abrupt,
        total.broadcasts,
        total.echoes,
        books.seq.load(SeqCst),
        books.peak_open.load(SeqCst),
    );

    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failures: {:?}",
        failures.len(),
        &failures[..]
    );
    assert_eq!(
        books.full.load(SeqCst),
        0,
        "broadcasts that met a full queue"
    );
    assert_eq!(left, 0, "connections left on the server");
    assert_eq!(
        books.opened.load(SeqCst),
        books.closed.load(SeqCst),
        "opens and closes"
    );
    assert_eq!(
        books.opened.load(SeqCst),
        total.graceful + total.abrupt,
        "the server opened exactly the clients' connections"
    );
    assert!(
        total.graceful > clients && total.abrupt > 0,
        "too little churn to mean anything: {total:?}"
    );
    // Under valgrind memcheck's leak check covers memory (see the file's doc).
    if !util::under_valgrind() {
        let (Some(warm), Some(late)) = (warm, late) else {
            panic!("too few RSS samples for a {secs} s run: {samples:?}");
        };
        assert!(
            late <= warm + RSS_SLACK_KIB,
            "RSS grew after warm-up: {warm} KiB -> {late} KiB ({samples:?})"
        );
    }
}
