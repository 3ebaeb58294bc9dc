//! Echo server for the Autobahn TestSuite's `wstest -m fuzzingclient`
//! (autobahn/run.sh drives it): text and binary messages are echoed as
//! received, UTF-8 of text is validated (the ContextOptions default), and
//! messages up to 64 MiB are accepted (cases 9.* send up to 16 MiB).
//!
//! Run me with: `cargo run --release --example autobahn_server -- [--host 127.0.0.1] [--port 9001]`
//! (port 0 lets the OS pick). The first line on stdout is
//! `listening on ws://HOST:PORT/`. Stops cleanly on SIGINT / SIGTERM.

mod common;

use lws::ListenOptions;
use std::process::ExitCode;

const USAGE: &str = "[--host ADDR] [--port N]";

/// Largest message echoed; Autobahn's biggest is 16 MiB (9.1.6, 9.2.6).
const MAX_MESSAGE_SIZE: usize = 64 << 20;

fn main() -> ExitCode {
    let mut options = ListenOptions::new(9001);
    options.max_message_size = MAX_MESSAGE_SIZE;
    // No pings of our own: wstest compares the exact events of each case.
    options.keepalive = None;
    // deflate: permessage-deflate for Autobahn 12.* and 13.* (accepted
    // only when offered, and wstest offers it only there).
    options.deflate = Some(lws::Deflate::default());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let Some(value) = args.next() else {
            return common::usage("autobahn_server", USAGE, &format!("{arg} needs a value"));
        };
        match arg.as_str() {
            "--host" => options.host = value,
            "--port" => match value.parse() {
                Ok(p) => options.port = p,
                Err(_) => {
                    return common::usage("autobahn_server", USAGE, &format!("bad port {value:?}"))
                }
            },
            _ => {
                return common::usage(
                    "autobahn_server",
                    USAGE,
                    &format!("unexpected argument {arg:?}"),
                )
            }
        }
    }
    common::serve_echo("autobahn_server", options, 1)
}
