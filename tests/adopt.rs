//! `Context::adopt`: a socket accepted by someone else (here a std
//! `TcpListener`), with none, part or all of its upgrade request already
//! read, becomes a working WebSocket server connection: handshake with the
//! request's path and headers, echo both ways, close codes, response
//! headers, rejection, max_message_size, garbage input, and freeing.

mod util;

use lws::{
    AdoptOptions, Callbacks, CloseCode, Context, ContextOptions, Handle, Handshake, Message, State,
};
use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::thread::{self, JoinHandle};
use std::time::Duration;
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode as TCloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message as TMessage;

/// Bound on every blocking read of the client threads, so a server that
/// never answers fails the test instead of hanging it.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

type Ws = tungstenite::WebSocket<TcpStream>;

/// How much of the upgrade request the "other server" reads before
/// handing the socket to lws.
#[derive(Clone, Copy, Debug)]
enum Preread {
    Nothing,
    /// Up to and including the first "\r\n" (the request line).
    FirstLine,
    /// Exactly this many bytes.
    Bytes(usize),
    /// The whole head, up to and including "\r\n\r\n".
    WholeHead,
}

/// Accepts one connection and reads from it as `how` says (byte by byte,
/// so nothing past the wanted point leaves the socket).
fn accept_and_read(listener: &TcpListener, how: Preread) -> (TcpStream, Vec<u8>) {
    let (mut stream, _) = listener.accept().expect("accept");
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut read = Vec::new();
    let done = |read: &Vec<u8>| match how {
        Preread::Nothing => true,
        Preread::FirstLine => read.ends_with(b"\r\n"),
        Preread::Bytes(n) => read.len() == n,
        Preread::WholeHead => read.ends_with(b"\r\n\r\n"),
    };
    while !done(&read) {
        let mut byte = [0u8; 1];
        let n = stream.read(&mut byte).expect("read the request");
        assert_eq!(n, 1, "the client hung up after {} bytes", read.len());
        read.push(byte[0]);
    }
    stream.set_read_timeout(None).unwrap();
    (stream, read)
}

/// Runs `f` in a client thread; if it fails, stops the loop (the server
/// would otherwise wait forever for a close).
fn spawn_client<T: Send + 'static>(
    stop: Handle,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> JoinHandle<Result<T, String>> {
    thread::spawn(move || {
        let r = f();
        if r.is_err() {
            let _ = stop.stop();
        }
        r
    })
}

/// Joins a client thread, failing the test with its error.
fn join<T>(client: JoinHandle<Result<T, String>>) -> T {
    match client.join().expect("client thread panicked") {
        Ok(t) => t,
        Err(e) => panic!("client: {e}"),
    }
}

/// A tungstenite handshake to `url` over a TCP stream with read timeouts;
/// returns the socket and the 101 response's headers (lower-case names).
fn ws_connect(
    url: &str,
    headers: &[(&'static str, &str)],
) -> Result<(Ws, Vec<(String, String)>), String> {
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, value.parse().map_err(|_| "header value")?);
    }
    let addr = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let stream = TcpStream::connect(&addr).map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let (ws, response) =
        tungstenite::client(request, stream).map_err(|e| format!("handshake: {e}"))?;
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    Ok((ws, headers))
}

/// Reads the next data message (answering nothing else).
fn read_data(ws: &mut Ws, what: &str) -> Result<TMessage, String> {
    loop {
        match ws.read().map_err(|e| format!("{what}: {e}"))? {
            TMessage::Ping(_) | TMessage::Pong(_) => continue,
            m => return Ok(m),
        }
    }
}

/// Drives tungstenite's close handshake to its end, then checks that the
/// server closed the TCP connection too (lws freed the adopted socket).
fn finish_close(mut ws: Ws) -> Result<Option<(u16, String)>, String> {
    let mut seen = None;
    loop {
        match ws.read() {
            Ok(TMessage::Close(frame)) => {
                seen = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
            }
            Ok(other) => return Err(format!("unexpected message while closing: {other:?}")),
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => return Err(format!("close handshake: {e}")),
        }
    }
    let mut buf = [0u8; 16];
    match ws.get_mut().read(&mut buf) {
        Ok(0) => Ok(seen),
        Ok(n) => Err(format!("{n} bytes after the close handshake")),
        Err(e) => Err(format!("server did not close the TCP connection: {e}")),
    }
}

/// What the server's callbacks saw on an adopted connection.
#[derive(Debug, Default)]
struct Seen {
    handshake: Vec<String>,
    connect: Vec<String>,
    messages: Vec<Message>,
    closes: Vec<(u16, String)>,
}

/// A server handler that records into `seen`, greets with "welcome",
/// echoes, closes with 4002 on "close-me", and stops the loop on close.
fn recording_echo(seen: &Rc<RefCell<Seen>>, stop: Handle) -> Callbacks {
    let (s1, s2, s3, s4) = (seen.clone(), seen.clone(), seen.clone(), seen.clone());
    Callbacks::new()
        .on_handshake(move |conn, req| {
            s1.borrow_mut().handshake.push(format!(
                "{:?} path={} x-token={}",
                conn.state(),
                req.path().unwrap_or("-"),
                req.get("X-Token").unwrap_or("-")
            ));
            Handshake::accept()
        })
        .on_connect(move |conn, headers| {
            s2.borrow_mut().connect.push(format!(
                "{:?} path={} x-token={} peer={}",
                conn.state(),
                headers.path().unwrap_or("-"),
                headers.get("x-token").unwrap_or("-"),
                conn.peer_addr().unwrap_or_default()
            ));
            conn.send_text("welcome").unwrap();
        })
        .on_message(move |conn, msg| {
            s3.borrow_mut().messages.push(msg.clone());
            if msg.as_bytes() == b"close-me" {
                conn.close(CloseCode(4002), "adopted bye");
            } else if msg.as_bytes() != b"welcome" {
                conn.send(msg).unwrap();
            }
        })
        .on_close(move |_, code, reason| {
            s4.borrow_mut().closes.push((code.0, reason.to_string()));
            let _ = stop.stop();
        })
}

/// The client side of the echo round trip: reads "welcome" and sends it
/// back, echoes a text and a binary message, then closes, either itself
/// (4001 "client bye") or by asking the server to ("close-me").
/// Returns the close frame it saw.
fn echo_client(url: String, client_closes: bool) -> Result<Option<(u16, String)>, String> {
    let (mut ws, _) = ws_connect(&url, &[("X-Token", "t0k")])?;
    match read_data(&mut ws, "welcome")? {
        TMessage::Text(t) if t.as_str() == "welcome" => {}
        other => return Err(format!("expected welcome, got {other:?}")),
    }
    ws.send(TMessage::text("welcome"))
        .map_err(|e| e.to_string())?;
    ws.send(TMessage::text("héllo"))
        .map_err(|e| e.to_string())?;
    match read_data(&mut ws, "text echo")? {
        TMessage::Text(t) if t.as_str() == "héllo" => {}
        other => return Err(format!("text echo: {other:?}")),
    }
    let bin: Vec<u8> = (0..=255u8).collect();
    ws.send(TMessage::binary(bin.clone()))
        .map_err(|e| e.to_string())?;
    match read_data(&mut ws, "binary echo")? {
        TMessage::Binary(b) if b[..] == bin[..] => {}
        other => return Err(format!("binary echo: {other:?}")),
    }
    if client_closes {
        ws.close(Some(CloseFrame {
            code: TCloseCode::from(4001),
            reason: "client bye".into(),
        }))
        .map_err(|e| format!("close: {e}"))?;
    } else {
        ws.send(TMessage::text("close-me"))
            .map_err(|e| e.to_string())?;
    }
    finish_close(ws)
}

/// One adopted echo session with `how` much of the request pre-read.
fn adopted_echo_session(name: &'static str, how: Preread, client_closes: bool) {
    let _wd = util::watchdog(name, 20);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cx = Context::new(ContextOptions::default()).unwrap();
    let url = format!("ws://127.0.0.1:{port}/chat?room=5");
    let client = spawn_client(cx.handle(), move || echo_client(url, client_closes));

    let (stream, pre) = accept_and_read(&listener, how);
    let seen: Rc<RefCell<Seen>> = Rc::default();
    let conn = cx
        .adopt(
            stream,
            &pre,
            AdoptOptions::default(),
            recording_echo(&seen, cx.handle()),
        )
        .expect("adopt");
    cx.run().unwrap();
    let client_saw_close = join(client);

    let seen = seen.borrow();
    assert_eq!(
        seen.handshake,
        vec!["Connecting path=/chat?room=5 x-token=t0k".to_string()],
        "{how:?}"
    );
    assert_eq!(
        seen.connect,
        vec!["Connected path=/chat?room=5 x-token=t0k peer=127.0.0.1".to_string()],
        "{how:?}"
    );
    let bin: Vec<u8> = (0..=255u8).collect();
    let mut expected = vec![
        Message::Text("welcome".into()),
        Message::Text("héllo".into()),
        Message::Binary(bin),
    ];
    // Whoever closes, both sides report the same code and reason.
    let close = if client_closes {
        (4001, "client bye".to_string())
    } else {
        expected.push(Message::Text("close-me".into()));
        (4002, "adopted bye".to_string())
    };
    assert_eq!(seen.messages, expected, "{how:?}");
    assert_eq!(seen.closes, vec![close.clone()], "{how:?}");
    assert_eq!(client_saw_close, Some(close), "{how:?}");
    // lws freed the wsi: the slot is gone too.
    assert_eq!(conn.state(), State::Destroyed);
    assert!(cx.connections().is_empty());
}

// With only part of the head in initial_data lws just buffers it and calls
// back after adopt() returned: the wsi must still find its handler (else
// the client gets 500, on_handshake never runs and the slot leaks).
#[test]
fn adopt_after_reading_the_request_line() {
    adopted_echo_session("adopt_first_line", Preread::FirstLine, true);
}

// As adopt_after_reading_the_request_line.
#[test]
fn adopt_after_reading_a_few_bytes() {
    // Part way into a header line, not at a line boundary.
    adopted_echo_session("adopt_few_bytes", Preread::Bytes(30), true);
}

#[test]
fn adopt_after_reading_the_whole_head() {
    adopted_echo_session("adopt_whole_head", Preread::WholeHead, true);
}

// As adopt_after_reading_the_request_line (no data: lws calls nothing
// during the adopt call).
#[test]
fn adopt_with_nothing_read() {
    adopted_echo_session("adopt_nothing_read", Preread::Nothing, true);
}

#[test]
fn adopted_connection_closes_with_the_servers_code() {
    adopted_echo_session("adopt_server_close", Preread::WholeHead, false);
}

#[test]
fn adopt_options_headers_reach_the_101_response() {
    let _wd = util::watchdog("adopt_headers", 20);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cx = Context::new(ContextOptions::default()).unwrap();
    let url = format!("ws://127.0.0.1:{port}/");
    let client = spawn_client(cx.handle(), move || {
        let (mut ws, headers) = ws_connect(&url, &[])?;
        ws.close(None).map_err(|e| e.to_string())?;
        finish_close(ws)?;
        Ok(headers)
    });
    let (stream, pre) = accept_and_read(&listener, Preread::WholeHead);
    let stop = cx.handle();
    let options = AdoptOptions {
        headers: vec![
            ("X-Adopted".into(), "yes".into()),
            ("Set-Cookie".into(), "session=abc123".into()),
        ],
        ..AdoptOptions::default()
    };
    let handler = Callbacks::new()
        .on_handshake(|_, _| {
            Handshake::accept_with_headers(vec![("X-Per-Conn".into(), "7".into())])
        })
        .on_close(move |_, _, _| {
            let _ = stop.stop();
        });
    cx.adopt(stream, &pre, options, handler).unwrap();
    cx.run().unwrap();
    let headers = join(client);
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("x-adopted"), Some("yes"), "{headers:?}");
    assert_eq!(get("set-cookie"), Some("session=abc123"), "{headers:?}");
    assert_eq!(get("x-per-conn"), Some("7"), "{headers:?}");
}

/// A hand-written upgrade request for `port`.
fn upgrade_request(port: u16, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Connects, sends `request`, reads until the server closes.
fn raw_exchange(port: u16, request: &[u8]) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    s.write_all(request).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => Ok(String::from_utf8_lossy(&out).into_owned()),
        // A reset after the response is still a hang-up.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            Ok(String::from_utf8_lossy(&out).into_owned())
        }
        Err(e) => Err(format!(
            "no hang-up (read {} bytes: {:?}): {e}",
            out.len(),
            String::from_utf8_lossy(&out)
        )),
    }
}

/// The client sends a whole upgrade request for "/private"; the server
/// reads `how` much of it, adopts, and its on_handshake refuses with 403.
/// Returns what the client received (the first line), the server's events
/// and the adopted connection's final state.
fn rejected_adoption(how: Preread) -> (String, Vec<String>, State) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cx = Context::new(ContextOptions::default()).unwrap();
    let stop = cx.handle();
    let client = spawn_client(cx.handle(), move || {
        let r = raw_exchange(port, upgrade_request(port, "/private").as_bytes());
        let _ = stop.stop(); // no callback tells the server loop it is over
        r
    });
    let (stream, pre) = accept_and_read(&listener, how);
    let events: Rc<RefCell<Vec<String>>> = Rc::default();
    let (e1, e2, e3) = (events.clone(), events.clone(), events.clone());
    let handler = Callbacks::new()
        .on_handshake(move |_, req| {
            e1.borrow_mut()
                .push(format!("handshake {}", req.path().unwrap_or("-")));
            Handshake::forbidden()
        })
        .on_connect(move |_, _| e2.borrow_mut().push("connect".into()))
        .on_close(move |_, _, _| e3.borrow_mut().push("close".into()));
    let conn = cx
        .adopt(stream, &pre, AdoptOptions::default(), handler)
        .unwrap();
    cx.run().unwrap();
    let response = join(client);
    let first_line = response.lines().next().unwrap_or("").to_string();
    if first_line.contains(" 403 ") {
        assert!(response.contains("Connection: close\r\n"), "{response:?}");
        assert!(response.ends_with("403 Forbidden\n"), "{response:?}");
    }
    let events = events.borrow().clone();
    (first_line, events, conn.state())
}

/// What [`rejected_adoption`] returns for a rejection: the client read
/// the 403; never connected, so neither on_connect nor on_close; the slot
/// is freed.
fn rejected() -> (String, Vec<String>, State) {
    (
        "HTTP/1.1 403 Forbidden".to_string(),
        vec!["handshake /private".to_string()],
        State::Destroyed,
    )
}

#[test]
fn on_handshake_can_reject_an_adopted_socket() {
    let _wd = util::watchdog("adopt_reject", 20);
    assert_eq!(rejected_adoption(Preread::WholeHead), rejected());
}

// A partly read request still reaches on_handshake, whose 403 the client
// gets, and the slot is freed (see adopt_after_reading_the_request_line).
#[test]
fn on_handshake_can_reject_a_partly_read_adopted_socket() {
    let _wd = util::watchdog("adopt_reject_partly_read", 20);
    assert_eq!(rejected_adoption(Preread::FirstLine), rejected());
}

/// An adopted connection with max_message_size 1000: the client sends
/// 1000 bytes (echoed), then 1001. Returns the close code the client got
/// and the codes the server's on_close reported.
fn oversized_message_on_adopted_connection() -> (Option<u16>, Vec<u16>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cx = Context::new(ContextOptions::default()).unwrap();
    let url = format!("ws://127.0.0.1:{port}/");
    let client = spawn_client(cx.handle(), move || {
        let (mut ws, _) = ws_connect(&url, &[])?;
        // At the limit: accepted and echoed.
        ws.send(TMessage::binary(vec![1u8; 1000]))
            .map_err(|e| e.to_string())?;
        match read_data(&mut ws, "echo at the limit")? {
            TMessage::Binary(b) if b.len() == 1000 => {}
            other => return Err(format!("echo at the limit: {other:?}")),
        }
        // One byte over: closed with 1009.
        ws.send(TMessage::binary(vec![2u8; 1001]))
            .map_err(|e| e.to_string())?;
        loop {
            match ws.read() {
                Ok(TMessage::Close(f)) => return Ok(f.map(|f| u16::from(f.code))),
                Ok(TMessage::Ping(_) | TMessage::Pong(_)) => continue,
                Ok(other) => return Err(format!("expected a close, got {other:?}")),
                Err(e) => return Err(format!("expected a close frame: {e}")),
            }
        }
    });
    let (stream, pre) = accept_and_read(&listener, Preread::WholeHead);
    let stop = cx.handle();
    let closes: Rc<RefCell<Vec<u16>>> = Rc::default();
    let c = closes.clone();
    let handler = Callbacks::new()
        .on_message(|conn, msg| conn.send(msg).unwrap())
        .on_close(move |_, code, _| {
            c.borrow_mut().push(code.0);
            let _ = stop.stop();
        });
    let options = AdoptOptions {
        max_message_size: 1000,
        ..AdoptOptions::default()
    };
    cx.adopt(stream, &pre, options, handler).unwrap();
    cx.run().unwrap();
    let client_saw = join(client);
    let closes = closes.borrow().clone();
    (client_saw, closes)
}

#[test]
fn max_message_size_on_an_adopted_connection_closes_with_1009() {
    let _wd = util::watchdog("adopt_max_message_size", 20);
    let (client_saw, server_closes) = oversized_message_on_adopted_connection();
    assert_eq!(client_saw, Some(1009));
    assert_eq!(server_closes.len(), 1, "one on_close: {server_closes:?}");
}

// The server closed first, with 1009, so its on_close reports 1009 ("ours
// when we closed first"), not the 1006 lws would report for a close
// started while receiving.
#[test]
fn server_on_close_reports_the_1009_it_sent() {
    let _wd = util::watchdog("adopt_1009_on_close", 20);
    let (client_saw, server_closes) = oversized_message_on_adopted_connection();
    assert_eq!(client_saw, Some(1009));
    assert_eq!(server_closes, vec![1009]);
}

#[test]
fn garbage_initial_data_is_refused_and_the_context_goes_on() {
    let _wd = util::watchdog("adopt_garbage", 20);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cx = Context::new(ContextOptions::default()).unwrap();

    // The garbage client sends "hello\r\n\r\n" and waits for the hang-up.
    let garbage_client = thread::spawn(move || raw_exchange(port, b"hello\r\n\r\n"));
    let (stream, pre) = accept_and_read(&listener, Preread::WholeHead);
    assert_eq!(pre, b"hello\r\n\r\n");
    let events: Rc<RefCell<Vec<String>>> = Rc::default();
    let (e1, e2, e3) = (events.clone(), events.clone(), events.clone());
    let handler = Callbacks::new()
        .on_handshake(move |_, _| {
            e1.borrow_mut().push("handshake".into());
            Handshake::accept()
        })
        .on_connect(move |_, _| e2.borrow_mut().push("connect".into()))
        .on_close(move |_, _, _| e3.borrow_mut().push("close".into()));
    // Refused at once (Err) or accepted and closed by lws: both are fine,
    // as long as it never becomes a connection.
    let garbage = cx.adopt(stream, &pre, AdoptOptions::default(), handler);

    // A proper adoption on the same context still works.
    let url = format!("ws://127.0.0.1:{port}/after");
    let client = spawn_client(cx.handle(), move || echo_client(url, true));
    let (stream, pre) = accept_and_read(&listener, Preread::WholeHead);
    let seen: Rc<RefCell<Seen>> = Rc::default();
    cx.adopt(
        stream,
        &pre,
        AdoptOptions::default(),
        recording_echo(&seen, cx.handle()),
    )
    .unwrap();
    cx.run().unwrap();
    join(client);
    assert_eq!(seen.borrow().closes, vec![(4001, "client bye".to_string())]);

    // lws hangs up, maybe after an HTTP error (4.3.5 answers 403).
    let response = garbage_client.join().unwrap().expect("garbage client");
    let status = response.split(' ').nth(1).unwrap_or("");
    assert!(
        response.is_empty() || (response.starts_with("HTTP/1.") && status.starts_with('4')),
        "garbage answered with: {response:?}"
    );
    assert!(events.borrow().is_empty(), "{:?}", events.borrow());
    if let Ok(conn) = garbage {
        assert_eq!(conn.state(), State::Destroyed);
    }
    assert!(cx.connections().is_empty());
}

#[test]
fn many_adopted_sockets_in_sequence_are_each_freed() {
    let _wd = util::watchdog("adopt_many", 60);
    const N: usize = 50;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cx = Context::new(ContextOptions::default()).unwrap();
    let closes: Rc<RefCell<Vec<u64>>> = Rc::default();
    let mut conns = Vec::new();
    for i in 0..N {
        let url = format!("ws://127.0.0.1:{port}/n/{i}");
        let client = spawn_client(cx.handle(), move || {
            let (mut ws, _) = ws_connect(&url, &[])?;
            let text = format!("message {i}");
            ws.send(TMessage::text(text.clone()))
                .map_err(|e| e.to_string())?;
            match read_data(&mut ws, "echo")? {
                TMessage::Text(t) if t.as_str() == text => {}
                other => return Err(format!("echo {i}: {other:?}")),
            }
            ws.close(None).map_err(|e| e.to_string())?;
            finish_close(ws)
        });
        // Whole, partial and empty pre-reads in turn.
        let how = [
            Preread::WholeHead,
            Preread::FirstLine,
            Preread::Bytes(30),
            Preread::Nothing,
        ][i % 4];
        let (stream, pre) = accept_and_read(&listener, how);
        let stop = cx.handle();
        let c = closes.clone();
        let handler = Callbacks::new()
            .on_message(|conn, msg| conn.send(msg).unwrap())
            .on_close(move |conn, _, _| {
                c.borrow_mut().push(conn.id());
                let _ = stop.stop();
            });
        let conn = cx
            .adopt(stream, &pre, AdoptOptions::default(), handler)
            .unwrap_or_else(|e| panic!("adopt #{i} ({how:?}): {e}"));
        cx.run().unwrap();
        join(client);
        // Freed after its close: the handle no longer finds it.
        assert_eq!(conn.state(), State::Destroyed, "#{i} ({how:?})");
        assert!(cx.connection(conn.id()).is_none(), "#{i} ({how:?})");
        conns.push(conn.id());
    }
    assert_eq!(*closes.borrow(), conns, "one on_close per connection");
    let ids: std::collections::HashSet<u64> = conns.iter().copied().collect();
    assert_eq!(ids.len(), N, "ids are never reused");
    assert!(cx.connections().is_empty());
}
