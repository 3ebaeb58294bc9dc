//! A peer that sends everything and half-closes (shutdown(SHUT_WR)) at
//! once, before lws read any of it: what it sent is still served. The
//! upgrade is answered, the message echoed, and only then is the
//! connection ended (1006: no close frame). Our reactor used to hand lws
//! POLLHUP for the half-close, and lws closes a POLLHUP socket without
//! reading (found by fuzz/server_bytes: every input went unanswered).

mod util;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::Duration;
use util::{http, raw_ws};

const TEXT: u8 = 1;

/// Request and frame in one write, then the FIN: the server reads the
/// data and the EOF in one wakeup.
#[test]
fn request_and_frame_then_half_close_are_served() {
    let _wd = util::watchdog("half_close", 60);
    let server = util::Server::echo();
    for round in 0..20 {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut bytes = http::upgrade_request("/", &[], &[]).into_bytes();
        bytes.extend_from_slice(&raw_ws::masked(TEXT, b"sent before the FIN"));
        stream.write_all(&bytes).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let head = raw_ws::read_head(&mut stream)
            .unwrap_or_else(|e| panic!("round {round}: no answer to the upgrade: {e}"));
        assert!(head.starts_with("HTTP/1.1 101"), "round {round}: {head:?}");
        let rest = raw_ws::read_to_close(&mut stream)
            .unwrap_or_else(|(e, got)| panic!("round {round}: not closed ({e}); got {got:?}"));
        let frames = raw_ws::parse_frames(&rest).expect("frames");
        assert_eq!(frames.len(), 1, "round {round}: {frames:?}");
        assert_eq!(frames[0].opcode, TEXT);
        assert_eq!(frames[0].payload, b"sent before the FIN");
    }
}
