//! Many clients at once: 200 of our clients on one context, each pipelining 10 distinct messages to one echo server on another thread, get every echo intact and in order per connection, and every normal close reaches the server's on_close.

mod util;

use lws::{Callbacks, CloseCode, ConnectOptions, Context, ContextOptions, ListenOptions, Message};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;

const CLIENTS: usize = 200;
const MESSAGES: usize = 10;

/// Message `j` of client `i`: distinct per (client, message); text and
/// binary alternate.
fn message(i: usize, j: usize) -> Message {
    let body = format!("client {i} message {j} {}", "x".repeat(i % 7 + j));
    if j & 1 == 0 {
        Message::Text(body)
    } else {
        Message::Binary(body.into_bytes())
    }
}

/// What the client side saw, over all connections.
#[derive(Default)]
struct Tally {
    /// Echoes that matched, in order.
    echoes: usize,
    /// Connections whose on_close ran, with the code seen.
    close_codes: Vec<u16>,
    /// Connections that got on_error.
    errors: usize,
    failures: Vec<String>,
}

#[test]
fn two_hundred_clients_echo_in_order() {
    let _wd = util::watchdog("two_hundred_clients_echo_in_order", 60);

    // The echo server, on its own thread; it stops itself once all CLIENTS
    // connections have closed, and returns the close codes it saw.
    let (tx, rx) = mpsc::channel();
    let server = thread::spawn(move || {
        let cx = Context::new(ContextOptions::default()).expect("server context");
        let handle = cx.handle();
        let closes: Rc<RefCell<Vec<u16>>> = Rc::default();
        let closes2 = closes.clone();
        let stop = handle.clone();
        let port = cx
            .listen(
                ListenOptions::new(0),
                Callbacks::new()
                    .on_message(|conn, msg| {
                        let _ = conn.send(msg);
                    })
                    .on_close(move |_conn, code, _reason| {
                        let mut closes = closes2.borrow_mut();
                        closes.push(code.0);
                        if closes.len() == CLIENTS {
                            let _ = stop.stop();
                        }
                    }),
            )
            .expect("listen")
            .port();
        tx.send((port, handle)).expect("report port");
        cx.run().expect("server run");
        let seen = closes.borrow().clone();
        seen
    });
    let (port, server_handle) = rx.recv().expect("server port");

    let cx = Context::new(ContextOptions::default()).expect("client context");
    let handle = cx.handle();
    let tally: Rc<RefCell<Tally>> = Rc::default();
    let done = {
        let tally = tally.clone();
        move || {
            let t = tally.borrow();
            t.close_codes.len() + t.errors == CLIENTS
        }
    };
    let done = Rc::new(done);
    for i in 0..CLIENTS {
        let (t1, t2, t3) = (tally.clone(), tally.clone(), tally.clone());
        let (d1, d2) = (done.clone(), done.clone());
        let (h1, h2) = (handle.clone(), handle.clone());
        let mut received = 0usize;
        cx.connect(
            ConnectOptions::new(format!("ws://127.0.0.1:{port}/")),
            Callbacks::new()
                .on_connect(move |conn, _headers| {
                    for j in 0..MESSAGES {
                        if let Err(e) = conn.send(message(i, j)) {
                            t1.borrow_mut()
                                .failures
                                .push(format!("client {i}: send {j}: {e}"));
                        }
                    }
                })
                .on_message(move |conn, msg| {
                    let mut t = t2.borrow_mut();
                    let expected = message(i, received);
                    if msg == expected {
                        t.echoes += 1;
                    } else {
                        t.failures.push(format!(
                            "client {i}: echo {received}: expected {expected:?}, got {msg:?}"
                        ));
                    }
                    received += 1;
                    if received == MESSAGES {
                        conn.close(CloseCode::NORMAL, "");
                    }
                })
                .on_close(move |_conn, code, _reason| {
                    t3.borrow_mut().close_codes.push(code.0);
                    if d1() {
                        let _ = h1.stop();
                    }
                })
                .on_error({
                    let tally = tally.clone();
                    move |_conn, e| {
                        {
                            let mut t = tally.borrow_mut();
                            t.errors += 1;
                            t.failures.push(format!("client {i}: on_error: {e}"));
                        }
                        if d2() {
                            let _ = h2.stop();
                        }
                    }
                }),
        )
        .expect("connect");
    }
    cx.run().expect("client run");
    drop(cx);

    let t = tally.borrow();
    if !t.failures.is_empty() {
        // The server would wait for closes that will never come.
        let _ = server_handle.stop();
        let _ = server.join();
        let shown: Vec<_> = t.failures.iter().take(10).collect();
        panic!(
            "{} client failures, first ones: {shown:#?}",
            t.failures.len()
        );
    }
    assert_eq!(t.echoes, CLIENTS * MESSAGES);
    assert_eq!(t.errors, 0);
    assert_eq!(t.close_codes, vec![1000; CLIENTS]);

    let server_closes = server.join().expect("server thread panicked");
    assert_eq!(server_closes, vec![1000; CLIENTS]);
}
