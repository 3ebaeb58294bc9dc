//! Broadcast chat: every text message a client sends goes to every
//! connected client, prefixed with the sender's id. Serves its own page at
//! `/` (plain HTTP on the same port) and WebSocket at `/ws`.
//!
//! Run me with: `cargo run --example chat -- [--host 127.0.0.1] [--port 9002]`
//! (port 0 lets the OS pick), then open http://127.0.0.1:9002/ in two tabs.
//! The first line on stdout is `listening on http://HOST:PORT/`.
//! On SIGINT / SIGTERM every client gets close 1001.

mod common;

use lws::{Callbacks, Context, ContextOptions, Handshake, HttpResponse, ListenOptions, Message};
use std::process::ExitCode;

const PAGE: &str = include_str!("chat/index.html");
const USAGE: &str = "[--host ADDR] [--port N]";

fn main() -> ExitCode {
    let mut options = ListenOptions::new(9002);
    options.max_message_size = 64 * 1024;
    options.max_send_queue = 1 << 20; // a client this far behind is closed
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let Some(value) = args.next() else {
            return common::usage("chat", USAGE, &format!("{arg} needs a value"));
        };
        match arg.as_str() {
            "--host" => options.host = value,
            "--port" => match value.parse() {
                Ok(p) => options.port = p,
                Err(_) => return common::usage("chat", USAGE, &format!("bad port {value:?}")),
            },
            _ => return common::usage("chat", USAGE, &format!("unexpected argument {arg:?}")),
        }
    }
    let cx = match Context::new(ContextOptions::default()) {
        Ok(cx) => cx,
        Err(e) => return common::fail("chat", &e),
    };
    let host = options.host.clone();
    let chat = Callbacks::new()
        .on_http(|req| match req.path_only() {
            "/" => HttpResponse::html(PAGE),
            _ => HttpResponse::not_found(),
        })
        .on_handshake(|_, request| {
            if request
                .path()
                .is_some_and(|p| p == "/ws" || p.starts_with("/ws?"))
            {
                Handshake::accept()
            } else {
                Handshake::reject(404)
            }
        })
        .on_connect(|conn, _| {
            let text = format!("* {} joined", conn.id());
            conn.context().broadcast(&Message::Text(text));
        })
        .on_message(|conn, msg| {
            if let Message::Text(text) = msg {
                let line = format!("{}: {text}", conn.id());
                let report = conn.context().broadcast(&Message::Text(line));
                for slow in report.full {
                    slow.close(lws::CloseCode::POLICY, "not reading");
                }
            }
        })
        .on_close(|conn, _, _| {
            let text = format!("* {} left", conn.id());
            conn.context().broadcast(&Message::Text(text));
        });
    let listener = match cx.listen(options, chat) {
        Ok(l) => l,
        Err(e) => return common::fail("chat", &e),
    };
    let shown = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    println!("listening on http://{shown}:{}/", listener.port());
    let handle = cx.handle();
    if let Err(e) = common::stop_on_signals(move || {
        let _ = handle.shutdown(lws::CloseCode::AWAY, std::time::Duration::from_secs(5));
    }) {
        return common::fail("chat", &e.into());
    }
    match cx.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => common::fail("chat", &e),
    }
}
