//! A Context kept in a thread-local is dropped by that thread's TLS
//! destructors, possibly after lws-rs's own thread-locals are gone; freeing
//! its connections then must not panic (found by fuzz/server_bytes, whose
//! context lives in a thread_local: the process aborted at exit).
//!
//! lws-rs catches such a panic (nothing unwinds into C), but it skipped
//! the rest of the connection's teardown and printed a backtrace; a panic
//! hook sees it. The scenario runs in a child process (this test binary
//! re-run with an environment variable), so the hook and the thread exit
//! are its own.

use lws::{AdoptOptions, Callbacks, Context, ContextOptions};
use std::cell::RefCell;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

static PANICKED: AtomicBool = AtomicBool::new(false);

const CHILD: &str = "LWS_RS_THREAD_LOCAL_DROP_CHILD";

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";

thread_local! {
    static KEPT: RefCell<Option<(Context, UnixStream)>> = const { RefCell::new(None) };
}

/// In a new thread: a context with a live adopted connection, stored in a
/// thread-local before lws-rs first touches its own (the adopt does), so
/// it is destroyed after them when the thread exits.
fn child() {
    std::panic::set_hook(Box::new(|info| {
        PANICKED.store(true, Ordering::SeqCst);
        eprintln!("panic: {info}");
    }));
    std::thread::spawn(|| {
        KEPT.with(|kept| {
            let cx = Context::new(ContextOptions::default()).expect("context");
            let (ours, theirs) = UnixStream::pair().expect("socketpair");
            cx.adopt(ours, REQUEST, AdoptOptions::default(), Callbacks::new())
                .expect("adopt");
            assert_eq!(cx.connections().len(), 1, "the handshake completed");
            *kept.borrow_mut() = Some((cx, theirs));
        });
    })
    .join()
    .expect("the thread ended without a panic");
    // The thread's TLS destructors (the context's drop among them) have run.
    assert!(
        !PANICKED.load(Ordering::SeqCst),
        "dropping the context in a TLS destructor panicked"
    );
}

#[test]
fn context_dropped_by_thread_local_destructor() {
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "context_dropped_by_thread_local_destructor",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .expect("run the child");
    assert!(
        out.status.success(),
        "child failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
