//! Typed per-connection data (EV::Websockets' `stash`): set once, reached
//! from every callback, kept apart per connection, None for another type,
//! refused when set twice, safe to re-enter and to send from, and dropped
//! when the connection is freed or the context is dropped.

mod util;

use lws::{
    Callbacks, CloseCode, ConnectOptions, Connection, Context, ContextOptions, Error, Handshake,
    ListenOptions, Message, State,
};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use util::url;

/// Per-connection data that reports its drop, and what the connection's
/// state was when it was dropped (the connection must already be gone, and
/// the API usable: no RefCell of the context may be borrowed then).
struct Tracked {
    messages: u32,
    conn: Connection,
    dropped: DropFlag,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.dropped.set(Some(self.conn.state()));
    }
}

/// Set to the connection's state when its data is dropped.
type DropFlag = Rc<Cell<Option<State>>>;

/// Attaches a fresh [`Tracked`] to `conn`; its drop flag goes to `drops`.
fn attach_tracked(conn: &Connection, drops: &RefCell<Vec<DropFlag>>) {
    let dropped = Rc::new(Cell::new(None));
    drops.borrow_mut().push(dropped.clone());
    conn.set_data(Tracked {
        messages: 0,
        conn: conn.clone(),
        dropped,
    })
    .unwrap();
}

const CLIENTS: usize = 3;

#[test]
fn data_is_per_connection_typed_reentrant_and_dropped_when_freed() {
    let _wd = util::watchdog("user_data", 30);
    let cx = Context::new(ContextOptions::default()).unwrap();
    // One drop flag per server connection, in connect order.
    let drops: Rc<RefCell<Vec<DropFlag>>> = Rc::default();
    let server_conns: Rc<RefCell<Vec<Connection>>> = Rc::default();
    let log: Rc<RefCell<Vec<String>>> = Rc::default();
    // Stops once every connection closed, at both ends.
    let closed = util::stop_after(&cx, 2 * CLIENTS);
    let (d, sc) = (drops.clone(), server_conns.clone());
    let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
    let c1 = closed.clone();
    let port = cx
        .listen(
            ListenOptions::new(0),
            Callbacks::new()
                .on_connect(move |conn, _| {
                    sc.borrow_mut().push(conn.clone());
                    attach_tracked(conn, &d);
                    // Once only: the data stays the first value.
                    let again = conn.set_data(Tracked {
                        messages: 99,
                        conn: conn.clone(),
                        dropped: Rc::new(Cell::new(None)),
                    });
                    if !matches!(again, Err(Error::DataAlreadySet)) {
                        l1.borrow_mut().push(format!("second set_data: {again:?}"));
                    }
                })
                .on_message(move |conn, m| {
                    let mut l = l2.borrow_mut();
                    if m != Message::Text("report".into()) {
                        let n = conn.with_data(|t: &mut Tracked| {
                            t.messages += 1;
                            t.messages
                        });
                        if n.is_none() {
                            l.push("with_data found nothing".into());
                        }
                        return;
                    }
                    // Another type: nothing, and no panic.
                    if conn.data::<String>().is_some() || conn.with_data(|_: &mut u32| ()).is_some()
                    {
                        l.push("data of the wrong type was found".into());
                    }
                    // Re-entered on the same connection: None, no panic.
                    let inner =
                        conn.with_data(|_: &mut Tracked| conn.with_data(|_: &mut Tracked| 1));
                    if inner != Some(None) {
                        l.push(format!("nested with_data gave {inner:?}"));
                    }
                    // Sending from inside with_data: the count goes back.
                    let sent = conn.with_data(|t: &mut Tracked| {
                        conn.send_text(&format!("count {}", t.messages))
                    });
                    if !matches!(sent, Some(Ok(()))) {
                        l.push(format!("send inside with_data: {sent:?}"));
                    }
                })
                .on_close(move |conn, _, _| {
                    // Still attached until lws frees the connection.
                    if conn.data::<Tracked>().is_none() {
                        l3.borrow_mut().push("data gone at on_close".into());
                    }
                    c1();
                }),
        )
        .unwrap()
        .port();

    // Client i sends i + 1 messages (in connect order), then "report",
    // and expects its own count back.
    let answers: Rc<RefCell<Vec<(usize, String)>>> = Rc::default();
    for i in 0..CLIENTS {
        let (a, c) = (answers.clone(), closed.clone());
        cx.connect(
            ConnectOptions::new(url(port)),
            Callbacks::new()
                .on_connect(move |conn, _| {
                    for j in 0..=i {
                        conn.send_text(&format!("client {i} message {j}")).unwrap();
                    }
                    conn.send_text("report").unwrap();
                })
                .on_message(move |conn, m| {
                    if let Message::Text(t) = m {
                        a.borrow_mut().push((i, t));
                    }
                    conn.close(CloseCode::NORMAL, "");
                })
                .on_close(move |_, _, _| c()),
        )
        .unwrap();
    }
    cx.run().unwrap();

    assert!(log.borrow().is_empty(), "{:?}", log.borrow());
    let mut answers = answers.borrow().clone();
    answers.sort();
    let expected: Vec<(usize, String)> = (0..CLIENTS)
        .map(|i| (i, format!("count {}", i + 1)))
        .collect();
    assert_eq!(answers, expected);
    // The connections are freed (the context lives on): no data, and each
    // value was dropped once its slot was gone.
    assert_eq!(server_conns.borrow().len(), CLIENTS);
    for conn in server_conns.borrow().iter() {
        assert!(conn.data::<Tracked>().is_none());
        assert_eq!(conn.with_data(|t: &mut Tracked| t.messages), None);
        assert!(matches!(conn.set_data(1u8), Err(Error::ConnectionClosed)));
    }
    let dropped: Vec<Option<State>> = drops.borrow().iter().map(|d| d.get()).collect();
    assert_eq!(dropped, vec![Some(State::Destroyed); CLIENTS]);
    drop(cx);
}

#[test]
fn data_set_in_on_handshake_reaches_on_connect() {
    let _wd = util::watchdog("data_from_handshake", 30);
    let cx = Context::new(ContextOptions::default()).unwrap();
    let stop = cx.handle();
    let seen: Rc<RefCell<Option<String>>> = Rc::default();
    let s = seen.clone();
    let port = cx
        .listen(
            ListenOptions::new(0),
            Callbacks::new()
                .on_handshake(|conn, request| {
                    let path = request.path().unwrap_or("").to_string();
                    conn.set_data(path).unwrap();
                    Handshake::accept()
                })
                .on_connect(move |conn, _| {
                    *s.borrow_mut() = conn.with_data(|p: &mut String| p.clone());
                    let _ = stop.stop();
                }),
        )
        .unwrap()
        .port();
    cx.connect(
        ConnectOptions::new(format!("ws://127.0.0.1:{port}/room/7")),
        Callbacks::new(),
    )
    .unwrap();
    cx.run().unwrap();
    assert_eq!(seen.borrow().as_deref(), Some("/room/7"));
}

#[test]
fn dropping_the_context_drops_all_attached_data() {
    let _wd = util::watchdog("data_dropped_with_context", 30);
    let cx = Context::new(ContextOptions::default()).unwrap();
    let stop = cx.handle();
    let drops: Rc<RefCell<Vec<DropFlag>>> = Rc::default();
    let conns: Rc<RefCell<Vec<Connection>>> = Rc::default();
    // Attaches data to a connection; stops once 4 connections have some
    // (2 clients, 2 server ends).
    let attach = {
        let (drops, conns) = (drops.clone(), conns.clone());
        move |conn: &Connection| {
            conns.borrow_mut().push(conn.clone());
            attach_tracked(conn, &drops);
            if conns.borrow().len() == 4 {
                let _ = stop.stop();
            }
        }
    };
    let a = attach.clone();
    let port = cx
        .listen(
            ListenOptions::new(0),
            Callbacks::new().on_connect(move |conn, _| a(conn)),
        )
        .unwrap()
        .port();
    for _ in 0..2 {
        let a = attach.clone();
        cx.connect(
            ConnectOptions::new(url(port)),
            Callbacks::new().on_connect(move |conn, _| a(conn)),
        )
        .unwrap();
    }
    cx.run().unwrap();
    for conn in conns.borrow().iter() {
        assert!(conn.data::<Tracked>().is_some(), "data before the drop");
    }
    assert!(drops.borrow().iter().all(|d| d.get().is_none()));
    drop(cx);
    let dropped: Vec<Option<State>> = drops.borrow().iter().map(|d| d.get()).collect();
    assert_eq!(dropped, vec![Some(State::Destroyed); 4]);
    for conn in conns.borrow().iter() {
        assert!(conn.data::<Tracked>().is_none());
    }
}
