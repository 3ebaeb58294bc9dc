//! A peer that sends everything and half-closes (shutdown(SHUT_WR)) at
//! once, before lws read any of it: what it sent is still served. The
//! upgrade is answered, the message echoed, and only then is the
//! connection ended (1006: no close frame). Our reactor used to hand lws
//! POLLHUP for the half-close, and lws closes a POLLHUP socket without
//! reading (found by fuzz/server_bytes: every input went unanswered).
//!
//! A half-closed socket stays readable (the EOF) until lws reads it, and
//! the kernel signals it once: our reactor keeps it ready itself. When
//! lws does not end the connection at the EOF (it lingers to flush a
//! large send, or the application paused reading), the loop must still
//! sleep rather than offer lws the EOF again every turn.

mod util;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::Duration;
use util::{http, raw_ws};

const TEXT: u8 = 1;

/// Request and frame in one write, then the FIN: the server reads the
/// data and the EOF in one wakeup.
#[test]
fn request_and_frame_then_half_close_are_served() {
    let _wd = util::watchdog("half_close", 60);
    let server = util::Server::echo();
    for round in 0..20 {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut bytes = http::upgrade_request("/", &[], &[]).into_bytes();
        bytes.extend_from_slice(&raw_ws::masked(TEXT, b"sent before the FIN"));
        stream.write_all(&bytes).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let head = raw_ws::read_head(&mut stream)
            .unwrap_or_else(|e| panic!("round {round}: no answer to the upgrade: {e}"));
        assert!(head.starts_with("HTTP/1.1 101"), "round {round}: {head:?}");
        let rest = raw_ws::read_to_close(&mut stream)
            .unwrap_or_else(|(e, got)| panic!("round {round}: not closed ({e}); got {got:?}"));
        let frames = raw_ws::parse_frames(&rest).expect("frames");
        assert_eq!(frames.len(), 1, "round {round}: {frames:?}");
        assert_eq!(frames[0].opcode, TEXT);
        assert_eq!(frames[0].payload, b"sent before the FIN");
    }
}

/// A connection the application paused (`pause_recv`) whose peer then
/// sent a message and half-closed: the loop sleeps until the resume (it
/// does not offer lws the unread EOF turn after turn), then the message
/// is echoed and the connection ends.
#[test]
fn a_paused_connection_whose_peer_half_closed_lets_the_loop_sleep() {
    use lws::{Callbacks, Connection, Context, ContextOptions, ListenOptions};
    use mio::{Events, Poll};
    use std::cell::RefCell;
    use std::io::{ErrorKind, Read};
    use std::rc::Rc;

    let _wd = util::watchdog("half_close_paused", 60);
    let mut poll = Poll::new().unwrap();
    let cx = Context::embedded(poll.registry(), ContextOptions::default()).unwrap();
    let paused: Rc<RefCell<Option<Connection>>> = Rc::default();
    let paused2 = paused.clone();
    let callbacks = Callbacks::new()
        .on_connect(move |conn, _| {
            conn.pause_recv();
            *paused2.borrow_mut() = Some(conn.clone());
        })
        .on_message(|conn, msg| {
            let _ = conn.send(msg);
        });
    let port = cx.listen(ListenOptions::new(0), callbacks).unwrap().port();
    let mut events = Events::with_capacity(64);
    let mut turn = |cx: &Context| {
        let wait = cx
            .poll_timeout()
            .unwrap_or(Duration::from_millis(20))
            .min(Duration::from_millis(20));
        poll.poll(&mut events, Some(wait)).unwrap();
        cx.handle_events(&events);
    };

    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(http::upgrade_request("/", &[], &[]).as_bytes())
        .unwrap();
    stream.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut read_some = |stream: &mut TcpStream, got: &mut Vec<u8>| -> bool {
        match stream.read(&mut buf) {
            Ok(0) => true,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                false
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            Err(_) => true,
        }
    };
    for _ in 0..200 {
        turn(&cx);
        read_some(&mut stream, &mut got);
        if got.windows(4).any(|w| w == b"\r\n\r\n") && paused.borrow().is_some() {
            break;
        }
    }
    assert!(
        got.starts_with(b"HTTP/1.1 101"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    got.clear();

    stream
        .write_all(&raw_ws::masked(TEXT, b"sent before the FIN"))
        .unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    // A few turns for the events to arrive and be handled; after those,
    // nothing can be done until the resume, and the loop must say so.
    for _ in 0..5 {
        turn(&cx);
    }
    let mut busy = 0;
    for _ in 0..50 {
        if cx.poll_timeout() == Some(Duration::ZERO) {
            busy += 1;
        }
        turn(&cx);
    }
    assert_eq!(busy, 0, "turns that would not sleep while paused, of 50");
    assert_eq!(cx.connections().len(), 1, "closed while paused");

    paused.borrow().as_ref().unwrap().resume_recv();
    let mut eof = false;
    for _ in 0..200 {
        turn(&cx);
        eof = read_some(&mut stream, &mut got) || eof;
        if eof && cx.connections().is_empty() {
            break;
        }
    }
    assert!(
        eof && cx.connections().is_empty(),
        "not closed after the resume"
    );
    let frames = raw_ws::parse_frames(&got).expect("frames");
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].payload, b"sent before the FIN");
}

/// A peer that half-closes while the server still has a large message
/// for it, of which it reads nothing: lws reads the EOF but lingers to
/// flush what it holds (up to its own 5 s timeout). The loop sleeps
/// meanwhile (our reactor offered lws the EOF again every turn, a spin
/// a client could cause at will) and the connection then ends.
#[test]
fn a_half_close_while_the_server_still_sends_lets_the_loop_sleep() {
    use lws::{Callbacks, Context, ContextOptions, ListenOptions, Message};
    use mio::{Events, Poll};
    use std::io::Read;

    let _wd = util::watchdog("half_close_sending", 120);
    let mut poll = Poll::new().unwrap();
    let cx = Context::embedded(poll.registry(), ContextOptions::default()).unwrap();
    let callbacks = Callbacks::new().on_message(|conn, _| {
        let _ = conn.send(Message::Binary(vec![7u8; 16 << 20]));
    });
    let mut options = ListenOptions::new(0);
    options.keepalive = None;
    let port = cx.listen(options, callbacks).unwrap().port();
    let mut events = Events::with_capacity(64);
    // One turn; true when it would not have slept.
    let mut turn = |cx: &Context| {
        let wait = cx.poll_timeout().unwrap_or(Duration::from_millis(100));
        poll.poll(&mut events, Some(wait.min(Duration::from_millis(100))))
            .unwrap();
        cx.handle_events(&events);
        wait == Duration::ZERO
    };

    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(http::upgrade_request("/", &[], &[]).as_bytes())
        .unwrap();
    for _ in 0..10 {
        turn(&cx); // accept, then the request
    }
    let head = raw_ws::read_head(&mut stream).expect("upgrade answered");
    assert!(head.starts_with("HTTP/1.1 101"), "{head:?}");
    stream
        .write_all(&raw_ws::masked(2, b"send me lots"))
        .unwrap();
    // The server fills the socket buffers, and we read only the first
    // bytes, to see that the message is on its way.
    let mut first = [0u8; 16];
    for _ in 0..20 {
        turn(&cx);
    }
    stream.read_exact(&mut first).unwrap();
    assert_eq!(first[0], 0x82, "a binary frame");
    stream.shutdown(Shutdown::Write).unwrap();

    for _ in 0..5 {
        turn(&cx);
    }
    // 25 turns of at most 100 ms: well inside lws's 5 s, which ends in a
    // few busy turns of its own (the close).
    let busy = (0..20).filter(|_| turn(&cx)).count();
    assert_eq!(busy, 0, "turns that would not sleep, of 20");

    // lws gives up flushing after 5 s; a spinning loop would use these
    // turns up in well under a second.
    let mut turns = 0;
    while !cx.connections().is_empty() {
        turns += 1;
        assert!(turns < 2000, "still open");
        turn(&cx);
    }
}

/// Our client, whose server answers the upgrade, sends part of a frame
/// and half-closes, all in one write: the client reads the EOF and ends
/// the connection (1006). lws keeps what came after the 101 in its own
/// buffer and spends the next POLLIN on that, not on the socket, so the
/// EOF must stay offered (fuzz/client_bytes found a reactor change that
/// held it back: the client never closed).
#[test]
fn a_client_whose_server_half_closes_inside_a_frame_closes() {
    use lws::{Callbacks, CloseCode, Context, ContextOptions};
    use std::net::TcpListener;
    use std::sync::mpsc;

    let _wd = util::watchdog("half_close_client", 60);
    for round in 0..20 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let head = raw_ws::read_head(&mut stream).unwrap();
            let key = raw_ws::read_key(&head).unwrap();
            let mut out = Vec::new();
            raw_ws::switching(
                &mut out,
                &tungstenite::handshake::derive_accept_key(key.as_bytes()),
            )
            .unwrap();
            out.extend_from_slice(&[0x82, 6, b'a', b'b', b'c']); // 3 of 6 bytes
            stream.write_all(&out).unwrap();
            stream.shutdown(Shutdown::Write).unwrap();
            // Until the client hangs up.
            let _ = raw_ws::read_to_close(&mut stream);
        });
        let cx = Context::new(ContextOptions::default()).unwrap();
        let (tx, rx) = mpsc::channel();
        let (tx2, stop) = (tx.clone(), cx.handle());
        let stop2 = cx.handle();
        cx.connect(
            util::connect_options(util::url(port)),
            Callbacks::new()
                .on_close(move |_, code, _| {
                    let _ = tx.send(Ok(code));
                    stop.stop().unwrap();
                })
                .on_error(move |_, e| {
                    let _ = tx2.send(Err(e.to_string()));
                    stop2.stop().unwrap();
                }),
        )
        .unwrap();
        let stop = cx.handle();
        cx.set_timeout(Duration::from_secs(10), move |_| stop.stop().unwrap());
        cx.run().unwrap();
        assert_eq!(
            rx.try_recv(),
            Ok(Ok(CloseCode::ABNORMAL)),
            "round {round}: not closed at the EOF within 10 s"
        );
        drop(cx);
        server.join().unwrap();
    }
}
