//! Broadcast chat: every text message a client sends goes to every
//! connected client, prefixed with the sender's id. Serves its own page at
//! `/` (plain HTTP on the same port) and WebSocket at `/ws`.
//!
//! Run me with: `cargo run --example chat -- [--host 127.0.0.1] [--port 9002]`
//! (port 0 lets the OS pick), then open http://127.0.0.1:9002/ in two tabs.
//! The first line on stdout is `listening on http://HOST:PORT/`.
//! On SIGINT / SIGTERM every client gets close 1001.
//!
//! Several processes share one chat with `--redis redis://127.0.0.1:6379/`
//! (lines go through the Redis channel `lws-chat`, see chat/backplane.rs)
//! and `--name NAME`, which prefixes this process's client ids (`s1/3`).
//! Behind a proxy, a join line names the `X-Forwarded-For` it passed on:
//! `* s1/3 from 127.0.0.1 joined`. docs/SCALING.md shows the deployment.

#[path = "chat/backplane.rs"]
mod backplane;
mod common;

use lws::{
    Callbacks, Connection, Context, ContextOptions, Handshake, HttpResponse, ListenOptions, Message,
};
use std::process::ExitCode;
use std::rc::Rc;

const PAGE: &str = include_str!("chat/index.html");
const USAGE: &str = "[--host ADDR] [--port N] [--redis URL] [--name NAME]";
/// The Redis pub/sub channel every chat process shares.
const CHANNEL: &str = "lws-chat";

/// The X-Forwarded-For a proxy sent with the handshake, kept on the connection.
struct Forwarded(String);

fn main() -> ExitCode {
    let mut options = ListenOptions::new(9002);
    options.max_message_size = 64 * 1024;
    options.max_send_queue = 1 << 20; // a client this far behind is closed
    let mut redis_url = None;
    let mut name: Option<String> = None;
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
            "--redis" => redis_url = Some(value),
            "--name" => name = Some(value),
            _ => return common::usage("chat", USAGE, &format!("unexpected argument {arg:?}")),
        }
    }
    let cx = match Context::new(ContextOptions::default()) {
        Ok(cx) => cx,
        Err(e) => return common::fail("chat", &e),
    };
    let host = options.host.clone();
    let backplane = match redis_url {
        Some(url) => match backplane::Backplane::start(&url, CHANNEL, cx.handle()) {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("chat: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    // With a backplane every line goes through Redis, this process's own
    // too, so all processes show them in one order; without, straight out.
    let say = Rc::new(move |conn: &Connection, line: String| match &backplane {
        Some(b) => b.publish(line),
        None => {
            let report = conn.context().broadcast(&Message::Text(line));
            for slow in report.full {
                slow.close(lws::CloseCode::POLICY, "not reading");
            }
        }
    });
    let who = Rc::new(move |conn: &Connection| match &name {
        Some(n) => format!("{n}/{}", conn.id()),
        None => conn.id().to_string(),
    });
    let (say_join, say_msg, say_left) = (say.clone(), say.clone(), say);
    let (who_join, who_msg, who_left) = (who.clone(), who.clone(), who);
    let chat = Callbacks::new()
        .on_http(|req| match req.path_only() {
            "/" => HttpResponse::html(PAGE),
            _ => HttpResponse::not_found(),
        })
        .on_handshake(|conn, request| {
            if let Some(xff) = request.get("x-forwarded-for") {
                let _ = conn.set_data(Forwarded(xff.to_owned()));
            }
            if request
                .path()
                .is_some_and(|p| p == "/ws" || p.starts_with("/ws?"))
            {
                Handshake::accept()
            } else {
                Handshake::reject(404)
            }
        })
        .on_connect(move |conn, _| {
            let from = conn
                .with_data(|f: &mut Forwarded| format!(" from {}", f.0))
                .unwrap_or_default();
            say_join(conn, format!("* {}{from} joined", who_join(conn)));
        })
        .on_message(move |conn, msg| {
            if let Message::Text(text) = msg {
                say_msg(conn, format!("{}: {text}", who_msg(conn)));
            }
        })
        .on_close(move |conn, _, _| {
            say_left(conn, format!("* {} left", who_left(conn)));
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
