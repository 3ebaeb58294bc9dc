//! Raw HTTP for handshake tests: hand-written upgrade requests sent on a
//! plain socket, and the server's answer read back as it came.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A plain HTTP response read to EOF from a raw socket.
#[derive(Debug)]
pub struct HttpResponse {
    pub status_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Checks the framing of a rejection: Content-Length names exactly the
    /// bytes that came before EOF, and the server says it closes.
    pub fn assert_complete(&self) {
        let length = self
            .header("Content-Length")
            .unwrap_or_else(|| panic!("no Content-Length in {self:?}"));
        assert_eq!(
            length.parse::<usize>().expect("numeric Content-Length"),
            self.body.len(),
            "Content-Length must cover the body exactly, then EOF: {self:?}"
        );
        assert_eq!(self.header("Connection"), Some("close"), "{self:?}");
    }
}

/// The standard headers of a valid version-13 upgrade request.
pub const UPGRADE_HEADERS: &[(&str, &str)] = &[
    ("Host", "127.0.0.1"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Version", "13"),
];

/// An upgrade request for `path`: the standard headers except those named
/// in `omit`, with `extra` replacing a standard header of the same name or
/// added at the end.
pub fn upgrade_request(path: &str, omit: &[&str], extra: &[(&str, &str)]) -> String {
    let mut request = format!("GET {path} HTTP/1.1\r\n");
    for (name, value) in UPGRADE_HEADERS {
        if omit.iter().any(|o| o.eq_ignore_ascii_case(name)) {
            continue;
        }
        let value = extra
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or(*value, |(_, v)| *v);
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    for (name, value) in extra {
        if !UPGRADE_HEADERS
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    request.push_str("\r\n");
    request
}

/// Writes `request` on a fresh socket to `port` on 127.0.0.1; reads on it
/// time out after 5 s, so a server that never answers or never closes
/// fails the test instead of hanging it.
fn send_request(port: u16, request: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    stream.write_all(request.as_bytes()).expect("send request");
    stream
}

/// Writes `request` on a fresh socket and reads the answer to EOF (a
/// rejection must end with the server closing; the timeout turns a server
/// that keeps the socket open into a failure, not a hang).
pub fn raw_exchange(port: u16, request: &str) -> HttpResponse {
    let mut stream = send_request(port, request);
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .expect("the server must close the connection after its response");
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> HttpResponse {
    assert!(
        !raw.is_empty(),
        "the server closed the connection without any HTTP response"
    );
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_string();
    let headers = lines
        .map(|l| {
            let (n, v) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header line {l:?}"));
            (n.trim().to_string(), v.trim().to_string())
        })
        .collect();
    HttpResponse {
        status_line,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

/// Sends `request` and returns the head of the answer (up to the blank
/// line), or everything that came before EOF if there is no blank line.
pub fn response_head(port: u16, request: &str) -> String {
    let mut stream = send_request(port, request);
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break, // EOF (or timeout): what came so far
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}
