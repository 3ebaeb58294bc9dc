//! permessage-deflate (RFC 7692): a listener with `deflate` negotiates it
//! with clients that offer it (one without it, or connections made before
//! `configure_listener` switched it on, do not), inflates what clients
//! send (with or without context takeover, `max_message_size` counted
//! inflated), compresses its messages except those under the threshold,
//! honours `server_no_context_takeover`; an lws client with it round-trips
//! pipelined messages of every size byte-exact, and falls back to plain
//! frames against a server without it; empty messages and fragments go out
//! intact, and compressed frames stay within `max_frame_size` both ways.

mod util;

use util::on_loop;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use lws::{Callbacks, CloseCode, Context, ContextOptions, Deflate, ListenOptions, Message};
use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;
use tungstenite::Message as TMessage;
use util::raw_ws::{self, BINARY, CLOSE, PING, PONG, TEXT};
use util::{Server, ServerThread};

/// What a sender strips from the end of each compressed message.
const TRAIL: [u8; 4] = [0, 0, 0xff, 0xff];

/// The offer most clients (browsers included) make.
const OFFER: &str = "permessage-deflate; client_max_window_bits";

// ---------------------------------------------------------------- payloads

/// `size` bytes of compressible ASCII text, different per seed.
fn text(seed: usize, size: usize) -> String {
    util::compressible_text(seed, size)
}

/// `size` incompressible bytes (xorshift), different per seed.
fn random(seed: u64, size: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

// ------------------------------------------------------------ raw DEFLATE

/// One sender's compressor: a single raw DEFLATE stream across messages
/// (context takeover), each message ended with a sync flush whose
/// 00 00 ff ff is stripped (RFC 7692 §7.2.1).
struct Deflater(Compress);

impl Deflater {
    fn new() -> Self {
        Deflater(Compress::new(Compression::default(), false))
    }

    fn message(&mut self, data: &[u8]) -> Vec<u8> {
        let start = self.0.total_in();
        let mut out = Vec::with_capacity(data.len() / 2 + 1024);
        loop {
            let used = (self.0.total_in() - start) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity());
            }
            self.0
                .compress_vec(&data[used..], &mut out, FlushCompress::Sync)
                .expect("compress");
            // Done once all input is in and the flush had room to finish.
            if (self.0.total_in() - start) as usize == data.len() && out.len() < out.capacity() {
                break;
            }
        }
        assert!(out.ends_with(&TRAIL), "a sync flush ends with 00 00 ff ff");
        out.truncate(out.len() - TRAIL.len());
        out
    }
}

/// Inflates one compressed message's payload with `d` (the trailer put
/// back), or says why it cannot.
fn inflate(d: &mut Decompress, payload: &[u8]) -> Result<Vec<u8>, String> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&TRAIL);
    let start = d.total_in();
    let mut out = Vec::with_capacity(input.len() * 4 + 1024);
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity());
        }
        let (before_in, before_out) = (d.total_in(), d.total_out());
        let status = d
            .decompress_vec(
                &input[(d.total_in() - start) as usize..],
                &mut out,
                FlushDecompress::Sync,
            )
            .map_err(|e| format!("inflate: {e}"))?;
        let used = (d.total_in() - start) as usize;
        if status == Status::StreamEnd {
            return Err("a final DEFLATE block (BFINAL) inside a message".into());
        }
        if used == input.len() && out.len() < out.capacity() {
            return Ok(out);
        }
        if d.total_in() == before_in && d.total_out() == before_out && out.len() < out.capacity() {
            return Err(format!(
                "inflate stuck after {used} of {} bytes",
                input.len()
            ));
        }
    }
}

// ------------------------------------------------------ the raw client side

/// Upgrades by hand on a fresh socket with `offer` as
/// Sec-WebSocket-Extensions; returns the socket (reads time out after
/// 10 s) and the 101 response's head.
fn upgrade(port: u16, offer: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let request = util::http::upgrade_request("/", &[], &[("Sec-WebSocket-Extensions", offer)]);
    stream.write_all(request.as_bytes()).expect("send upgrade");
    let head = raw_ws::read_head(&mut stream).expect("upgrade response");
    assert!(head.starts_with("HTTP/1.1 101"), "refused: {head:?}");
    (stream, head)
}

/// The Sec-WebSocket-Extensions value of a response head.
fn extensions(head: &str) -> Option<String> {
    head.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case("sec-websocket-extensions")
            .then(|| v.trim().to_string())
    })
}

/// The parameters after the extension name, trimmed.
fn params(ext: &str) -> Vec<String> {
    ext.split(';')
        .skip(1)
        .map(|p| p.trim().to_string())
        .collect()
}

/// A masked client frame of `opcode` with RSV1 set: a compressed message.
fn compressed(opcode: u8, deflated: &[u8]) -> Vec<u8> {
    let mut frame = raw_ws::masked(opcode, deflated);
    frame[0] |= 0x40;
    frame
}

/// A server frame (unmasked) with first header byte `b0`.
fn server_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![b0];
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= 0xffff => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// A message as it came off the wire: RSV1 and opcode of its first frame,
/// the payloads of all its frames joined. A close frame is returned as a
/// message of opcode CLOSE.
#[derive(Debug)]
struct Wire {
    rsv1: bool,
    opcode: u8,
    payload: Vec<u8>,
}

impl Wire {
    fn close_code(&self) -> Option<u16> {
        (self.opcode == CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// Reads one frame: (first header byte, masked, payload unmasked).
fn read_frame(stream: &mut impl Read) -> io::Result<(u8, bool, Vec<u8>)> {
    util::raw_ws::read_frame(stream).map(|f| (f.head, f.masked, f.payload))
}

/// Reads the next whole data message (pings and pongs skipped) or close.
fn read_message(stream: &mut TcpStream) -> Wire {
    let mut message: Option<Wire> = None;
    loop {
        let (b0, masked, payload) = read_frame(stream).expect("read a frame");
        assert!(!masked, "a masked server frame {b0:#04x}");
        let (fin, rsv1, opcode) = (b0 & 0x80 != 0, b0 & 0x40 != 0, b0 & 0x0f);
        assert_eq!(b0 & 0x30, 0, "RSV2/RSV3 set in {b0:#04x}");
        if opcode == PING || opcode == PONG {
            assert!(!rsv1, "RSV1 on a control frame");
            continue;
        }
        if opcode == CLOSE {
            return Wire {
                rsv1,
                opcode,
                payload,
            };
        }
        match &mut message {
            None => {
                assert!(
                    opcode == TEXT || opcode == BINARY,
                    "a message starts with {b0:#04x}"
                );
                message = Some(Wire {
                    rsv1,
                    opcode,
                    payload,
                });
            }
            Some(m) => {
                assert_eq!(opcode, 0, "a continuation expected, got {b0:#04x}");
                assert!(!rsv1, "RSV1 on a continuation frame");
                m.payload.extend_from_slice(&payload);
            }
        }
        if fin {
            return message.expect("a message");
        }
    }
}

/// Reads an echo that must be a compressed text message.
fn compressed_echo(stream: &mut TcpStream, what: &str) -> Wire {
    let echo = read_message(stream);
    assert_eq!(echo.opcode, TEXT, "{what}: {echo:?}");
    assert!(echo.rsv1, "{what}: sent uncompressed");
    echo
}

/// Reads an echo that must be an uncompressed text message equal to `want`.
fn plain_echo(stream: &mut TcpStream, want: &[u8], what: &str) {
    let echo = read_message(stream);
    assert_eq!(echo.opcode, TEXT, "{what}: {echo:?}");
    assert!(!echo.rsv1, "{what}: sent compressed");
    assert!(echo.payload == want, "{what}: the echo differs");
}

// ------------------------------------------------------------- lws servers

fn deflate_options(deflate: Option<Deflate>) -> ListenOptions {
    let mut options = ListenOptions::new(0);
    options.deflate = deflate;
    options
}

/// An echo server with `options`, reporting each connection's
/// `permessage_deflate()` from its on_connect.
fn echo_server(options: ListenOptions) -> (Server, mpsc::Receiver<bool>) {
    let (tx, rx) = mpsc::channel();
    let server = Server::start(options, move || {
        Callbacks::new()
            .on_connect(move |conn, _| {
                let _ = tx.send(conn.permessage_deflate());
            })
            .on_message(|conn, msg| conn.send(msg).expect("echo"))
    });
    (server, rx)
}

/// What the server's next connection reported from on_connect.
fn reported(connected: &mpsc::Receiver<bool>) -> bool {
    connected
        .recv_timeout(Duration::from_secs(10))
        .expect("the server's on_connect ran")
}

// ------------------------------------------------------------------- tests

#[test]
fn server_inflates_what_it_gets_and_compresses_what_it_echoes() {
    let _wd = util::watchdog("deflate_server_echo", 30);
    let (server, connected) = echo_server(deflate_options(Some(Deflate::default())));
    let (mut ws, head) = upgrade(server.port, OFFER);
    let ext = extensions(&head).unwrap_or_else(|| panic!("no extension in {head:?}"));
    assert_eq!(
        ext.split(';').next().map(str::trim),
        Some("permessage-deflate")
    );
    assert!(reported(&connected), "server: permessage_deflate() false");

    // One compressor and one inflater for the whole connection: context
    // takeover both ways, as negotiated.
    let (mut tx, mut rx) = (Deflater::new(), Decompress::new(false));

    // (a) 10 KiB of text, compressed: echoed compressed.
    let big = text(1, 10 * 1024);
    ws.write_all(&compressed(TEXT, &tx.message(big.as_bytes())))
        .expect("send 10 KiB");
    let echo = read_message(&mut ws);
    assert_eq!(echo.opcode, TEXT, "{echo:?}");
    assert!(echo.rsv1, "the 10 KiB echo came uncompressed");
    assert!(
        echo.payload.len() < big.len(),
        "the 10 KiB echo is not smaller"
    );
    assert_eq!(
        inflate(&mut rx, &echo.payload),
        Ok(big.clone().into_bytes())
    );

    // (b) A small text sent uncompressed: under the threshold, echoed
    // uncompressed; so is a small one sent compressed.
    ws.write_all(&raw_ws::masked(TEXT, b"small and plain"))
        .expect("send plain");
    plain_echo(&mut ws, b"small and plain", "a plain 15-byte text");
    let just_under = text(2, 63);
    ws.write_all(&compressed(TEXT, &tx.message(just_under.as_bytes())))
        .expect("send 63 bytes compressed");
    plain_echo(&mut ws, just_under.as_bytes(), "63 bytes (threshold 64)");
    // At the threshold: compressed.
    let at = text(3, 64);
    ws.write_all(&compressed(TEXT, &tx.message(at.as_bytes())))
        .expect("send 64 bytes compressed");
    let echo = compressed_echo(&mut ws, "64 bytes (threshold 64)");
    assert_eq!(inflate(&mut rx, &echo.payload), Ok(at.into_bytes()));

    // (c) Several compressed messages in a row from the same stream, each
    // repeating most of the one before (so the stream refers back across
    // messages), all sent before reading any echo.
    let common = text(4, 2000);
    let several: Vec<String> = (0..5).map(|i| format!("message {i}: {common}")).collect();
    let mut burst = Vec::new();
    for m in &several {
        burst.extend(compressed(TEXT, &tx.message(m.as_bytes())));
    }
    ws.write_all(&burst).expect("send the burst");
    let mut echoes = Vec::new();
    for (i, m) in several.iter().enumerate() {
        let echo = compressed_echo(&mut ws, &format!("message {i}"));
        assert_eq!(
            inflate(&mut rx, &echo.payload),
            Ok(m.clone().into_bytes()),
            "message {i}"
        );
        echoes.push(echo);
    }
    // The server kept its compressor's context (the default): its second
    // echo refers back to the first, so a fresh inflater cannot read it
    // alone. (This is what gives the no-context-takeover test its teeth.)
    assert_ne!(
        inflate(&mut Decompress::new(false), &echoes[1].payload),
        Ok(several[1].clone().into_bytes()),
        "the server reset its compressor without being asked to"
    );
    // The big message again, after all that: the streams are still in step.
    ws.write_all(&compressed(TEXT, &tx.message(big.as_bytes())))
        .expect("send 10 KiB again");
    let echo = compressed_echo(&mut ws, "10 KiB again");
    assert_eq!(inflate(&mut rx, &echo.payload), Ok(big.into_bytes()));
}

#[test]
fn server_no_context_takeover_resets_the_servers_compressor_only() {
    let _wd = util::watchdog("deflate_no_context_takeover", 30);
    let (server, connected) = echo_server(deflate_options(Some(Deflate::default())));
    let (mut ws, head) = upgrade(
        server.port,
        "permessage-deflate; client_max_window_bits; server_no_context_takeover",
    );
    let ext = extensions(&head).unwrap_or_else(|| panic!("no extension in {head:?}"));
    assert_eq!(
        ext.split(';').next().map(str::trim),
        Some("permessage-deflate")
    );
    assert!(
        params(&ext)
            .iter()
            .any(|p| p == "server_no_context_takeover"),
        "not agreed: {ext:?}"
    );
    assert!(reported(&connected), "server: permessage_deflate() false");

    // The client keeps its context (it was not asked not to): its second
    // and third messages refer back to the ones before.
    let mut tx = Deflater::new();
    let common = text(5, 3000);
    let messages: Vec<String> = (0..3).map(|i| format!("message {i}: {common}")).collect();
    let wire: Vec<Vec<u8>> = messages.iter().map(|m| tx.message(m.as_bytes())).collect();
    assert_ne!(
        inflate(&mut Decompress::new(false), &wire[1]),
        Ok(messages[1].clone().into_bytes()),
        "the client's stream does not refer across messages: the test proves nothing"
    );
    for (i, (m, w)) in messages.iter().zip(&wire).enumerate() {
        ws.write_all(&compressed(TEXT, w))
            .unwrap_or_else(|e| panic!("send message {i}: {e}"));
        let echo = read_message(&mut ws);
        assert_eq!(
            echo.opcode, TEXT,
            "echo {i} (the server dropped the client?): {echo:?}"
        );
        assert!(echo.rsv1, "echo {i} came uncompressed");
        // A fresh inflater per message: the server reset its compressor.
        assert_eq!(
            inflate(&mut Decompress::new(false), &echo.payload),
            Ok(m.clone().into_bytes()),
            "echo {i} with a fresh inflater"
        );
    }
}

#[test]
fn server_without_deflate_ignores_the_offer() {
    let _wd = util::watchdog("deflate_not_configured", 30);
    let (server, connected) = echo_server(deflate_options(None));
    let (mut ws, head) = upgrade(server.port, OFFER);
    assert_eq!(extensions(&head), None, "{head:?}");
    assert!(!reported(&connected), "server: permessage_deflate() true");
    let big = text(6, 10 * 1024);
    ws.write_all(&raw_ws::masked(TEXT, big.as_bytes()))
        .expect("send 10 KiB");
    plain_echo(&mut ws, big.as_bytes(), "10 KiB, no deflate");
    ws.write_all(&raw_ws::masked(TEXT, b"small")).expect("send");
    plain_echo(&mut ws, b"small", "5 bytes, no deflate");
    // Not negotiated, so RSV1 means nothing agreed: a protocol error.
    ws.write_all(&compressed(TEXT, &Deflater::new().message(big.as_bytes())))
        .expect("send a compressed frame");
    let close = read_message(&mut ws);
    assert_eq!(close.close_code(), Some(1002), "{close:?}");
}

#[test]
fn configure_listener_switches_deflate_on_for_later_connections() {
    let _wd = util::watchdog("deflate_configure", 30);
    let (tx, connected) = mpsc::channel();
    let (server, listener) = ServerThread::start(move |cx| {
        let echo = Callbacks::new()
            .on_connect(move |conn, _| {
                let _ = tx.send(conn.permessage_deflate());
            })
            .on_message(|conn, msg| conn.send(msg).expect("echo"));
        cx.listen(deflate_options(None), echo).expect("listen")
    });
    let (port, id) = (listener.port(), listener.id());

    let (mut before, head) = upgrade(port, OFFER);
    assert_eq!(extensions(&head), None, "before: {head:?}");
    assert!(!reported(&connected), "before: permessage_deflate() true");

    let configured = on_loop(&server, move |cx| {
        cx.configure_listener(id, |o| o.deflate = Some(Deflate::default()))
            .map_err(|e| e.to_string())
    });
    assert_eq!(configured, Ok(()));

    let (mut after, head) = upgrade(port, OFFER);
    let ext = extensions(&head).unwrap_or_else(|| panic!("after: no extension in {head:?}"));
    assert_eq!(
        ext.split(';').next().map(str::trim),
        Some("permessage-deflate")
    );
    assert!(reported(&connected), "after: permessage_deflate() false");

    let big = text(7, 10 * 1024);
    // The new connection compresses both ways.
    after
        .write_all(&compressed(TEXT, &Deflater::new().message(big.as_bytes())))
        .expect("send compressed");
    let mut rx = Decompress::new(false);
    let echo = compressed_echo(&mut after, "after");
    assert_eq!(
        inflate(&mut rx, &echo.payload),
        Ok(big.clone().into_bytes())
    );
    // The old one still speaks plain frames only.
    before
        .write_all(&raw_ws::masked(TEXT, big.as_bytes()))
        .expect("send plain");
    plain_echo(&mut before, big.as_bytes(), "before, 10 KiB");
    before
        .write_all(&compressed(TEXT, &Deflater::new().message(big.as_bytes())))
        .expect("send compressed on the old connection");
    let close = read_message(&mut before);
    assert_eq!(close.close_code(), Some(1002), "before: {close:?}");
}

/// Message `i` of the pipelined run: sizes 0 B, 10 B, 100 B, 1 KiB,
/// 64 KiB of text and 64 KiB of noise in turn, and one 1 MiB text.
fn mixed(i: usize) -> Message {
    if i == 500 {
        return Message::Text(text(i, 1 << 20));
    }
    match i % 6 {
        0 => Message::Binary(Vec::new()),
        1 => Message::Text(text(i, 10)),
        2 => Message::Binary(util::payload(i, 100)),
        3 => Message::Text(text(i, 1024)),
        4 => Message::Text(text(i, 64 << 10)),
        _ => Message::Binary(random(i as u64, 64 << 10)),
    }
}

#[test]
fn lws_client_and_server_round_trip_pipelined_messages_compressed() {
    const COUNT: usize = 1000;
    let _wd = util::watchdog("deflate_pipelined", 120);
    let (server, connected) = echo_server(deflate_options(Some(Deflate::default())));
    let cx = Context::new(ContextOptions::default()).expect("context");
    let failures = util::Failures::new(cx.handle());
    let client_deflate: Rc<RefCell<Option<bool>>> = Rc::default();
    let received: Rc<RefCell<Vec<Message>>> = Rc::default();
    let closed: Rc<RefCell<Option<u16>>> = Rc::default();
    let (saw, got, shut) = (client_deflate.clone(), received.clone(), closed.clone());
    let (f1, f2) = (failures.clone(), failures.clone());
    let stop = cx.handle();
    let mut options = util::connect_options(server.url());
    options.deflate = Some(Deflate::default());
    cx.connect(
        options,
        Callbacks::new()
            .on_connect(move |conn, _| {
                *saw.borrow_mut() = Some(conn.permessage_deflate());
                for i in 0..COUNT {
                    if let Err(e) = conn.send(mixed(i)) {
                        f1.push(format!("send {i}: {e}"));
                        return;
                    }
                }
            })
            .on_message(move |conn, msg| {
                let mut got = got.borrow_mut();
                got.push(msg);
                if got.len() == COUNT {
                    conn.close(CloseCode::NORMAL, "");
                }
            })
            .on_close(move |_, code, _| {
                *shut.borrow_mut() = Some(code.0);
                let _ = stop.stop();
            })
            .on_error(move |_, e| f2.push(format!("client error: {e}"))),
    )
    .expect("connect");
    cx.run().expect("run");
    failures.assert_none();
    assert_eq!(
        *client_deflate.borrow(),
        Some(true),
        "client: permessage_deflate()"
    );
    assert!(reported(&connected), "server: permessage_deflate() false");
    let got = received.borrow();
    assert_eq!(got.len(), COUNT, "echoes received");
    for (i, m) in got.iter().enumerate() {
        let want = mixed(i);
        assert!(
            *m == want,
            "echo {i} differs: {} {} bytes, want {} {} bytes",
            if m.is_binary() { "binary" } else { "text" },
            m.len(),
            if want.is_binary() { "binary" } else { "text" },
            want.len()
        );
    }
    assert_eq!(*closed.borrow(), Some(CloseCode::NORMAL.0));
}

#[test]
fn lws_client_falls_back_to_plain_frames_without_server_support() {
    let _wd = util::watchdog("deflate_client_fallback", 30);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    // A tungstenite echo server (no permessage-deflate) that reports the
    // extensions the client offered.
    let peer = thread::spawn(move || -> Result<Option<String>, String> {
        let (stream, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| format!("read timeout: {e}"))?;
        let mut offered = None;
        // The callback's type is tungstenite's (its error is an HTTP response).
        #[allow(clippy::result_large_err)]
        let callback = |req: &tungstenite::handshake::server::Request,
                        resp: tungstenite::handshake::server::Response| {
            offered = req
                .headers()
                .get("sec-websocket-extensions")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            Ok(resp)
        };
        let mut ws =
            tungstenite::accept_hdr(stream, callback).map_err(|e| format!("handshake: {e}"))?;
        loop {
            match ws.read() {
                Ok(m @ (TMessage::Text(_) | TMessage::Binary(_))) => {
                    ws.send(m).map_err(|e| format!("echo: {e}"))?
                }
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed) => break,
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        Ok(offered)
    });

    let sent = [
        Message::Binary(Vec::new()),
        Message::Text("ten bytes!".into()),
        Message::Text(text(8, 100)),
        Message::Binary(util::payload(9, 10 * 1024)),
    ];
    let cx = Context::new(ContextOptions::default()).expect("context");
    let failures = util::Failures::new(cx.handle());
    let client_deflate: Rc<RefCell<Option<bool>>> = Rc::default();
    let received: Rc<RefCell<Vec<Message>>> = Rc::default();
    let (saw, got) = (client_deflate.clone(), received.clone());
    let (f1, f2) = (failures.clone(), failures.clone());
    let stop = cx.handle();
    let (to_send, count) = (sent.clone(), sent.len());
    let mut options = util::connect_options(util::url(port));
    options.deflate = Some(Deflate::default());
    cx.connect(
        options,
        Callbacks::new()
            .on_connect(move |conn, _| {
                *saw.borrow_mut() = Some(conn.permessage_deflate());
                for m in &to_send {
                    if let Err(e) = conn.send(m.clone()) {
                        f1.push(format!("send: {e}"));
                    }
                }
            })
            .on_message(move |conn, msg| {
                let mut got = got.borrow_mut();
                got.push(msg);
                if got.len() == count {
                    conn.close(CloseCode::NORMAL, "");
                }
            })
            .on_close(move |_, _, _| {
                let _ = stop.stop();
            })
            .on_error(move |_, e| f2.push(format!("client error: {e}"))),
    )
    .expect("connect");
    cx.run().expect("run");
    drop(cx);
    let offered = peer.join().expect("peer thread");
    failures.assert_none();
    let offered = offered.expect("the tungstenite server");
    assert!(
        offered
            .as_deref()
            .is_some_and(|o| o.starts_with("permessage-deflate")),
        "the client did not offer it: {offered:?}"
    );
    assert_eq!(
        *client_deflate.borrow(),
        Some(false),
        "client: permessage_deflate()"
    );
    assert_eq!(*received.borrow(), sent.to_vec());
}

#[test]
fn max_message_size_counts_the_inflated_size() {
    let _wd = util::watchdog("deflate_max_message_size", 30);
    let mut options = deflate_options(Some(Deflate::default()));
    options.max_message_size = 1000;
    let (server, connected) = echo_server(options);
    let (mut ws, head) = upgrade(server.port, OFFER);
    assert!(extensions(&head).is_some(), "{head:?}");
    assert!(reported(&connected), "server: permessage_deflate() false");
    let mut tx = Deflater::new();
    // 1000 bytes inflated: at the limit, echoed.
    let at_limit = "a".repeat(1000);
    ws.write_all(&compressed(TEXT, &tx.message(at_limit.as_bytes())))
        .expect("send 1000 bytes");
    let mut rx = Decompress::new(false);
    let echo = compressed_echo(&mut ws, "1000 bytes");
    assert_eq!(inflate(&mut rx, &echo.payload), Ok(at_limit.into_bytes()));
    // 100 KiB inflated from a frame far smaller than the limit: 1009.
    let bomb = tx.message(&vec![b'a'; 100 * 1024]);
    assert!(
        bomb.len() < 1000,
        "the bomb is {} bytes on the wire",
        bomb.len()
    );
    ws.write_all(&compressed(TEXT, &bomb))
        .expect("send the bomb");
    let close = read_message(&mut ws);
    assert_eq!(close.close_code(), Some(1009), "{close:?}");
}

#[test]
fn empty_messages_and_fragments_survive_deflate() {
    let _wd = util::watchdog("deflate_empty", 30);
    // Threshold 0: everything but what lws cannot compress goes compressed.
    let every = Deflate {
        threshold: 0,
        ..Deflate::default()
    };
    let (server, connected) = echo_server(deflate_options(Some(every)));
    let a = text(10, 1000);
    let b = text(11, 1000);
    // What the echoes must be, in order.
    let want = vec![
        Message::Text(text(12, 64 << 10)),
        Message::Text(String::new()), // an empty message after a compressed one
        Message::Binary(util::payload(13, 100)),
        Message::Binary(Vec::new()),
        Message::Binary(Vec::new()),
        Message::Text(String::new()), // a whole message in one empty fragment
        Message::Text(a.clone()),     // an empty first fragment, then the text
        Message::Text(b.clone()),     // the text, then empty fragments
        Message::Binary(Vec::new()),  // nothing but empty fragments
        Message::Text(text(14, 100)),
    ];
    let cx = Context::new(ContextOptions::default()).expect("context");
    let failures = util::Failures::new(cx.handle());
    let received: Rc<RefCell<Vec<Message>>> = Rc::default();
    let closed: Rc<RefCell<Option<u16>>> = Rc::default();
    let (got, shut) = (received.clone(), closed.clone());
    let (f1, f2) = (failures.clone(), failures.clone());
    let stop = cx.handle();
    let count = want.len();
    let mut options = util::connect_options(server.url());
    options.deflate = Some(every);
    cx.connect(
        options,
        Callbacks::new()
            .on_connect(move |conn, _| {
                if !conn.permessage_deflate() {
                    f1.push("client: permessage_deflate() false");
                    return;
                }
                let sent = (|| -> lws::Result<()> {
                    conn.send(Message::Text(text(12, 64 << 10)))?;
                    conn.send_text("")?;
                    conn.send_binary(&util::payload(13, 100))?;
                    conn.send_binary(&[])?;
                    conn.send(Message::Binary(Vec::new()))?;
                    conn.send_fragment(b"", false, true)?;
                    conn.send_fragment(b"", false, false)?;
                    conn.send_fragment(a.as_bytes(), false, true)?;
                    conn.send_fragment(b.as_bytes(), false, false)?;
                    conn.send_fragment(b"", false, false)?;
                    conn.send_fragment(b"", false, true)?;
                    conn.send_fragment(b"", true, false)?;
                    conn.send_fragment(b"", true, false)?;
                    conn.send_fragment(b"", true, true)?;
                    conn.send_text(&text(14, 100))
                })();
                if let Err(e) = sent {
                    f1.push(format!("send: {e}"));
                }
            })
            .on_message(move |conn, msg| {
                let mut got = got.borrow_mut();
                got.push(msg);
                if got.len() == count {
                    conn.close(CloseCode::NORMAL, "");
                }
            })
            .on_close(move |_, code, _| {
                *shut.borrow_mut() = Some(code.0);
                let _ = stop.stop();
            })
            .on_error(move |_, e| f2.push(format!("client error: {e}"))),
    )
    .expect("connect");
    cx.run().expect("run");
    failures.assert_none();
    assert!(reported(&connected), "server: permessage_deflate() false");
    assert_eq!(*received.borrow(), want);
    assert_eq!(*closed.borrow(), Some(CloseCode::NORMAL.0));
}

#[test]
fn server_keeps_compressed_frames_within_max_frame_size() {
    let _wd = util::watchdog("deflate_server_frames", 30);
    let mut options = deflate_options(Some(Deflate::default()));
    options.max_frame_size = 1000;
    let (server, connected) = echo_server(options);
    let (mut ws, _) = upgrade(server.port, OFFER);
    assert!(reported(&connected), "server: permessage_deflate() false");
    // 64 KiB of noise (compressed, it stays as big), sent in frames of at
    // most 1000 bytes.
    let data = random(15, 64 << 10);
    let wire = Deflater::new().message(&data);
    let chunks: Vec<&[u8]> = wire.chunks(1000).collect();
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let mut frame = raw_ws::masked(if i == 0 { BINARY } else { 0 }, chunk);
        if i == 0 {
            frame[0] |= 0x40;
        }
        if i + 1 < chunks.len() {
            frame[0] &= 0x7f; // not FIN
        }
        out.extend(frame);
    }
    ws.write_all(&out).expect("send");
    // The echo, frame by frame.
    let mut frames = Vec::new();
    loop {
        let (b0, _, payload) = read_frame(&mut ws).expect("read a frame");
        assert_ne!(b0 & 0x0f, CLOSE, "closed: {payload:?}");
        frames.push((b0, payload));
        if b0 & 0x80 != 0 {
            break;
        }
    }
    let sizes: Vec<usize> = frames.iter().map(|(_, p)| p.len()).collect();
    assert!(
        sizes.iter().all(|&n| n <= 1000),
        "frames over max_frame_size 1000: {sizes:?}"
    );
    assert_eq!(
        frames[0].0 & 0x4f,
        0x40 | BINARY,
        "first frame {:#04x}",
        frames[0].0
    );
    let joined: Vec<u8> = frames.into_iter().flat_map(|(_, p)| p).collect();
    assert!(
        inflate(&mut Decompress::new(false), &joined) == Ok(data),
        "the echo does not inflate to what was sent"
    );
}

/// What the hand-made deflate server saw of the lws client's frames.
#[derive(Debug, Default)]
struct ClientFrames {
    /// (first header byte, masked, payload) of every frame.
    frames: Vec<(u8, bool, Vec<u8>)>,
    /// The messages, inflated where compressed.
    messages: Vec<Vec<u8>>,
}

/// A server that accepts permessage-deflate by hand: reads `count`
/// messages (recording every frame), then sends one compressed and one
/// plain text message and reads until the client's close.
fn deflate_peer(listener: TcpListener, count: usize) -> Result<ClientFrames, String> {
    let (mut stream, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| format!("read timeout: {e}"))?;
    let head = raw_ws::read_head(&mut stream).map_err(|e| format!("request: {e}"))?;
    let key = head
        .split("\r\n")
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case("sec-websocket-key")
                .then(|| v.trim().to_string())
        })
        .ok_or(format!("no key in {head:?}"))?;
    let offer = extensions(&head).ok_or(format!("no offer in {head:?}"))?;
    if !offer.starts_with("permessage-deflate") {
        return Err(format!("offered {offer:?}"));
    }
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
    );
    stream
        .write_all(response.as_bytes())
        .map_err(|e| format!("101: {e}"))?;
    let mut saw = ClientFrames::default();
    let mut rx = Decompress::new(false);
    let (mut message, mut compressed_message) = (Vec::new(), false);
    while saw.messages.len() < count {
        let (b0, masked, payload) = read_frame(&mut stream).map_err(|e| format!("frame: {e}"))?;
        saw.frames.push((b0, masked, payload.clone()));
        if b0 & 0x08 != 0 {
            continue; // control
        }
        if b0 & 0x0f != 0 {
            compressed_message = b0 & 0x40 != 0;
        }
        message.extend_from_slice(&payload);
        if b0 & 0x80 != 0 {
            let whole = std::mem::take(&mut message);
            saw.messages.push(if compressed_message {
                inflate(&mut rx, &whole)?
            } else {
                whole
            });
        }
    }
    let reply = text(16, 4096);
    let mut tx = Deflater::new();
    let mut out = server_frame(0x80 | 0x40 | TEXT, &tx.message(reply.as_bytes()));
    out.extend(server_frame(0x80 | TEXT, b"plain reply"));
    stream
        .write_all(&out)
        .map_err(|e| format!("replies: {e}"))?;
    loop {
        let (b0, _, payload) = read_frame(&mut stream).map_err(|e| format!("until close: {e}"))?;
        if b0 & 0x0f == CLOSE {
            let _ = stream.write_all(&server_frame(0x80 | CLOSE, &payload));
            return Ok(saw);
        }
    }
}

#[test]
fn lws_client_masks_its_frames_and_keeps_them_within_max_frame_size() {
    let _wd = util::watchdog("deflate_client_frames", 30);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    let peer = thread::spawn(move || deflate_peer(listener, 2));
    let noise = random(17, 64 << 10);
    let cx = Context::new(ContextOptions::default()).expect("context");
    let failures = util::Failures::new(cx.handle());
    let received: Rc<RefCell<Vec<Message>>> = Rc::default();
    let (got, to_send) = (received.clone(), noise.clone());
    let (f1, f2) = (failures.clone(), failures.clone());
    let stop = cx.handle();
    let mut options = util::connect_options(util::url(port));
    options.deflate = Some(Deflate::default());
    options.max_frame_size = 1000;
    cx.connect(
        options,
        Callbacks::new()
            .on_connect(move |conn, _| {
                if !conn.permessage_deflate() {
                    f1.push("client: permessage_deflate() false");
                }
                let sent = conn
                    .send_text("ten bytes!")
                    .and_then(|()| conn.send_binary(&to_send));
                if let Err(e) = sent {
                    f1.push(format!("send: {e}"));
                }
            })
            .on_message(move |conn, msg| {
                let mut got = got.borrow_mut();
                got.push(msg);
                if got.len() == 2 {
                    conn.close(CloseCode::NORMAL, "");
                }
            })
            .on_close(move |_, _, _| {
                let _ = stop.stop();
            })
            .on_error(move |_, e| f2.push(format!("client error: {e}"))),
    )
    .expect("connect");
    cx.run().expect("run");
    drop(cx);
    let saw = peer.join().expect("peer thread");
    failures.assert_none();
    let saw = saw.expect("the hand-made server");
    // Every client frame masked, the small one too (it is our own frame,
    // not lws's), and none over 1000 bytes.
    for (b0, masked, payload) in &saw.frames {
        assert!(*masked, "an unmasked client frame {b0:#04x}");
        assert!(payload.len() <= 1000, "a {}-byte frame", payload.len());
    }
    let first_of_each: Vec<u8> = saw
        .frames
        .iter()
        .map(|(b0, _, _)| *b0)
        .filter(|b0| b0 & 0x0f != 0)
        .collect();
    assert_eq!(
        first_of_each,
        vec![0x80 | TEXT, 0x40 | BINARY],
        "the small text plain and whole, the noise compressed in fragments"
    );
    assert!(saw.messages[0] == b"ten bytes!", "{:?}", saw.messages[0]);
    assert!(saw.messages[1] == noise, "the noise differs once inflated");
    // And the client inflated what a compressor other than lws's sent.
    assert_eq!(
        *received.borrow(),
        vec![
            Message::Text(text(16, 4096)),
            Message::Text("plain reply".into())
        ]
    );
}
