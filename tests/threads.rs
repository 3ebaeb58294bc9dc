//! `ServerThreads` runs one context per thread on one port (SO_REUSEPORT):
//! connections from 64 clients land on more than one thread, each thread
//! echoes its own connections, and a graceful shutdown of all of them
//! sends every client 1001 and lets `join` return.

mod util;

use lws::{Callbacks, CloseCode, ListenOptions, ServerThreads};
use std::collections::BTreeSet;
use std::time::Duration;
use tungstenite::Message as WsMessage;

const THREADS: usize = 4;
const CLIENTS: usize = 64;

#[test]
fn connections_spread_over_threads_and_all_shut_down() {
    let _wd = util::watchdog("threads", 60);
    let servers = ServerThreads::spawn(THREADS, ListenOptions::new(0), |i| {
        Callbacks::new()
            .on_connect(move |conn, _| {
                conn.send_text(&format!("thread {i}")).expect("greeting");
            })
            .on_message(|conn, msg| {
                conn.send(msg).expect("echo");
            })
    })
    .expect("spawn server threads");
    assert_eq!(servers.handles().len(), THREADS);
    let url = util::url(servers.port());

    let mut clients = Vec::new();
    let mut seen = BTreeSet::new();
    for n in 0..CLIENTS {
        let (mut ws, _) = tungstenite::connect(&url).expect("client connects");
        let greeting = ws.read().expect("greeting");
        let WsMessage::Text(greeting) = greeting else {
            panic!("client {n}: greeting {greeting:?}");
        };
        seen.insert(greeting.to_string());
        let text = format!("hello from {n}");
        ws.send(WsMessage::text(text.clone())).expect("send");
        assert_eq!(ws.read().expect("echo"), WsMessage::text(text));
        clients.push(ws);
    }
    assert!(
        seen.len() > 1,
        "all {CLIENTS} connections landed on one thread: {seen:?}"
    );

    servers.shutdown(CloseCode::AWAY, Duration::from_secs(5));
    for (n, mut ws) in clients.into_iter().enumerate() {
        let code = match ws.read() {
            Ok(WsMessage::Close(frame)) => frame.map(|f| u16::from(f.code)),
            Ok(other) => panic!("client {n}: unexpected {other:?}"),
            Err(e) => panic!("client {n}: no close frame: {e}"),
        };
        assert_eq!(code, Some(1001), "client {n}");
        let _ = ws.close(None);
        let _ = ws.flush();
    }
    servers.join().expect("every server thread ends cleanly");
}
