//! permessage-deflate messages whose compressed data ends in a BFINAL=1
//! block (RFC 7692 7.2.3.3, what a sender that finishes its DEFLATE stream
//! per message sends): each is delivered, and so are the ones after it.
//! lws's inflater stopped at the end of the stream and never consumed the
//! rest (its own 00 00 ff ff trailer): the message never arrived and the
//! socket was not read again (found by fuzz/server_bytes as a connection
//! that never closed; vendor/patches/lws-rs-deflate-rx-final-block.patch).

mod util;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use lws::{Deflate, ListenOptions};
use util::raw_ws::{self, BINARY, TEXT};

/// `data` as one finished raw DEFLATE stream (ends with a BFINAL block).
fn final_stream(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    c.compress_vec(data, &mut out, FlushCompress::Finish)
        .expect("deflate");
    out
}

/// Inflates one message of the server's (context takeover kept in `d`).
fn inflate(d: &mut Decompress, payload: &[u8]) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(1 << 20);
    let start = d.total_in();
    d.decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .expect("inflate the echo");
    assert_eq!(
        (d.total_in() - start) as usize,
        input.len(),
        "echo inflated in one go"
    );
    out
}

#[test]
fn bfinal_messages_are_delivered_and_later_ones_too() {
    let _wd = util::watchdog("deflate_final_block", 60);
    let mut options = ListenOptions::new(0);
    options.deflate = Some(Deflate::default());
    let server = util::Server::echo_with(options);
    let (mut ws, _) = raw_ws::upgrade(
        server.port,
        &[("Sec-WebSocket-Extensions", "permessage-deflate")],
    );
    let mut rx = Decompress::new(false);
    // Small and large (more inflated output than lws's rx buffer), text
    // and binary; each starts a new stream after the last one's end.
    let messages: Vec<(u8, Vec<u8>)> = vec![
        (TEXT, b"q".repeat(300)),
        (BINARY, (0..=255u8).cycle().take(64 * 1024).collect()),
        (TEXT, b"after two final blocks".to_vec()),
    ];
    for (i, (opcode, data)) in messages.iter().enumerate() {
        let deflated = final_stream(data);
        let frame = raw_ws::frame(true, 4, *opcode, Some([1, 2, 3, 4]), &deflated);
        std::io::Write::write_all(&mut ws, &frame).expect("send");
        let echo =
            raw_ws::read_frame(&mut ws).unwrap_or_else(|e| panic!("message {i}: no echo ({e})"));
        assert!(echo.fin, "message {i}: one frame");
        assert_eq!(echo.opcode, *opcode, "message {i}");
        let got = if echo.head & 0x40 != 0 {
            inflate(&mut rx, &echo.payload)
        } else {
            echo.payload
        };
        assert_eq!(got.len(), data.len(), "message {i}: length");
        assert!(got == *data, "message {i}: content");
    }
}
