//! Bytes from a hostile client into our server: the input (an HTTP upgrade
//! request, then frames) is written into one end of a socket whose other
//! end our server owns, then the writer half-closes and the loop runs
//! until the server closed the connection (a hang is a finding).
//!
//! The first input byte picks the server:
//! - even: an echo connection adopted (`Context::adopt`) from a
//!   `UnixStream::pair()`, with the second byte (mod the rest's length)
//!   saying how many of the bytes are handed over as already read;
//! - odd: an echo listener on a unix-domain socket with permessage-deflate
//!   and `ReceiveMode::Fragments` (fragments echoed as they arrive),
//!   reached with `UnixStream::connect`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lws::{AdoptOptions, Callbacks, Deflate, ListenOptions, ReceiveMode};
use lws_fuzz::{ended, Loop, Peer, MAX_MESSAGE};
use std::cell::RefCell;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

/// The loop and the deflate listener's socket path, made once.
struct Server {
    lp: Loop,
    path: PathBuf,
}

fn echo() -> Callbacks {
    Callbacks::new()
        .on_message(|conn, msg| {
            let _ = conn.send(msg);
        })
        .on_fragment(|conn, f| {
            let _ = conn.send_fragment(&f.data, f.is_binary, f.is_final);
        })
}

impl Server {
    fn new() -> Self {
        let lp = Loop::new();
        let path = std::env::temp_dir().join(format!("lws-fuzz-{}.sock", std::process::id()));
        let mut options = ListenOptions::unix(&path);
        options.deflate = Some(Deflate::default());
        options.receive = ReceiveMode::Fragments;
        options.keepalive = None;
        options.max_message_size = MAX_MESSAGE;
        options.max_frame_size = MAX_MESSAGE;
        lp.cx.listen(options, echo()).expect("unix listener");
        Server { lp, path }
    }

    fn run(&mut self, data: &[u8]) {
        let Some((&mode, rest)) = data.split_first() else {
            return;
        };
        if mode & 1 == 0 {
            let (split, bytes) = match rest.split_first() {
                Some((&s, bytes)) if !bytes.is_empty() => (s as usize % (bytes.len() + 1), bytes),
                _ => (0, rest),
            };
            let (ours, theirs) = UnixStream::pair().expect("socketpair");
            theirs.set_nonblocking(true).unwrap();
            let options = AdoptOptions {
                max_message_size: MAX_MESSAGE,
                max_frame_size: MAX_MESSAGE,
                ..AdoptOptions::default()
            };
            let conn = match self.lp.cx.adopt(ours, &bytes[..split], options, echo()) {
                Ok(conn) => conn,
                // lws refused the head it was handed (and closed the socket).
                Err(e) => {
                    lws_fuzz::note(&format!("adopt refused: {e}"));
                    return;
                }
            };
            let mut peer = Some(Peer::new(theirs, bytes[split..].to_vec()));
            self.lp.drive(
                &mut peer,
                |_| true,
                || ended(conn.state()),
                "adopted connection",
            );
        } else {
            let theirs = UnixStream::connect(&self.path).expect("connect to the listener");
            theirs.set_nonblocking(true).unwrap();
            let mut peer = Some(Peer::new(theirs, rest.to_vec()));
            // Done when the server closed the socket (the peer read EOF);
            // drive() then checks no connection is left.
            self.lp
                .drive(&mut peer, |_| true, || true, "deflate listener connection");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

thread_local! {
    static SERVER: RefCell<Option<Server>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    SERVER.with(|s| {
        s.borrow_mut().get_or_insert_with(Server::new).run(data);
    });
});
