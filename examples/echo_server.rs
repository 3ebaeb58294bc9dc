//! WebSocket echo server: echoes every text and binary message.
//!
//! Run me with: `cargo run --release --example echo_server -- [--host 127.0.0.1] [--port 9001]`
//! (port 0 lets the OS pick). More options: `--protocol NAME` (repeat to
//! offer several subprotocols), `--max-message-size BYTES` (bigger messages
//! close the connection with 1009), `--tls-cert FILE --tls-key FILE` (wss://),
//! `--threads N` (N loops on N threads sharing the port via SO_REUSEPORT),
//! `--unix PATH` (listen on a unix-domain socket instead), `--deflate`
//! (accept permessage-deflate).
//! The first line on stdout is `listening on ws://HOST:PORT/` (or wss://).
//! On SIGINT / SIGTERM it shuts down gracefully (close 1001 to every client).

mod common;

use lws::{ListenOptions, ServerTls};
use std::process::ExitCode;

const USAGE: &str = "[--host ADDR] [--port N] [--protocol NAME]... [--max-message-size BYTES] [--tls-cert FILE --tls-key FILE] [--threads N] [--unix PATH] [--deflate]";

fn main() -> ExitCode {
    let mut options = ListenOptions::new(9001);
    let (mut cert, mut key) = (None, None);
    let mut threads = 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--deflate" {
            options.deflate = Some(lws::Deflate::default());
            continue;
        }
        let Some(value) = args.next() else {
            return common::usage("echo_server", USAGE, &format!("{arg} needs a value"));
        };
        match arg.as_str() {
            "--host" => options.host = value,
            "--port" => match value.parse() {
                Ok(p) => options.port = p,
                Err(_) => {
                    return common::usage("echo_server", USAGE, &format!("bad port {value:?}"))
                }
            },
            "--protocol" => options.protocols.push(value),
            "--max-message-size" => match value.parse() {
                Ok(n) => options.max_message_size = n,
                Err(_) => {
                    return common::usage("echo_server", USAGE, &format!("bad size {value:?}"))
                }
            },
            "--threads" => match value.parse() {
                Ok(n) if n >= 1 => threads = n,
                _ => {
                    return common::usage(
                        "echo_server",
                        USAGE,
                        &format!("bad thread count {value:?}"),
                    )
                }
            },
            "--unix" => options.unix_path = Some(value.into()),
            "--tls-cert" => cert = Some(value),
            "--tls-key" => key = Some(value),
            _ => {
                return common::usage(
                    "echo_server",
                    USAGE,
                    &format!("unexpected argument {arg:?}"),
                )
            }
        }
    }
    match (cert, key) {
        (Some(cert), Some(key)) => options.tls = Some(ServerTls::new(cert, key)),
        (None, None) => {}
        _ => return common::usage("echo_server", USAGE, "--tls-cert and --tls-key go together"),
    }
    common::serve_echo("echo_server", options, threads)
}
