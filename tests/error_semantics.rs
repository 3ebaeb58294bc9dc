//! EV::Websockets' ERRORS AND EXCEPTIONS, mirrored: sends fail with
//! `NotConnected` while connecting and `ConnectionClosed` once closing,
//! closed or destroyed; `close`, `pause_recv` and `resume_recv` are silent
//! no-ops on closed or destroyed connections (and `close` does not cancel a
//! connect); `set_data` on a gone connection fails; panics in callbacks are
//! caught without breaking the connection; `state()` moves Connecting →
//! Connected → Closing → Closed → Destroyed.

mod util;

use lws::{
    Callbacks, CloseCode, ConnectOptions, Connection, Context, ContextOptions, Error,
    ListenOptions, Message, State,
};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Once;
use util::{stop_after, url};

/// Panic messages of the deliberate panics start with this.
const DELIBERATE: &str = "deliberate test panic";

/// Keeps the deliberate panics out of the output; any other panic (a
/// failing assertion) is still reported by the default hook.
fn quiet_deliberate_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let msg = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("");
            if !msg.starts_with(DELIBERATE) {
                default(info);
            }
        }));
    });
}

/// A send's outcome, comparable.
fn outcome(r: lws::Result<()>) -> &'static str {
    match r {
        Ok(()) => "ok",
        Err(Error::NotConnected) => "not-connected",
        Err(Error::ConnectionClosed) => "closed",
        Err(_) => "other error",
    }
}

/// The outcome of every sending method, in the order send, send_text,
/// send_binary, ping, pong, send_fragment.
fn try_all_sends(conn: &Connection) -> Vec<&'static str> {
    vec![
        outcome(conn.send(Message::Text("m".into()))),
        outcome(conn.send_text("t")),
        outcome(conn.send_binary(b"b")),
        outcome(conn.ping(b"p")),
        outcome(conn.pong(b"q")),
        outcome(conn.send_fragment(b"f", false, false)),
    ]
}

fn all(what: &'static str) -> Vec<&'static str> {
    vec![what; 6]
}

/// (state, is_connected, is_connecting), for comparing transitions.
fn snapshot(conn: &Connection) -> (State, bool, bool) {
    (conn.state(), conn.is_connected(), conn.is_connecting())
}

/// An echo listener on `cx`; returns its port.
fn echo_listener(cx: &Context) -> u16 {
    cx.listen(
        ListenOptions::new(0),
        Callbacks::new().on_message(|conn, msg| {
            let _ = conn.send(msg);
        }),
    )
    .unwrap()
    .port()
}

/// Runs a new client on `cx` until it closed: it sends `text` and closes
/// when a message comes back. Whether that message was `text`.
fn echoes(cx: &Context, port: u16, text: &'static str) -> bool {
    let stop = cx.handle();
    let echoed = Rc::new(Cell::new(false));
    let e = echoed.clone();
    cx.connect(
        ConnectOptions::new(url(port)),
        Callbacks::new()
            .on_connect(move |conn, _| conn.send_text(text).unwrap())
            .on_message(move |conn, msg| {
                e.set(msg.as_bytes() == text.as_bytes());
                conn.close(CloseCode::NORMAL, "");
            })
            .on_close(move |_, _, _| {
                let _ = stop.stop();
            }),
    )
    .unwrap();
    cx.run().unwrap();
    echoed.get()
}

/// What [`run_pair`] saw: the client's texts and "closed CODE", and the
/// server's close codes.
struct PairLog {
    client: Vec<String>,
    server_closes: Vec<u16>,
}

/// Runs a listener with `server` and a client with `client` on `cx` until
/// both ends closed. Added to `server`: an on_close that records its code;
/// to `client`: an on_message that records the text and closes, and an
/// on_close that records "closed CODE". Returns them and the client.
fn run_pair(cx: &Context, server: Callbacks, client: Callbacks) -> (PairLog, Connection) {
    let done = stop_after(cx, 2);
    let done2 = done.clone();
    let server_closes: Rc<RefCell<Vec<u16>>> = Rc::default();
    let sc = server_closes.clone();
    let port = cx
        .listen(
            ListenOptions::new(0),
            server.on_close(move |_, code, _| {
                sc.borrow_mut().push(code.0);
                done();
            }),
        )
        .unwrap()
        .port();
    let got: Rc<RefCell<Vec<String>>> = Rc::default();
    let (g1, g2) = (got.clone(), got.clone());
    let conn = cx
        .connect(
            ConnectOptions::new(url(port)),
            client
                .on_message(move |conn, msg| {
                    g1.borrow_mut()
                        .push(String::from_utf8(msg.into_bytes()).unwrap());
                    conn.close(CloseCode::NORMAL, "");
                })
                .on_close(move |_, code, _| {
                    g2.borrow_mut().push(format!("closed {}", code.0));
                    done2();
                }),
        )
        .unwrap();
    cx.run().unwrap();
    let log = PairLog {
        client: got.borrow().clone(),
        server_closes: server_closes.borrow().clone(),
    };
    (log, conn)
}

#[test]
fn sends_while_connecting_are_not_connected() {
    let _wd = util::watchdog("sends_while_connecting", 10);
    let cx = Context::new(ContextOptions::default()).unwrap();
    let server_saw: Rc<RefCell<Vec<&'static str>>> = Rc::default();
    let s = server_saw.clone();
    let port = cx
        .listen(
            ListenOptions::new(0),
            // The server side is connecting during on_handshake.
            Callbacks::new().on_handshake(move |conn, _| {
                *s.borrow_mut() = try_all_sends(conn);
                lws::Handshake::accept()
            }),
        )
        .unwrap()
        .port();
    let stop = cx.handle();
    let client_after: Rc<RefCell<Vec<&'static str>>> = Rc::default();
    let c = client_after.clone();
    let conn = cx
        .connect(
            ConnectOptions::new(url(port)),
            Callbacks::new()
                .on_connect(move |conn, _| {
                    // Open now: the same calls succeed (the fragment ends).
                    let mut r = try_all_sends(conn);
                    r.push(outcome(conn.send_fragment(b"end", false, true)));
                    *c.borrow_mut() = r;
                    conn.close(CloseCode::NORMAL, "");
                })
                .on_close(move |_, _, _| {
                    let _ = stop.stop();
                }),
        )
        .unwrap();
    assert_eq!(conn.state(), State::Connecting);
    assert_eq!(try_all_sends(&conn), all("not-connected"));
    cx.run().unwrap();
    assert_eq!(*server_saw.borrow(), all("not-connected"));
    assert_eq!(*client_after.borrow(), vec!["ok"; 7]);
}

#[test]
fn sends_after_close_and_after_on_close_are_connection_closed() {
    let _wd = util::watchdog("sends_after_close", 10);
    let cx = Context::new(ContextOptions::default()).unwrap();
    let log: Rc<RefCell<Vec<String>>> = Rc::default();
    let done = stop_after(&cx, 2);
    let (l0, done0) = (log.clone(), done.clone());
    let port = cx
        .listen(
            ListenOptions::new(0),
            Callbacks::new().on_close(move |conn, code, reason| {
                l0.borrow_mut().push(format!(
                    "server on_close {} {reason} {:?}",
                    code.0,
                    try_all_sends(conn)
                ));
                done0();
            }),
        )
        .unwrap()
        .port();
    let (l1, l2) = (log.clone(), log.clone());
    let conn = cx
        .connect(
            ConnectOptions::new(url(port)),
            Callbacks::new()
                .on_connect(move |conn, _| {
                    conn.close(CloseCode(4001), "first");
                    // Already closing: a second close changes nothing.
                    conn.close(CloseCode(4999), "second");
                    l1.borrow_mut().push(format!(
                        "after close() {:?} {:?}",
                        conn.state(),
                        try_all_sends(conn)
                    ));
                })
                .on_close(move |conn, code, reason| {
                    l2.borrow_mut().push(format!(
                        "client on_close {} {reason} {:?} {:?}",
                        code.0,
                        conn.state(),
                        try_all_sends(conn)
                    ));
                    done();
                }),
        )
        .unwrap();
    cx.run().unwrap();
    let closed = format!("{:?}", all("closed"));
    let mut log = log.borrow().clone();
    // The two on_close may come in either order.
    log[1..].sort();
    assert_eq!(
        log,
        vec![
            format!("after close() Closing {closed}"),
            format!("client on_close 4001 first Closed {closed}"),
            format!("server on_close 4001 first {closed}"),
        ]
    );
    assert_eq!(conn.state(), State::Destroyed);
    assert_eq!(try_all_sends(&conn), all("closed"));
}

#[test]
fn a_dropped_context_leaves_destroyed_connections() {
    let _wd = util::watchdog("dropped_context", 10);
    let cx = Context::new(ContextOptions::default()).unwrap();
    let port = echo_listener(&cx);
    let stop = cx.handle();
    let conn = cx
        .connect(
            ConnectOptions::new(url(port)),
            Callbacks::new().on_connect(move |conn, _| {
                conn.set_data(7u32).unwrap();
                let _ = stop.stop(); // leave it open
            }),
        )
        .unwrap();
    cx.run().unwrap();
    assert_eq!(conn.state(), State::Connected);
    assert_eq!(conn.peer_addr().as_deref(), Some("127.0.0.1"));
    let handle = conn.handle();
    drop(cx);

    assert_eq!(snapshot(&conn), (State::Destroyed, false, false));
    assert_eq!(try_all_sends(&conn), all("closed"));
    // Control calls are silent no-ops.
    conn.close(CloseCode::NORMAL, "");
    conn.pause_recv();
    conn.resume_recv();
    assert_eq!(conn.state(), State::Destroyed);
    assert!(matches!(conn.set_data(1u8), Err(Error::ConnectionClosed)));
    assert!(conn.data::<u32>().is_none());
    assert_eq!(conn.with_data(|v: &mut u32| *v), None);
    assert_eq!(conn.peer_addr(), None);
    assert_eq!(conn.send_queue_size(), 0);
    // Other threads' handle sees the context is gone.
    assert!(matches!(
        handle.send(conn.id(), "x"),
        Err(Error::ContextGone)
    ));
}

#[test]
fn close_while_connecting_does_not_cancel_the_connect() {
    let _wd = util::watchdog("close_while_connecting", 10);
    let cx = Context::new(ContextOptions::default()).unwrap();
    let log: Rc<RefCell<Vec<String>>> = Rc::default();
    let (l0, l1, l2, l3) = (log.clone(), log.clone(), log.clone(), log.clone());
    let port = cx
        .listen(
            ListenOptions::new(0),
            Callbacks::new()
                .on_handshake(move |conn, _| {
                    // On the server too: close() during the handshake is a
                    // no-op, the handshake goes on.
                    conn.close(CloseCode(4002), "server early");
                    l0.borrow_mut()
                        .push(format!("server handshake {:?}", conn.state()));
                    lws::Handshake::accept()
                })
                .on_connect(move |conn, _| {
                    l1.borrow_mut()
                        .push(format!("server connect {:?}", conn.state()))
                }),
        )
        .unwrap()
        .port();
    let stop = cx.handle();
    let conn = cx
        .connect(
            ConnectOptions::new(url(port)),
            Callbacks::new()
                .on_connect(move |conn, _| {
                    l2.borrow_mut()
                        .push(format!("client connect {:?}", conn.state()));
                    conn.close(CloseCode::NORMAL, "now");
                })
                .on_close(move |_, code, reason| {
                    l3.borrow_mut()
                        .push(format!("client close {} {reason}", code.0));
                    let _ = stop.stop();
                }),
        )
        .unwrap();
    conn.close(CloseCode(4000), "early");
    conn.pause_recv();
    conn.resume_recv();
    assert_eq!(conn.state(), State::Connecting);
    cx.run().unwrap();
    // The early close was dropped: the close code is the later one.
    assert_eq!(
        *log.borrow(),
        vec![
            "server handshake Connecting",
            "server connect Connected",
            "client connect Connected",
            "client close 1000 now",
        ]
    );
}

#[test]
fn control_calls_on_closed_connections_are_silent() {
    let _wd = util::watchdog("control_calls_on_closed", 10);
    let cx = Context::new(ContextOptions::default()).unwrap();
    let port = echo_listener(&cx);
    let stop = cx.handle();
    let events: Rc<RefCell<Vec<String>>> = Rc::default();
    let (e1, e2, e3) = (events.clone(), events.clone(), events.clone());
    let conn = cx
        .connect(
            ConnectOptions::new(url(port)),
            Callbacks::new()
                .on_connect(|conn, _| conn.close(CloseCode(4003), "done"))
                .on_close(move |conn, code, _| {
                    conn.close(CloseCode(4004), "again");
                    conn.pause_recv();
                    conn.resume_recv();
                    e1.borrow_mut()
                        .push(format!("close {} {:?}", code.0, conn.state()));
                    let _ = stop.stop();
                })
                .on_error(move |_, e| e2.borrow_mut().push(format!("error {e}")))
                .on_message(move |_, _| e3.borrow_mut().push("message".into())),
        )
        .unwrap();
    cx.run().unwrap();
    assert_eq!(conn.state(), State::Destroyed);
    conn.close(CloseCode::NORMAL, "");
    conn.pause_recv();
    conn.resume_recv();
    assert_eq!(conn.state(), State::Destroyed);

    // The context is unharmed: another connection echoes.
    assert!(echoes(&cx, port, "still here"));
    // Exactly one on_close, with the first code; nothing else.
    assert_eq!(*events.borrow(), vec!["close 4003 Closed".to_string()]);
}

#[test]
fn set_data_on_a_gone_connection_is_connection_closed() {
    let _wd = util::watchdog("set_data_gone", 10);
    /// Tells when the attached data is dropped.
    struct Tracked(Rc<Cell<bool>>);
    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let cx = Context::new(ContextOptions::default()).unwrap();
    let port = echo_listener(&cx);
    let stop = cx.handle();
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    let log: Rc<RefCell<Vec<String>>> = Rc::default();
    let (l1, l2) = (log.clone(), log.clone());
    let conn = cx
        .connect(
            ConnectOptions::new(url(port)),
            Callbacks::new()
                .on_connect(move |conn, _| {
                    conn.set_data(Tracked(d.clone())).unwrap();
                    let again = conn.set_data(Tracked(Rc::default()));
                    l1.borrow_mut().push(format!(
                        "second set_data already set: {}",
                        matches!(again, Err(Error::DataAlreadySet))
                    ));
                    conn.close(CloseCode::NORMAL, "");
                })
                .on_close(move |conn, _, _| {
                    // Closed but not yet freed: the data is still there.
                    l2.borrow_mut().push(format!(
                        "on_close: data attached {}",
                        conn.data::<Tracked>().is_some()
                    ));
                    let _ = stop.stop();
                }),
        )
        .unwrap();
    cx.run().unwrap();
    assert_eq!(
        *log.borrow(),
        vec![
            "second set_data already set: true".to_string(),
            "on_close: data attached true".to_string()
        ]
    );
    assert_eq!(conn.state(), State::Destroyed);
    assert!(conn.data::<Tracked>().is_none());
    // The attached value was dropped with the connection.
    assert!(dropped.get());
    let never = Rc::new(Cell::new(false));
    let r = conn.set_data(Tracked(never.clone()));
    assert!(matches!(r, Err(Error::ConnectionClosed)), "{r:?}");
    // The refused value is dropped, not kept anywhere.
    assert!(never.get());
    assert!(conn.data::<Tracked>().is_none());
}

#[test]
fn a_panic_in_on_message_is_caught_and_the_connection_goes_on() {
    let _wd = util::watchdog("panic_on_message", 10);
    quiet_deliberate_panics();
    let cx = Context::new(ContextOptions::default()).unwrap();
    let (log, _) = run_pair(
        &cx,
        Callbacks::new().on_message(|conn, msg| {
            if msg.as_bytes() == b"boom" {
                panic!("{DELIBERATE} in on_message");
            }
            conn.send(msg).unwrap();
        }),
        Callbacks::new().on_connect(|conn, _| {
            conn.send_text("boom").unwrap();
            conn.send_text("after").unwrap();
        }),
    );
    assert_eq!(log.client, vec!["after", "closed 1000"]);
    // The server connection ended cleanly, not abnormally.
    assert_eq!(log.server_closes, vec![1000]);
}

#[test]
fn a_panic_in_on_error_does_not_recurse_or_abort() {
    let _wd = util::watchdog("panic_on_error", 10);
    quiet_deliberate_panics();
    // A port nobody listens on: the connect is refused.
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cx = Context::new(ContextOptions::default()).unwrap();
    let stop = cx.handle();
    let errors = Rc::new(Cell::new(0));
    let closes = Rc::new(Cell::new(0));
    let (e, c) = (errors.clone(), closes.clone());
    let failed = cx
        .connect(
            ConnectOptions::new(url(closed_port)),
            Callbacks::new()
                .on_error(move |conn, err| {
                    e.set(e.get() + 1);
                    let _ = stop.stop();
                    // Calls made here still behave.
                    assert_eq!(conn.state(), State::Closed);
                    assert!(matches!(conn.send_text("x"), Err(Error::ConnectionClosed)));
                    panic!("{DELIBERATE} in on_error: {err}");
                })
                .on_close(move |_, _, _| c.set(c.get() + 1)),
        )
        .unwrap();
    cx.run().unwrap();
    assert_eq!(errors.get(), 1);

    // The loop goes on: a good connection on the same context completes,
    // and the failed one's on_error did not run again.
    let port = echo_listener(&cx);
    assert!(echoes(&cx, port, "hi"));
    assert_eq!(errors.get(), 1, "on_error ran once");
    assert_eq!(closes.get(), 0, "no on_close after on_error");
    assert_eq!(failed.state(), State::Destroyed);
}

#[test]
fn a_panic_in_on_connect_leaves_the_connection_usable() {
    let _wd = util::watchdog("panic_on_connect", 10);
    quiet_deliberate_panics();
    let cx = Context::new(ContextOptions::default()).unwrap();
    let (log, conn) = run_pair(
        &cx,
        Callbacks::new()
            .on_connect(|_, _| panic!("{DELIBERATE} in the server's on_connect"))
            .on_message(|conn, msg| conn.send(msg).unwrap()),
        Callbacks::new().on_connect(|conn, _| {
            conn.send_text("sent before the panic").unwrap();
            panic!("{DELIBERATE} in the client's on_connect");
        }),
    );
    assert_eq!(log.client, vec!["sent before the panic", "closed 1000"]);
    assert_eq!(log.server_closes, vec![1000]);
    assert_eq!(conn.state(), State::Destroyed);
}

#[test]
fn state_moves_from_connecting_to_destroyed() {
    let _wd = util::watchdog("state_transitions", 10);
    let cx = Context::new(ContextOptions::default()).unwrap();
    type Log = Rc<RefCell<Vec<(&'static str, (State, bool, bool))>>>;
    let server_log: Log = Rc::default();
    let client_log: Log = Rc::default();
    let server_conn: Rc<RefCell<Option<Connection>>> = Rc::default();
    let done = stop_after(&cx, 2);
    let (s1, s2, s3, sconn, done0) = (
        server_log.clone(),
        server_log.clone(),
        server_log.clone(),
        server_conn.clone(),
        done.clone(),
    );
    let port = cx
        .listen(
            ListenOptions::new(0),
            Callbacks::new()
                .on_handshake(move |conn, _| {
                    s1.borrow_mut().push(("handshake", snapshot(conn)));
                    lws::Handshake::accept()
                })
                .on_connect(move |conn, _| {
                    s2.borrow_mut().push(("connect", snapshot(conn)));
                    *sconn.borrow_mut() = Some(conn.clone());
                })
                .on_close(move |conn, _, _| {
                    s3.borrow_mut().push(("close", snapshot(conn)));
                    done0();
                }),
        )
        .unwrap()
        .port();
    let (l1, l2) = (client_log.clone(), client_log.clone());
    let conn = cx
        .connect(
            ConnectOptions::new(url(port)),
            Callbacks::new()
                .on_connect(move |conn, _| {
                    l1.borrow_mut().push(("connect", snapshot(conn)));
                    conn.close(CloseCode::NORMAL, "");
                    l1.borrow_mut().push(("after close()", snapshot(conn)));
                })
                .on_close(move |conn, _, _| {
                    l2.borrow_mut().push(("close", snapshot(conn)));
                    done();
                }),
        )
        .unwrap();
    client_log
        .borrow_mut()
        .push(("after connect()", snapshot(&conn)));
    assert!(cx.connections().is_empty(), "connecting is not listed");
    cx.run().unwrap();
    client_log.borrow_mut().push(("freed", snapshot(&conn)));
    let server_conn = server_conn.borrow_mut().take().unwrap();
    server_log
        .borrow_mut()
        .push(("freed", snapshot(&server_conn)));

    use State::*;
    assert_eq!(
        *client_log.borrow(),
        vec![
            ("after connect()", (Connecting, false, true)),
            ("connect", (Connected, true, false)),
            ("after close()", (Closing, false, false)),
            ("close", (Closed, false, false)),
            ("freed", (Destroyed, false, false)),
        ]
    );
    assert_eq!(
        *server_log.borrow(),
        vec![
            ("handshake", (Connecting, false, true)),
            ("connect", (Connected, true, false)),
            ("close", (Closed, false, false)),
            ("freed", (Destroyed, false, false)),
        ]
    );
    assert!(cx.connections().is_empty());
}
