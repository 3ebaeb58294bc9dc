//! Listen and connect options take effect: subprotocol, request and
//! response headers, peer address, max_message_size (1009), connect timeout.

mod util;

use lws::{Callbacks, ConnectOptions, Context, ContextOptions, ListenOptions};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

#[test]
fn handshake_options_reach_the_other_side() {
    let _wd = util::watchdog("handshake_options", 30);
    let cx = Context::new(ContextOptions::default()).unwrap();
    let server_saw: Rc<RefCell<Vec<String>>> = Rc::default();
    let s = server_saw.clone();
    let mut listen = ListenOptions::new(0);
    listen.protocols = vec!["chat".into()];
    listen.headers = vec![("X-Server-Tag".into(), "lws-rs".into())];
    listen.max_message_size = 1000;
    let server = Callbacks::new().on_connect(move |conn, headers| {
        s.borrow_mut()
            .push(format!("path={}", headers.path().unwrap_or("")));
        s.borrow_mut()
            .push(format!("x-token={}", headers.get("X-Token").unwrap_or("")));
        s.borrow_mut()
            .push(format!("protocol={:?}", conn.protocol()));
        s.borrow_mut().push(format!("peer={:?}", conn.peer_addr()));
    });
    let port = cx.listen(listen, server).unwrap().port();

    let client_saw: Rc<RefCell<Vec<String>>> = Rc::default();
    let (c1, c2) = (client_saw.clone(), client_saw.clone());
    let stop = cx.handle();
    let mut connect = ConnectOptions::new(format!("ws://127.0.0.1:{port}/room?id=7"));
    connect.protocols = vec!["chat".into()];
    connect.headers = vec![("X-Token".into(), "secret".into())];
    let client = Callbacks::new()
        .on_connect(move |conn, headers| {
            c1.borrow_mut().push(format!(
                "x-server-tag={}",
                headers.get("x-server-tag").unwrap_or("")
            ));
            c1.borrow_mut()
                .push(format!("protocol={:?}", conn.protocol()));
            // Over the server's max_message_size: it must close with 1009.
            conn.send_binary(&[0u8; 2000]).unwrap();
        })
        .on_close(move |_, code, _| {
            c2.borrow_mut().push(format!("closed {}", code.0));
            stop.stop().unwrap();
        });
    cx.connect(connect, client).unwrap();
    cx.run().unwrap();

    assert_eq!(
        *server_saw.borrow(),
        vec![
            "path=/room?id=7".to_string(),
            "x-token=secret".to_string(),
            "protocol=Some(\"chat\")".to_string(),
            "peer=Some(\"127.0.0.1\")".to_string(),
        ]
    );
    assert_eq!(
        *client_saw.borrow(),
        vec![
            "x-server-tag=lws-rs".to_string(),
            "protocol=Some(\"chat\")".to_string(),
            "closed 1009".to_string(),
        ]
    );
}

#[test]
fn connect_timeout_reports_an_error() {
    let _wd = util::watchdog("connect_timeout", 30);
    // A listener that never accepts: the TCP connect completes (backlog)
    // but no handshake answer ever comes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let cx = Context::new(ContextOptions::default()).unwrap();
    let errors: Rc<RefCell<Vec<String>>> = Rc::default();
    let e = errors.clone();
    let stop = cx.handle();
    let mut connect = ConnectOptions::new(format!("ws://127.0.0.1:{port}/"));
    connect.connect_timeout = Some(Duration::from_millis(300));
    let client = Callbacks::new().on_error(move |_, err| {
        e.borrow_mut().push(err.to_string());
        stop.stop().unwrap();
    });
    let conn = cx.connect(connect, client).unwrap();
    assert!(conn.is_connecting());
    cx.run().unwrap();
    assert_eq!(*errors.borrow(), vec!["connect timeout".to_string()]);
    assert!(!conn.is_connected());
    drop(silent);
}

#[test]
fn bad_urls_and_reserved_names_are_refused() {
    let cx = Context::new(ContextOptions::default()).unwrap();
    for url in ["http://127.0.0.1/", "not a url", "ws://"] {
        let r = cx.connect(ConnectOptions::new(url), Callbacks::new());
        assert!(matches!(r, Err(lws::Error::Url(_))), "{url}: {r:?}");
    }
    let mut listen = ListenOptions::new(0);
    listen.name = "default".into();
    assert!(matches!(
        cx.listen(listen, Callbacks::new()),
        Err(lws::Error::InvalidOption(_))
    ));
}
