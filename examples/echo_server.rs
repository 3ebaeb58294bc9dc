//! WebSocket echo server: echoes every text and binary message.
//!
//! Run me with: `cargo run --release --example echo_server -- [--host 127.0.0.1] [--port 9001]`
//! (port 0 lets the OS pick). The first line on stdout is
//! `listening on ws://HOST:PORT/`. Stops cleanly on SIGINT / SIGTERM.

use lws::{Callbacks, Context, ContextOptions, ListenOptions};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut host = "127.0.0.1".to_string();
    let mut port: u16 = 9001;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        match (arg.as_str(), value) {
            ("--host", Some(v)) => host = v,
            ("--port", Some(v)) => match v.parse() {
                Ok(p) => port = p,
                Err(_) => return usage(&format!("bad port {v:?}")),
            },
            _ => return usage(&format!("unexpected argument {arg:?}")),
        }
    }

    let cx = match Context::new(ContextOptions::default()) {
        Ok(cx) => cx,
        Err(e) => return fail(&e),
    };
    let mut options = ListenOptions::new(port);
    options.host = host.clone();
    let echo = Callbacks::new().on_message(|conn, msg| {
        let _ = conn.send(msg);
    });
    let port = match cx.listen(options, echo) {
        Ok(port) => port,
        Err(e) => return fail(&e),
    };
    let shown = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    println!("listening on ws://{shown}:{port}/");

    let handle = cx.handle();
    if let Err(e) = stop_on_signals(move || {
        let _ = handle.stop();
    }) {
        return fail(&e.into());
    }
    match cx.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Calls `stop` from a thread when SIGINT or SIGTERM arrives.
fn stop_on_signals(stop: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    // SAFETY: plain libc signal-set calls on a local sigset_t; blocking the
    // two signals here (before other threads exist) makes sigwait see them.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        set
    };
    std::thread::spawn(move || {
        let mut sig = 0;
        // SAFETY: set is a valid, initialised signal set.
        unsafe { libc::sigwait(&set, &mut sig) };
        stop();
    });
    Ok(())
}

fn usage(why: &str) -> ExitCode {
    eprintln!("echo_server: {why}\nusage: echo_server [--host ADDR] [--port N]");
    ExitCode::from(2)
}

fn fail(e: &lws::Error) -> ExitCode {
    eprintln!("echo_server: {e}");
    ExitCode::FAILURE
}
