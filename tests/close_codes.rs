//! Close code and reason arrive intact in both directions, and messages
//! queued before close() are delivered before the close frame.

mod util;

use lws::{Callbacks, CloseCode, ConnectOptions, Context, ContextOptions, ListenOptions};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::mpsc;

/// Runs a server whose connection answers "close-me" by queueing three
/// messages and closing with (4000, "server says bye"); reports each
/// on_close it sees (and a send accepted after close(), which must not
/// happen). Returns the port, a stop handle and the close reports.
fn server() -> (u16, lws::Handle, mpsc::Receiver<(u16, String)>) {
    let (tx, rx) = mpsc::channel();
    let (ctx_tx, ctx_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let cx = Context::new(ContextOptions::default()).unwrap();
        let report = tx.clone();
        let callbacks = Callbacks::new()
            .on_message(move |conn, msg| {
                if msg.as_bytes() == b"close-me" {
                    for i in 0..3 {
                        conn.send_text(&format!("before close {i}")).unwrap();
                    }
                    conn.close(CloseCode(4000), "server says bye");
                    // Sends after close() are refused; an accepted one is
                    // reported ahead of the close, failing the test.
                    if conn.send_text("too late").is_ok() {
                        report
                            .send((0, "send after close() was accepted".into()))
                            .unwrap();
                    }
                }
            })
            .on_close(move |_, code, reason| tx.send((code.0, reason.to_string())).unwrap());
        let port = cx.listen(ListenOptions::new(0), callbacks).unwrap().port();
        ctx_tx.send((port, cx.handle())).unwrap();
        cx.run().unwrap();
    });
    let (port, handle) = ctx_rx.recv().unwrap();
    (port, handle, rx)
}

#[test]
fn server_close_reaches_client_after_queued_messages() {
    let _wd = util::watchdog("server_close", 30);
    let (port, server_handle, server_closes) = server();
    let cx = Context::new(ContextOptions::default()).unwrap();
    let log: Rc<RefCell<Vec<String>>> = Rc::default();
    let (l1, l2) = (log.clone(), log.clone());
    let stop = cx.handle();
    let callbacks = Callbacks::new()
        .on_connect(|conn, _| conn.send_text("close-me").unwrap())
        .on_message(move |_, msg| {
            l1.borrow_mut()
                .push(String::from_utf8(msg.into_bytes()).unwrap())
        })
        .on_close(move |_, code, reason| {
            l2.borrow_mut().push(format!("closed {} {reason}", code.0));
            stop.stop().unwrap();
        });
    cx.connect(
        ConnectOptions::new(format!("ws://127.0.0.1:{port}/")),
        callbacks,
    )
    .unwrap();
    cx.run().unwrap();
    assert_eq!(
        *log.borrow(),
        vec![
            "before close 0",
            "before close 1",
            "before close 2",
            "closed 4000 server says bye"
        ]
    );
    // The server's own on_close reports the code it sent.
    assert_eq!(
        server_closes.recv().unwrap(),
        (4000, "server says bye".to_string())
    );
    server_handle.stop().unwrap();
}

#[test]
fn client_close_reaches_server() {
    let _wd = util::watchdog("client_close", 30);
    let (port, server_handle, server_closes) = server();
    let cx = Context::new(ContextOptions::default()).unwrap();
    let client_saw = Rc::new(RefCell::new(None));
    let saw = client_saw.clone();
    let stop = cx.handle();
    let callbacks = Callbacks::new()
        .on_connect(|conn, _| conn.close(CloseCode(4001), "client says bye"))
        .on_close(move |_, code, reason| {
            *saw.borrow_mut() = Some((code.0, reason.to_string()));
            stop.stop().unwrap();
        });
    let conn = cx
        .connect(
            ConnectOptions::new(format!("ws://127.0.0.1:{port}/")),
            callbacks,
        )
        .unwrap();
    cx.run().unwrap();
    assert_eq!(
        server_closes.recv().unwrap(),
        (4001, "client says bye".to_string())
    );
    // Our side reports the code it sent (the server echoed it back).
    assert_eq!(
        *client_saw.borrow(),
        Some((4001, "client says bye".to_string()))
    );
    // After the connection is gone, sends fail and close is a no-op.
    assert!(conn.send_text("x").is_err());
    conn.close(CloseCode::NORMAL, "");
    assert!(matches!(
        conn.state(),
        lws::State::Closed | lws::State::Destroyed
    ));
    server_handle.stop().unwrap();
}
