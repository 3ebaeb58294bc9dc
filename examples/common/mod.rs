//! Pieces the example servers share: serving an echo, stopping on signals.
#![allow(dead_code)] // each example uses a part

use lws::{Callbacks, CloseCode, Context, ContextOptions, ListenOptions, ServerThreads};
use std::process::ExitCode;
use std::time::Duration;

/// Runs an echo server with `options` on `threads` loops (one per thread,
/// sharing the port through SO_REUSEPORT when more than one) until SIGINT
/// or SIGTERM, then shuts down gracefully: every client gets close 1001
/// after what was queued for it, within 5 s. Prints
/// `listening on ws://HOST:PORT/` (wss:// with TLS, `unix:PATH` for a unix
/// socket) as the first stdout line.
pub fn serve_echo(name: &str, options: ListenOptions, threads: usize) -> ExitCode {
    let host = options.host.clone();
    let unix = options.unix_path.clone();
    let scheme = if options.tls.is_some() { "wss" } else { "ws" };
    let echo = || {
        Callbacks::new().on_message(|conn, msg| {
            let _ = conn.send(msg);
        })
    };
    let shown = |port: u16| {
        if let Some(path) = &unix {
            println!("listening on unix:{}", path.display());
            return;
        }
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        println!("listening on {scheme}://{host}:{port}/");
    };
    if threads > 1 {
        let servers = match ServerThreads::spawn(threads, options, move |_| echo()) {
            Ok(s) => s,
            Err(e) => return fail(name, &e),
        };
        shown(servers.port());
        let handles = servers.handles().to_vec();
        if let Err(e) = stop_on_signals(move || {
            for h in handles {
                let _ = h.shutdown(CloseCode::AWAY, Duration::from_secs(5));
            }
        }) {
            return fail(name, &e.into());
        }
        return match servers.join() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(name, &e),
        };
    }
    let cx = match Context::new(ContextOptions::default()) {
        Ok(cx) => cx,
        Err(e) => return fail(name, &e),
    };
    match cx.listen(options, echo()) {
        Ok(listener) => shown(listener.port()),
        Err(e) => return fail(name, &e),
    }
    let handle = cx.handle();
    if let Err(e) = stop_on_signals(move || {
        let _ = handle.shutdown(CloseCode::AWAY, Duration::from_secs(5));
    }) {
        return fail(name, &e.into());
    }
    match cx.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(name, &e),
    }
}

/// Calls `stop` from a thread when SIGINT or SIGTERM arrives.
pub fn stop_on_signals(stop: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
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

/// Prints `why` and the usage line; exit code 2.
pub fn usage(name: &str, usage: &str, why: &str) -> ExitCode {
    eprintln!("{name}: {why}\nusage: {name} {usage}");
    ExitCode::from(2)
}

pub fn fail(name: &str, e: &lws::Error) -> ExitCode {
    eprintln!("{name}: {e}");
    ExitCode::FAILURE
}
