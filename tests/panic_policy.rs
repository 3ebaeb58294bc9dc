//! A panicking user callback neither aborts the process nor breaks the
//! connection it ran for, nor other connections.

mod util;

use lws::{Callbacks, CloseCode, ConnectOptions, Context, ContextOptions, ListenOptions};
use std::cell::Cell;
use std::rc::Rc;

#[test]
fn panics_in_callbacks_are_contained() {
    let _wd = util::watchdog("panic_policy", 30);
    // Keep the expected panic messages out of the test output.
    std::panic::set_hook(Box::new(|_| {}));
    let cx = Context::new(ContextOptions::default()).unwrap();
    // The server panics on "boom" and echoes everything else.
    let server = Callbacks::new().on_message(|conn, msg| {
        if msg.as_bytes() == b"boom" {
            panic!("user callback panics");
        }
        conn.send(msg).unwrap();
    });
    let port = cx.listen(ListenOptions::new(0), server).unwrap().port();
    let url = format!("ws://127.0.0.1:{port}/");

    // Two clients: each sends "boom", then "after" must still echo.
    let echoes = Rc::new(Cell::new(0));
    let closed = Rc::new(Cell::new(0));
    for _ in 0..2 {
        let (e, c) = (echoes.clone(), closed.clone());
        let stop = cx.handle();
        let client = Callbacks::new()
            .on_connect(|conn, _| {
                conn.send_text("boom").unwrap();
                conn.send_text("after").unwrap();
            })
            .on_message(move |conn, msg| {
                if msg.as_bytes() == b"after" {
                    e.set(e.get() + 1);
                }
                conn.close(CloseCode::NORMAL, "");
                // A client callback panicking after close is contained too.
                panic!("client callback panics");
            })
            .on_close(move |_, _, _| {
                c.set(c.get() + 1);
                if c.get() == 2 {
                    stop.stop().unwrap();
                }
            });
        cx.connect(ConnectOptions::new(url.clone()), client)
            .unwrap();
    }
    cx.run().unwrap();
    let _ = std::panic::take_hook();
    assert_eq!(
        echoes.get(),
        2,
        "both connections kept working after a panic"
    );
    assert_eq!(closed.get(), 2);
}
