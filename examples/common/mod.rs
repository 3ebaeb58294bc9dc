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
        // Blocked before the server threads start, so none of them takes
        // a signal's default action (the process would die, not shut down).
        let signals = match Signals::block() {
            Ok(s) => s,
            Err(e) => return fail(name, &e.into()),
        };
        let servers = match ServerThreads::spawn(threads, options, move |_| echo()) {
            Ok(s) => s,
            Err(e) => return fail(name, &e),
        };
        shown(servers.port());
        let handles = servers.handles().to_vec();
        signals.on_signal(move || {
            for h in handles {
                let _ = h.shutdown(CloseCode::AWAY, Duration::from_secs(5));
            }
        });
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

/// SIGINT and SIGTERM, blocked in this thread and every thread it starts
/// from now on, so that only [`Signals::on_signal`]'s thread sees them.
/// Make it before starting other threads.
pub struct Signals(libc::sigset_t);

impl Signals {
    pub fn block() -> std::io::Result<Signals> {
        // SAFETY: plain libc signal-set calls on a local sigset_t.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(Signals(set))
        }
    }

    /// Calls `f` from a thread of its own when the first signal arrives.
    pub fn on_signal(self, f: impl FnOnce() + Send + 'static) {
        let set = self.0;
        std::thread::spawn(move || {
            let mut sig = 0;
            // SAFETY: set is a valid, initialised signal set.
            unsafe { libc::sigwait(&set, &mut sig) };
            f();
        });
    }
}

/// Calls `stop` from a thread when SIGINT or SIGTERM arrives (for programs
/// that start no other threads first).
pub fn stop_on_signals(stop: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    Signals::block()?.on_signal(stop);
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
