//! Server operator limits, on real sockets: `max_connections` (the one
//! over it gets 503 with `Retry-After: 1` and `Connection: close`, a place
//! freed by a close is taken again, and the limit changes at run time),
//! `handshake_timeout` (a client that sends nothing, or its request one
//! byte at a time, is dropped while a listener with a longer timeout keeps
//! the same kind of client, and others are served meanwhile; over TLS too;
//! a completed handshake or HTTP request outlives the timeout; zero is
//! refused and `Duration::MAX` means none), `max_header_size` (the default
//! takes headers lws's own 4096 would not, a request over the limit gets
//! 431 and a close, values outside 256..=65535 are refused), and the
//! default message and frame limits (a frame over 16 MiB closes with 1009).

mod util;

use lws::{
    Callbacks, ConnectOptions, Context, ContextOptions, Error, ListenOptions,
    DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_MESSAGE_SIZE,
};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tungstenite::{Message as TMessage, WebSocket};
use util::http::{raw_exchange, upgrade_request};
use util::{on_loop, raw_ws, ServerThread};

/// What the echo server reports: connections made and closed.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    Connected,
    Closed,
}

/// An echo listener with `options` on its own thread; its connections'
/// on_connect and on_close arrive on the receiver.
fn echo_server(
    context: ContextOptions,
    options: ListenOptions,
) -> (ServerThread, lws::Listener, mpsc::Receiver<Event>) {
    let (tx, rx) = mpsc::channel();
    let (server, listener) = ServerThread::start_with(context, move |cx| {
        let closed = tx.clone();
        let handler = Callbacks::new()
            .on_connect(move |_, _| {
                let _ = tx.send(Event::Connected);
            })
            .on_message(|conn, msg| {
                conn.send(msg).expect("echo send");
            })
            .on_close(move |_, _, _| {
                let _ = closed.send(Event::Closed);
            });
        cx.listen(options, handler).expect("listen")
    });
    (server, listener, rx)
}

fn next_event(events: &mpsc::Receiver<Event>) -> Event {
    events
        .recv_timeout(Duration::from_secs(10))
        .expect("the server reports the connection's event")
}

/// A tungstenite client that completed its handshake.
fn client(port: u16) -> WebSocket<TcpStream> {
    util::blocking_client(port).expect("the handshake is accepted")
}

/// Sends a text and expects it back.
fn assert_echoes(ws: &mut WebSocket<TcpStream>, text: &str) {
    ws.send(TMessage::text(text)).expect("send");
    loop {
        match ws.read().expect("read the echo") {
            TMessage::Text(t) => {
                assert_eq!(t.as_str(), text);
                return;
            }
            TMessage::Ping(_) | TMessage::Pong(_) => continue,
            other => panic!("expected the echo of {text:?}, got {other:?}"),
        }
    }
}

/// Closes `ws` and reads until the server's close frame came back.
fn close(mut ws: WebSocket<TcpStream>) {
    ws.close(None).expect("close");
    loop {
        match ws.read() {
            Ok(_) => continue,
            Err(tungstenite::Error::ConnectionClosed) => return,
            Err(e) => panic!("closing: {e}"),
        }
    }
}

/// The upgrade is refused as a listener at its limit refuses it.
fn assert_refused_503(port: u16) {
    let response = raw_exchange(port, &upgrade_request("/", &[], &[]));
    assert!(
        response.status_line.starts_with("HTTP/1.1 503"),
        "{response:?}"
    );
    assert_eq!(response.header("Retry-After"), Some("1"), "{response:?}");
    response.assert_complete(); // Content-Length exact, Connection: close
}

// ---- max_connections ----

#[test]
fn the_connection_over_max_connections_gets_503_until_one_closes() {
    let _wd = util::watchdog("max_connections", 60);
    let mut options = ListenOptions::new(0);
    options.max_connections = 2;
    let (_server, listener, events) = echo_server(ContextOptions::default(), options);
    let port = listener.port();
    let mut a = client(port);
    let mut b = client(port);
    assert_eq!(next_event(&events), Event::Connected);
    assert_eq!(next_event(&events), Event::Connected);
    // The third, fourth: refused, and never reach the handler.
    assert_refused_503(port);
    match util::blocking_client(port) {
        Err(e) => assert!(e.contains("503"), "{e}"),
        Ok(_) => panic!("a third connection was admitted over max_connections 2"),
    }
    // The two admitted ones are served throughout.
    assert_echoes(&mut a, "a");
    assert_echoes(&mut b, "b");
    // One closes: its place is free again, and only one place.
    close(a);
    assert_eq!(next_event(&events), Event::Closed);
    let mut c = client(port);
    assert_eq!(next_event(&events), Event::Connected);
    assert_echoes(&mut c, "c");
    assert_refused_503(port);
    assert_echoes(&mut b, "b again");
    assert!(
        events.try_recv().is_err(),
        "no refused connection may reach on_connect or on_close"
    );
}

#[test]
fn max_connections_changes_at_run_time_through_configure_listener() {
    let _wd = util::watchdog("max_connections_configure", 60);
    let (server, listener, events) = echo_server(ContextOptions::default(), ListenOptions::new(0));
    let port = listener.port();
    let id = listener.id();
    // Unlimited by default.
    let mut open: Vec<_> = (0..3).map(|_| client(port)).collect();
    for _ in 0..3 {
        assert_eq!(next_event(&events), Event::Connected);
    }
    // Lowered under what is open: nothing is closed, new ones are refused.
    on_loop(&server, move |cx| {
        cx.configure_listener(id, |o| o.max_connections = 2)
    })
    .expect("configure");
    assert_refused_503(port);
    for (i, ws) in open.iter_mut().enumerate() {
        assert_echoes(ws, &format!("still open {i}"));
    }
    // Two close: one open of two, so one place.
    close(open.pop().expect("three"));
    close(open.pop().expect("two"));
    assert_eq!(next_event(&events), Event::Closed);
    assert_eq!(next_event(&events), Event::Closed);
    open.push(client(port));
    assert_eq!(next_event(&events), Event::Connected);
    assert_refused_503(port);
    // Raised: admitted again.
    on_loop(&server, move |cx| {
        cx.configure_listener(id, |o| o.max_connections = 3)
    })
    .expect("configure");
    open.push(client(port));
    assert_eq!(next_event(&events), Event::Connected);
    assert_refused_503(port);
    // 0: unlimited.
    on_loop(&server, move |cx| {
        cx.configure_listener(id, |o| o.max_connections = 0)
    })
    .expect("configure");
    open.push(client(port));
    assert_eq!(next_event(&events), Event::Connected);
    for (i, ws) in open.iter_mut().enumerate() {
        assert_echoes(ws, &format!("at the end {i}"));
    }
}

#[test]
fn a_handshake_the_handler_rejects_takes_no_place() {
    let _wd = util::watchdog("max_connections_rejected", 30);
    let rejected = Arc::new(AtomicUsize::new(0));
    let seen = rejected.clone();
    let (_server, port) = ServerThread::start(move |cx| {
        let mut options = ListenOptions::new(0);
        options.max_connections = 1;
        let handler = Callbacks::new()
            .on_handshake(move |_, headers| {
                if headers.path() == Some("/no") {
                    seen.fetch_add(1, Ordering::SeqCst);
                    lws::Handshake::forbidden()
                } else {
                    lws::Handshake::accept()
                }
            })
            .on_message(|conn, msg| {
                conn.send(msg).expect("echo send");
            });
        cx.listen(options, handler).expect("listen").port()
    });
    for _ in 0..3 {
        let response = raw_exchange(port, &upgrade_request("/no", &[], &[]));
        assert!(
            response.status_line.starts_with("HTTP/1.1 403"),
            "{response:?}"
        );
    }
    assert_eq!(rejected.load(Ordering::SeqCst), 3);
    let mut ws = client(port);
    assert_echoes(&mut ws, "the one place");
    assert_refused_503(port);
    assert_eq!(
        rejected.load(Ordering::SeqCst),
        3,
        "a connection over the limit must be refused before on_handshake"
    );
}

// ---- handshake_timeout ----

/// A listener with a 1 s handshake timeout and one with 30 s, both echo.
fn timeout_servers() -> (ServerThread, u16, u16) {
    let (server, (short, long)) = ServerThread::start(|cx| {
        let echo = || {
            Callbacks::new().on_message(|conn, msg| {
                conn.send(msg).expect("echo send");
            })
        };
        let mut short = ListenOptions::new(0);
        short.handshake_timeout = Some(Duration::from_secs(1));
        let mut long = ListenOptions::new(0);
        long.handshake_timeout = Some(Duration::from_secs(30));
        let short = cx.listen(short, echo()).expect("listen").port();
        let long = cx.listen(long, echo()).expect("listen").port();
        (short, long)
    });
    (server, short, long)
}

fn connect_raw(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// True once the server closed `stream` (EOF or reset), false while it is
/// open; waits at most `wait` for news.
fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).expect("read timeout");
    let mut buf = [0u8; 256];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(n) => panic!(
            "the server answered an incomplete request: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => true,
        Err(e) => panic!("read: {e}"),
    }
}

/// Sends the rest of an upgrade request at once and expects the 101.
fn finish_upgrade(stream: &mut TcpStream, rest: &[u8]) {
    stream.write_all(rest).expect("send the rest");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let head = raw_ws::read_head(stream).expect("the upgrade response");
    assert!(head.starts_with("HTTP/1.1 101"), "{head:?}");
}

#[test]
fn a_client_that_sends_nothing_is_dropped_after_the_handshake_timeout() {
    let _wd = util::watchdog("handshake_timeout_silent", 60);
    let (_server, short, long) = timeout_servers();
    let started = Instant::now();
    let mut silent = connect_raw(short);
    let mut patient = connect_raw(long);
    // Meanwhile another client is served on the same listener.
    let mut ws = client(short);
    assert_echoes(&mut ws, "served meanwhile");
    assert!(
        closed_within(&mut silent, Duration::from_secs(15)),
        "a silent client was still connected 15 s after a 1 s handshake timeout"
    );
    // Not before its time: a timer, not some other refusal.
    assert!(started.elapsed() >= Duration::from_millis(1000));
    // The listener with 30 s still holds its silent client, which can
    // then complete its handshake.
    assert!(!closed_within(&mut patient, Duration::from_millis(100)));
    finish_upgrade(&mut patient, upgrade_request("/", &[], &[]).as_bytes());
    // And the established connection outlives the 1 s timeout.
    std::thread::sleep(Duration::from_millis(1500));
    assert_echoes(&mut ws, "after the timeout");
    let mut later = client(short);
    assert_echoes(&mut later, "a new client after the drop");
}

#[test]
fn a_client_sending_its_request_one_byte_at_a_time_is_dropped_after_the_handshake_timeout() {
    let _wd = util::watchdog("handshake_timeout_slowloris", 60);
    let (_server, short, long) = timeout_servers();
    let request = upgrade_request("/", &[], &[("X-Padding", &"p".repeat(200))]);
    let request = request.as_bytes();
    // Before connecting: the server's clock starts at its accept.
    let started = Instant::now();
    let mut slow = connect_raw(short);
    let mut patient = connect_raw(long);
    let mut sent = 0;
    let mut dropped = false;
    // One byte every 100 ms to both (the whole request would take over
    // 25 s): activity must not extend the 1 s deadline. Bounded by the
    // request's length.
    while sent < request.len() - 1 {
        let byte = &request[sent..sent + 1];
        let _ = slow.write_all(byte); // fails once the server dropped it
        patient
            .write_all(byte)
            .expect("the 30 s listener keeps reading");
        sent += 1;
        if closed_within(&mut slow, Duration::from_millis(100)) {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "the slow client was never dropped ({sent} bytes)");
    assert!(started.elapsed() >= Duration::from_millis(1000));
    assert!(
        sent < 100,
        "dropped only after {sent} bytes, {:?}: the deadline moved with the bytes",
        started.elapsed()
    );
    // The other listener kept its slow client, and serves everyone else.
    assert!(!closed_within(&mut patient, Duration::from_millis(100)));
    finish_upgrade(&mut patient, &request[sent..]);
    let mut ws = client(short);
    assert_echoes(&mut ws, "served after the slowloris");
}

#[test]
fn over_tls_the_handshake_timeout_covers_the_tls_handshake_and_the_request() {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    let _wd = util::watchdog("handshake_timeout_tls", 60);
    let pki = util::tls::TestPki::generate("limits-timeout");
    let (cert, key) = (pki.server_cert.clone(), pki.server_key.clone());
    let (_server, port) = ServerThread::start(move |cx| {
        let mut options = ListenOptions::new(0);
        options.tls = Some(lws::ServerTls::new(cert, key));
        options.handshake_timeout = Some(Duration::from_secs(1));
        cx.listen(options, Callbacks::new()).expect("listen").port()
    });
    let started = Instant::now();
    // One never starts TLS; the other completes it and sends no request
    // (lws's own timeout after TLS is 15 s: this is ours).
    let mut no_hello = connect_raw(port);
    let mut builder = SslConnector::builder(SslMethod::tls()).expect("TLS client");
    builder.set_verify(SslVerifyMode::NONE);
    let mut tls = builder
        .build()
        .connect("localhost", connect_raw(port))
        .expect("the TLS handshake");
    assert!(
        closed_within(&mut no_hello, Duration::from_secs(15)),
        "a client that never sent a TLS hello is still connected"
    );
    tls.get_ref()
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("read timeout");
    let mut buf = [0u8; 64];
    match tls.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("the server sent {n} bytes to a client that asked nothing"),
        Err(e) => assert!(
            !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "a TLS client without a request is still connected after 15 s"
        ),
    }
    assert!(started.elapsed() >= Duration::from_millis(1000));
}

/// Sends a GET on `stream` and reads the whole answer (by its
/// Content-Length), leaving the connection open.
fn http_get(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("send the request");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let head = raw_ws::read_head(stream).expect("the response head");
    let length: usize = head
        .split("\r\n")
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().expect("numeric Content-Length"))
        })
        .unwrap_or_else(|| panic!("no Content-Length in {head:?}"));
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).expect("the response body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head:?}");
    String::from_utf8(body).expect("UTF-8 body")
}

#[test]
fn a_plain_http_connection_is_not_cut_by_the_handshake_timeout_once_its_request_is_in() {
    let _wd = util::watchdog("handshake_timeout_http", 30);
    let (_server, port) = ServerThread::start(|cx| {
        let mut options = ListenOptions::new(0);
        options.handshake_timeout = Some(Duration::from_secs(1));
        let handler = Callbacks::new().on_http(|_| lws::HttpResponse::text(200, "hello"));
        cx.listen(options, handler).expect("listen").port()
    });
    let mut stream = connect_raw(port);
    assert_eq!(http_get(&mut stream), "hello");
    // Past the handshake timeout (within lws's 5 s HTTP keep-alive): the
    // same connection still takes a request.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(http_get(&mut stream), "hello");
}

#[test]
fn handshake_timeout_zero_is_refused() {
    let cx = Context::new(ContextOptions::default()).expect("context");
    let mut options = ListenOptions::new(0);
    options.handshake_timeout = Some(Duration::ZERO);
    assert!(matches!(
        cx.listen(options, Callbacks::new()),
        Err(Error::InvalidOption(_))
    ));
    let id = cx
        .listen(ListenOptions::new(0), Callbacks::new())
        .expect("listen")
        .id();
    assert!(matches!(
        cx.configure_listener(id, |o| o.handshake_timeout = Some(Duration::ZERO)),
        Err(Error::InvalidOption(_))
    ));
    cx.configure_listener(id, |o| o.handshake_timeout = None)
        .expect("None: lws's own timeouts only");
}

#[test]
fn a_huge_handshake_timeout_is_no_timeout_at_all() {
    let _wd = util::watchdog("handshake_timeout_huge", 30);
    let mut options = ListenOptions::new(0);
    options.handshake_timeout = Some(Duration::MAX);
    let (_server, listener, events) = echo_server(ContextOptions::default(), options);
    let mut ws = client(listener.port());
    assert_eq!(next_event(&events), Event::Connected);
    assert_echoes(&mut ws, "no overflow, no instant timeout");
}

// ---- max_header_size ----

/// An upgrade request with one extra header of `size` bytes.
fn request_with_header(size: usize) -> String {
    upgrade_request("/", &[], &[("X-Big", &"b".repeat(size))])
}

/// What lws does with a request whose headers overflow its table: it
/// answers 431 and closes.
fn assert_too_big(port: u16, size: usize) {
    let mut stream = connect_raw(port);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    // The server may close before reading all of it.
    let _ = stream.write_all(request_with_header(size).as_bytes());
    let got = raw_ws::read_to_close(&mut stream)
        .unwrap_or_else(|(e, got)| panic!("the server kept the connection open: {e} ({got:?})"));
    let response = util::http::parse_response(&got);
    assert!(
        response.status_line.starts_with("HTTP/1.1 431"),
        "a {size}-byte header: {response:?}"
    );
    response.assert_complete();
}

fn assert_upgrades(port: u16, size: usize) {
    let mut stream = connect_raw(port);
    finish_upgrade(&mut stream, request_with_header(size).as_bytes());
}

#[test]
fn the_default_header_limit_is_8192_bytes() {
    let _wd = util::watchdog("max_header_size_default", 30);
    assert_eq!(ContextOptions::default().max_header_size, 8192);
    let (_server, listener, _events) =
        echo_server(ContextOptions::default(), ListenOptions::new(0));
    let port = listener.port();
    // More than lws's own default of 4096 would take.
    assert_upgrades(port, 6000);
    assert_too_big(port, 9000);
    let mut ws = client(port);
    assert_echoes(&mut ws, "served after a refusal");
}

#[test]
fn a_request_over_max_header_size_is_refused() {
    let _wd = util::watchdog("max_header_size", 30);
    let context = ContextOptions {
        max_header_size: 1024,
        ..ContextOptions::default()
    };
    let (_server, listener, _events) = echo_server(context, ListenOptions::new(0));
    let port = listener.port();
    assert_upgrades(port, 700);
    assert_too_big(port, 1100);
    assert_too_big(port, 100_000);
    let mut ws = client(port);
    assert_echoes(&mut ws, "served after the refusals");
}

#[test]
fn max_header_size_outside_256_to_65535_is_refused() {
    for bad in [0, 255, 65536, usize::MAX] {
        let options = ContextOptions {
            max_header_size: bad,
            ..ContextOptions::default()
        };
        assert!(
            matches!(Context::new(options), Err(Error::InvalidOption(_))),
            "max_header_size {bad}"
        );
    }
    for good in [256, 65535] {
        let options = ContextOptions {
            max_header_size: good,
            ..ContextOptions::default()
        };
        Context::new(options).unwrap_or_else(|e| panic!("max_header_size {good}: {e}"));
    }
}

// ---- default message and frame limits ----

#[test]
fn message_and_frame_limits_have_safe_defaults() {
    assert_eq!(DEFAULT_MAX_MESSAGE_SIZE, 64 << 20);
    assert_eq!(DEFAULT_MAX_FRAME_SIZE, 16 << 20);
    let listen = ListenOptions::new(0);
    assert_eq!(listen.max_message_size, DEFAULT_MAX_MESSAGE_SIZE);
    assert_eq!(listen.max_frame_size, DEFAULT_MAX_FRAME_SIZE);
    assert_eq!(listen.handshake_timeout, Some(Duration::from_secs(10)));
    assert_eq!(listen.max_connections, 0);
    let connect = ConnectOptions::new("ws://127.0.0.1:1/");
    assert_eq!(connect.max_message_size, DEFAULT_MAX_MESSAGE_SIZE);
    assert_eq!(connect.max_frame_size, DEFAULT_MAX_FRAME_SIZE);
    let adopt = lws::AdoptOptions::default();
    assert_eq!(adopt.max_message_size, DEFAULT_MAX_MESSAGE_SIZE);
    assert_eq!(adopt.max_frame_size, DEFAULT_MAX_FRAME_SIZE);
}

#[test]
fn a_frame_over_the_default_frame_limit_closes_with_1009() {
    let _wd = util::watchdog("default_frame_limit", 30);
    let (_server, listener, _events) =
        echo_server(ContextOptions::default(), ListenOptions::new(0));
    let (mut stream, _) = raw_ws::upgrade(listener.port(), &[]);
    // A header announcing one byte over 16 MiB, and the first 4 KiB: the
    // server must not wait for (or buffer) the rest.
    let mut frame = vec![0x80 | raw_ws::BINARY, 0x80 | 127];
    frame.extend_from_slice(&((DEFAULT_MAX_FRAME_SIZE + 1) as u64).to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]); // mask key: payload as is
    frame.extend_from_slice(&[7u8; 4096]);
    stream.write_all(&frame).expect("send");
    let close = raw_ws::read_frame(&mut stream).expect("the server's close frame");
    assert_eq!(close.close_code().map(|c| c.0), Some(1009), "{close:?}");
}
