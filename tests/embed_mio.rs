//! A context embedded in a user-owned mio Poll: lws (server and client)
//! and the user's own TCP socket are served by the same poll loop.

mod util;

use lws::{Callbacks, CloseCode, ConnectOptions, Context, ContextOptions, ListenOptions};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::Duration;

const OURS: Token = Token(7);

#[test]
fn lws_and_a_plain_socket_share_one_poll() {
    let _wd = util::watchdog("embed_mio", 30);
    let mut poll = Poll::new().unwrap();
    let cx = Context::embedded(poll.registry(), ContextOptions::default()).unwrap();
    assert!(
        cx.run().is_err(),
        "an embedded context is driven by its Poll's owner"
    );

    let echo = Callbacks::new().on_message(|conn, msg| conn.send(msg).unwrap());
    let ws_port = cx.listen(ListenOptions::new(0), echo).unwrap().port();
    let got: Rc<RefCell<Option<String>>> = Rc::default();
    let g = got.clone();
    let client = Callbacks::new()
        .on_connect(|conn, _| conn.send_text("through one poll").unwrap())
        .on_message(move |conn, msg| {
            *g.borrow_mut() = Some(String::from_utf8(msg.into_bytes()).unwrap());
            conn.close(CloseCode::NORMAL, "");
        });
    cx.connect(
        ConnectOptions::new(format!("ws://127.0.0.1:{ws_port}/")),
        client,
    )
    .unwrap();

    // The user's own listener on the same Poll; a std client thread talks to it.
    let mut listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let tcp_addr = listener.local_addr().unwrap();
    poll.registry()
        .register(&mut listener, OURS, Interest::READABLE)
        .unwrap();
    let tcp_client = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(tcp_addr).unwrap();
        s.write_all(b"plain tcp").unwrap();
        let mut buf = [0u8; 9];
        s.read_exact(&mut buf).unwrap();
        buf
    });

    let mut events = Events::with_capacity(64);
    let mut tcp_served = false;
    while !(tcp_served && got.borrow().is_some()) {
        let timeout = cx.poll_timeout().unwrap_or(Duration::from_millis(100));
        poll.poll(&mut events, Some(timeout.min(Duration::from_millis(100))))
            .unwrap();
        cx.handle_events(&events);
        for event in events.iter() {
            if event.token() == OURS {
                assert!(!cx.owns(OURS));
                let (stream, _) = listener.accept().unwrap();
                let mut std_stream: std::net::TcpStream = stream.into();
                std_stream.set_nonblocking(false).unwrap();
                let mut buf = [0u8; 9];
                std_stream.read_exact(&mut buf).unwrap();
                std_stream.write_all(&buf).unwrap();
                tcp_served = true;
            }
        }
    }
    assert_eq!(got.borrow().as_deref(), Some("through one poll"));
    assert_eq!(&tcp_client.join().unwrap(), b"plain tcp");
}
