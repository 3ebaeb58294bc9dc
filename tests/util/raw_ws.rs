//! Raw WebSocket on a plain socket, for peers that must misbehave (never
//! read, never answer a ping or a close): the upgrade done by hand on
//! either side, and frames written and read byte by byte.

use super::http;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Connects to `port` on 127.0.0.1 and upgrades by hand; returns the
/// socket (reads time out after 10 s) and the moment just before the
/// request was sent (the server heard nothing from us before it).
pub fn upgrade(port: u16, extra: &[(&str, &str)]) -> (TcpStream, Instant) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let sent = Instant::now();
    stream
        .write_all(http::upgrade_request("/", &[], extra).as_bytes())
        .expect("send upgrade");
    let head = read_head(&mut stream).expect("upgrade response");
    assert!(
        head.starts_with("HTTP/1.1 101"),
        "the upgrade was refused: {head:?}"
    );
    (stream, sent)
}

/// Reads up to and including the blank line that ends an HTTP head, one
/// byte at a time (nothing after it is consumed).
pub fn read_head(stream: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// The Sec-WebSocket-Key of an upgrade request's head, if it has one.
pub fn read_key(head: &str) -> Option<String> {
    head.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case("sec-websocket-key")
            .then(|| v.trim().to_string())
    })
}

/// Writes a 101 response carrying `accept` as its Sec-WebSocket-Accept
/// (the right one is `derive_accept_key` of the client's key; a hostile
/// server may send any other).
pub fn switching(stream: &mut impl Write, accept: &str) -> io::Result<()> {
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(response.as_bytes())
}

/// Server side: reads a client's upgrade request on `stream` and accepts
/// it with a 101 (no subprotocol, no extension).
pub fn accept(stream: &mut TcpStream) -> io::Result<()> {
    let head = read_head(stream)?;
    let key = read_key(&head).ok_or_else(|| io::Error::other(format!("no key in {head:?}")))?;
    switching(
        stream,
        &tungstenite::handshake::derive_accept_key(key.as_bytes()),
    )
}

pub const CONTINUATION: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// One frame as it came off the wire (payload unmasked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The first header byte as sent: FIN, RSV1-3 and the opcode.
    pub head: u8,
    pub fin: bool,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The (code, reason) of a close frame.
    pub fn close_code(&self) -> Option<(u16, String)> {
        (self.opcode == CLOSE && self.payload.len() >= 2).then(|| {
            (
                u16::from_be_bytes([self.payload[0], self.payload[1]]),
                String::from_utf8_lossy(&self.payload[2..]).into_owned(),
            )
        })
    }
}

/// Reads one whole frame.
pub fn read_frame(stream: &mut impl Read) -> io::Result<Frame> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head)?;
    let masked = head[1] & 0x80 != 0;
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            stream.read_exact(&mut b)?;
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            stream.read_exact(&mut b)?;
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut mask = [0u8; 4];
    if masked {
        stream.read_exact(&mut mask)?;
    }
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload)?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Ok(Frame {
        head: head[0],
        fin: head[0] & 0x80 != 0,
        opcode: head[0] & 0x0f,
        masked,
        payload,
    })
}

/// The masking key of the frames [`masked`] and [`frame`] callers use.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A final client frame (masked, as clients must).
pub fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(true, 0, opcode, Some(MASK), payload)
}

/// Any frame, well formed or not: FIN, RSV bits (`rsv` is 0-7, RSV1 the
/// highest), any 4-bit opcode, masked with `mask` or not, and the payload
/// with its true length (7-bit, 16-bit or 64-bit form, as RFC 6455 says).
pub fn frame(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = frame_header(fin, rsv, opcode, mask, payload.len() as u64);
    match mask {
        Some(m) => out.extend(payload.iter().enumerate().map(|(i, b)| b ^ m[i % 4])),
        None => out.extend_from_slice(payload),
    }
    out
}

/// Only the header of a frame that claims `len` payload bytes (any u64,
/// in the shortest form that holds it; the 64-bit form is written as is,
/// top bit included): for lengths the bytes that follow do not match.
pub fn frame_header(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, len: u64) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | ((rsv & 7) << 4) | (opcode & 0x0f)];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match len {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
    if let Some(m) = mask {
        out.extend_from_slice(&m);
    }
    out
}

/// A close payload: the code's two bytes, then `reason` as given (so it
/// may be bad UTF-8).
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// Splits `bytes` into the frames they hold; Err if they end inside one.
pub fn parse_frames(bytes: &[u8]) -> io::Result<Vec<Frame>> {
    let mut cursor = io::Cursor::new(bytes);
    let mut frames = Vec::new();
    while (cursor.position() as usize) < bytes.len() {
        frames.push(read_frame(&mut cursor)?);
    }
    Ok(frames)
}

/// True for the errors a read gets from a peer that reset the connection.
pub fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
    )
}

/// Reads until EOF (or a reset, which also ends the connection); Err if
/// the read timed out instead, with what came so far.
pub fn read_to_close(stream: &mut TcpStream) -> Result<Vec<u8>, (io::Error, Vec<u8>)> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_reset(&e) => return Ok(got),
            Err(e) => return Err((e, got)),
        }
    }
}
