//! The Rust side of the C example service c/embed/embed_service.c: two
//! protocols handed to C as `struct lws_protocols` entries (declared in
//! c/embed/lws_rs_embed.h). `main` is the C program's; build.rs links its
//! object into this binary, so the executable is a C service with Rust
//! parts, as a C project linking a Rust static library would be.
//!
//! Run me with `cargo run --bin lws-c-embed-service -- --port 9002`.
#![no_main]

use lws::embed::{EmbedOptions, EmbeddedProtocol};
use lws::raw::{Action, RawProtocol, Reason, WriteKind};
use lws::{Callbacks, CloseCode, Message};
use std::collections::VecDeque;

/// `lws_rs_echo_protocol()`: the safe API, echoing through the send queue.
#[unsafe(no_mangle)]
pub extern "C" fn lws_rs_echo_protocol() -> *const lws::sys::lws_protocols {
    // Nothing may unwind into C, not even from making the protocol.
    std::panic::catch_unwind(|| {
        let callbacks = Callbacks::new().on_message(|conn, msg| {
            if let Message::Text(text) = &msg {
                if text == "panic" {
                    panic!("asked to panic (the C service must live on)");
                }
                if let Some(rest) = text.strip_prefix("close:") {
                    let (code, reason) = rest.split_once(':').unwrap_or((rest, ""));
                    conn.close(CloseCode(code.parse().unwrap_or(1000)), reason);
                    return;
                }
            }
            let _ = conn.send(msg);
        });
        match EmbeddedProtocol::new("rust-echo", EmbedOptions::default(), callbacks) {
            Ok(p) => p.leak() as *const _,
            Err(e) => {
                eprintln!("rust-echo: {e}");
                std::ptr::null()
            }
        }
    })
    .unwrap_or(std::ptr::null())
}

/// A message waiting for its WRITEABLE.
#[derive(Default)]
struct RawSession {
    rx: Vec<u8>,
    pending: VecDeque<(Vec<u8>, bool)>,
}

/// `lws_rs_raw_echo_protocol()`: the low-level layer, as a C switch.
#[unsafe(no_mangle)]
pub extern "C" fn lws_rs_raw_echo_protocol() -> *const lws::sys::lws_protocols {
    std::panic::catch_unwind(|| {
        let made =
            RawProtocol::with_session::<RawSession>("rust-raw-echo", 0, |wsi, reason, args| {
                match reason {
                    Reason::Receive => {
                        let binary = wsi.frame_is_binary();
                        let end = wsi.is_message_end();
                        let Some(s) = wsi.session::<RawSession>() else {
                            return Action::Close;
                        };
                        s.rx.extend_from_slice(args.data());
                        if !end {
                            return Action::Continue;
                        }
                        let msg = std::mem::take(&mut s.rx);
                        if msg == b"panic" {
                            panic!("asked to panic (raw layer)");
                        }
                        s.pending.push_back((msg, binary));
                        wsi.callback_on_writable();
                    }
                    Reason::ServerWriteable => {
                        let Some(s) = wsi.session::<RawSession>() else {
                            return Action::Continue;
                        };
                        let Some((msg, binary)) = s.pending.pop_front() else {
                            return Action::Continue;
                        };
                        let more = !s.pending.is_empty();
                        let kind = if binary {
                            WriteKind::Binary
                        } else {
                            WriteKind::Text
                        };
                        if wsi.write(&msg, kind).is_err() {
                            return Action::Close;
                        }
                        if more {
                            wsi.callback_on_writable();
                        }
                    }
                    _ => {}
                }
                Action::Continue
            });
        match made {
            Ok(p) => p.leak() as *const _,
            Err(e) => {
                eprintln!("rust-raw-echo: {e}");
                std::ptr::null()
            }
        }
    })
    .unwrap_or(std::ptr::null())
}
