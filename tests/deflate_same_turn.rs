//! Compressed messages from many clients that the server reads in the
//! same loop turn are each inflated from their own connection's bytes.
//!
//! lws's inflater kept pointing into the buffer a read had filled when
//! its output buffer filled first (a message inflating to more than
//! 1 KiB): the read buffer all connections share, which the next
//! connection's read then overwrote, or a buffered segment lws had
//! already freed (a use-after-free valgrind saw).
//! vendor/patches/lws-rs-inflate-owns-pending-input.patch gives the
//! inflater its own copy of what it has not yet taken.
//!
//! The loop is driven here, so that every client's message is in the
//! kernel before the server's next poll and all are read in one turn.

mod util;

use flate2::{Compress, Compression, FlushCompress};
use lws::{Callbacks, CloseCode, Context, ContextOptions, Deflate, ListenOptions, Message};
use mio::{Events, Poll};
use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::time::Duration;
use util::raw_ws::{self, TEXT};

const CLIENTS: usize = 12;
const ROUNDS: usize = 6;
/// Inflates to far more than lws's 1 KiB inflate step, from a few KiB.
const SIZE: usize = 24 * 1024;
/// Plenty for the handshakes or one round (a few turns each); a bound so
/// a lost message fails instead of hanging.
const MAX_TURNS: u32 = 500;

/// One client's compressor: one raw DEFLATE stream across its messages,
/// each ended with a sync flush whose 00 00 ff ff is stripped.
fn deflate(c: &mut Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 1024);
    let start = c.total_in();
    while ((c.total_in() - start) as usize) < data.len() || out.len() == out.capacity() {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity());
        }
        let used = (c.total_in() - start) as usize;
        c.compress_vec(&data[used..], &mut out, FlushCompress::Sync)
            .expect("compress");
    }
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]), "a sync flush's trailer");
    out.truncate(out.len() - 4);
    out
}

/// What client `i` sends in `round`: different text per client and round.
fn payload(i: usize, round: usize) -> String {
    util::compressible_text(i * 1000 + round, SIZE)
}

struct Loop {
    poll: Poll,
    events: Events,
    cx: Context,
}

impl Loop {
    /// One turn: poll (at most 50 ms) and service what it reported.
    fn turn(&mut self) {
        let wait = self
            .cx
            .poll_timeout()
            .unwrap_or(Duration::from_millis(50))
            .min(Duration::from_millis(50));
        self.poll.poll(&mut self.events, Some(wait)).unwrap();
        self.cx.handle_events(&self.events);
    }
}

#[test]
fn messages_read_in_the_same_turn_inflate_from_their_own_bytes() {
    let _wd = util::watchdog("deflate_same_turn", 120);
    let poll = Poll::new().unwrap();
    let cx = Context::embedded(poll.registry(), ContextOptions::default()).unwrap();
    let got: Rc<RefCell<Vec<String>>> = Rc::default();
    let closed: Rc<RefCell<Vec<(CloseCode, String)>>> = Rc::default();
    let mut options = ListenOptions::new(0);
    options.deflate = Some(Deflate::default());
    let (got2, closed2) = (got.clone(), closed.clone());
    let callbacks = Callbacks::new()
        .on_message(move |_, msg| match msg {
            Message::Text(t) => got2.borrow_mut().push(t),
            Message::Binary(_) => panic!("a binary message"),
        })
        .on_close(move |_, code, reason| closed2.borrow_mut().push((code, reason.to_string())));
    let port = cx.listen(options, callbacks).unwrap().port();
    let mut lp = Loop {
        poll,
        events: Events::with_capacity(256),
        cx,
    };

    // Handshakes, deflate negotiated on each.
    let offer = [("Sec-WebSocket-Extensions", "permessage-deflate")];
    let mut clients: Vec<(TcpStream, Compress)> = (0..CLIENTS)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(util::http::upgrade_request("/", &[], &offer).as_bytes())
                .unwrap();
            s.set_nonblocking(true).unwrap();
            (s, Compress::new(Compression::default(), false))
        })
        .collect();
    let mut heads = vec![Vec::new(); CLIENTS];
    let mut turns = 0;
    while heads
        .iter()
        .any(|h| !h.windows(4).any(|w| w == b"\r\n\r\n"))
    {
        turns += 1;
        assert!(turns < MAX_TURNS, "handshakes not done");
        lp.turn();
        for ((s, _), head) in clients.iter_mut().zip(&mut heads) {
            let mut buf = [0u8; 1024];
            match s.read(&mut buf) {
                Ok(0) => panic!("closed during the handshake"),
                Ok(n) => head.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("handshake read: {e}"),
            }
        }
    }
    for head in &heads {
        let head = String::from_utf8_lossy(head).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(
            head.contains("permessage-deflate"),
            "not negotiated: {head}"
        );
    }

    for round in 0..ROUNDS {
        // Every message in the kernel before the server's next poll.
        for (i, (s, c)) in clients.iter_mut().enumerate() {
            let mut frame = raw_ws::masked(TEXT, &deflate(c, payload(i, round).as_bytes()));
            frame[0] |= 0x40; // RSV1: compressed
            s.set_nonblocking(false).unwrap();
            s.write_all(&frame).unwrap();
            s.set_nonblocking(true).unwrap();
        }
        let want = CLIENTS * (round + 1);
        let mut turns = 0;
        while got.borrow().len() < want && closed.borrow().is_empty() {
            turns += 1;
            assert!(
                turns < MAX_TURNS,
                "round {round}: {} of {want} messages",
                got.borrow().len()
            );
            lp.turn();
        }
        assert!(
            closed.borrow().is_empty(),
            "round {round}: connections closed: {:?}",
            closed.borrow()
        );
    }

    let mut want: Vec<String> = (0..CLIENTS)
        .flat_map(|i| (0..ROUNDS).map(move |r| payload(i, r)))
        .collect();
    let mut got = got.borrow().clone();
    want.sort();
    got.sort();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!(g == w, "a message differs from every one sent");
    }
}
