//! Keepalive: a peer silent for `ping_after` gets a ping, one silent past
//! `hangup_after` is hung up (on_close with 1006) on both server and client
//! connections; a pong or any message counts as a sign of life, and
//! `keepalive: None` sends no pings at all. A long upload to a slow reader
//! that says nothing is not hung up (its TCP takes our data while our ping
//! waits behind it); one to a peer that stopped reading is.

mod util;

use lws::{Callbacks, CloseCode, Context, ContextOptions, Keepalive, ListenOptions};
use std::io::{ErrorKind, Read, Write};
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
    let start = Instant::now();
    let client = run_client(port, 3 * bound(), |_| {});
    assert_eq!(client.events, vec!["connected", "closed 1006"]);
    let closed_at = client.closed_at.unwrap() - start;
    assert!(
        closed_at >= hangup_after(),
        "hung up after only {closed_at:?}"
    );
    assert!(closed_at <= bound(), "hung up after {closed_at:?}");
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

/// A client sending one message that takes several hangup periods to
/// cross (its server reads slowly and says nothing until it has all of
/// it): the server is plainly alive, taking data all the while, so the
/// client does not hang up on it.
#[test]
fn a_long_upload_to_a_slow_silent_reader_is_not_hung_up() {
    const SIZE: usize = 12 << 20;
    let _wd = util::watchdog("long_upload", 120);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // A small receive buffer, so what the peer has taken in is close to
    // what it has read (loopback's default holds megabytes it would
    // still have to read after our last byte left).
    small_receive_buffer(&listener);
    // Reads 64 KiB every unit/50, 20 ms (about 3 MB/s: 4 units or more
    // for the message), answers it with "got it", then reads to the close.
    let peer = thread::spawn(move || -> Result<Vec<u8>, String> {
        let (mut stream, _) = listener.accept().map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(bound())).unwrap();
        raw_ws::accept(&mut stream).map_err(|e| format!("handshake: {e}"))?;
        let mut reader = Slow(&mut stream);
        let mut opcodes = Vec::new();
        loop {
            let (opcode, len) = skip_frame(&mut reader).map_err(|e| format!("read: {e}"))?;
            opcodes.push(opcode);
            if opcode == 2 {
                if len != SIZE as u64 {
                    return Err(format!("a message of {len} bytes"));
                }
                break;
            }
        }
        stream
            .write_all(&raw_ws::frame(true, 0, 1, None, b"got it"))
            .map_err(|e| e.to_string())?;
        let _ = raw_ws::read_to_close(&mut stream);
        Ok(opcodes)
    });
    struct Slow<'a>(&'a mut TcpStream);
    impl std::io::Read for Slow<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            thread::sleep(unit() / 50); // (slower under valgrind, as the periods)
            let n = buf.len().min(64 * 1024);
            self.0.read(&mut buf[..n])
        }
    }

    let start = Instant::now();
    let client = run_client(port, 20 * bound(), |conn| {
        conn.send(lws::Message::Binary(vec![5; SIZE])).unwrap();
    });
    let took = start.elapsed();
    assert_eq!(
        client.events,
        vec!["connected", "got it", "closed 1000"],
        "after {took:?}"
    );
    let opcodes = peer.join().unwrap().unwrap();
    // It took longer than the client's hangup period, or this shows nothing.
    assert!(took > hangup_after(), "the upload took only {took:?}");
    // Any keepalive ping went out before or after the message, not inside
    // it.
    assert_eq!(opcodes.last(), Some(&2), "{opcodes:?}");
}

/// SO_RCVBUF of 64 KiB on a listener (its accepted sockets inherit it).
fn small_receive_buffer(listener: &TcpListener) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 64 * 1024;
    // SAFETY: a valid socket and a c_int option value of the size given.
    let r = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_RCVBUF");
}

/// The same long upload to a peer that stops reading part-way (its TCP
/// still answers, with a closed window): hung up a hangup period after
/// it stopped taking data.
#[test]
fn a_peer_that_stops_reading_mid_upload_is_hung_up() {
    const SIZE: usize = 12 << 20;
    let _wd = util::watchdog("stalled_upload", 120);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    small_receive_buffer(&listener);
    // Reads 1 MiB of the message, then nothing until the client hangs up.
    let (stopped_tx, stopped) = mpsc::channel();
    let peer = thread::spawn(move || -> Result<bool, String> {
        let (mut stream, _) = listener.accept().map_err(|e| e.to_string())?;
        raw_ws::accept(&mut stream).map_err(|e| format!("handshake: {e}"))?;
        let mut buf = vec![0u8; 1 << 20];
        stream.read_exact(&mut buf).map_err(|e| e.to_string())?;
        let _ = stopped_tx.send(Instant::now());
        // The client's hang-up shows as an EOF or reset once we read again.
        thread::sleep(3 * bound());
        Ok(raw_ws::read_to_close(&mut stream).is_ok())
    });

    let client = run_client(port, 3 * bound(), |conn| {
        conn.send(lws::Message::Binary(vec![5; SIZE])).unwrap();
    });
    assert_eq!(client.events, vec!["connected", "closed 1006"]);
    let stopped = stopped.recv().unwrap();
    let after = client.closed_at.unwrap().saturating_duration_since(stopped);
    assert!(after <= bound(), "hung up {after:?} after the peer stopped");
    assert!(peer.join().unwrap().unwrap(), "the socket was not closed");
}

/// Reads one frame and drops its payload as it comes, without unmasking
/// it (which, for megabytes in a debug build under valgrind, takes longer
/// than a keepalive period): its opcode and payload length.
fn skip_frame(r: &mut impl Read) -> std::io::Result<(u8, u64)> {
    let mut head = [0u8; 2];
    r.read_exact(&mut head)?;
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b)?;
            u16::from_be_bytes(b) as u64
        }
        127 => {
            let mut b = [0u8; 8];
            r.read_exact(&mut b)?;
            u64::from_be_bytes(b)
        }
        n => n as u64,
    };
    if head[1] & 0x80 != 0 {
        r.read_exact(&mut [0u8; 4])?;
    }
    let (mut left, mut buf) = (len, vec![0u8; 64 * 1024]);
    while left > 0 {
        let want = buf.len().min(left as usize);
        match r.read(&mut buf[..want])? {
            0 => return Err(ErrorKind::UnexpectedEof.into()),
            n => left -= n as u64,
        }
    }
    Ok((head[0] & 0x0f, len))
}

/// What a client with [`keepalive`] saw of its connection.
struct ClientRun {
    /// "connected", each message received (as text), then "closed CODE"
    /// or "error: ...".
    events: Vec<String>,
    /// When on_close ran.
    closed_at: Option<Instant>,
}

/// Connects a client with [`keepalive`] to `port` and runs its loop until
/// the connection ends (or `limit`): `on_connect` runs once connected, and
/// a message received is answered with a normal close.
fn run_client(
    port: u16,
    limit: Duration,
    on_connect: impl Fn(&lws::Connection) + 'static,
) -> ClientRun {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    let cx = Context::new(ContextOptions::default()).unwrap();
    let mut options = util::connect_options(util::url(port));
    options.keepalive = keepalive();
    let events: Rc<RefCell<Vec<String>>> = Rc::default();
    let closed_at: Rc<Cell<Option<Instant>>> = Rc::default();
    let (e1, e2, e3, e4, c) = (
        events.clone(),
        events.clone(),
        events.clone(),
        events.clone(),
        closed_at.clone(),
    );
    let (stop1, stop2) = (cx.handle(), cx.handle());
    cx.connect(
        options,
        Callbacks::new()
            .on_connect(move |conn, _| {
                e1.borrow_mut().push("connected".into());
                on_connect(conn);
            })
            .on_message(move |conn, msg| {
                e2.borrow_mut()
                    .push(String::from_utf8_lossy(msg.as_bytes()).into_owned());
                conn.close(CloseCode::NORMAL, "");
            })
            .on_close(move |_, code, _| {
                c.set(Some(Instant::now()));
                e3.borrow_mut().push(format!("closed {}", code.0));
                stop1.stop().unwrap();
            })
            .on_error(move |_, e| {
                e4.borrow_mut().push(format!("error: {e}"));
                stop2.stop().unwrap();
            }),
    )
    .unwrap();
    let stop = cx.handle();
    cx.set_timeout(limit, move |_| stop.stop().unwrap());
    cx.run().unwrap();
    drop(cx);
    let events = events.borrow().clone();
    ClientRun {
        events,
        closed_at: closed_at.get(),
    }
}
