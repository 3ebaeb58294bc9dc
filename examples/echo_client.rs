//! WebSocket echo client: sends messages and checks every echo byte for byte.
//!
//! Run me with: `cargo run --release --example echo_client -- ws://127.0.0.1:9001/ [--count N] [--size BYTES]`
//! Exits non-zero on any mismatch, a lost echo, or a connection error.

use lws::{Callbacks, CloseCode, ConnectOptions, Context, ContextOptions};
use std::cell::RefCell;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

struct Run {
    count: usize,
    size: usize,
    sent: usize,
    received: usize,
    failure: Option<String>,
    started: Instant,
}

/// Message `i`: `size` bytes derived from `i`, so each echo is checkable.
fn payload(i: usize, size: usize) -> Vec<u8> {
    (0..size)
        .map(|j| (i.wrapping_mul(31).wrapping_add(j) % 251) as u8)
        .collect()
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(url) = args.next() else {
        eprintln!("usage: echo_client ws://HOST:PORT/ [--count N] [--size BYTES]");
        return ExitCode::from(2);
    };
    let (mut count, mut size) = (1000usize, 64usize);
    while let Some(arg) = args.next() {
        let value = args.next().and_then(|v| v.parse().ok());
        match (arg.as_str(), value) {
            ("--count", Some(v)) => count = v,
            ("--size", Some(v)) => size = v,
            _ => {
                eprintln!("echo_client: bad argument {arg:?}");
                return ExitCode::from(2);
            }
        }
    }

    let cx = match Context::new(ContextOptions::default()) {
        Ok(cx) => cx,
        Err(e) => {
            eprintln!("echo_client: {e}");
            return ExitCode::FAILURE;
        }
    };
    let run = Rc::new(RefCell::new(Run {
        count,
        size,
        sent: 0,
        received: 0,
        failure: None,
        started: Instant::now(),
    }));
    let handle = cx.handle();
    let (r1, r2, r3, r4) = (run.clone(), run.clone(), run.clone(), run.clone());
    let (h1, h2) = (handle.clone(), handle);
    let callbacks = Callbacks::new()
        .on_connect(move |conn, _| {
            let mut r = r1.borrow_mut();
            r.started = Instant::now();
            if r.count == 0 {
                conn.close(CloseCode::NORMAL, "done");
                return;
            }
            let p = payload(0, r.size);
            r.sent = 1;
            let _ = conn.send_binary(&p);
        })
        .on_message(move |conn, msg| {
            let mut r = r2.borrow_mut();
            let expected = payload(r.received, r.size);
            if msg.as_bytes() != expected.as_slice() {
                r.failure = Some(format!(
                    "echo {} differs ({} bytes back)",
                    r.received,
                    msg.len()
                ));
                conn.close(CloseCode::NORMAL, "mismatch");
                return;
            }
            r.received += 1;
            if r.received == r.count {
                conn.close(CloseCode::NORMAL, "done");
            } else {
                let p = payload(r.sent, r.size);
                r.sent += 1;
                let _ = conn.send_binary(&p);
            }
        })
        .on_error(move |_, e| {
            r3.borrow_mut().failure = Some(e.to_string());
            let _ = h1.stop();
        })
        .on_close(move |_, code, reason| {
            let mut r = r4.borrow_mut();
            if r.received != r.count && r.failure.is_none() {
                r.failure = Some(format!(
                    "closed ({code} {reason}) after {} of {} echoes",
                    r.received, r.count
                ));
            }
            let _ = h2.stop();
        });
    let mut options = ConnectOptions::new(url);
    options.connect_timeout = Some(Duration::from_secs(10));
    if let Err(e) = cx.connect(options, callbacks) {
        eprintln!("echo_client: {e}");
        return ExitCode::FAILURE;
    }
    if let Err(e) = cx.run() {
        eprintln!("echo_client: {e}");
        return ExitCode::FAILURE;
    }
    let r = run.borrow();
    if let Some(f) = &r.failure {
        eprintln!("echo_client: FAILED: {f}");
        return ExitCode::FAILURE;
    }
    let secs = r.started.elapsed().as_secs_f64();
    println!(
        "{} echoes of {} bytes OK in {:.3} s ({:.1} us per round trip)",
        r.received,
        r.size,
        secs,
        secs * 1e6 / r.received.max(1) as f64
    );
    ExitCode::SUCCESS
}
