//! 10,000 messages sent back to back (without waiting for echoes) all come
//! back complete and in order.

mod util;

use lws::{Callbacks, CloseCode, ConnectOptions, Context, ContextOptions};
use std::cell::RefCell;
use std::rc::Rc;

const COUNT: usize = 10_000;

#[test]
fn ten_thousand_pipelined_messages_arrive_in_order() {
    let _wd = util::watchdog("pipelined", 60);
    let server = util::Server::echo();
    let cx = Context::new(ContextOptions::default()).unwrap();
    let received: Rc<RefCell<Vec<String>>> = Rc::default();
    let rx = received.clone();
    let error: Rc<RefCell<Option<String>>> = Rc::default();
    let err = error.clone();
    let (stop, stop_on_error) = (cx.handle(), cx.handle());
    let callbacks = Callbacks::new()
        .on_connect(|conn, _| {
            for i in 0..COUNT {
                conn.send_text(&format!("message {i}")).unwrap();
            }
        })
        .on_message(move |conn, msg| {
            let mut got = rx.borrow_mut();
            got.push(String::from_utf8(msg.into_bytes()).unwrap());
            if got.len() == COUNT {
                conn.close(CloseCode::NORMAL, "");
            }
        })
        .on_error(move |_, e| {
            *err.borrow_mut() = Some(e.to_string());
            stop_on_error.stop().unwrap();
        })
        .on_close(move |_, _, _| stop.stop().unwrap());
    cx.connect(ConnectOptions::new(server.url()), callbacks)
        .unwrap();
    cx.run().unwrap();

    assert_eq!(*error.borrow(), None, "client error");
    let got = received.borrow();
    assert_eq!(got.len(), COUNT);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m, &format!("message {i}"));
    }
}
