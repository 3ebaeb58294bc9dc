//! Keepalive: a peer silent for `ping_after` gets a ping, one silent past
//! `hangup_after` is hung up (on_close with 1006) on both server and client
//! connections; a pong or any message counts as a sign of life, and
//! `keepalive: None` sends no pings at all.

mod util;

use lws::{Callbacks, CloseCode, Context, ContextOptions, Keepalive, ListenOptions};
use std::io::{ErrorKind, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};
use tungstenite::Message as TMessage;
use util::raw_ws::{self, PING};
use util::Server;

/// Every period here is a multiple of this unit: 1 s, or 4 s under
/// valgrind, whose slowdown would otherwise let a busy loop miss a beat.
fn unit() -> Duration {
    Duration::from_secs(if util::under_valgrind() { 4 } else { 1 })
}

fn ping_after() -> Duration {
    unit()
}

fn hangup_after() -> Duration {
    2 * unit()
}

/// A generous bound for what should take a little over hangup_after().
fn bound() -> Duration {
    6 * unit()
}

fn keepalive() -> Option<Keepalive> {
    Some(Keepalive::new(ping_after(), hangup_after()))
}

/// An echo server with `keepalive` that reports each on_close (code, when)
/// and how many messages it received.
fn server(
    keepalive: Option<Keepalive>,
) -> (
    Server,
    mpsc::Receiver<(CloseCode, Instant)>,
    mpsc::Receiver<()>,
) {
    let (close_tx, closes) = mpsc::channel();
    let (msg_tx, messages) = mpsc::channel();
    let mut options = ListenOptions::new(0);
    options.keepalive = keepalive;
    let server = Server::start(options, move || {
        Callbacks::new()
            .on_message(move |conn, msg| {
                let _ = msg_tx.send(());
                conn.send(msg).expect("echo");
            })
            .on_close(move |_, code, _| {
                let _ = close_tx.send((code, Instant::now()));
            })
    });
    (server, closes, messages)
}

#[test]
fn a_silent_client_is_pinged_then_hung_up() {
    let _wd = util::watchdog("silent_client", 30);
    let (_server, closes, _) = server(keepalive());
    let (mut stream, sent) = raw_ws::upgrade(_server.port, &[]);
    // The client never sends anything after its request.
    stream.set_read_timeout(Some(bound())).unwrap();
    let ping = raw_ws::read_frame(&mut stream).expect("a ping before the hang-up");
    let ping_at = sent.elapsed();
    assert_eq!(
        (ping.opcode, ping.fin, ping.masked),
        (PING, true, false),
        "{ping:?}"
    );
    assert!(ping_at >= ping_after(), "pinged after only {ping_at:?}");
    // Then nothing more (no second ping, no close frame): the socket is cut.
    let rest = raw_ws::read_to_close(&mut stream).unwrap_or_else(|(e, got)| {
        panic!("still open after {:?}: {e}, got {got:?}", sent.elapsed())
    });
    let closed_at = sent.elapsed();
    assert!(rest.is_empty(), "after the ping came {rest:?}");
    assert!(
        closed_at >= hangup_after(),
        "hung up after only {closed_at:?}"
    );
    assert!(
        closed_at <= bound() + ping_after(),
        "hung up after {closed_at:?}"
    );
    let (code, when) = closes.recv_timeout(bound()).expect("the server's on_close");
    assert_eq!(code, CloseCode::ABNORMAL);
    assert!(when.duration_since(sent) >= hangup_after());
}

#[test]
fn a_client_that_answers_pings_stays_connected() {
    let _wd = util::watchdog("pong_keeps_alive", 30);
    let (server, closes, _) = server(keepalive());
    let stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream.set_read_timeout(Some(bound())).unwrap();
    let (mut ws, _) = tungstenite::client(server.url(), stream).expect("handshake");
    // Short reads from here on, so the loop below keeps an eye on the clock.
    ws.get_ref().set_read_timeout(Some(unit() / 10)).unwrap();
    // Only reading (tungstenite answers each ping on its next read), never
    // sending, for twice the hang-up time.
    let start = Instant::now();
    let mut pings = 0;
    while start.elapsed() < 2 * hangup_after() {
        match ws.read() {
            Ok(TMessage::Ping(_)) => pings += 1,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("connection lost after {:?}: {e}", start.elapsed()),
        }
    }
    assert!(pings >= 2, "only {pings} pings in {:?}", start.elapsed());
    ws.send(TMessage::text("still here")).unwrap();
    let echo = loop {
        match ws.read() {
            Ok(TMessage::Ping(_)) => {}
            Ok(m) => break m,
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                assert!(start.elapsed() < 3 * bound(), "no echo");
            }
            Err(e) => panic!("connection lost: {e}"),
        }
    };
    assert_eq!(echo, TMessage::text("still here"));
    assert!(
        closes.try_recv().is_err(),
        "the server closed the connection"
    );
}

#[test]
fn messages_count_as_signs_of_life() {
    let _wd = util::watchdog("messages_keep_alive", 30);
    let (server, closes, messages) = server(keepalive());
    let (mut stream, sent) = raw_ws::upgrade(server.port, &[]);
    // A message every 500 ms for 4 s, no pong ever (and nothing read).
    for i in 0..8 {
        stream
            .write_all(&raw_ws::masked(
                raw_ws::TEXT,
                format!("beat {i}").as_bytes(),
            ))
            .unwrap();
        thread::sleep(unit() / 2);
    }
    assert!(sent.elapsed() > hangup_after() + ping_after());
    for i in 0..8 {
        messages
            .recv_timeout(bound())
            .unwrap_or_else(|_| panic!("message {i} did not arrive"));
    }
    assert!(
        closes.try_recv().is_err(),
        "the server hung up a talking client"
    );
    // Still open: whatever came (echoes, perhaps a ping) and no EOF.
    stream.set_nonblocking(true).unwrap();
    match raw_ws::read_to_close(&mut stream) {
        Err((e, _)) if e.kind() == ErrorKind::WouldBlock => {}
        Err((e, got)) => panic!("read: {e} after {} bytes", got.len()),
        Ok(got) => panic!("closed by the server after {} bytes", got.len()),
    }
}

#[test]
fn a_client_whose_server_goes_silent_hangs_up() {
    let _wd = util::watchdog("silent_server", 30);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // A server that accepts the upgrade by hand, then never sends a thing:
    // it reports the frames it gets and whether the client then hung up.
    let peer = thread::spawn(move || -> Result<(Vec<raw_ws::Frame>, bool), String> {
        let (mut stream, _) = listener.accept().map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(bound())).unwrap();
        raw_ws::accept(&mut stream).map_err(|e| format!("handshake: {e}"))?;
        let mut frames = Vec::new();
        loop {
            match raw_ws::read_frame(&mut stream) {
                Ok(f) => frames.push(f),
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok((frames, true)),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok((frames, true)),
                Err(_) => return Ok((frames, false)),
            }
        }
    });
    let cx = Context::new(ContextOptions::default()).unwrap();
    let mut options = util::connect_options(util::url(port));
    options.keepalive = keepalive();
    let outcome: std::rc::Rc<std::cell::RefCell<Vec<String>>> = Default::default();
    let (o1, o2, o3) = (outcome.clone(), outcome.clone(), outcome.clone());
    let (stop1, stop2) = (cx.handle(), cx.handle());
    let start = Instant::now();
    let closed_at: std::rc::Rc<std::cell::Cell<Option<Duration>>> = Default::default();
    let c = closed_at.clone();
    cx.connect(
        options,
        Callbacks::new()
            .on_connect(move |_, _| o1.borrow_mut().push("connected".into()))
            .on_close(move |_, code, _| {
                c.set(Some(start.elapsed()));
                o2.borrow_mut().push(format!("closed {}", code.0));
                stop1.stop().unwrap();
            })
            .on_error(move |_, e| {
                o3.borrow_mut().push(format!("error: {e}"));
                stop2.stop().unwrap();
            }),
    )
    .unwrap();
    let stop = cx.handle();
    cx.set_timeout(3 * bound(), move |_| stop.stop().unwrap());
    cx.run().unwrap();
    assert_eq!(*outcome.borrow(), vec!["connected", "closed 1006"]);
    let closed_at = closed_at.get().unwrap();
    assert!(
        closed_at >= hangup_after(),
        "hung up after only {closed_at:?}"
    );
    assert!(closed_at <= bound(), "hung up after {closed_at:?}");
    drop(cx);
    let (frames, eof) = peer.join().unwrap().unwrap();
    assert!(eof, "the client did not close the socket");
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(
        (frames[0].opcode, frames[0].masked),
        (PING, true),
        "{frames:?}"
    );
}

#[test]
fn no_keepalive_means_no_ping() {
    let _wd = util::watchdog("no_keepalive", 30);
    let (server, closes, _) = server(None);
    let (mut stream, _) = raw_ws::upgrade(server.port, &[]);
    stream
        .set_read_timeout(Some(hangup_after() + unit() / 2))
        .unwrap();
    match raw_ws::read_frame(&mut stream) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("a silent client without keepalive got {other:?}"),
    }
    assert!(
        closes.try_recv().is_err(),
        "the server closed the connection"
    );
}
