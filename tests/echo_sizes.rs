//! Messages of every framing-relevant size (0 to 16 MiB, text and binary)
//! echo byte-exact between our client and our server.

mod util;

use lws::{Callbacks, CloseCode, ConnectOptions, Context, ContextOptions, Message};
use std::cell::RefCell;
use std::rc::Rc;

const SIZES: &[usize] = &[0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20];

/// Message i: binary for even i, text (ASCII) for odd i.
fn message(i: usize) -> Message {
    let size = SIZES[i];
    if i.is_multiple_of(2) {
        Message::Binary(util::payload(i, size))
    } else {
        Message::Text(
            (0..size)
                .map(|j| (b'a' + ((i + j) % 26) as u8) as char)
                .collect(),
        )
    }
}

#[test]
fn every_size_echoes_byte_exact() {
    let _wd = util::watchdog("echo_sizes", 120);
    let server = util::Server::echo();
    let cx = Context::new(ContextOptions::default()).unwrap();
    let received = Rc::new(RefCell::new(Vec::new()));
    let failure = Rc::new(RefCell::new(None));
    let handle = cx.handle();
    let (rx, f1) = (received.clone(), failure.clone());
    let (h1, h2) = (handle.clone(), handle);
    let callbacks = Callbacks::new()
        .on_connect(|conn, _| conn.send(message(0)).unwrap())
        .on_message(move |conn, msg| {
            let mut got = rx.borrow_mut();
            got.push(msg);
            let next = got.len();
            if next < SIZES.len() {
                conn.send(message(next)).unwrap();
            } else {
                conn.close(CloseCode::NORMAL, "done");
            }
        })
        .on_error(move |_, e| {
            *f1.borrow_mut() = Some(e.to_string());
            h1.stop().unwrap();
        })
        .on_close(move |_, _, _| h2.stop().unwrap());
    cx.connect(ConnectOptions::new(server.url()), callbacks)
        .unwrap();
    cx.run().unwrap();

    assert_eq!(*failure.borrow(), None);
    let got = received.borrow();
    assert_eq!(got.len(), SIZES.len(), "echoes received");
    for (i, msg) in got.iter().enumerate() {
        let want = message(i);
        assert_eq!(msg.is_binary(), want.is_binary(), "type of echo {i}");
        assert!(
            msg.as_bytes() == want.as_bytes(),
            "echo {i} ({} bytes) differs",
            SIZES[i]
        );
    }
}
