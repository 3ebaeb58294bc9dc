//! `max_frame_size` bounds single frames both ways: a server (or client)
//! closes with 1009 on a bigger frame but takes a bigger message sent in
//! frames within the limit, and splits what it sends into frames of at
//! most that size (a peer that refuses bigger frames gets every byte).

mod util;

use lws::{Callbacks, CloseCode, Context, ContextOptions, ListenOptions, Message};
use std::cell::RefCell;
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::thread;
use std::time::Duration;
use tungstenite::protocol::frame::coding::{CloseCode as TCloseCode, Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message as TMessage, WebSocket};
use util::Server;

/// An echo server whose "big N" text message makes it send N bytes.
fn server(max_frame_size: usize) -> Server {
    let mut options = ListenOptions::new(0);
    options.max_frame_size = max_frame_size;
    Server::start(options, || {
        Callbacks::new().on_message(|conn, msg| {
            let asked = match &msg {
                Message::Text(t) => t.strip_prefix("big ").and_then(|n| n.parse().ok()),
                Message::Binary(_) => None,
            };
            match asked {
                Some(n) => conn.send_binary(&util::payload(7, n)),
                None => conn.send(msg),
            }
            .expect("send");
        })
    })
}

/// A tungstenite client of `port` (frames it receives bounded by
/// `max_frame_size`); reads time out after 10 s.
fn client(port: u16, max_frame_size: Option<usize>) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let config = WebSocketConfig::default().max_frame_size(max_frame_size);
    tungstenite::client::client_with_config(util::url(port), stream, Some(config))
        .expect("handshake")
        .0
}

/// The next data or close message (pings and pongs skipped).
fn next(ws: &mut WebSocket<TcpStream>) -> Result<TMessage, Box<tungstenite::Error>> {
    loop {
        match ws.read().map_err(Box::new)? {
            TMessage::Ping(_) | TMessage::Pong(_) => continue,
            m => return Ok(m),
        }
    }
}

fn expect_binary(ws: &mut WebSocket<TcpStream>, want: &[u8], what: &str) {
    match next(ws) {
        Ok(TMessage::Binary(b)) => assert!(b == want, "{what}: the bytes differ"),
        other => panic!("{what}: expected {} bytes, got {other:?}", want.len()),
    }
}

#[test]
fn server_closes_1009_on_a_frame_over_max_frame_size() {
    let _wd = util::watchdog("server_frame_limit", 30);
    let server = server(1000);
    let mut ws = client(server.port, None);
    // Exactly the limit, in one frame: echoed.
    let at_limit = util::payload(1, 1000);
    ws.send(TMessage::binary(at_limit.clone())).expect("send");
    expect_binary(&mut ws, &at_limit, "a 1000-byte frame");
    // 2000 bytes as two 1000-byte frames: within the limit, echoed whole.
    let split = util::payload(2, 2000);
    ws.send(TMessage::Frame(Frame::message(
        split[..1000].to_vec(),
        OpCode::Data(Data::Binary),
        false,
    )))
    .expect("send the first frame");
    ws.send(TMessage::Frame(Frame::message(
        split[1000..].to_vec(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .expect("send the continuation");
    expect_binary(&mut ws, &split, "2000 bytes in two frames");
    // 2000 bytes in ONE frame (tungstenite never fragments): 1009.
    ws.send(TMessage::binary(util::payload(3, 2000)))
        .expect("send 2000 bytes");
    match next(&mut ws) {
        Ok(TMessage::Close(Some(frame))) => assert_eq!(frame.code, TCloseCode::Size),
        other => panic!("expected close 1009, got {other:?}"),
    }
}

#[test]
fn server_splits_what_it_sends_into_frames_of_max_frame_size() {
    let _wd = util::watchdog("server_frame_split", 30);
    let limited = server(1000);
    let mut ws = client(limited.port, Some(1000));
    for (i, n) in [1000, 1001, 5000].into_iter().enumerate() {
        ws.send(TMessage::text(format!("big {n}"))).expect("ask");
        expect_binary(
            &mut ws,
            &util::payload(7, n),
            &format!("a {n}-byte message in frames of 1000 (round {i})"),
        );
    }
    // The check has teeth: a server without the limit sends 5000 bytes in
    // one frame, which the same client refuses.
    let unlimited = server(0);
    let mut ws = client(unlimited.port, Some(1000));
    ws.send(TMessage::text("big 5000")).expect("ask");
    match next(&mut ws) {
        Err(e) if matches!(*e, tungstenite::Error::Capacity(_)) => {}
        other => panic!("expected a frame over 1000 bytes, got {other:?}"),
    }
}

/// What the tungstenite peer of the client test saw.
#[derive(Debug, PartialEq)]
struct PeerSaw {
    /// The client's message (it arrived in frames of at most 1000 bytes,
    /// or reading it failed).
    message: Vec<u8>,
    /// The close code the client answered a 2000-byte frame with.
    close: Option<u16>,
}

/// A tungstenite server that refuses frames over 1000 bytes: reads one
/// message, sends 1000 bytes in one frame, then 2000 bytes in one frame,
/// and reads until the client's close.
fn peer(listener: TcpListener) -> Result<PeerSaw, String> {
    let (stream, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| format!("read timeout: {e}"))?;
    let config = WebSocketConfig::default().max_frame_size(Some(1000));
    let mut ws = tungstenite::accept_with_config(stream, Some(config))
        .map_err(|e| format!("handshake: {e}"))?;
    let message = match next(&mut ws).map_err(|e| format!("read the message: {e}"))? {
        TMessage::Binary(b) => b.to_vec(),
        other => return Err(format!("expected a binary message, got {other:?}")),
    };
    ws.send(TMessage::binary(util::payload(8, 1000)))
        .map_err(|e| format!("send 1000: {e}"))?;
    ws.send(TMessage::binary(util::payload(9, 2000)))
        .map_err(|e| format!("send 2000: {e}"))?;
    let mut close = None;
    loop {
        match ws.read() {
            Ok(TMessage::Close(frame)) => close = frame.map(|f| u16::from(f.code)),
            Ok(_) => {}
            // After the close: tungstenite answered it and is done.
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => return Err(format!("read until close: {e}")),
        }
    }
    Ok(PeerSaw { message, close })
}

#[test]
fn client_max_frame_size_splits_sends_and_closes_1009_on_bigger_frames() {
    let _wd = util::watchdog("client_frames", 30);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    let peer = thread::spawn(move || peer(listener));
    let cx = Context::new(ContextOptions::default()).expect("context");
    let stop = cx.handle();
    let log: Rc<RefCell<Vec<String>>> = Rc::default();
    let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
    let stop_on_error = stop.clone();
    let mut options = util::connect_options(util::url(port));
    options.max_frame_size = 1000;
    cx.connect(
        options,
        Callbacks::new()
            .on_connect(|conn, _| {
                conn.send_binary(&util::payload(10, 5000))
                    .expect("send 5000")
            })
            .on_message(move |_, msg| {
                let line = if msg == Message::Binary(util::payload(8, 1000)) {
                    "the 1000-byte frame".to_string()
                } else {
                    format!("an unexpected {}-byte message", msg.as_bytes().len())
                };
                l1.borrow_mut().push(line);
            })
            .on_close(move |_, code, _| {
                l2.borrow_mut().push(format!("closed {}", code.0));
                let _ = stop.stop();
            })
            .on_error(move |_, e| {
                l3.borrow_mut().push(format!("error: {e}"));
                let _ = stop_on_error.stop();
            }),
    )
    .expect("connect");
    cx.run().expect("run");
    drop(cx);
    let saw = peer.join().expect("peer thread");
    assert_eq!(
        *log.borrow(),
        vec![
            "the 1000-byte frame".to_string(),
            format!("closed {}", CloseCode::TOO_BIG.0)
        ]
    );
    assert_eq!(
        saw,
        Ok(PeerSaw {
            message: util::payload(10, 5000),
            close: Some(1009),
        })
    );
}
