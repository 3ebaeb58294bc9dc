//! Fragmented messages both ways: `send_fragment` streams one message in
//! pieces (our server and a tungstenite server each get one message, and the
//! wire shows the pieces as frames), other sends wait for the final piece
//! while pings do not, a peer's fragmented messages are reassembled into one
//! `on_message` (on a server and on a client) within `max_message_size`
//! (1009 beyond), and `ReceiveMode::Fragments` hands a large message over in
//! ordered chunks, still bounded by `max_message_size`.

mod util;

use lws::{
    Callbacks, CloseCode, ConnectOptions, Context, ContextOptions, Error, Fragment, ListenOptions,
    Message, ReceiveMode,
};
use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::{Message as TMessage, WebSocket};
use util::{url, Failures};

/// A text message cut so that one piece ends inside a two-byte UTF-8
/// character ("é" = C3 A9): the receiver must join the bytes exactly.
const TEXT_PIECES: &[&[u8]] = &[
    b"caf\xc3",
    b"\xa9 au ",
    b"lait, ",
    "fin \u{2713}".as_bytes(),
];
const BINARY_SIZE: usize = 1 << 20;
const BINARY_PIECE: usize = 64 << 10;

fn text_whole() -> String {
    String::from_utf8(TEXT_PIECES.concat()).expect("the pieces join into UTF-8")
}

fn binary_whole() -> Vec<u8> {
    util::payload(1, BINARY_SIZE)
}

/// Streams the text message and then the binary one with send_fragment.
fn send_both_in_pieces(conn: &lws::Connection) -> lws::Result<()> {
    let last = TEXT_PIECES.len() - 1;
    for (i, piece) in TEXT_PIECES.iter().enumerate() {
        conn.send_fragment(piece, false, i == last)?;
    }
    let data = binary_whole();
    let pieces: Vec<&[u8]> = data.chunks(BINARY_PIECE).collect();
    let last = pieces.len() - 1;
    for (i, piece) in pieces.iter().enumerate() {
        // Only the first piece's is_binary counts: later ones say "text"
        // here and the message must still arrive binary.
        conn.send_fragment(piece, i == 0, i == last)?;
    }
    Ok(())
}

/// Runs our client with `options` on a fresh context until its on_close:
/// the callbacks `client` makes from the failures list, plus an on_error
/// that is a failure; then checks there was none. Returns the codes
/// on_close reported.
fn run_our_client(
    options: ConnectOptions,
    client: impl FnOnce(&Failures) -> Callbacks,
) -> Vec<u16> {
    let cx = Context::new(ContextOptions::default()).unwrap();
    let stop = cx.handle();
    let failures = Failures::new(stop.clone());
    let closes: Rc<RefCell<Vec<u16>>> = Rc::default();
    let (c, f) = (closes.clone(), failures.clone());
    let callbacks = client(&failures)
        .on_error(move |_, e| f.push(format!("on_error: {e}")))
        .on_close(move |_, code, _| {
            c.borrow_mut().push(code.0);
            let _ = stop.stop();
        });
    cx.connect(options, callbacks).unwrap();
    cx.run().unwrap();
    drop(cx);
    failures.assert_none();
    let closes = closes.borrow().clone();
    closes
}

#[test]
fn fragmented_sends_reach_our_server_as_one_message_each() {
    let _wd = util::watchdog("fragmented_sends_reach_our_server", 30);
    let cx = Context::new(ContextOptions::default()).unwrap();
    let stop = cx.handle();
    let failures = Failures::new(stop.clone());
    let got: Rc<RefCell<Vec<Message>>> = Rc::default();
    let g = got.clone();
    let port = cx
        .listen(
            ListenOptions::new(0),
            Callbacks::new().on_message(move |_, m| {
                let end = m == Message::Text("end".into());
                g.borrow_mut().push(m);
                if end {
                    stop.stop().unwrap();
                }
            }),
        )
        .unwrap()
        .port();
    let (f1, f2) = (failures.clone(), failures.clone());
    cx.connect(
        ConnectOptions::new(url(port)),
        Callbacks::new()
            .on_connect(move |conn, _| {
                if let Err(e) = send_both_in_pieces(conn).and_then(|()| conn.send_text("end")) {
                    f1.push(format!("send: {e}"));
                }
            })
            .on_close(move |_, code, _| f2.push(format!("client closed early: {code}"))),
    )
    .unwrap();
    cx.run().unwrap();
    failures.assert_none();
    // Exactly one message per fragmented send (and nothing in between):
    // "end" follows the binary message directly.
    let got = got.borrow();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0], Message::Text(text_whole()));
    assert_eq!(got[1], Message::Binary(binary_whole()));
    assert_eq!(got[2], Message::Text("end".into()));
}

/// A TcpStream that keeps a copy of every byte read, so the test can look
/// at the frames as they were on the wire.
struct Tap {
    inner: TcpStream,
    seen: Vec<u8>,
}

impl Read for Tap {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.seen.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl Write for Tap {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// One WebSocket frame as seen on the wire: FIN, opcode, unmasked payload.
#[derive(Debug)]
struct WireFrame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

/// The frames in `bytes` (whole frames only).
fn parse_frames(mut b: &[u8]) -> Vec<WireFrame> {
    let mut out = Vec::new();
    while b.len() >= 2 {
        let fin = b[0] & 0x80 != 0;
        let opcode = b[0] & 0x0f;
        let masked = b[1] & 0x80 != 0;
        let (len, mut at) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => break,
            n => (n as usize, 2),
        };
        let mut mask = [0u8; 4];
        if masked {
            if b.len() < at + 4 {
                break;
            }
            mask.copy_from_slice(&b[at..at + 4]);
            at += 4;
        }
        if b.len() < at + len {
            break;
        }
        let payload = b[at..at + len]
            .iter()
            .enumerate()
            .map(|(i, &c)| if masked { c ^ mask[i % 4] } else { c })
            .collect();
        out.push(WireFrame {
            fin,
            opcode,
            payload,
        });
        b = &b[at + len..];
    }
    out
}

/// What the tungstenite server of `fragmented_sends_reach_tungstenite`
/// saw: the data messages and the data frames they came in.
#[derive(Default)]
struct TapReport {
    messages: Vec<TMessage>,
    frames: Vec<WireFrame>,
    error: Option<String>,
}

fn tap_server(listener: TcpListener, report: &mut TapReport) -> Result<(), String> {
    let (stream, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
    let tap = Tap {
        inner: stream,
        seen: Vec::new(),
    };
    let mut ws = tungstenite::accept(tap).map_err(|e| format!("handshake: {e}"))?;
    let result = loop {
        match ws.read() {
            Ok(m @ (TMessage::Text(_) | TMessage::Binary(_))) => {
                report.messages.push(m);
                if report.messages.len() == 2 {
                    // Tells the client it may close now.
                    ws.send(TMessage::text("ack"))
                        .map_err(|e| format!("ack: {e}"))?;
                }
            }
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => break Ok(()),
            Err(e) => break Err(format!("read: {e}")),
        }
    };
    let seen = &ws.get_ref().seen;
    let body = seen
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| &seen[p + 4..])
        .ok_or("no end of the request headers")?;
    report.frames = parse_frames(body)
        .into_iter()
        .filter(|f| f.opcode < 8)
        .collect();
    result
}

#[test]
fn fragmented_sends_reach_tungstenite_as_one_message_each() {
    let _wd = util::watchdog("fragmented_sends_reach_tungstenite", 30);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut report = TapReport::default();
        if let Err(e) = tap_server(listener, &mut report) {
            report.error = Some(e);
        }
        let _ = tx.send(report);
    });

    run_our_client(ConnectOptions::new(url(port)), |failures| {
        let f = failures.clone();
        Callbacks::new()
            .on_connect(move |conn, _| {
                if let Err(e) = send_both_in_pieces(conn) {
                    f.push(format!("send: {e}"));
                }
            })
            .on_message(|conn, _ack| conn.close(CloseCode::NORMAL, "done"))
    });

    let report = rx.recv().unwrap();
    assert_eq!(report.error, None);
    assert_eq!(report.messages.len(), 2, "{:?}", report.messages);
    match &report.messages[0] {
        TMessage::Text(t) => assert_eq!(t.as_str(), text_whole()),
        other => panic!("expected the text message, got {other:?}"),
    }
    match &report.messages[1] {
        TMessage::Binary(b) => assert!(b[..] == binary_whole()[..], "binary differs"),
        other => panic!("expected the binary message, got {other:?}"),
    }
    // On the wire: one frame per piece, opcode on the first only, FIN on
    // the last only.
    let pieces = TEXT_PIECES.len() + BINARY_SIZE / BINARY_PIECE;
    let shape: Vec<(bool, u8)> = report.frames.iter().map(|f| (f.fin, f.opcode)).collect();
    let mut expected = vec![(false, 1), (false, 0), (false, 0), (true, 0)];
    expected.push((false, 2));
    expected.extend(std::iter::repeat_n(
        (false, 0),
        pieces - TEXT_PIECES.len() - 2,
    ));
    expected.push((true, 0));
    assert_eq!(shape, expected);
    assert_eq!(report.frames[0].payload, TEXT_PIECES[0]);
    assert_eq!(report.frames[4].payload.len(), BINARY_PIECE);
}

#[test]
fn other_sends_wait_for_the_final_fragment_but_pings_do_not() {
    let _wd = util::watchdog("other_sends_wait_for_the_final_fragment", 30);
    let cx = Context::new(ContextOptions::default()).unwrap();
    let stop = cx.handle();
    let got: Rc<RefCell<Vec<Message>>> = Rc::default();
    let pongs: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let log: Rc<RefCell<Vec<String>>> = Rc::default();
    // Stops once the server has both messages and the client its pong.
    let check_done = {
        let (got, pongs, stop) = (got.clone(), pongs.clone(), stop.clone());
        move || {
            if got.borrow().len() == 2 && pongs.borrow().len() == 1 {
                stop.stop().unwrap();
            }
        }
    };
    let (g, done1) = (got.clone(), check_done.clone());
    let port = cx
        .listen(
            ListenOptions::new(0),
            Callbacks::new().on_message(move |_, m| {
                g.borrow_mut().push(m);
                done1();
            }),
        )
        .unwrap()
        .port();
    let (l, p, done2, stop2) = (log.clone(), pongs.clone(), check_done, stop.clone());
    cx.connect(
        ConnectOptions::new(url(port)),
        Callbacks::new()
            .on_connect(move |conn, _| {
                let outcome = |what: &str, r: lws::Result<()>| match r {
                    Ok(()) => format!("{what}: ok"),
                    Err(Error::FragmentInProgress) => format!("{what}: in progress"),
                    Err(e) => format!("{what}: {e}"),
                };
                let mut l = l.borrow_mut();
                l.push(outcome(
                    "first",
                    conn.send_fragment(b"first half, ", false, false),
                ));
                l.push(outcome("send_text", conn.send_text("no")));
                l.push(outcome("send", conn.send(Message::Binary(b"no".to_vec()))));
                l.push(outcome("send_binary", conn.send_binary(b"no")));
                // The refused sends queued nothing.
                l.push(format!("queued {}", conn.send_queue_size()));
                l.push(outcome("ping", conn.ping(b"between")));
                l.push(outcome(
                    "final",
                    conn.send_fragment(b"second half", false, true),
                ));
                l.push(outcome("after", conn.send_text("after")));
            })
            .on_pong(move |_, payload| {
                p.borrow_mut().push(payload.to_vec());
                done2();
            })
            .on_close(move |_, _, _| {
                let _ = stop2.stop();
            }),
    )
    .unwrap();
    cx.run().unwrap();
    assert_eq!(
        *log.borrow(),
        vec![
            "first: ok",
            "send_text: in progress",
            "send: in progress",
            "send_binary: in progress",
            "queued 12",
            "ping: ok",
            "final: ok",
            "after: ok",
        ]
    );
    assert_eq!(
        *got.borrow(),
        vec![
            Message::Text("first half, second half".into()),
            Message::Text("after".into()),
        ]
    );
    assert_eq!(*pongs.borrow(), vec![b"between".to_vec()]);
}

// ---- a peer's fragments, reassembled ----

/// A text message whose final frame is empty.
const TAIL_PIECES: &[&[u8]] = &[b"tail", b""];

/// The messages the tungstenite peers of the reassembly tests send, and
/// how they cut them: a text message in three frames (a ping between the
/// first two), a binary one in five, a text one whose last frame is empty.
fn peer_messages() -> Vec<(Message, Vec<Vec<u8>>)> {
    let binary = util::payload(7, 50_000);
    vec![
        (
            Message::Text("Hello, fragmented world".into()),
            vec![
                b"Hello".to_vec(),
                b", fragmented".to_vec(),
                b" world".to_vec(),
            ],
        ),
        (
            Message::Binary(binary.clone()),
            binary.chunks(10_000).map(<[u8]>::to_vec).collect(),
        ),
        (
            Message::Text("tail".into()),
            TAIL_PIECES.iter().map(|p| p.to_vec()).collect(),
        ),
    ]
}

/// Writes `pieces` as one message of the given kind, one frame each.
fn write_pieces<S: Read + Write>(
    ws: &mut tungstenite::WebSocket<S>,
    binary: bool,
    pieces: &[Vec<u8>],
    ping_after_first: bool,
) -> Result<(), String> {
    let first = if binary { Data::Binary } else { Data::Text };
    for (i, piece) in pieces.iter().enumerate() {
        let op = if i == 0 { first } else { Data::Continue };
        let frame = Frame::message(piece.clone(), OpCode::Data(op), i == pieces.len() - 1);
        ws.write(TMessage::Frame(frame))
            .map_err(|e| format!("frame {i}: {e}"))?;
        if i == 0 && ping_after_first {
            // Control frames may come between a message's frames.
            ws.write(TMessage::Ping(b"mid".to_vec().into()))
                .map_err(|e| format!("ping: {e}"))?;
        }
    }
    ws.flush().map_err(|e| format!("flush: {e}"))
}

/// Reads until the connection ends, answering the peer's close frame;
/// returns that frame's code, None if none came.
fn await_close<S: Read + Write>(ws: &mut tungstenite::WebSocket<S>) -> Option<u16> {
    let mut code = None;
    for _ in 0..1000 {
        match ws.read() {
            Ok(TMessage::Close(frame)) => {
                code = code.or(Some(frame.map_or(1005, |f| f.code.into())));
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    code
}

/// A tungstenite server for one connection on a free port: it accepts,
/// calls `write`, then reads until the connection ends. Returns the port
/// and a thread giving the code of the close frame it got.
fn tungstenite_server(
    write: impl FnOnce(&mut WebSocket<TcpStream>) -> Result<(), String> + Send + 'static,
) -> (u16, JoinHandle<Result<Option<u16>, String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
        let mut ws = tungstenite::accept(stream).map_err(|e| format!("handshake: {e}"))?;
        write(&mut ws)?;
        Ok(await_close(&mut ws))
    });
    (port, server)
}

/// tungstenite client: sends the peer messages in pieces, reads the server's
/// whole-message echoes, closes. Returns the echoes.
fn fragmenting_client(port: u16) -> Result<Vec<TMessage>, String> {
    let (mut ws, _) = tungstenite::connect(url(port)).map_err(|e| format!("connect: {e}"))?;
    for (i, (message, pieces)) in peer_messages().iter().enumerate() {
        write_pieces(&mut ws, message.is_binary(), pieces, i == 0)
            .map_err(|e| format!("write #{i}: {e}"))?;
    }
    let mut echoes = Vec::new();
    while echoes.len() < 3 {
        match ws.read() {
            Ok(m @ (TMessage::Text(_) | TMessage::Binary(_))) => echoes.push(m),
            Ok(_) => {} // the pong
            Err(e) => return Err(format!("read echo: {e}")),
        }
    }
    ws.close(None).map_err(|e| format!("close: {e}"))?;
    await_close(&mut ws);
    Ok(echoes)
}

fn same(ours: &Message, theirs: &TMessage) -> bool {
    match (ours, theirs) {
        (Message::Text(a), TMessage::Text(b)) => a.as_str() == b.as_str(),
        (Message::Binary(a), TMessage::Binary(b)) => a[..] == b[..],
        _ => false,
    }
}

#[test]
fn our_server_reassembles_a_peers_fragments() {
    let _wd = util::watchdog("our_server_reassembles", 30);
    let cx = Context::new(ContextOptions::default()).unwrap();
    let stop = cx.handle();
    let got: Rc<RefCell<Vec<Message>>> = Rc::default();
    let g = got.clone();
    let port = cx
        .listen(
            ListenOptions::new(0),
            Callbacks::new()
                .on_message(move |conn, m| {
                    g.borrow_mut().push(m.clone());
                    let _ = conn.send(m);
                })
                .on_close(move |_, _, _| {
                    let _ = stop.stop();
                }),
        )
        .unwrap()
        .port();
    let handle = cx.handle();
    let client = thread::spawn(move || {
        let r = fragmenting_client(port);
        if r.is_err() {
            let _ = handle.stop();
        }
        r
    });
    cx.run().unwrap();
    drop(cx);
    let echoes = client.join().unwrap().expect("tungstenite client");
    let expected: Vec<Message> = peer_messages().into_iter().map(|(m, _)| m).collect();
    assert_eq!(*got.borrow(), expected);
    assert_eq!(echoes.len(), expected.len());
    for (i, (ours, theirs)) in expected.iter().zip(&echoes).enumerate() {
        assert!(same(ours, theirs), "echo #{i}: {theirs:?}");
    }
}

#[test]
fn our_client_reassembles_a_peers_fragments() {
    let _wd = util::watchdog("our_client_reassembles", 30);
    let (port, server) = tungstenite_server(|ws| {
        for (i, (message, pieces)) in peer_messages().iter().enumerate() {
            write_pieces(ws, message.is_binary(), pieces, i == 0)
                .map_err(|e| format!("write #{i}: {e}"))?;
        }
        Ok(())
    });
    let got: Rc<RefCell<Vec<Message>>> = Rc::default();
    let g = got.clone();
    run_our_client(ConnectOptions::new(url(port)), |_| {
        Callbacks::new().on_message(move |conn, m| {
            g.borrow_mut().push(m);
            if g.borrow().len() == 3 {
                conn.close(CloseCode::NORMAL, "");
            }
        })
    });
    let expected: Vec<Message> = peer_messages().into_iter().map(|(m, _)| m).collect();
    assert_eq!(*got.borrow(), expected);
    assert_eq!(server.join().unwrap(), Ok(Some(1000)));
}

/// Three 60-byte frames make a 180-byte message: each frame fits a limit of
/// 100, the message does not.
fn oversized_pieces() -> Vec<Vec<u8>> {
    (0..3).map(|i| vec![b'a' + i as u8; 60]).collect()
}

#[test]
fn our_server_closes_with_1009_when_fragments_add_up_past_the_limit() {
    let _wd = util::watchdog("server_fragments_too_big", 30);
    let cx = Context::new(ContextOptions::default()).unwrap();
    let stop = cx.handle();
    let messages = Rc::new(Cell::new(0));
    let m = messages.clone();
    let mut options = ListenOptions::new(0);
    options.max_message_size = 100;
    let port = cx
        .listen(
            options,
            Callbacks::new()
                .on_message(move |_, _| m.set(m.get() + 1))
                .on_close(move |_, _, _| {
                    let _ = stop.stop();
                }),
        )
        .unwrap()
        .port();
    let handle = cx.handle();
    let client = thread::spawn(move || -> Result<Option<u16>, String> {
        let (mut ws, _) = tungstenite::connect(url(port)).map_err(|e| format!("connect: {e}"))?;
        let r = write_pieces(&mut ws, false, &oversized_pieces(), false);
        if let Err(e) = r {
            let _ = handle.stop();
            return Err(format!("write: {e}"));
        }
        Ok(await_close(&mut ws))
    });
    cx.run().unwrap();
    drop(cx);
    assert_eq!(client.join().unwrap(), Ok(Some(1009)));
    assert_eq!(messages.get(), 0, "the oversized message was delivered");
}

#[test]
fn our_client_closes_with_1009_when_fragments_add_up_past_the_limit() {
    let _wd = util::watchdog("client_fragments_too_big", 30);
    let (port, server) = tungstenite_server(|ws| {
        write_pieces(ws, false, &oversized_pieces(), false).map_err(|e| format!("write: {e}"))
    });
    let messages = Rc::new(Cell::new(0));
    let m = messages.clone();
    let mut options = ConnectOptions::new(url(port));
    options.max_message_size = 100;
    let closes = run_our_client(options, |_| {
        Callbacks::new().on_message(move |_, _| m.set(m.get() + 1))
    });
    assert_eq!(server.join().unwrap(), Ok(Some(1009)));
    assert_eq!(messages.get(), 0, "the oversized message was delivered");
    // We closed first: on_close reports the code we sent.
    assert_eq!(closes, vec![1009]);
}

// ---- ReceiveMode::Fragments, and max_message_size on large messages ----

const BIG: usize = 4 << 20;
const LIMIT: usize = 1 << 20;

/// What the receiver of a 4 MiB message saw.
#[derive(Default)]
struct Chunks {
    fragments: Vec<Fragment>,
    messages: usize,
    /// The code the receiver's on_close reported.
    receiver_close: Option<u16>,
    /// The code the sender's on_close reported.
    sender_close: Option<u16>,
}

/// Runs one context where one side sends a 4 MiB binary message and then
/// "tail", and the other (the server if `server_receives`) receives in
/// `mode` with `max_message_size`. Stops when "tail" is complete, or
/// once both ends have closed.
fn big_message(server_receives: bool, mode: ReceiveMode, max_message_size: usize) -> Chunks {
    let cx = Context::new(ContextOptions::default()).unwrap();
    let stop = cx.handle();
    let seen: Rc<RefCell<Chunks>> = Rc::default();
    let (s1, s2, s3, s4) = (seen.clone(), seen.clone(), seen.clone(), seen.clone());
    let (stop1, stop2, stop3) = (stop.clone(), stop.clone(), stop);
    let both_closed = |s: &Chunks| s.receiver_close.is_some() && s.sender_close.is_some();
    let receiver = Callbacks::new()
        .on_fragment(move |_, f| {
            let tail_done = f.is_final && !f.is_binary;
            s1.borrow_mut().fragments.push(f);
            if tail_done {
                let _ = stop1.stop();
            }
        })
        .on_message(move |_, m| {
            s2.borrow_mut().messages += 1;
            if !m.is_binary() {
                let _ = stop2.stop();
            }
        })
        .on_close(move |_, code, _| {
            s3.borrow_mut().receiver_close = Some(code.0);
            if both_closed(&s3.borrow()) {
                let _ = stop3.stop();
            }
        });
    let stop4 = cx.handle();
    let sender = Callbacks::new()
        .on_connect(|conn, _| {
            conn.send_binary(&util::payload(3, BIG)).unwrap();
            conn.send_text("tail").unwrap();
        })
        .on_close(move |_, code, _| {
            s4.borrow_mut().sender_close = Some(code.0);
            if both_closed(&s4.borrow()) {
                let _ = stop4.stop();
            }
        });
    let mut listen = ListenOptions::new(0);
    let mut connect = ConnectOptions::new("");
    let (server, client) = if server_receives {
        listen.receive = mode;
        listen.max_message_size = max_message_size;
        (receiver, sender)
    } else {
        connect.receive = mode;
        connect.max_message_size = max_message_size;
        (sender, receiver)
    };
    let port = cx.listen(listen, server).unwrap().port();
    connect.url = url(port);
    cx.connect(connect, client).unwrap();
    cx.run().unwrap();
    // Taken before the context goes: dropping it closes what is still open.
    let seen = std::mem::take(&mut *seen.borrow_mut());
    drop(cx);
    seen
}

/// Checks one message's fragments: first/final flags only at the ends,
/// the kind on every chunk, the bytes in order.
fn check_message(fragments: &[Fragment], binary: bool, expected: &[u8]) {
    assert!(!fragments.is_empty());
    let last = fragments.len() - 1;
    for (i, f) in fragments.iter().enumerate() {
        assert_eq!(f.is_first, i == 0, "fragment {i} of {}: is_first", last + 1);
        assert_eq!(
            f.is_final,
            i == last,
            "fragment {i} of {}: is_final",
            last + 1
        );
        assert_eq!(f.is_binary, binary, "fragment {i}: is_binary");
    }
    let joined: Vec<u8> = fragments.iter().flat_map(|f| f.data.clone()).collect();
    assert!(joined == expected, "the chunks do not join to the message");
}

fn check_streamed(seen: &Chunks) {
    assert_eq!(seen.messages, 0, "on_message was called in fragment mode");
    assert_eq!((seen.receiver_close, seen.sender_close), (None, None));
    let split = seen
        .fragments
        .iter()
        .position(|f| f.is_final)
        .expect("a final fragment")
        + 1;
    let (big, tail) = seen.fragments.split_at(split);
    assert!(big.len() > 1, "4 MiB arrived in {} chunk(s)", big.len());
    check_message(big, true, &util::payload(3, BIG));
    check_message(tail, false, b"tail");
}

#[test]
fn fragment_mode_on_a_server_streams_a_large_message_in_chunks() {
    let _wd = util::watchdog("fragment_mode_server", 30);
    check_streamed(&big_message(true, ReceiveMode::Fragments, 0));
}

#[test]
fn fragment_mode_on_a_client_streams_a_large_message_in_chunks() {
    let _wd = util::watchdog("fragment_mode_client", 30);
    check_streamed(&big_message(false, ReceiveMode::Fragments, 0));
}

/// Checks a receiver that got a 4 MiB message over its 1 MiB limit: it
/// closed with 1009, passed on the chunks below the limit at most, and
/// never the message.
fn check_too_big(seen: &Chunks) {
    assert_eq!(seen.receiver_close, Some(1009), "the receiver's on_close");
    assert_eq!(seen.messages, 0, "the oversized message was delivered");
    let streamed: usize = seen.fragments.iter().map(|f| f.data.len()).sum();
    assert!(streamed <= LIMIT, "{streamed} bytes passed on");
    assert!(
        seen.fragments.iter().all(|f| !f.is_final),
        "a final fragment of an oversized message"
    );
}

#[test]
fn fragment_mode_on_a_server_still_closes_with_1009_past_max_message_size() {
    let _wd = util::watchdog("fragment_mode_server_too_big", 30);
    let seen = big_message(true, ReceiveMode::Fragments, LIMIT);
    check_too_big(&seen);
    // The sender (our client) got the server's close frame.
    assert_eq!(seen.sender_close, Some(1009));
    assert!(
        seen.fragments.first().is_some_and(|f| f.is_first),
        "the chunks below the limit were not passed on"
    );
}

/// Runs the `#[ignore]`d test `name` of this binary in a child process, as
/// a heap corruption aborts the whole process; returns whether it passed,
/// and its output.
fn run_in_child(name: &str) -> (bool, String) {
    use std::os::unix::process::ExitStatusExt;
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .expect("run the test binary");
    let text = format!(
        "{}{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status
            .signal()
            .map_or(String::new(), |s| format!("killed by signal {s}"))
    );
    (out.status.success(), text)
}

// Regression (heap corruption, fixed in 9a68962): a client with
// max_message_size receiving a message more than ~4 KiB over its limit
// made lws's client parser write past its receive buffer when the binding
// returned -1 from LWS_CALLBACK_CLIENT_RECEIVE (client-parser-ws.c keeps
// rx_ubuf_head after `if (m) return 1;` and goes on parsing the frame
// while it waits for the close ack; glibc then aborted with "free():
// invalid next size"). Each receive mode runs in a child process, so such
// an abort cannot take the other tests down.
#[test]
fn a_client_closes_with_1009_past_max_message_size() {
    let _wd = util::watchdog("client_too_big", 60);
    let failed: Vec<String> = [
        "client_too_big_in_fragment_mode",
        "client_too_big_in_message_mode",
    ]
    .into_iter()
    .filter_map(|child| {
        let (passed, output) = run_in_child(child);
        (!passed).then(|| format!("{child} failed:\n{output}"))
    })
    .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
#[ignore = "run in a child process by a_client_closes_with_1009_past_max_message_size"]
fn client_too_big_in_fragment_mode() {
    let _wd = util::watchdog("client_too_big_in_fragment_mode", 30);
    check_too_big(&big_message(false, ReceiveMode::Fragments, LIMIT));
}

#[test]
#[ignore = "run in a child process by a_client_closes_with_1009_past_max_message_size"]
fn client_too_big_in_message_mode() {
    let _wd = util::watchdog("client_too_big_in_message_mode", 30);
    let seen = big_message(false, ReceiveMode::Messages, LIMIT);
    check_too_big(&seen);
    assert!(seen.fragments.is_empty());
}
