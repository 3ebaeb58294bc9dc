//! `on_origin` sees each upgrade request's Origin header (None when there
//! is none) before `on_handshake`: false refuses the upgrade with a
//! complete 403 and the connection never opens; true lets the handshake go
//! on.

mod util;

use lws::{Callbacks, Handshake, ListenOptions};
use std::sync::mpsc;
use std::time::Duration;
use util::http::{raw_exchange, response_head, upgrade_request};
use util::Server;

const GOOD: &str = "https://good.example";

/// A server that accepts only the origin GOOD, or none; reports each
/// on_origin, on_handshake and on_connect in order.
fn server() -> (Server, mpsc::Receiver<String>) {
    let (tx, events) = mpsc::channel();
    let server = Server::start(ListenOptions::new(0), move || {
        let (t1, t2, t3) = (tx.clone(), tx.clone(), tx);
        Callbacks::new()
            .on_origin(move |origin| {
                t1.send(format!("origin {origin:?}")).unwrap();
                origin.is_none_or(|o| o == GOOD)
            })
            .on_handshake(move |_, _| {
                t2.send("handshake".into()).unwrap();
                Handshake::accept()
            })
            .on_connect(move |_, _| t3.send("connect".into()).unwrap())
    });
    (server, events)
}

/// The next `n` events.
fn next(events: &mpsc::Receiver<String>, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            events
                .recv_timeout(Duration::from_secs(5))
                .unwrap_or_else(|_| panic!("event {i} of {n} never came"))
        })
        .collect()
}

#[test]
fn a_refused_origin_gets_403_and_no_connection() {
    let _wd = util::watchdog("origin_refused", 30);
    let (server, events) = server();
    let request = upgrade_request("/", &[], &[("Origin", "https://evil.example")]);
    let response = raw_exchange(server.port, &request);
    assert!(
        response.status_line.starts_with("HTTP/1.1 403"),
        "{response:?}"
    );
    response.assert_complete();
    // A second, accepted request marks the end of the first one's events:
    // the refused one reached neither on_handshake nor on_connect.
    let head = response_head(server.port, &upgrade_request("/", &[], &[]));
    assert!(head.starts_with("HTTP/1.1 101"), "{head:?}");
    assert_eq!(
        next(&events, 4),
        vec![
            r#"origin Some("https://evil.example")"#,
            "origin None",
            "handshake",
            "connect"
        ]
    );
    assert!(events.try_recv().is_err());
}

#[test]
fn an_accepted_origin_upgrades() {
    let _wd = util::watchdog("origin_accepted", 30);
    let (server, events) = server();
    let head = response_head(server.port, &upgrade_request("/", &[], &[("Origin", GOOD)]));
    assert!(head.starts_with("HTTP/1.1 101"), "{head:?}");
    assert_eq!(
        next(&events, 3),
        vec![
            format!("origin Some({GOOD:?})"),
            "handshake".into(),
            "connect".into()
        ]
    );
}

#[test]
fn a_request_without_origin_passes_none() {
    let _wd = util::watchdog("origin_none", 30);
    let (server, events) = server();
    // A tungstenite client sends no Origin header.
    let (mut ws, _) = tungstenite::connect(server.url()).expect("handshake");
    assert_eq!(
        next(&events, 3),
        vec!["origin None", "handshake", "connect"]
    );
    ws.close(None).unwrap();
}
