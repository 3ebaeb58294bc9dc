//! Malformed input from the network (issue 8): one test per case, on real
//! sockets. Against our server, a raw peer misbehaves while a healthy
//! tungstenite client stays connected: each test asserts what the bad
//! peer gets (HTTP status or close code), that its connection is closed,
//! that the server's on_close saw it go, and that the healthy client is
//! still served afterwards. Against our client, a hostile server
//! (tests/util/hostile.rs) misbehaves, and the test asserts the close
//! frame our client sends, its on_close code, and that it hung up.

mod util;

use lws::{Callbacks, Context, ContextOptions, ListenOptions};
use std::cell::RefCell;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tungstenite::{Message as TMessage, WebSocket};
use util::hostile::{Answer, Hostile};
use util::raw_ws::{self, Frame, BINARY, CLOSE, CONTINUATION, MASK, PING, TEXT};
use util::{http, ServerThread};

/// The largest message the fixture's server accepts.
const MAX_MESSAGE: usize = 1000;

/// An echo server with one healthy client connected.
struct Fixture {
    server: ServerThread,
    port: u16,
    /// (code, reason) of every on_close the server reports.
    closes: mpsc::Receiver<(u16, String)>,
    healthy: WebSocket<TcpStream>,
    rounds: usize,
}

impl Fixture {
    fn new() -> Fixture {
        let (tx, closes) = mpsc::channel();
        let (server, port) = ServerThread::start(move |cx| {
            let mut options = ListenOptions::new(0);
            options.max_message_size = MAX_MESSAGE;
            let callbacks = Callbacks::new()
                .on_message(|conn, msg| {
                    let _ = conn.send(msg);
                })
                .on_close(move |_, code, reason| {
                    let _ = tx.send((code.0, reason.to_string()));
                });
            cx.listen(options, callbacks).expect("listen").port()
        });
        let healthy = util::blocking_client(port).expect("healthy client");
        let mut fixture = Fixture {
            server,
            port,
            closes,
            healthy,
            rounds: 0,
        };
        fixture.assert_serving();
        fixture
    }

    /// The healthy client gets its echo and is the server's only
    /// connection (anything else is gone: freed, not leaked), and no
    /// on_close is left unaccounted for.
    fn assert_serving(&mut self) {
        self.rounds += 1;
        let text = format!("still here {}", self.rounds);
        self.healthy
            .send(TMessage::text(text.clone()))
            .expect("healthy client send");
        match self.healthy.read() {
            Ok(TMessage::Text(t)) => assert_eq!(t.as_str(), text),
            other => panic!("the healthy client got {other:?} instead of its echo"),
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let n = util::on_loop(&self.server, |cx| cx.connections().len());
            if n == 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the server still has {n} connections, only the healthy one should be left"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Every on_close of a freed connection has run by now (it runs
        // before the connection is removed): none beyond those the test
        // took, so no connection was reported twice, and none that never
        // opened (a refused handshake) was reported at all.
        if let Ok(close) = self.closes.try_recv() {
            panic!("an on_close the test did not expect: {close:?}");
        }
    }

    /// The next on_close the server reports (the healthy client never
    /// closes, so it is the bad peer's).
    fn server_close(&self) -> (u16, String) {
        self.closes
            .recv_timeout(Duration::from_secs(10))
            .expect("the server's on_close for the bad connection")
    }

    /// A raw client that completed the upgrade.
    fn upgraded(&self) -> TcpStream {
        raw_ws::upgrade(self.port, &[]).0
    }

    /// Sends `bytes` after a good upgrade; asserts the server answers with
    /// a close frame carrying `code` (as its only or last frame) and closes
    /// the connection, and that its on_close reports `code` too. Then the
    /// server must still be serving.
    fn assert_closed_with(&mut self, bytes: &[u8], code: u16) {
        let mut stream = self.upgraded();
        stream.write_all(bytes).expect("send the bad frames");
        let (frames, closed) = read_until_closed(&mut stream);
        let close = frames.iter().rev().find(|f| f.opcode == CLOSE);
        assert_eq!(
            close.and_then(Frame::close_code).map(|(c, _)| c),
            Some(code),
            "expected a close frame with {code}, got {frames:?}"
        );
        assert!(
            frames.iter().all(|f| !f.masked),
            "server frames are never masked"
        );
        assert!(closed, "the server left the bad connection open");
        assert_eq!(self.server_close().0, code, "the server's on_close code");
        self.assert_serving();
    }

    /// Writes `request` on a fresh socket; returns everything the server
    /// sent before closing it (Err if it kept it open for 10 s).
    fn http_answer(&mut self, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        stream.write_all(request).expect("send");
        let got = raw_ws::read_to_close(&mut stream)
            .unwrap_or_else(|(e, got)| panic!("the server did not close ({e}); sent {got:?}"));
        String::from_utf8_lossy(&got).into_owned()
    }
}

/// Reads frames until the peer's close frame, answers it (as RFC 6455
/// asks), then reads to EOF. Returns the frames and whether the
/// connection was closed (EOF or reset) within the read timeout.
fn read_until_closed(stream: &mut TcpStream) -> (Vec<Frame>, bool) {
    let mut frames = Vec::new();
    loop {
        match raw_ws::read_frame(stream) {
            Ok(f) => {
                let is_close = f.opcode == CLOSE;
                frames.push(f);
                if is_close {
                    // The server may already have hung up: ignore failures.
                    let _ = stream.write_all(&raw_ws::masked(CLOSE, &[]));
                    break;
                }
            }
            Err(e) => {
                let closed = !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
                return (frames, closed);
            }
        }
    }
    let closed = raw_ws::read_to_close(stream).is_ok();
    (frames, closed)
}

fn masked_frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw_ws::frame(fin, rsv, opcode, Some(MASK), payload)
}

// ---- the opening handshake ----

// Bytes that are not HTTP at all: lws's parser refuses them with its own
// "HTTP/1.0 403 Forbidden" page and closes.
#[test]
fn non_http_garbage_is_answered_403_and_closed() {
    let _wd = util::watchdog("non_http_garbage", 60);
    let mut fx = Fixture::new();
    let answer = fx.http_answer(b"\x16\x03\x01\x02\x00garbage \x00\xff\xfe\r\n\r\n");
    assert!(
        answer.starts_with("HTTP/1.0 403 Forbidden\r\n"),
        "expected lws's 403, got {answer:?}"
    );
    fx.assert_serving();
}

// An upgrade without Sec-WebSocket-Key: 400 Bad Request, closed.
#[test]
fn missing_key_is_answered_400_and_closed() {
    let _wd = util::watchdog("missing_key", 60);
    let mut fx = Fixture::new();
    let request = http::upgrade_request("/", &["Sec-WebSocket-Key"], &[]);
    let answer = fx.http_answer(request.as_bytes());
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer:?}"
    );
    fx.assert_serving();
}

// A Sec-WebSocket-Key that is not the base64 of 16 bytes (too short, not
// base64, too long): 400 Bad Request, closed, each time.
#[test]
fn malformed_key_is_answered_400_and_closed() {
    let _wd = util::watchdog("malformed_key", 60);
    let mut fx = Fixture::new();
    let long = "QUJD".repeat(40);
    for key in ["", "abc", "not base64 at all!!!!!==", long.as_str()] {
        let request = http::upgrade_request("/", &[], &[("Sec-WebSocket-Key", key)]);
        let answer = fx.http_answer(request.as_bytes());
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "key {key:?}: {answer:?}"
        );
        fx.assert_serving();
    }
}

// Another protocol version: 426 Upgrade Required naming version 13.
#[test]
fn unsupported_version_is_answered_426_naming_13() {
    let _wd = util::watchdog("unsupported_version", 60);
    let mut fx = Fixture::new();
    for version in ["8", "12", "14", "banana"] {
        let request = http::upgrade_request("/", &[], &[("Sec-WebSocket-Version", version)]);
        let answer = fx.http_answer(request.as_bytes());
        let response = http::parse_response(answer.as_bytes());
        assert_eq!(
            response.status_line, "HTTP/1.1 426 Upgrade Required",
            "version {version:?}"
        );
        assert_eq!(response.header("Sec-WebSocket-Version"), Some("13"));
        fx.assert_serving();
    }
}

// ---- frames from a bad client: the server closes with 1002 ----

// RSV1-3 set without an extension that defines them: 1002.
#[test]
fn reserved_bits_close_1002() {
    let _wd = util::watchdog("reserved_bits", 60);
    let mut fx = Fixture::new();
    for rsv in [4, 2, 1, 7] {
        fx.assert_closed_with(&masked_frame(true, rsv, TEXT, b"rsv"), 1002);
    }
}

// Reserved data (3-7) and control (0xB-0xF) opcodes: 1002.
#[test]
fn reserved_opcodes_close_1002() {
    let _wd = util::watchdog("reserved_opcodes", 60);
    let mut fx = Fixture::new();
    for opcode in [3, 7, 0xB, 0xF] {
        fx.assert_closed_with(&masked_frame(true, 0, opcode, b"op"), 1002);
    }
}

// A client frame without a mask (RFC 6455 5.1: the server must close): 1002.
#[test]
fn unmasked_client_frame_closes_1002() {
    let _wd = util::watchdog("unmasked_client_frame", 60);
    let mut fx = Fixture::new();
    fx.assert_closed_with(&raw_ws::frame(true, 0, TEXT, None, b"hello"), 1002);
}

// A ping with 126 payload bytes (control frames carry at most 125): 1002.
// (lws's parser is left inside the bad frame's header, so it cannot read
// our close answer: it hangs up after its 5 s close-ack timeout.)
#[test]
fn control_frame_over_125_bytes_closes_1002() {
    let _wd = util::watchdog("control_over_125", 60);
    let mut fx = Fixture::new();
    fx.assert_closed_with(&masked_frame(true, 0, PING, &[b'p'; 126]), 1002);
}

// A ping without FIN (control frames must not be fragmented): 1002.
#[test]
fn fragmented_control_frame_closes_1002() {
    let _wd = util::watchdog("fragmented_control", 60);
    let mut fx = Fixture::new();
    let mut bytes = masked_frame(false, 0, PING, b"part 1");
    bytes.extend(masked_frame(true, 0, CONTINUATION, b"part 2"));
    fx.assert_closed_with(&bytes, 1002);
}

// A continuation frame with no message started: 1002.
#[test]
fn continuation_without_start_closes_1002() {
    let _wd = util::watchdog("continuation_without_start", 60);
    let mut fx = Fixture::new();
    fx.assert_closed_with(&masked_frame(true, 0, CONTINUATION, b"orphan"), 1002);
}

// A new data frame while a fragmented message is still open: 1002.
#[test]
fn new_message_inside_a_fragmented_one_closes_1002() {
    let _wd = util::watchdog("new_message_inside_fragmented", 60);
    let mut fx = Fixture::new();
    let mut bytes = masked_frame(false, 0, TEXT, b"first ");
    bytes.extend(masked_frame(true, 0, BINARY, b"second"));
    fx.assert_closed_with(&bytes, 1002);
}

// A 64-bit payload length with its top bit set (RFC 6455 5.2: must be 0): 1002.
#[test]
fn length_with_top_bit_set_closes_1002() {
    let _wd = util::watchdog("length_top_bit", 60);
    let mut fx = Fixture::new();
    let mut bytes = raw_ws::frame_header(true, 0, BINARY, Some(MASK), 1 << 63 | 5);
    bytes.extend_from_slice(b"hello");
    fx.assert_closed_with(&bytes, 1002);
}

// ---- payloads ----

// Text that is not UTF-8, in one frame: 1007.
#[test]
fn invalid_utf8_text_closes_1007() {
    let _wd = util::watchdog("invalid_utf8_text", 60);
    let mut fx = Fixture::new();
    fx.assert_closed_with(&masked_frame(true, 0, TEXT, b"ok \xff\xfe no"), 1007);
    // A message that ends inside a multi-byte sequence.
    fx.assert_closed_with(&masked_frame(true, 0, TEXT, b"cut \xe2\x82"), 1007);
}

// Invalid UTF-8 split across fragments: each fragment alone could begin
// or end a valid text, together they are not: 1007.
#[test]
fn invalid_utf8_across_fragments_closes_1007() {
    let _wd = util::watchdog("invalid_utf8_fragments", 60);
    let mut fx = Fixture::new();
    // "\xe2\x82" then "\x28": a 3-byte sequence broken by '('.
    let mut bytes = masked_frame(false, 0, TEXT, b"euro \xe2\x82");
    bytes.extend(masked_frame(true, 0, CONTINUATION, b"\x28 no"));
    fx.assert_closed_with(&bytes, 1007);
    // Valid first fragment, a stray continuation byte in the second.
    let mut bytes = masked_frame(false, 0, TEXT, "grüß ".as_bytes());
    bytes.extend(masked_frame(false, 0, CONTINUATION, b"ok"));
    bytes.extend(masked_frame(true, 0, CONTINUATION, b"\x80"));
    fx.assert_closed_with(&bytes, 1007);
}

// A message over max_message_size, in one frame and in fragments: 1009.
#[test]
fn message_over_max_message_size_closes_1009() {
    let _wd = util::watchdog("message_over_max", 60);
    let mut fx = Fixture::new();
    fx.assert_closed_with(&masked_frame(true, 0, BINARY, &[1; MAX_MESSAGE + 1]), 1009);
    let mut bytes = masked_frame(false, 0, BINARY, &[2; MAX_MESSAGE / 2]);
    for _ in 0..2 {
        bytes.extend(masked_frame(false, 0, CONTINUATION, &[2; MAX_MESSAGE / 2]));
    }
    bytes.extend(masked_frame(true, 0, CONTINUATION, b"end"));
    fx.assert_closed_with(&bytes, 1009);
    // The peer's close right behind the message changes nothing: the
    // server already failed the connection, its 1009 is sent and reported.
    let mut bytes = masked_frame(true, 0, BINARY, &[4; MAX_MESSAGE + 1]);
    bytes.extend(raw_ws::masked(CLOSE, &raw_ws::close_payload(1000, b"")));
    fx.assert_closed_with(&bytes, 1009);
    // The limit itself is fine.
    let mut stream = fx.upgraded();
    stream
        .write_all(&masked_frame(true, 0, BINARY, &[3; MAX_MESSAGE]))
        .unwrap();
    let echo = raw_ws::read_frame(&mut stream).expect("echo of a message at the limit");
    assert_eq!(echo.payload, vec![3; MAX_MESSAGE]);
    drop(stream);
    let _ = fx.server_close();
    fx.assert_serving();
}

// ---- close frames ----

// Close codes RFC 6455 7.4 forbids on the wire, or that nobody may use:
// the server answers 1002.
#[test]
fn invalid_close_codes_are_answered_1002() {
    let _wd = util::watchdog("invalid_close_codes", 120);
    let mut fx = Fixture::new();
    for code in [
        0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        let mut stream = fx.upgraded();
        stream
            .write_all(&raw_ws::masked(CLOSE, &raw_ws::close_payload(code, b"")))
            .unwrap();
        let (frames, closed) = read_until_closed(&mut stream);
        assert_eq!(
            frames.last().and_then(Frame::close_code).map(|(c, _)| c),
            Some(1002),
            "close code {code}: the server sent {frames:?}"
        );
        assert!(closed, "close code {code}: connection left open");
        assert_eq!(fx.server_close().0, 1002, "close code {code}: on_close");
        fx.assert_serving();
    }
}

// Valid codes are echoed (control for the test above).
#[test]
fn valid_close_codes_are_echoed() {
    let _wd = util::watchdog("valid_close_codes", 60);
    let mut fx = Fixture::new();
    for code in [1000, 1001, 1003, 1007, 1011, 3000, 4999] {
        let mut stream = fx.upgraded();
        stream
            .write_all(&raw_ws::masked(CLOSE, &raw_ws::close_payload(code, b"bye")))
            .unwrap();
        let (frames, closed) = read_until_closed(&mut stream);
        assert_eq!(
            frames.last().and_then(Frame::close_code).map(|(c, _)| c),
            Some(code),
            "close code {code}: the server sent {frames:?}"
        );
        assert!(closed, "close code {code}: connection left open");
        assert_eq!(fx.server_close(), (code, "bye".to_string()));
        fx.assert_serving();
    }
}

// A close payload of one byte (a code needs two): 1002.
#[test]
fn one_byte_close_payload_is_answered_1002() {
    let _wd = util::watchdog("one_byte_close", 60);
    let mut fx = Fixture::new();
    fx.assert_closed_with(&raw_ws::masked(CLOSE, &[0x03]), 1002);
}

// A close reason that is not UTF-8: RFC 6455 lets the endpoint fail the
// connection; lws's UTF-8 check answers 1007.
#[test]
fn non_utf8_close_reason_is_answered_1007() {
    let _wd = util::watchdog("non_utf8_close_reason", 60);
    let mut fx = Fixture::new();
    let payload = raw_ws::close_payload(1000, b"bad \xff reason");
    fx.assert_closed_with(&raw_ws::masked(CLOSE, &payload), 1007);
}

// ---- peers that go away ----

// A peer that resets the connection (SO_LINGER 0) in the middle of a
// frame: the server frees it (on_close 1006, no connection left) and goes on.
#[test]
fn peer_reset_mid_frame_is_freed() {
    let _wd = util::watchdog("peer_reset_mid_frame", 60);
    let mut fx = Fixture::new();
    let stream = fx.upgraded();
    let mut bytes = raw_ws::frame_header(true, 0, BINARY, Some(MASK), 500);
    bytes.extend_from_slice(&[7; 100]);
    (&stream).write_all(&bytes).unwrap();
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a linger struct of the size given.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER");
    drop(stream); // RST
    assert_eq!(fx.server_close().0, 1006);
    fx.assert_serving();
}

// A peer that half-closes (shutdown(Write)) in the middle of a frame and
// keeps reading: the server ends the connection (EOF to the peer, on_close
// 1006) and frees it.
#[test]
fn peer_half_close_mid_frame_is_freed() {
    let _wd = util::watchdog("peer_half_close", 60);
    let mut fx = Fixture::new();
    let mut stream = fx.upgraded();
    let mut bytes = raw_ws::frame_header(true, 0, BINARY, Some(MASK), 500);
    bytes.extend_from_slice(&[7; 100]);
    stream.write_all(&bytes).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let got = raw_ws::read_to_close(&mut stream)
        .unwrap_or_else(|(e, got)| panic!("the server kept the connection ({e}), sent {got:?}"));
    assert!(got.is_empty(), "nothing is due to a vanished peer: {got:?}");
    assert_eq!(fx.server_close().0, 1006);
    fx.assert_serving();
}

// A peer that half-closes between frames: the same.
#[test]
fn peer_half_close_between_frames_is_freed() {
    let _wd = util::watchdog("peer_half_close_between", 60);
    let mut fx = Fixture::new();
    let mut stream = fx.upgraded();
    stream
        .write_all(&raw_ws::masked(TEXT, b"last words"))
        .unwrap();
    let echo = raw_ws::read_frame(&mut stream).expect("echo");
    assert_eq!(echo.payload, b"last words");
    stream.shutdown(Shutdown::Write).unwrap();
    let got = raw_ws::read_to_close(&mut stream)
        .unwrap_or_else(|(e, got)| panic!("the server kept the connection ({e}), sent {got:?}"));
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(fx.server_close().0, 1006);
    fx.assert_serving();
}

// ---- our client against a hostile server ----

/// What our client reported.
#[derive(Debug, Default)]
struct ClientSaw {
    opened: bool,
    close: Option<(u16, String)>,
    error: Option<String>,
    messages: usize,
}

/// Runs our client against `hostile` until it closed or failed.
fn run_client(hostile: &Hostile) -> ClientSaw {
    let cx = Context::new(ContextOptions::default()).expect("client context");
    let saw: Rc<RefCell<ClientSaw>> = Rc::default();
    let (s1, s2, s3, s4) = (saw.clone(), saw.clone(), saw.clone(), saw.clone());
    let (stop1, stop2) = (cx.handle(), cx.handle());
    cx.connect(
        util::connect_options(hostile.url()),
        Callbacks::new()
            .on_connect(move |_, _| s1.borrow_mut().opened = true)
            .on_message(move |_, _| s4.borrow_mut().messages += 1)
            .on_close(move |_, code, reason| {
                s2.borrow_mut().close = Some((code.0, reason.to_string()));
                let _ = stop1.stop();
            })
            .on_error(move |_, e| {
                s3.borrow_mut().error = Some(e.to_string());
                let _ = stop2.stop();
            }),
    )
    .expect("connect");
    cx.run().expect("client loop");
    drop(cx);
    Rc::try_unwrap(saw).expect("callbacks dropped").into_inner()
}

/// Our client, sent `script` after a good upgrade, closes with `code`:
/// its close frame (masked) carries it, its on_close reports it, and it
/// hangs up.
fn assert_client_closes_with(script: Vec<u8>, code: u16) {
    let hostile = Hostile::start(Answer::Accept, script);
    let saw = run_client(&hostile);
    let server = hostile.join().expect("hostile server");
    assert!(saw.opened, "{saw:?}");
    assert_eq!(saw.error, None);
    assert_eq!(saw.close.as_ref().map(|c| c.0), Some(code), "{saw:?}");
    let frames = server.frames().expect("whole frames from our client");
    let close = frames.iter().find(|f| f.opcode == CLOSE);
    assert_eq!(
        close.and_then(Frame::close_code).map(|(c, _)| c),
        Some(code),
        "our client's frames: {frames:?}"
    );
    assert!(
        frames.iter().all(|f| f.masked),
        "client frames are masked: {frames:?}"
    );
    assert!(server.closed, "our client left the connection open");
}

// A 101 whose Sec-WebSocket-Accept does not match our key: the connect
// fails (on_error), on_connect never runs, the socket is closed, nothing
// was sent after the request.
#[test]
fn client_rejects_a_wrong_accept() {
    let _wd = util::watchdog("client_wrong_accept", 60);
    let hostile = Hostile::start(
        Answer::WrongAccept,
        raw_ws::frame(true, 0, TEXT, None, b"hi"),
    );
    let saw = run_client(&hostile);
    let server = hostile.join().expect("hostile server");
    assert!(!saw.opened, "on_connect ran: {saw:?}");
    assert!(saw.error.is_some(), "no connect error: {saw:?}");
    assert_eq!(saw.close, None);
    assert_eq!(saw.messages, 0);
    assert!(server.closed, "our client left the connection open");
    assert!(server.bytes.is_empty(), "{:?}", server.bytes);
}

// A masked frame from the server (RFC 6455 5.1): our client closes 1002.
#[test]
fn client_closes_1002_on_a_masked_server_frame() {
    let _wd = util::watchdog("client_masked_frame", 60);
    assert_client_closes_with(masked_frame(true, 0, TEXT, b"masked"), 1002);
}

// Reserved bits from the server: 1002.
#[test]
fn client_closes_1002_on_reserved_bits() {
    let _wd = util::watchdog("client_reserved_bits", 60);
    assert_client_closes_with(raw_ws::frame(true, 4, TEXT, None, b"rsv1"), 1002);
}

// A reserved opcode from the server: 1002.
#[test]
fn client_closes_1002_on_a_reserved_opcode() {
    let _wd = util::watchdog("client_reserved_opcode", 60);
    assert_client_closes_with(raw_ws::frame(true, 0, 0xB, None, b"op"), 1002);
}

// A control frame over 125 bytes from the server: 1002.
#[test]
fn client_closes_1002_on_a_long_control_frame() {
    let _wd = util::watchdog("client_long_control", 60);
    assert_client_closes_with(raw_ws::frame(true, 0, PING, None, &[b'p'; 126]), 1002);
}

// A continuation without a start from the server: 1002.
#[test]
fn client_closes_1002_on_a_continuation_without_start() {
    let _wd = util::watchdog("client_orphan_continuation", 60);
    assert_client_closes_with(raw_ws::frame(true, 0, CONTINUATION, None, b"x"), 1002);
}

// A 64-bit length with its top bit set from the server: 1002.
#[test]
fn client_closes_1002_on_a_length_with_top_bit_set() {
    let _wd = util::watchdog("client_length_top_bit", 60);
    let mut script = raw_ws::frame_header(true, 0, BINARY, None, 1 << 63 | 3);
    script.extend_from_slice(b"abc");
    assert_client_closes_with(script, 1002);
}

// Invalid UTF-8 text from the server, whole and split across fragments: 1007.
#[test]
fn client_closes_1007_on_invalid_utf8() {
    let _wd = util::watchdog("client_invalid_utf8", 60);
    assert_client_closes_with(raw_ws::frame(true, 0, TEXT, None, b"bad \xc3\x28"), 1007);
    let mut script = raw_ws::frame(false, 0, TEXT, None, b"split \xe2");
    script.extend(raw_ws::frame(true, 0, CONTINUATION, None, b"\x28\xa1"));
    assert_client_closes_with(script, 1007);
}

// Invalid close codes and a 1-byte close payload from the server: 1002.
#[test]
fn client_answers_bad_close_codes_with_1002() {
    let _wd = util::watchdog("client_bad_close_codes", 120);
    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        let script = raw_ws::frame(true, 0, CLOSE, None, &raw_ws::close_payload(code, b""));
        assert_client_closes_with(script, 1002);
    }
    assert_client_closes_with(raw_ws::frame(true, 0, CLOSE, None, &[3]), 1002);
}

// A close reason that is not UTF-8 from the server: 1007.
#[test]
fn client_answers_a_non_utf8_close_reason_with_1007() {
    let _wd = util::watchdog("client_non_utf8_reason", 60);
    let payload = raw_ws::close_payload(1000, b"\xc0\xaf");
    assert_client_closes_with(raw_ws::frame(true, 0, CLOSE, None, &payload), 1007);
}

// Control: a valid server close is echoed with its code.
#[test]
fn client_echoes_a_valid_close() {
    let _wd = util::watchdog("client_valid_close", 60);
    let payload = raw_ws::close_payload(4001, b"bye");
    assert_client_closes_with(raw_ws::frame(true, 0, CLOSE, None, &payload), 4001);
}

// A good message and a bad frame in one write: lws fails the connection
// while the echo of the first is still queued. Whatever the server sends,
// its close frame is the last frame (RFC 6455 5.5.1: no data after a
// close), with 1002.
#[test]
fn nothing_follows_the_close_a_bad_frame_caused() {
    let _wd = util::watchdog("nothing_after_close", 60);
    let mut fx = Fixture::new();
    for size in [5, 126, 900] {
        let mut stream = fx.upgraded();
        let mut bytes = masked_frame(true, 0, TEXT, &vec![b'a'; size]);
        bytes.extend(masked_frame(true, 0, 0x3, b"reserved"));
        stream.write_all(&bytes).expect("send");
        let got = match raw_ws::read_to_close(&mut stream) {
            Ok(got) => got,
            Err((e, got)) if raw_ws::is_reset(&e) => got,
            Err((e, got)) => panic!("not closed: {e} after {} bytes", got.len()),
        };
        let frames = raw_ws::parse_frames(&got).expect("whole frames");
        let close = frames.iter().position(|f| f.opcode == CLOSE);
        assert_eq!(
            close.map(|i| frames[i].close_code().map(|(c, _)| c)),
            Some(Some(1002)),
            "{frames:?}"
        );
        assert_eq!(close, Some(frames.len() - 1), "after the close: {frames:?}");
        assert_eq!(fx.server_close().0, 1002);
        fx.assert_serving();
    }
}
