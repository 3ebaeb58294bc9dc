//! `configure_listener` changes `max_message_size` and the static response
//! headers for connections accepted afterwards, while connections opened
//! before keep what they had; it refuses (with `InvalidOption`, changing
//! nothing) what lws fixes per listener (address, name, TLS,
//! subprotocols) and an unknown listener.

mod util;

use util::on_loop;

use lws::{Callbacks, Error, ListenOptions, ServerTls};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;
use tungstenite::handshake::client::Response;
use tungstenite::protocol::frame::coding::CloseCode as TCloseCode;
use tungstenite::{Message as TMessage, WebSocket};
use util::ServerThread;

/// A tungstenite client on 127.0.0.1:`port`, with the 101 response.
fn client(port: u16) -> (WebSocket<TcpStream>, Response) {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    tungstenite::client(util::url(port), stream).expect("handshake")
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().expect("ASCII header"))
}

/// The next data or close message (pings and pongs skipped).
fn next<S: std::io::Read + std::io::Write>(ws: &mut WebSocket<S>) -> TMessage {
    loop {
        match ws.read().expect("read") {
            TMessage::Ping(_) | TMessage::Pong(_) => continue,
            m => return m,
        }
    }
}

/// Sends `size` bytes and expects them back.
fn assert_echoes<S: std::io::Read + std::io::Write>(
    ws: &mut WebSocket<S>,
    seed: usize,
    size: usize,
) {
    let data = util::payload(seed, size);
    ws.send(TMessage::binary(data.clone())).expect("send");
    match next(ws) {
        TMessage::Binary(b) => assert!(b == data, "the {size}-byte echo differs"),
        other => panic!("expected the {size}-byte echo, got {other:?}"),
    }
}

fn echo_options() -> ListenOptions {
    let mut options = ListenOptions::new(0);
    options.max_message_size = 100;
    options.headers = vec![("X-Generation".into(), "1".into())];
    options
}

#[test]
fn configure_listener_applies_to_later_connections_only() {
    let _wd = util::watchdog("configure_later_only", 30);
    let (server, listener) = ServerThread::start(|cx| {
        cx.listen(
            echo_options(),
            Callbacks::new().on_message(|conn, msg| conn.send(msg).expect("echo")),
        )
        .expect("listen")
    });
    let (port, id) = (listener.port(), listener.id());

    let (mut before, response) = client(port);
    assert_eq!(header(&response, "X-Generation"), Some("1"));
    assert_eq!(header(&response, "X-Added"), None);
    assert_echoes(&mut before, 1, 100);

    let configured = on_loop(&server, move |cx| {
        cx.configure_listener(id, |o| {
            o.max_message_size = 1000;
            o.headers = vec![
                ("X-Generation".into(), "2".into()),
                ("X-Added".into(), "yes".into()),
            ];
        })
        .map_err(|e| e.to_string())
    });
    assert_eq!(configured, Ok(()));

    let (mut after, response) = client(port);
    assert_eq!(header(&response, "X-Generation"), Some("2"));
    assert_eq!(header(&response, "X-Added"), Some("yes"));
    assert_echoes(&mut after, 2, 500);
    assert_echoes(&mut after, 3, 1000);

    // The connection made before still has the 100-byte limit.
    assert_echoes(&mut before, 4, 100);
    before
        .send(TMessage::binary(util::payload(5, 500)))
        .expect("send 500 bytes");
    match next(&mut before) {
        TMessage::Close(Some(frame)) => assert_eq!(frame.code, TCloseCode::Size),
        other => panic!("expected close 1009 on the old connection, got {other:?}"),
    }
    // And the new limit holds for the new connection: 1001 is too big.
    after
        .send(TMessage::binary(util::payload(6, 1001)))
        .expect("send 1001 bytes");
    match next(&mut after) {
        TMessage::Close(Some(frame)) => assert_eq!(frame.code, TCloseCode::Size),
        other => panic!("expected close 1009 over the new limit, got {other:?}"),
    }
}

#[test]
fn configure_listener_refuses_what_lws_fixes_and_unknown_listeners() {
    let _wd = util::watchdog("configure_refuses", 30);
    let (server, (listener, removed)) = ServerThread::start(|cx| {
        let echo = || Callbacks::new().on_message(|conn, msg| conn.send(msg).expect("echo"));
        let listener = cx.listen(echo_options(), echo()).expect("listen");
        let removed = cx.listen(ListenOptions::new(0), echo()).expect("listen");
        assert!(cx.remove_listener(removed.id()));
        (listener, removed)
    });
    let (port, id, gone) = (listener.port(), listener.id(), removed.id());
    type Change = fn(&mut ListenOptions);
    let fixed: Vec<(&str, Change)> = vec![
        ("host", |o| o.host = "::1".into()),
        ("port", |o| o.port += 1),
        ("unix_path", |o| {
            o.unix_path = Some(PathBuf::from("/tmp/x.sock"))
        }),
        ("reuse_port", |o| o.reuse_port = true),
        ("name", |o| o.name = "other".into()),
        ("protocols", |o| o.protocols.push("chat".into())),
        ("tls", |o| {
            o.tls = Some(ServerTls::new("cert.pem", "key.pem"))
        }),
    ];
    let results = on_loop(&server, move |cx| {
        let mut results: Vec<(String, Result<(), Error>)> = fixed
            .into_iter()
            .map(|(what, change)| {
                // Each also asks for a limit that would refuse 100 bytes:
                // a refused change must apply nothing.
                let r = cx.configure_listener(id, |o| {
                    o.max_message_size = 10;
                    o.headers = vec![("X-Generation".into(), "refused".into())];
                    change(o);
                });
                (what.to_string(), r)
            })
            .collect();
        results.push((
            "removed listener".into(),
            cx.configure_listener(gone, |o| o.max_message_size = 10),
        ));
        results
    });
    assert_eq!(results.len(), 8);
    for (what, result) in &results {
        assert!(
            matches!(result, Err(Error::InvalidOption(_))),
            "{what}: {result:?}"
        );
    }
    // Nothing of the refused changes took effect.
    let (mut ws, response) = client(port);
    assert_eq!(header(&response, "X-Generation"), Some("1"));
    assert_echoes(&mut ws, 1, 100);
    ws.send(TMessage::binary(util::payload(2, 500)))
        .expect("send 500 bytes");
    match next(&mut ws) {
        TMessage::Close(Some(frame)) => assert_eq!(frame.code, TCloseCode::Size),
        other => panic!("the 100-byte limit changed: got {other:?}"),
    }
}
