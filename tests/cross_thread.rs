//! Handles from other threads: 4 threads sending 250 messages each through cloned Handles to one connection lose nothing and keep each thread's order; run_on_loop runs on the loop thread with the live context; once the Context is dropped, Handle calls return ContextGone.

mod util;

use lws::{Callbacks, Context, ContextOptions, ListenOptions, Message};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use tungstenite::Message as TMessage;

const SENDERS: usize = 4;
const PER_SENDER: usize = 250;

/// Message `i` of sender thread `t`: "t:i", text from even threads and
/// binary from odd ones.
fn message(t: usize, i: usize) -> Message {
    let body = format!("{t}:{i}");
    if t & 1 == 0 {
        Message::Text(body)
    } else {
        Message::Binary(body.into_bytes())
    }
}

/// The tungstenite client: reads all SENDERS * PER_SENDER messages, checks
/// that none is lost and each thread's arrive in order, then closes.
fn client(port: u16) -> Result<(), String> {
    let (mut ws, _) = tungstenite::connect(format!("ws://127.0.0.1:{port}/"))
        .map_err(|e| format!("connect: {e}"))?;
    let mut next = [0usize; SENDERS];
    for n in 0..SENDERS * PER_SENDER {
        let (body, binary) = match ws.read().map_err(|e| format!("read #{n}: {e}"))? {
            TMessage::Text(s) => (s.as_str().to_owned(), false),
            TMessage::Binary(b) => (String::from_utf8_lossy(&b).into_owned(), true),
            other => return Err(format!("message #{n}: unexpected {other:?}")),
        };
        let parsed = body
            .split_once(':')
            .and_then(|(t, i)| Some((t.parse::<usize>().ok()?, i.parse::<usize>().ok()?)));
        let Some((t, i)) = parsed.filter(|&(t, _)| t < SENDERS) else {
            return Err(format!("message #{n}: unexpected body {body:?}"));
        };
        if binary != (t % 2 == 1) {
            return Err(format!(
                "message #{n} {body:?}: wrong kind (binary={binary})"
            ));
        }
        if i != next[t] {
            return Err(format!(
                "message #{n}: thread {t} sent {i} but {} was due (lost or reordered)",
                next[t]
            ));
        }
        next[t] += 1;
    }
    if next != [PER_SENDER; SENDERS] {
        return Err(format!("per-thread counts {next:?}"));
    }
    ws.close(None).map_err(|e| format!("close: {e}"))?;
    loop {
        match ws.read() {
            Ok(TMessage::Close(_)) => {}
            Ok(other) => return Err(format!("unexpected message after all: {other:?}")),
            Err(tungstenite::Error::ConnectionClosed) => return Ok(()),
            Err(e) => return Err(format!("close handshake: {e}")),
        }
    }
}

/// What the closure given to run_on_loop saw.
#[derive(Debug, PartialEq)]
struct LoopView {
    thread: thread::ThreadId,
    connections: usize,
    found: bool,
}

#[test]
fn handles_send_from_four_threads_in_order() {
    let _wd = util::watchdog("handles_send_from_four_threads_in_order", 60);
    let cx = Context::new(ContextOptions::default()).expect("context");
    let handle = cx.handle();
    let (id_tx, id_rx) = mpsc::channel::<u64>();
    let closes: Rc<RefCell<Vec<u64>>> = Rc::default();
    let closes2 = closes.clone();
    let stop = handle.clone();
    let port = cx
        .listen(
            ListenOptions::new(0),
            Callbacks::new()
                .on_connect(move |conn, _headers| {
                    let _ = id_tx.send(conn.id());
                })
                .on_close(move |conn, _code, _reason| {
                    closes2.borrow_mut().push(conn.id());
                    let _ = stop.stop();
                }),
        )
        .expect("listen")
        .port();

    let client_stop = handle.clone();
    let client = thread::spawn(move || {
        let result = client(port);
        if result.is_err() {
            let _ = client_stop.stop();
        }
        result
    });

    // The driver: once the connection is up, look at the loop from inside
    // it, then start the senders.
    let driver_handle = handle.clone();
    let driver = thread::spawn(move || -> Result<(u64, LoopView), String> {
        let h = driver_handle;
        let id = id_rx.recv().map_err(|_| "no on_connect".to_string())?;
        let (view_tx, view_rx) = mpsc::channel();
        h.run_on_loop(move |cx| {
            let _ = view_tx.send(LoopView {
                thread: thread::current().id(),
                connections: cx.connections().len(),
                found: cx.connection(id).is_some(),
            });
        })
        .map_err(|e| format!("run_on_loop: {e}"))?;
        let view = view_rx
            .recv()
            .map_err(|_| "the run_on_loop closure never ran".to_string())?;
        let senders: Vec<_> = (0..SENDERS)
            .map(|t| {
                let h = h.clone();
                thread::spawn(move || -> Result<(), String> {
                    for i in 0..PER_SENDER {
                        h.send(id, message(t, i))
                            .map_err(|e| format!("thread {t}: send {i}: {e}"))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for s in senders {
            s.join().map_err(|_| "sender panicked".to_string())??;
        }
        Ok((id, view))
    });

    cx.run().expect("run");
    let loop_thread = thread::current().id();
    drop(cx);

    // The client first: if it failed, the driver may wait forever.
    let client_result = client.join().expect("client thread panicked");
    if let Err(e) = client_result {
        panic!("tungstenite client: {e}");
    }
    let driver_result = driver.join().expect("driver thread panicked");
    let (id, view) = driver_result.unwrap_or_else(|e| panic!("driver: {e}"));
    assert_eq!(
        view,
        LoopView {
            thread: loop_thread,
            connections: 1,
            found: true
        }
    );
    assert_eq!(*closes.borrow(), vec![id]);

    // The context is gone: every Handle call says so.
    assert!(matches!(
        handle.send(id, "too late"),
        Err(lws::Error::ContextGone)
    ));
    assert!(matches!(
        handle.close(id, lws::CloseCode::NORMAL, "too late"),
        Err(lws::Error::ContextGone)
    ));
    assert!(matches!(
        handle.run_on_loop(|_| {}),
        Err(lws::Error::ContextGone)
    ));
    assert!(matches!(handle.stop(), Err(lws::Error::ContextGone)));
}
