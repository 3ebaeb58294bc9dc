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

/// Sizes the flood tests cycle through: empty, each length-encoding edge,
/// and frames large enough that the socket fills and lws holds partial
/// writes while more is queued behind them.
const FLOOD_SIZES: [usize; 8] = [0, 1, 125, 126, 65_535, 65_536, 200_000, 3];
const FLOOD: usize = 160;

/// The close the flood tests end with.
const FLOOD_CLOSE: (u16, &str) = (4002, "flood done");

#[test]
fn a_flood_queued_before_close_is_delivered_in_full_before_the_close_frame() {
    let _wd = util::watchdog("flood_server_close", 180);
    let (_server, port) = util::ServerThread::start(|cx| {
        let callbacks = Callbacks::new().on_message(|conn, msg| {
            if msg.as_bytes() == b"flood" {
                for i in 0..FLOOD {
                    let size = FLOOD_SIZES[i % FLOOD_SIZES.len()];
                    conn.send_binary(&util::payload(i, size)).unwrap();
                }
                conn.close(CloseCode(FLOOD_CLOSE.0), FLOOD_CLOSE.1);
            }
        });
        cx.listen(ListenOptions::new(0), callbacks).unwrap().port()
    });
    let (mut ws, _) = util::raw_ws::upgrade(port, &[]);
    // Generous: under valgrind the server takes its time.
    ws.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    std::io::Write::write_all(&mut ws, &util::raw_ws::masked(util::raw_ws::TEXT, b"flood"))
        .unwrap();
    // Read nothing for a while: the server's socket buffer fills, so its
    // queue drains over many WRITEABLE callbacks while close() waits.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut reader = std::io::BufReader::new(ws);
    for i in 0..FLOOD {
        let frame = util::raw_ws::read_frame(&mut reader)
            .unwrap_or_else(|e| panic!("message {i} of {FLOOD}: {e}"));
        assert_eq!(
            (frame.opcode, frame.fin),
            (util::raw_ws::BINARY, true),
            "message {i}"
        );
        let size = FLOOD_SIZES[i % FLOOD_SIZES.len()];
        assert!(
            frame.payload == util::payload(i, size),
            "message {i}: {} bytes, not the {size} sent",
            frame.payload.len()
        );
    }
    let close = util::raw_ws::read_frame(&mut reader).unwrap();
    assert_eq!(
        close.close_code(),
        Some((FLOOD_CLOSE.0, FLOOD_CLOSE.1.to_string())),
        "{close:?}"
    );
}

/// Our client floods a server and closes; `deflate` on both sides or not.
/// Returns what the server received, in order, and the close it saw.
fn client_flood(deflate: bool) -> (Vec<Vec<u8>>, Option<(u16, String)>) {
    let (report_tx, report) = mpsc::channel();
    let (_server, port) = util::ServerThread::start(move |cx| {
        let got: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
        let g = got.clone();
        let callbacks = Callbacks::new()
            .on_message(move |_, msg| g.borrow_mut().push(msg.into_bytes()))
            .on_close(move |_, code, reason| {
                let got = std::mem::take(&mut *got.borrow_mut());
                report_tx
                    .send((got, Some((code.0, reason.to_string()))))
                    .unwrap();
            });
        let mut options = ListenOptions::new(0);
        if deflate {
            options.deflate = Some(Default::default());
        }
        cx.listen(options, callbacks).unwrap().port()
    });
    let cx = Context::new(ContextOptions::default()).unwrap();
    let stop = cx.handle();
    // Recorded, not asserted in the callback: the panic guard would
    // swallow a failed assert there.
    let negotiated = Rc::new(RefCell::new(None));
    let n = negotiated.clone();
    let callbacks = Callbacks::new()
        .on_connect(move |conn, _| {
            *n.borrow_mut() = Some(conn.permessage_deflate());
            for i in 0..FLOOD {
                conn.send_binary(&util::payload(i, FLOOD_SIZES[i % FLOOD_SIZES.len()]))
                    .unwrap();
            }
            conn.close(CloseCode(FLOOD_CLOSE.0), FLOOD_CLOSE.1);
        })
        .on_close(move |_, _, _| stop.stop().unwrap());
    let mut options = util::connect_options(util::url(port));
    if deflate {
        options.deflate = Some(Default::default());
    }
    cx.connect(options, callbacks).unwrap();
    cx.run().unwrap();
    assert_eq!(*negotiated.borrow(), Some(deflate), "deflate negotiated");
    report
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the server saw the close")
}

fn assert_flood_arrived(got: &[Vec<u8>], close: Option<(u16, String)>) {
    assert_eq!(got.len(), FLOOD, "messages before the close");
    for (i, m) in got.iter().enumerate() {
        let size = FLOOD_SIZES[i % FLOOD_SIZES.len()];
        assert!(
            *m == util::payload(i, size),
            "message {i}: {} bytes, not the {size} sent",
            m.len()
        );
    }
    assert_eq!(close, Some((FLOOD_CLOSE.0, FLOOD_CLOSE.1.to_string())));
}

#[test]
fn a_client_flood_queued_before_close_reaches_the_server_in_full() {
    let _wd = util::watchdog("flood_client_close", 180);
    let (got, close) = client_flood(false);
    assert_flood_arrived(&got, close);
}

#[test]
fn a_client_flood_through_permessage_deflate_reaches_the_server_in_full() {
    let _wd = util::watchdog("flood_client_close_deflate", 180);
    let (got, close) = client_flood(true);
    assert_flood_arrived(&got, close);
}

#[test]
fn a_server_flood_through_permessage_deflate_reaches_our_client_in_full() {
    let _wd = util::watchdog("flood_server_close_deflate", 180);
    let (_server, port) = util::ServerThread::start(|cx| {
        let callbacks = Callbacks::new().on_connect(|conn, _| {
            for i in 0..FLOOD {
                conn.send_binary(&util::payload(i, FLOOD_SIZES[i % FLOOD_SIZES.len()]))
                    .unwrap();
            }
            conn.close(CloseCode(FLOOD_CLOSE.0), FLOOD_CLOSE.1);
        });
        let mut options = ListenOptions::new(0);
        options.deflate = Some(Default::default());
        cx.listen(options, callbacks).unwrap().port()
    });
    let cx = Context::new(ContextOptions::default()).unwrap();
    let got: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let close = Rc::new(RefCell::new(None));
    let (g, c) = (got.clone(), close.clone());
    let stop = cx.handle();
    let negotiated = Rc::new(RefCell::new(None));
    let n = negotiated.clone();
    let callbacks = Callbacks::new()
        .on_connect(move |conn, _| *n.borrow_mut() = Some(conn.permessage_deflate()))
        .on_message(move |_, msg| g.borrow_mut().push(msg.into_bytes()))
        .on_close(move |_, code, reason| {
            *c.borrow_mut() = Some((code.0, reason.to_string()));
            stop.stop().unwrap();
        });
    let mut options = util::connect_options(util::url(port));
    options.deflate = Some(Default::default());
    cx.connect(options, callbacks).unwrap();
    cx.run().unwrap();
    assert_eq!(*negotiated.borrow(), Some(true), "deflate negotiated");
    assert_flood_arrived(&got.borrow(), close.borrow_mut().take());
}
