//! A deflate connection that lws fails while its inflater still holds
//! data, followed by the peer's half-close: the connection ends as soon
//! as the EOF is read, and the loop does not spin meanwhile. The inputs
//! are fuzz/server_bytes findings (their first byte, the harness's mode,
//! is dropped), sent to the same kind of listener: permessage-deflate,
//! fragments echoed as they arrive.
//!
//! lws left its rx extension drain pending once the close began, then
//! only ever "drained" and never read the socket again: the EOF was not
//! seen, the connection waited out the 5 s close-ack timeout, and all
//! that time `poll_timeout()` said zero, so the loop spun
//! (vendor/patches/lws-rs-rx-drain-ends-at-close.patch).
//!
//! Under valgrind it also shows that lws's inflate drain reads only memory
//! it owns: these inputs arrive with the upgrade request, so lws holds
//! their frames in a buflist segment it frees before the drain
//! (vendor/patches/lws-rs-inflate-owns-pending-input.patch).
//!
//! No clock is asserted: the loop is driven here, in turns of at most
//! 100 ms, and the connection must be gone within a bounded number of
//! turns. A spinning loop uses them up in milliseconds; a sleeping one
//! closes at the EOF long before.

mod util;

use lws::{Callbacks, Context, ContextOptions, Deflate, ListenOptions, ReceiveMode};
use mio::{Events, Poll};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

/// More than the handshake, the frames and the close take (about 10);
/// far fewer than a spin makes in lws's 5 s close-ack wait.
const MAX_TURNS: u32 = 200;

fn echo() -> Callbacks {
    Callbacks::new()
        .on_message(|conn, msg| {
            let _ = conn.send(msg);
        })
        .on_fragment(|conn, f| {
            let _ = conn.send_fragment(&f.data, f.is_binary, f.is_final);
        })
}

/// Sends `input` and half-closes; returns how many loop turns it took
/// until the server closed the socket and freed the connection.
fn turns_until_closed(input: &[u8]) -> u32 {
    let mut poll = Poll::new().unwrap();
    let cx = Context::embedded(poll.registry(), ContextOptions::default()).unwrap();
    let mut options = ListenOptions::new(0);
    options.deflate = Some(Deflate::default());
    options.receive = ReceiveMode::Fragments;
    options.keepalive = None;
    options.max_message_size = 1 << 20;
    options.max_frame_size = 1 << 20;
    let port = cx.listen(options, echo()).unwrap().port();

    let mut peer = TcpStream::connect(("127.0.0.1", port)).unwrap();
    peer.write_all(input).unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    peer.set_nonblocking(true).unwrap();

    let mut events = Events::with_capacity(64);
    let mut eof = false;
    let mut buf = [0u8; 4096];
    for turn in 1..=MAX_TURNS {
        let wait = cx
            .poll_timeout()
            .unwrap_or(Duration::from_millis(100))
            .min(Duration::from_millis(100));
        poll.poll(&mut events, Some(wait)).unwrap();
        cx.handle_events(&events);
        while !eof {
            match peer.read(&mut buf) {
                Ok(0) => eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => eof = true, // a reset also ends it
            }
        }
        if eof && cx.connections().is_empty() {
            return turn;
        }
    }
    panic!(
        "still open after {MAX_TURNS} loop turns (peer saw EOF: {eof}, connections: {})",
        cx.connections().len()
    );
}

/// Reserved bits set (1002 "rsv bits") while the inflater has data
/// pending.
#[test]
fn failed_while_inflating_closes_at_the_eof() {
    let _wd = util::watchdog("deflate_fail_then_eof", 60);
    let input = include_bytes!("../fuzz/findings/server-close-ack-wait");
    let turns = turns_until_closed(&input[1..]);
    assert!(turns < MAX_TURNS, "{turns}");
}

/// An RSV1 frame cut short whose data ends its DEFLATE stream early and
/// goes on with bytes that are no valid new stream.
#[test]
fn stream_ended_early_then_garbage_closes_at_the_eof() {
    let _wd = util::watchdog("deflate_fail_then_eof", 60);
    let input = include_bytes!("../fuzz/findings/server-deflate-cut-short-after-final");
    let turns = turns_until_closed(&input[1..]);
    assert!(turns < MAX_TURNS, "{turns}");
}
