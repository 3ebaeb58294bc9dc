//! `Connection::set_max_send_queue` changes one connection's queue limit:
//! a send past it comes back in `QueueFull` with the message untouched,
//! other connections of the listener keep the listener's limit, and 0
//! lifts the limit.

mod util;

use lws::{Callbacks, Context, ContextOptions, Error, ListenOptions, Message};
use std::cell::RefCell;
use std::rc::Rc;

#[test]
fn a_connection_takes_its_own_queue_limit() {
    let _wd = util::watchdog("send_limit", 30);
    let cx = Context::new(ContextOptions::default()).unwrap();
    let stop = util::stop_after(&cx, 2);
    let results: Rc<RefCell<Vec<String>>> = Rc::default();
    let r = results.clone();
    let mut options = ListenOptions::new(0);
    options.max_send_queue = 1_000_000;
    let port = cx
        .listen(
            options,
            Callbacks::new().on_connect(move |conn, _| {
                let mut r = r.borrow_mut();
                // The first server connection is limited to 100 bytes.
                if r.is_empty() {
                    conn.set_max_send_queue(100);
                }
                let first = conn.send_binary(&[1; 80]);
                let second = conn.send_binary(&[2; 80]);
                match second {
                    Err(Error::QueueFull(m)) => {
                        // (recorded, not asserted: a panic here is caught)
                        let intact = *m == Message::Binary(vec![2; 80]);
                        r.push(format!("{}: full {:?} {intact}", conn.id(), first.is_ok()));
                        conn.set_max_send_queue(0);
                        r.push(format!(
                            "{}: unlimited {:?}",
                            conn.id(),
                            conn.send_binary(&[3; 80]).is_ok()
                        ));
                    }
                    other => r.push(format!("{}: second {:?}", conn.id(), other.is_ok())),
                }
            }),
        )
        .unwrap()
        .port();
    for _ in 0..2 {
        let stop = stop.clone();
        cx.connect(
            util::connect_options(util::url(port)),
            Callbacks::new().on_connect(move |_, _| stop()),
        )
        .unwrap();
    }
    cx.run().unwrap();
    let results = results.borrow();
    let full: Vec<_> = results
        .iter()
        .filter(|l| l.contains("full true true"))
        .collect();
    let unlimited: Vec<_> = results
        .iter()
        .filter(|l| l.contains("unlimited true"))
        .collect();
    let second_ok: Vec<_> = results
        .iter()
        .filter(|l| l.contains("second true"))
        .collect();
    assert_eq!(full.len(), 1, "{results:?}");
    assert_eq!(unlimited.len(), 1, "{results:?}");
    assert_eq!(
        second_ok.len(),
        1,
        "the other connection keeps the listener's limit: {results:?}"
    );
}
