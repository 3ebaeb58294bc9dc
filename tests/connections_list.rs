//! `Context::connections()` lists the connections whose handshake
//! completed and that still exist: server and client ends once connected,
//! never a client still connecting, still a connection that is closing
//! (its queue not yet sent), no longer one whose `on_close` ran; and a
//! broadcast over the list reaches every connected peer.

mod util;

use lws::{
    Callbacks, CloseCode, ConnectOptions, Connection, Context, ContextOptions, ListenOptions,
    Message, State,
};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::net::TcpListener;
use std::rc::Rc;

fn ids(conns: &[Connection]) -> BTreeSet<u64> {
    conns.iter().map(Connection::id).collect()
}

/// What the callbacks saw, by connection id.
#[derive(Default)]
struct Seen {
    server: Vec<Connection>,
    clients: Vec<Connection>,
    /// (receiving connection id, message) for every message.
    messages: Vec<(u64, Message)>,
    closed: BTreeSet<u64>,
}

#[test]
fn connections_lists_connected_and_closing_but_not_connecting_or_closed() {
    let _wd = util::watchdog("connections_list", 30);
    // Completes the TCP connect (the kernel's backlog accepts it) but never
    // answers the handshake: a client to it stays Connecting.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();

    let cx = Context::new(ContextOptions::default()).unwrap();
    let stop = cx.handle();
    let seen: Rc<RefCell<Seen>> = Rc::default();
    // The loop stops whenever `until` holds after an event.
    type Until = Rc<RefCell<Box<dyn Fn(&Seen) -> bool>>>;
    let until: Until = Rc::new(RefCell::new(Box::new(|_| false)));
    let check = {
        let (seen, until, stop) = (seen.clone(), until.clone(), stop.clone());
        move || {
            if (until.borrow())(&seen.borrow()) {
                let _ = stop.stop();
            }
        }
    };
    let handler = |server: bool| {
        let (s1, s2, s3) = (seen.clone(), seen.clone(), seen.clone());
        let (k1, k2, k3) = (check.clone(), check.clone(), check.clone());
        Callbacks::new()
            .on_connect(move |conn, _| {
                let mut s = s1.borrow_mut();
                if server {
                    s.server.push(conn.clone());
                } else {
                    s.clients.push(conn.clone());
                }
                drop(s);
                k1();
            })
            .on_message(move |conn, m| {
                s2.borrow_mut().messages.push((conn.id(), m));
                k2();
            })
            .on_close(move |conn, _, _| {
                s3.borrow_mut().closed.insert(conn.id());
                k3();
            })
    };
    let port = cx
        .listen(ListenOptions::new(0), handler(true))
        .unwrap()
        .port();
    let silent_client = cx
        .connect(
            ConnectOptions::new(format!("ws://127.0.0.1:{silent_port}/")),
            Callbacks::new(),
        )
        .unwrap();
    let a = cx
        .connect(
            ConnectOptions::new(format!("ws://127.0.0.1:{port}/")),
            handler(false),
        )
        .unwrap();
    let b = cx
        .connect(
            ConnectOptions::new(format!("ws://127.0.0.1:{port}/")),
            handler(false),
        )
        .unwrap();
    // Before the loop ran nothing has connected.
    assert!(cx.connections().is_empty());

    // 1. Both clients and both server ends connected.
    *until.borrow_mut() = Box::new(|s| s.server.len() == 2 && s.clients.len() == 2);
    cx.run().unwrap();
    let listed = cx.connections();
    let (server_ids, client_ids) = {
        let s = seen.borrow();
        (ids(&s.server), ids(&s.clients))
    };
    assert_eq!(client_ids, ids(&[a.clone(), b.clone()]));
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert_eq!(
        ids(&listed),
        server_ids.union(&client_ids).copied().collect()
    );
    assert_eq!(silent_client.state(), State::Connecting);
    assert!(!ids(&listed).contains(&silent_client.id()));

    // 2. A broadcast over the list: every connection gets exactly one copy
    // (each end sends one to its peer).
    for conn in cx.connections() {
        conn.send_text("broadcast").unwrap();
    }
    *until.borrow_mut() = Box::new(|s| s.messages.len() == 4);
    cx.run().unwrap();
    let receivers: Vec<u64> = seen.borrow().messages.iter().map(|m| m.0).collect();
    assert_eq!(
        receivers.iter().copied().collect::<BTreeSet<_>>(),
        ids(&listed)
    );
    assert_eq!(receivers.len(), 4);
    assert!(seen
        .borrow()
        .messages
        .iter()
        .all(|m| m.1 == Message::Text("broadcast".into())));

    // 3. Closing, with a message still queued: listed, as Closing.
    a.send_text("last words").unwrap();
    a.close(CloseCode::NORMAL, "");
    assert_eq!(a.state(), State::Closing);
    assert!(a.send_queue_size() > 0, "the queue should not be sent yet");
    assert!(ids(&cx.connections()).contains(&a.id()));
    assert_eq!(cx.connections().len(), 4);

    // 4. After on_close (both ends of a's connection): not listed.
    let a_id = a.id();
    *until.borrow_mut() = Box::new(move |s| s.closed.contains(&a_id) && s.closed.len() == 2);
    cx.run().unwrap();
    let closed = seen.borrow().closed.clone();
    let listed = ids(&cx.connections());
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.is_disjoint(&closed));
    assert!(listed.contains(&b.id()));
    assert!(!listed.contains(&silent_client.id()));
    assert_eq!(silent_client.state(), State::Connecting);
    // The queued message went out before the close.
    assert!(seen
        .borrow()
        .messages
        .iter()
        .any(|m| m.1 == Message::Text("last words".into())));
    drop(silent);
}
