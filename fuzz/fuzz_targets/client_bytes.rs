//! Bytes from a hostile server into our client: the client connects to a
//! listener on 127.0.0.1 served here, in the same thread, which reads the
//! upgrade request and answers with the input, then half-closes; the loop
//! runs until the client closed the connection (a hang is a finding).
//!
//! The first input byte is a set of flags:
//! - bit 0: the client offers permessage-deflate;
//! - bit 1: the rest is the whole answer, 101 head included (fuzzed
//!   handshakes); otherwise a valid 101 for the client's key comes first,
//!   and the rest follows as frames;
//! - bit 2 (valid 101 only): it accepts permessage-deflate;
//! - bit 3 (valid 101 only): with both no_context_takeover parameters;
//! - bit 4: the client receives in `ReceiveMode::Fragments`.
//!
//! Our client echoes every message or fragment; the server drains it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lws::{Callbacks, ConnectOptions, Deflate, Proxy, ReceiveMode};
use lws_fuzz::{accept_key, ended, Loop, Peer, MAX_MESSAGE};
use std::cell::RefCell;
use std::io::{ErrorKind, Read};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

struct Client {
    lp: Loop,
    listener: TcpListener,
    port: u16,
}

/// The accepted socket while its request is read, before it becomes a Peer.
struct Pending {
    stream: TcpStream,
    head: Vec<u8>,
}

/// Closes with a reset (SO_LINGER 0), so a long run leaves no TIME_WAIT
/// sockets behind on 127.0.0.1's ephemeral ports.
fn abort(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the fd is open (we own the stream) and linger outlives the call.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

impl Client {
    fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        Client {
            lp: Loop::new(),
            listener,
            port,
        }
    }

    fn run(&mut self, data: &[u8]) {
        let Some((&flags, rest)) = data.split_first() else {
            return;
        };
        let mut options = ConnectOptions::new(format!("ws://127.0.0.1:{}/fuzz", self.port));
        options.proxy = Proxy::None;
        options.keepalive = None;
        options.connect_timeout = Some(Duration::from_secs(2));
        options.max_message_size = MAX_MESSAGE;
        options.max_frame_size = MAX_MESSAGE;
        if flags & 1 != 0 {
            options.deflate = Some(Deflate::default());
        }
        if flags & 16 != 0 {
            options.receive = ReceiveMode::Fragments;
        }
        let handler = Callbacks::new()
            .on_message(|conn, msg| {
                let _ = conn.send(msg);
            })
            .on_fragment(|conn, f| {
                let _ = conn.send_fragment(&f.data, f.is_binary, f.is_final);
            });
        let conn = self.lp.cx.connect(options, handler).expect("connect");
        let listener = &self.listener;
        let mut pending: Option<Pending> = None;
        let mut peer: Option<Peer<TcpStream>> = None;
        let before = |peer: &mut Option<Peer<TcpStream>>| {
            if peer.is_some() {
                return true;
            }
            if pending.is_none() {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(true).unwrap();
                        pending = Some(Pending {
                            stream,
                            head: Vec::new(),
                        });
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                    Err(e) => panic!("accept: {e}"),
                }
            }
            let p = pending.as_mut().unwrap();
            let mut buf = [0u8; 4096];
            loop {
                match p.stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => p.head.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => break,
                }
            }
            let Some(end) = p.head.windows(4).position(|w| w == b"\r\n\r\n") else {
                return false;
            };
            let p = pending.take().unwrap();
            let mut out = Vec::new();
            if flags & 2 == 0 {
                let head = String::from_utf8_lossy(&p.head[..end]);
                let key = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("sec-websocket-key")
                            .then_some(value)
                    })
                    .unwrap_or("");
                out.extend_from_slice(
                    format!(
                        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                         Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
                        accept_key(key)
                    )
                    .as_bytes(),
                );
                if flags & 4 != 0 {
                    out.extend_from_slice(b"Sec-WebSocket-Extensions: permessage-deflate");
                    if flags & 8 != 0 {
                        out.extend_from_slice(
                            b"; server_no_context_takeover; client_no_context_takeover",
                        );
                    }
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(rest);
            *peer = Some(Peer::new(p.stream, out));
            true
        };
        self.lp.drive(
            &mut peer,
            before,
            || ended(conn.state()),
            "client connection",
        );
        if let Some(p) = peer {
            abort(&p.stream);
        }
    }
}

thread_local! {
    static CLIENT: RefCell<Option<Client>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    CLIENT.with(|c| {
        c.borrow_mut().get_or_insert_with(Client::new).run(data);
    });
});
