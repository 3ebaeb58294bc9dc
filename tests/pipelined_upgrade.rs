//! A client may send its first frames in the same TCP segment as its
//! upgrade request (RFC 6455 does not ask it to wait for the 101): the
//! server must parse them as frames, not lose or garble them.

mod util;

use lws::{AdoptOptions, Callbacks, Context, ContextOptions, ListenOptions};
use std::cell::Cell;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;
use util::raw_ws::{self, TEXT};
use util::Server;

/// The upgrade request (with `extra` headers) and three text frames, as
/// one buffer.
fn request_and_frames(extra: &[(&str, &str)]) -> Vec<u8> {
    let mut bytes = util::http::upgrade_request("/", &[], extra).into_bytes();
    for i in 0..3 {
        bytes.extend(raw_ws::masked(TEXT, format!("early {i}").as_bytes()));
    }
    bytes
}

/// Reads the 101 response and then the echoes of the three frames.
fn assert_101_and_echoes(stream: &mut impl Read) {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("the upgrade response");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head:?}");
    for i in 0..3 {
        let frame = raw_ws::read_frame(stream).expect("an echo");
        assert_eq!(
            (frame.opcode, frame.payload),
            (TEXT, format!("early {i}").into_bytes())
        );
    }
}

/// Sends the upgrade request (with `extra` headers) and three text frames
/// in one write; asserts the 101 and the three echoes, in order.
fn early_frames_are_echoed(options: ListenOptions, extra: &[(&str, &str)]) {
    let server = Server::start(options, || {
        Callbacks::new().on_message(|conn, msg| conn.send(msg).expect("echo"))
    });
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    stream.write_all(&request_and_frames(extra)).unwrap();
    assert_101_and_echoes(&mut stream);
}

#[test]
fn frames_in_the_same_write_as_the_upgrade_are_echoed() {
    let _wd = util::watchdog("pipelined_upgrade", 30);
    early_frames_are_echoed(ListenOptions::new(0), &[]);
}

#[test]
fn early_frames_on_a_deflate_listener_are_echoed() {
    let _wd = util::watchdog("pipelined_upgrade_deflate", 30);
    let mut options = ListenOptions::new(0);
    options.deflate = Some(lws::Deflate::default());
    // Offered and agreed: the uncompressed frames (RSV1 clear) stay valid.
    early_frames_are_echoed(
        options,
        &[("Sec-WebSocket-Extensions", "permessage-deflate")],
    );
}

/// Adopts one end of a socket pair whose other end already wrote the
/// request and three frames; `preread` of those bytes are handed to
/// adopt() as read already. Asserts the 101 and the three echoes.
fn adopted_early_frames(preread: usize) {
    let cx = Context::new(ContextOptions::default()).unwrap();
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let bytes = request_and_frames(&[]);
    ours.write_all(&bytes[preread..]).unwrap();
    let echoed = Rc::new(Cell::new(0));
    let e = echoed.clone();
    cx.adopt(
        theirs,
        &bytes[..preread],
        AdoptOptions::default(),
        Callbacks::new().on_message(move |conn, msg| {
            conn.send(msg).expect("echo");
            e.set(e.get() + 1);
        }),
    )
    .expect("adopt");
    let stop = cx.handle();
    let stopping = Cell::new(false);
    cx.set_interval(Duration::from_millis(10), move |cx| {
        if echoed.get() == 3 && !stopping.replace(true) {
            // One more turn for the last echo's write.
            cx.set_timeout(Duration::from_millis(50), |cx| cx.stop());
        }
    });
    cx.set_timeout(Duration::from_secs(10), move |_| stop.stop().unwrap());
    cx.run().unwrap();
    ours.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    assert_101_and_echoes(&mut ours);
}

#[test]
fn adopted_with_early_frames_unread() {
    let _wd = util::watchdog("adopted_early_unread", 30);
    adopted_early_frames(0);
}

#[test]
fn adopted_with_early_frames_preread() {
    let _wd = util::watchdog("adopted_early_preread", 30);
    adopted_early_frames(request_and_frames(&[]).len());
}
