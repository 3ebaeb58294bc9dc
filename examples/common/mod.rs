//! Pieces the example servers share: serving an echo, stopping on signals.

use lws::{Callbacks, Context, ContextOptions, ListenOptions};
use std::process::ExitCode;

/// Runs an echo server with `options` until SIGINT or SIGTERM (then shuts
/// down gracefully). Prints
/// `listening on ws://HOST:PORT/` (wss:// with TLS) as the first stdout line.
pub fn serve_echo(name: &str, options: ListenOptions) -> ExitCode {
    let cx = match Context::new(ContextOptions::default()) {
        Ok(cx) => cx,
        Err(e) => return fail(name, &e),
    };
    let host = options.host.clone();
    let scheme = if options.tls.is_some() { "wss" } else { "ws" };
    let echo = Callbacks::new().on_message(|conn, msg| {
        let _ = conn.send(msg);
    });
    let port = match cx.listen(options, echo) {
        Ok(listener) => listener.port(),
        Err(e) => return fail(name, &e),
    };
    let shown = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    println!("listening on {scheme}://{shown}:{port}/");

    // A signal shuts down gracefully: every client gets close 1001 after
    // what was queued for it, within 5 s.
    let handle = cx.handle();
    if let Err(e) = stop_on_signals(move || {
        let _ = handle.shutdown(lws::CloseCode::AWAY, std::time::Duration::from_secs(5));
    }) {
        return fail(name, &e.into());
    }
    match cx.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(name, &e),
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

/// Prints `why` and the usage line; exit code 2.
pub fn usage(name: &str, usage: &str, why: &str) -> ExitCode {
    eprintln!("{name}: {why}\nusage: {name} {usage}");
    ExitCode::from(2)
}

fn fail(name: &str, e: &lws::Error) -> ExitCode {
    eprintln!("{name}: {e}");
    ExitCode::FAILURE
}
