//! Shared harness of the fuzz targets: a peer socket that writes the fuzz
//! input and drains whatever our side answers, and a bounded driver for an
//! embedded [`lws::Context`] on a `mio::Poll` owned here.
//!
//! Each input gets a fresh connection on a context made once per process;
//! the driver only returns when lws closed the socket (the peer reads EOF)
//! and the connection is gone, so nothing carries over to the next input.
//! A connection still open after the peer's half-close and [`deadline()`] of
//! servicing is a hang: the target panics and libFuzzer keeps the input.

#[cfg(all(lws_c_coverage, target_arch = "x86_64"))]
pub mod c_coverage;

use lws::{Context, ContextOptions, State};
use mio::{Events, Poll};
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

/// Wall-clock bound on one input: a connection whose peer sent everything
/// and half-closed must be closed by then. 6 s (lws's 5 s close-ack
/// timeout, which it waits out after failing some connections even though
/// the peer's EOF is pending: see README.md), or `LWS_FUZZ_DEADLINE_MS`.
pub fn deadline() -> Duration {
    static D: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *D.get_or_init(|| {
        std::env::var("LWS_FUZZ_DEADLINE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(Duration::from_secs(6), Duration::from_millis)
    })
}

/// Longest single poll wait, so the peer's writes and reads keep moving
/// while lws waits on its own timers.
const MAX_WAIT: Duration = Duration::from_millis(20);

/// Largest message or frame the fuzzed connections accept: a small
/// deflated input may inflate to this much and no more.
pub const MAX_MESSAGE: usize = 1 << 20;

/// A nonblocking socket to our side: writes `out`, then half-closes, and
/// reads (and drops) everything until EOF.
pub struct Peer<S> {
    /// The socket.
    pub stream: S,
    out: Vec<u8>,
    written: usize,
    shut: bool,
    /// Our side closed the connection (read EOF or a reset).
    pub eof: bool,
    /// Bytes read from our side so far.
    pub received: usize,
}

/// What a peer socket needs beyond Read + Write.
pub trait HalfClose: Read + Write {
    /// `shutdown(SHUT_WR)`.
    fn shutdown_write(&self) -> std::io::Result<()>;
}

impl HalfClose for std::os::unix::net::UnixStream {
    fn shutdown_write(&self) -> std::io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

impl HalfClose for std::net::TcpStream {
    fn shutdown_write(&self) -> std::io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

impl<S: HalfClose> Peer<S> {
    /// A peer on a nonblocking `stream` that has `out` to write.
    pub fn new(stream: S, out: Vec<u8>) -> Self {
        Peer {
            stream,
            out,
            written: 0,
            shut: false,
            eof: false,
            received: 0,
        }
    }

    /// Queues more bytes to write (before the half-close).
    pub fn push(&mut self, bytes: &[u8]) {
        assert!(!self.shut, "push after the half-close");
        self.out.extend_from_slice(bytes);
    }

    /// True while bytes wait to be written.
    pub fn writing(&self) -> bool {
        self.written < self.out.len()
    }

    /// Writes what the socket takes; half-closes once everything is out
    /// and `finish` is true; reads until it would block.
    pub fn step(&mut self, finish: bool) {
        while self.writing() && !self.eof {
            match self.stream.write(&self.out[self.written..]) {
                Ok(n) => self.written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // Our side hung up before reading it all: fine, it may.
                Err(_) => {
                    self.written = self.out.len();
                }
            }
        }
        if finish && !self.writing() && !self.shut {
            self.shut = true;
            let _ = self.stream.shutdown_write();
        }
        let mut buf = [0u8; 16384];
        while !self.eof {
            match self.stream.read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.received += n;
                    if verbose() {
                        eprintln!("peer read: {}", buf[..n].escape_ascii());
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.eof = true,
            }
        }
    }
}

/// `LWS_FUZZ_VERBOSE=1`: print what the peer reads (to look at one input).
fn verbose() -> bool {
    static V: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *V.get_or_init(|| std::env::var_os("LWS_FUZZ_VERBOSE").is_some())
}

/// Prints `what` when `LWS_FUZZ_VERBOSE` is set.
pub fn note(what: &str) {
    if verbose() {
        eprintln!("lws-fuzz: {what}");
    }
}

/// With [`verbose`], lws's and lws-rs's log lines go to stderr.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        eprintln!("{} {}: {}", record.level(), record.target(), record.args());
    }
    fn flush(&self) {}
}

/// An embedded context and its Poll, made once per process.
pub struct Loop {
    /// The Poll the context registers in.
    pub poll: Poll,
    events: Events,
    /// The context under test.
    pub cx: Context,
}

impl Loop {
    /// A context with default options on a new Poll.
    pub fn new() -> Self {
        if verbose() {
            log::set_logger(&StderrLog).expect("logger");
            log::set_max_level(log::LevelFilter::Debug);
            lws::set_lws_log_level(log::LevelFilter::Debug);
        }
        let poll = Poll::new().expect("mio Poll");
        let cx = Context::embedded(poll.registry(), ContextOptions::default()).expect("context");
        Loop {
            poll,
            events: Events::with_capacity(64),
            cx,
        }
    }

    /// One turn: poll (at most `cap`) and service.
    pub fn turn(&mut self, cap: Duration) {
        let wait = self.cx.poll_timeout().map_or(cap, |t| t.min(cap));
        match self.poll.poll(&mut self.events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("poll: {e}"),
        }
        self.cx.handle_events(&self.events);
    }

    /// Services the loop and the peer until `done()` and the peer saw our
    /// side close; `before` runs each turn first (e.g. a hostile server's
    /// accept) and says whether the peer may half-close yet. Panics (a
    /// finding) past [`deadline()`].
    pub fn drive<S: HalfClose>(
        &mut self,
        peer: &mut Option<Peer<S>>,
        mut before: impl FnMut(&mut Option<Peer<S>>) -> bool,
        done: impl Fn() -> bool,
        what: &str,
    ) {
        let start = Instant::now();
        loop {
            let finish = before(peer);
            if let Some(p) = peer.as_mut() {
                p.step(finish);
            }
            // No peer yet (a client that ended before it was accepted) counts
            // as closed.
            if peer.as_ref().is_none_or(|p| p.eof) && done() {
                break;
            }
            if start.elapsed() > deadline() {
                let state = peer.as_ref().map(|p| (p.shut, p.eof, p.received));
                panic!(
                    "hang: {what} still open {:?} after the input \
                     (peer half-closed, saw EOF, bytes read: {state:?})",
                    deadline()
                );
            }
            let busy = peer.as_ref().is_some_and(|p| p.writing());
            self.turn(if busy {
                Duration::from_millis(1)
            } else {
                MAX_WAIT
            });
        }
        note(&format!(
            "{what}: closed after {:?}, peer read {} bytes",
            start.elapsed(),
            peer.as_ref().map_or(0, |p| p.received)
        ));
        // A few more turns, so lws frees what it closed before the next input.
        for _ in 0..4 {
            self.turn(Duration::ZERO);
        }
        assert!(
            self.cx.connections().is_empty(),
            "{what}: a connection outlived its socket: {:?}",
            self.cx
                .connections()
                .iter()
                .map(|c| (c.id(), c.state()))
                .collect::<Vec<_>>()
        );
    }
}

impl Default for Loop {
    fn default() -> Self {
        Self::new()
    }
}

/// True once a connection has ended.
pub fn ended(state: State) -> bool {
    matches!(state, State::Closed | State::Destroyed)
}

/// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (RFC 6455 4.2.2).
pub fn accept_key(key: &str) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.trim().as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64(&sha.digest().bytes())
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn accept_key_matches_rfc6455_example() {
        assert_eq!(
            super::accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiXswWnAJOgOcxGw=="
        );
    }
}
