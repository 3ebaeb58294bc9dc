//! Interoperability with an independent implementation: our server against a tungstenite client and our client against a tungstenite server echo every message byte-exact (edge sizes 0 to 1 MiB) and carry close codes and reasons exactly, in both directions.

mod util;

use lws::{
    Callbacks, CloseCode, ConnectOptions, Context, ContextOptions, Handle, ListenOptions, Message,
};
use std::cell::RefCell;
use std::net::TcpListener;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use tungstenite::protocol::frame::coding::CloseCode as TCloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message as TMessage;

/// Payload sizes around the frame-length encodings (7-bit, 16-bit, 64-bit).
const SIZES: &[usize] = &[0, 1, 125, 126, 65535, 65536, 1 << 20];

/// `size` ASCII bytes that depend on `seed` and the position.
fn text_payload(seed: usize, size: usize) -> String {
    (0..size)
        .map(|j| (b'a' + ((seed * 7 + j * 13) % 26) as u8) as char)
        .collect()
}

/// `size` bytes covering all byte values, depending on `seed`.
fn binary_payload(seed: usize, size: usize) -> Vec<u8> {
    (0..size)
        .map(|j| (seed.wrapping_mul(31).wrapping_add(j) % 256) as u8)
        .collect()
}

/// Every message of the size table, text and binary, with distinct seeds.
fn all_messages() -> Vec<Message> {
    let mut out = Vec::new();
    for (i, &size) in SIZES.iter().enumerate() {
        out.push(Message::Text(text_payload(2 * i, size)));
        out.push(Message::Binary(binary_payload(2 * i + 1, size)));
    }
    out
}

/// A short description of how two payloads differ (never the payloads).
fn diff(what: &str, expected: &[u8], got: &[u8]) -> String {
    let first = expected
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .map_or("none".to_string(), |p| p.to_string());
    format!(
        "{what}: expected {} bytes, got {} bytes, first differing byte at {first}",
        expected.len(),
        got.len()
    )
}

fn to_tungstenite(m: &Message) -> TMessage {
    match m {
        Message::Text(s) => TMessage::text(s.clone()),
        Message::Binary(b) => TMessage::binary(b.clone()),
    }
}

/// Checks a tungstenite message against the lws message it should echo.
fn check_echo(expected: &Message, got: &TMessage) -> Result<(), String> {
    match (expected, got) {
        (Message::Text(e), TMessage::Text(g)) if e.as_str() == g.as_str() => Ok(()),
        (Message::Binary(e), TMessage::Binary(g)) if e.as_slice() == &g[..] => Ok(()),
        (Message::Text(e), TMessage::Text(g)) => Err(diff("text echo", e.as_bytes(), g.as_bytes())),
        (Message::Binary(e), TMessage::Binary(g)) => Err(diff("binary echo", e, g)),
        (e, g) => Err(format!(
            "expected {e:?}, got a different kind of message: {g:?}"
        )),
    }
}

fn close_frame(code: u16, reason: &str) -> CloseFrame {
    CloseFrame {
        code: TCloseCode::from(code),
        reason: reason.into(),
    }
}

// ---- (a) tungstenite client, our server ----

/// The tungstenite client of test (a): echoes every message, then closes
/// with 4001 "bye" and drives the close handshake to its end.
fn tungstenite_client(port: u16) -> Result<(), String> {
    let (mut ws, _) = tungstenite::connect(format!("ws://127.0.0.1:{port}/"))
        .map_err(|e| format!("tungstenite connect: {e}"))?;
    for (i, message) in all_messages().iter().enumerate() {
        ws.send(to_tungstenite(message))
            .map_err(|e| format!("send #{i} ({message:?}): {e}"))?;
        let echo = ws
            .read()
            .map_err(|e| format!("read echo #{i} ({message:?}): {e}"))?;
        check_echo(message, &echo).map_err(|e| format!("message #{i}: {e}"))?;
    }
    ws.close(Some(close_frame(4001, "bye")))
        .map_err(|e| format!("close: {e}"))?;
    loop {
        match ws.read() {
            Ok(TMessage::Close(_)) => {} // the server's answer; the TCP close follows
            Ok(other) => return Err(format!("unexpected message after close: {other:?}")),
            Err(tungstenite::Error::ConnectionClosed) => return Ok(()),
            Err(e) => return Err(format!("close handshake: {e}")),
        }
    }
}

#[test]
fn tungstenite_client_against_our_server() {
    let _wd = util::watchdog("tungstenite_client_against_our_server", 60);
    let cx = Context::new(ContextOptions::default()).expect("context");
    let handle = cx.handle();
    let closes: Rc<RefCell<Vec<(u16, String)>>> = Rc::default();
    let closes2 = closes.clone();
    let stop = handle.clone();
    let port = cx
        .listen(
            ListenOptions::new(0),
            Callbacks::new()
                .on_message(|conn, msg| {
                    let _ = conn.send(msg);
                })
                .on_close(move |_conn, code, reason| {
                    closes2.borrow_mut().push((code.0, reason.to_owned()));
                    let _ = stop.stop();
                }),
        )
        .expect("listen")
        .port();

    let client = thread::spawn(move || {
        let result = tungstenite_client(port);
        if result.is_err() {
            let _ = handle.stop(); // the server would wait for a close forever
        }
        result
    });
    cx.run().expect("run");
    drop(cx); // closes any socket still open, so the client cannot block
    let result = client.join().expect("client thread panicked");
    if let Err(e) = result {
        panic!("tungstenite client: {e}");
    }
    assert_eq!(*closes.borrow(), vec![(4001, "bye".to_string())]);
}

// ---- (b) and (c): our client, tungstenite server ----

/// What the tungstenite server saw.
#[derive(Debug, Default)]
struct ServerReport {
    /// Data messages received and echoed.
    echoed: usize,
    /// The close frame the client sent (or answered with): code, reason.
    close: Option<(u16, String)>,
    /// The first failure, if any.
    error: Option<String>,
}

/// Starts a one-connection tungstenite server; returns its port. The
/// thread reports through `tx` once the connection is over.
/// `close_after`: after that many messages, the server closes with
/// 4003 "server bye" instead of waiting for the client's close.
fn tungstenite_server(close_after: Option<usize>, tx: mpsc::Sender<ServerReport>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    thread::spawn(move || {
        let mut report = ServerReport::default();
        if let Err(e) = serve_one(&listener, close_after, &mut report) {
            report.error = Some(e);
        }
        let _ = tx.send(report);
    });
    port
}

fn serve_one(
    listener: &TcpListener,
    close_after: Option<usize>,
    report: &mut ServerReport,
) -> Result<(), String> {
    let (stream, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
    let mut ws = tungstenite::accept(stream).map_err(|e| format!("handshake: {e}"))?;
    let mut closing = false;
    loop {
        match ws.read() {
            Ok(m @ (TMessage::Text(_) | TMessage::Binary(_))) => {
                if closing {
                    return Err("data message after the close frame".into());
                }
                report.echoed += 1;
                if close_after == Some(report.echoed) {
                    ws.close(Some(close_frame(4003, "server bye")))
                        .map_err(|e| format!("close: {e}"))?;
                    closing = true;
                } else {
                    ws.send(m).map_err(|e| format!("echo: {e}"))?;
                }
            }
            Ok(TMessage::Close(frame)) => {
                report.close = Some(frame.map_or((1005, String::new()), |f| {
                    (u16::from(f.code), f.reason.as_str().to_owned())
                }));
            }
            Ok(_) => {} // ping/pong: tungstenite answers pings itself
            Err(tungstenite::Error::ConnectionClosed) => return Ok(()),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// What our client saw.
#[derive(Default)]
struct ClientLog {
    echoes: usize,
    failures: Vec<String>,
    close: Option<(u16, String)>,
}

/// Adds to `callbacks`: record the close or the error in `log`, and stop
/// the loop on either.
fn until_closed(callbacks: Callbacks, log: &Rc<RefCell<ClientLog>>, handle: &Handle) -> Callbacks {
    let (l1, l2) = (log.clone(), log.clone());
    let (h1, h2) = (handle.clone(), handle.clone());
    callbacks
        .on_close(move |_conn, code, reason| {
            l1.borrow_mut().close = Some((code.0, reason.to_owned()));
            let _ = h1.stop();
        })
        .on_error(move |_conn, e| {
            l2.borrow_mut().failures.push(format!("on_error: {e}"));
            let _ = h2.stop();
        })
}

#[test]
fn our_client_against_tungstenite_server() {
    let _wd = util::watchdog("our_client_against_tungstenite_server", 60);
    let (tx, rx) = mpsc::channel();
    let port = tungstenite_server(None, tx);

    let cx = Context::new(ContextOptions::default()).expect("context");
    let handle = cx.handle();
    let log: Rc<RefCell<ClientLog>> = Rc::default();
    let messages = Rc::new(all_messages());
    let total = messages.len();
    let (l1, l2) = (log.clone(), log.clone());
    let to_send = messages.clone();
    let _conn = cx
        .connect(
            ConnectOptions::new(format!("ws://127.0.0.1:{port}/")),
            until_closed(
                Callbacks::new()
                    .on_connect(move |conn, _headers| {
                        // All at once: the echoes must still come back in order.
                        for m in to_send.iter() {
                            if let Err(e) = conn.send(m.clone()) {
                                l1.borrow_mut().failures.push(format!("send: {e}"));
                            }
                        }
                    })
                    .on_message(move |conn, msg| {
                        let mut log = l2.borrow_mut();
                        let i = log.echoes;
                        match messages.get(i) {
                            Some(expected) if *expected == msg => {}
                            Some(expected) => log.failures.push(format!(
                                "echo #{i}: {}",
                                if expected.is_binary() == msg.is_binary() {
                                    diff("payload", expected.as_bytes(), msg.as_bytes())
                                } else {
                                    format!("expected {expected:?}, got {msg:?}")
                                }
                            )),
                            None => log.failures.push(format!("extra echo {msg:?}")),
                        }
                        log.echoes += 1;
                        if log.echoes == total {
                            conn.close(CloseCode(4002), "done");
                        }
                    }),
                &log,
                &handle,
            ),
        )
        .expect("connect");
    cx.run().expect("run");
    drop(cx);

    let log = log.borrow();
    assert!(log.failures.is_empty(), "client: {:?}", log.failures);
    assert_eq!(log.echoes, total);
    let report = rx.recv().expect("server report");
    assert_eq!(report.error, None, "tungstenite server failed");
    assert_eq!(report.echoed, total);
    assert_eq!(report.close, Some((4002, "done".to_string())));
    // We closed first: on_close reports our close (tungstenite echoes it).
    assert_eq!(log.close, Some((4002, "done".to_string())));
}

#[test]
fn tungstenite_server_closes_our_client() {
    let _wd = util::watchdog("tungstenite_server_closes_our_client", 60);
    let (tx, rx) = mpsc::channel();
    let port = tungstenite_server(Some(1), tx);

    let cx = Context::new(ContextOptions::default()).expect("context");
    let handle = cx.handle();
    let log: Rc<RefCell<ClientLog>> = Rc::default();
    let (l1, l2) = (log.clone(), log.clone());
    let _conn = cx
        .connect(
            ConnectOptions::new(format!("ws://127.0.0.1:{port}/")),
            until_closed(
                Callbacks::new()
                    .on_connect(move |conn, _headers| {
                        if let Err(e) = conn.send_text("hello") {
                            l1.borrow_mut().failures.push(format!("send: {e}"));
                        }
                    })
                    .on_message(move |_conn, msg| {
                        l2.borrow_mut()
                            .failures
                            .push(format!("unexpected message {msg:?}"));
                    }),
                &log,
                &handle,
            ),
        )
        .expect("connect");
    cx.run().expect("run");
    drop(cx);

    let log = log.borrow();
    assert!(log.failures.is_empty(), "client: {:?}", log.failures);
    assert_eq!(log.close, Some((4003, "server bye".to_string())));
    let report = rx.recv().expect("server report");
    assert_eq!(report.error, None, "tungstenite server failed");
    assert_eq!(report.echoed, 1);
    // Our client answered the close handshake (with some close frame).
    assert!(report.close.is_some(), "no close answer from our client");
}
