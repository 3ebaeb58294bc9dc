//! Graceful shutdown: every open connection gets everything queued before
//! the shutdown, then a close frame with its code and reason; `done` counts
//! the connections, those that closed in time and those cut at the
//! deadline, and clients still connecting are abandoned (on_error); the
//! listeners stop (new connects are refused); `Handle::shutdown` from
//! another thread also makes `Context::run` return.

mod util;

use lws::{Callbacks, CloseCode, Context, ContextOptions, ListenOptions, ShutdownReport};
use std::cell::{Cell, RefCell};
use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};
use tungstenite::Message as TMessage;
use util::raw_ws;
use util::ServerThread;

/// What a tungstenite client saw: the text messages in order, then the
/// close frame (code, reason), read until the server ended the connection.
type Seen = (Vec<String>, Option<(u16, String)>);

/// Connects a tungstenite client to `port`, and reads until the connection
/// ends (answering the close, as tungstenite does).
fn reading_client(port: u16) -> thread::JoinHandle<Result<Seen, String>> {
    thread::spawn(move || {
        let mut ws = util::blocking_client(port)?;
        let mut texts = Vec::new();
        let mut close = None;
        loop {
            match ws.read() {
                Ok(TMessage::Text(t)) => {
                    if close.is_some() {
                        return Err(format!("{t:?} after the close frame"));
                    }
                    texts.push(t.to_string());
                }
                Ok(TMessage::Close(frame)) => {
                    close = Some(frame.map(|f| (u16::from(f.code), f.reason.to_string())));
                }
                Ok(other) => return Err(format!("unexpected {other:?}")),
                Err(tungstenite::Error::ConnectionClosed) => break,
                Err(e) => return Err(format!("after {} messages: {e}", texts.len())),
            }
        }
        let close = close.ok_or("no close frame")?;
        Ok((texts, close))
    })
}

fn assert_refused(port: u16) {
    match TcpStream::connect(("127.0.0.1", port)) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}"),
        Ok(_) => panic!("a new connection was accepted after the shutdown"),
    }
}

#[test]
fn shutdown_delivers_queued_messages_then_closes_every_connection() {
    const CLIENTS: usize = 50;
    const MESSAGES: usize = 20;
    let timeout = Duration::from_secs(15);
    let _wd = util::watchdog("shutdown_50", 60);
    let (report_tx, reports) = mpsc::channel();
    let (close_tx, closes) = mpsc::channel();
    let (_server, port) = ServerThread::start(move |cx| {
        let connected = Cell::new(0);
        let callbacks = Callbacks::new()
            .on_connect(move |conn, _| {
                connected.set(connected.get() + 1);
                if connected.get() < CLIENTS {
                    return;
                }
                // The last one is in: queue 20 messages on each, then shut
                // down at once.
                let cx = conn.context();
                for c in cx.connections() {
                    for i in 0..MESSAGES {
                        c.send_text(&format!("message {i}")).unwrap();
                    }
                }
                let report_tx = report_tx.clone();
                let started = Instant::now();
                cx.shutdown(CloseCode::AWAY, "bye", timeout, move |_, report| {
                    report_tx.send((report, started.elapsed())).unwrap();
                });
            })
            .on_close(move |_, code, reason| {
                close_tx.send((code.0, reason.to_string())).unwrap();
            });
        cx.listen(ListenOptions::new(0), callbacks).unwrap().port()
    });
    let clients: Vec<_> = (0..CLIENTS).map(|_| reading_client(port)).collect();
    let want: Vec<String> = (0..MESSAGES).map(|i| format!("message {i}")).collect();
    for (i, c) in clients.into_iter().enumerate() {
        let (texts, close) = c
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("client {i}: {e}"));
        assert_eq!(texts, want, "client {i}");
        assert_eq!(close, Some((1001, "bye".to_string())), "client {i}");
    }
    let (report, took) = reports.recv_timeout(timeout * 2).expect("done");
    assert_eq!(
        report,
        ShutdownReport {
            connections: CLIENTS,
            closed: CLIENTS,
            forced: 0,
            abandoned: 0,
        }
    );
    assert!(took < timeout, "done waited for the deadline ({took:?})");
    for _ in 0..CLIENTS {
        let close = closes.recv_timeout(timeout).expect("a server on_close");
        assert_eq!(close, (1001, "bye".to_string()));
    }
    assert_refused(port);
}

#[test]
fn a_peer_that_never_answers_the_close_is_cut_at_the_deadline() {
    // Long enough for the good client's close round trip, also under
    // valgrind (whose slowdown once made it miss a 1 s deadline), and
    // shorter than lws's own 5 s close-ack timeout, which would otherwise
    // end the silent client first.
    let timeout = Duration::from_secs(if util::under_valgrind() { 3 } else { 1 });
    let _wd = util::watchdog("shutdown_forced", 30);
    let (report_tx, reports) = mpsc::channel();
    let (_server, port) = ServerThread::start(move |cx| {
        let connected = Cell::new(0);
        let callbacks = Callbacks::new().on_connect(move |conn, _| {
            connected.set(connected.get() + 1);
            if connected.get() == 2 {
                let report_tx = report_tx.clone();
                let started = Instant::now();
                conn.context()
                    .shutdown(CloseCode::AWAY, "bye", timeout, move |_, report| {
                        report_tx.send((report, started.elapsed())).unwrap();
                    });
            }
        });
        cx.listen(ListenOptions::new(0), callbacks).unwrap().port()
    });
    // One raw client that, after its handshake, neither reads nor answers;
    // one tungstenite client that does both.
    let (mut silent, _) = raw_ws::upgrade(port, &[]);
    let good = reading_client(port);
    let (report, took) = reports.recv_timeout(10 * timeout).expect("done");
    assert_eq!(
        report,
        ShutdownReport {
            connections: 2,
            closed: 1,
            forced: 1,
            abandoned: 0,
        }
    );
    assert!(took >= timeout, "cut before the deadline ({took:?})");
    assert_eq!(
        good.join().unwrap().unwrap(),
        (vec![], Some((1001, "bye".into())))
    );
    // The silent one got the close frame, then lost the connection.
    let frame = raw_ws::read_frame(&mut silent).expect("the close frame");
    assert_eq!(frame.close_code(), Some((1001, "bye".into())), "{frame:?}");
    let rest = raw_ws::read_to_close(&mut silent)
        .unwrap_or_else(|(e, got)| panic!("still open: {e}, got {got:?}"));
    assert!(rest.is_empty(), "after the close frame: {rest:?}");
    assert_refused(port);
}

#[test]
fn handle_shutdown_from_another_thread_ends_run() {
    let _wd = util::watchdog("handle_shutdown", 30);
    let cx = Context::new(ContextOptions::default()).unwrap();
    let (connected_tx, connected) = mpsc::channel::<()>();
    let server_closed: Rc<RefCell<Vec<u16>>> = Rc::default();
    let sc = server_closed.clone();
    let port = cx
        .listen(
            ListenOptions::new(0),
            Callbacks::new()
                .on_connect(move |_, _| connected_tx.send(()).unwrap())
                .on_close(move |_, code, _| sc.borrow_mut().push(code.0)),
        )
        .unwrap()
        .port();
    let handle = cx.handle();
    let controller = thread::spawn(move || {
        connected
            .recv_timeout(Duration::from_secs(10))
            .expect("the client connected");
        handle
            .shutdown(CloseCode::AWAY, Duration::from_secs(5))
            .unwrap();
    });
    let client = reading_client(port);
    cx.run().unwrap();
    controller.join().unwrap();
    assert_eq!(
        *server_closed.borrow(),
        vec![1001],
        "server on_close before run returned"
    );
    assert_eq!(
        client.join().unwrap().unwrap(),
        (vec![], Some((1001, "server shutting down".into())))
    );
    assert_refused(port);
}

#[test]
fn a_client_still_connecting_is_abandoned() {
    let _wd = util::watchdog("shutdown_abandons", 30);
    // A server that accepts the TCP connection and reads the request but
    // never answers it; it reports whether the client then hung up.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requested = Arc::new(AtomicBool::new(false));
    let r = requested.clone();
    let peer = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        raw_ws::read_head(&mut stream).expect("the upgrade request");
        r.store(true, Ordering::SeqCst);
        raw_ws::read_to_close(&mut stream).map_err(|(e, _)| e.to_string())
    });
    let cx = Context::new(ContextOptions::default()).unwrap();
    let done_once = util::stop_after(&cx, 2);
    let log: Rc<RefCell<Vec<String>>> = Rc::default();
    let (l1, l2, l3, l4) = (log.clone(), log.clone(), log.clone(), log.clone());
    let d = done_once.clone();
    cx.connect(
        util::connect_options(util::url(port)),
        Callbacks::new()
            .on_connect(move |_, _| l1.borrow_mut().push("connected".into()))
            .on_close(move |_, _, _| l2.borrow_mut().push("closed".into()))
            .on_error(move |_, _| {
                l3.borrow_mut().push("error".into());
                d();
            }),
    )
    .unwrap();
    // Shut down once the request is out (the client is mid-handshake).
    let started = Rc::new(Cell::new(false));
    let s = started.clone();
    cx.set_interval(Duration::from_millis(5), move |cx| {
        if s.get() || !requested.load(Ordering::SeqCst) {
            return;
        }
        s.set(true);
        let (l4, d) = (l4.clone(), done_once.clone());
        cx.shutdown(
            CloseCode::AWAY,
            "bye",
            Duration::from_secs(5),
            move |_, r| {
                l4.borrow_mut().push(format!("{r:?}"));
                d();
            },
        );
    });
    let stop = cx.handle();
    cx.set_timeout(Duration::from_secs(15), move |_| stop.stop().unwrap());
    cx.run().unwrap();
    let mut log = log.borrow().clone();
    log.sort();
    let report = ShutdownReport {
        connections: 0,
        closed: 0,
        forced: 0,
        abandoned: 1,
    };
    assert_eq!(log, vec![format!("{report:?}"), "error".to_string()]);
    drop(cx);
    assert_eq!(
        peer.join().unwrap(),
        Ok(vec![]),
        "the abandoned socket was closed"
    );
}
