//! Messages and close codes.

use std::fmt;

/// A complete WebSocket data message, reassembled from its fragments.
///
/// # Examples
///
/// ```
/// use lws::Message;
/// let text: Message = "hello".into();
/// let binary: Message = vec![1u8, 2, 3].into();
/// assert!(!text.is_binary() && binary.is_binary());
/// assert_eq!(text.as_bytes(), b"hello");
/// assert_eq!(binary.into_bytes(), [1, 2, 3]);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message (valid UTF-8: lws validates it on receipt).
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

impl Message {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(s) => s.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// True for an empty payload.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True for [`Message::Binary`].
    pub fn is_binary(&self) -> bool {
        matches!(self, Message::Binary(_))
    }

    /// The payload, consuming the message.
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Message::Text(s) => s.into_bytes(),
            Message::Binary(b) => b,
        }
    }
}

/// One chunk of a received message, in
/// [`ReceiveMode::Fragments`](crate::ReceiveMode::Fragments): as lws reads
/// it, not necessarily as the peer framed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// The bytes of this chunk.
    pub data: Vec<u8>,
    /// The message is binary (else text).
    pub is_binary: bool,
    /// The first chunk of its message.
    pub is_first: bool,
    /// The last chunk of its message.
    pub is_final: bool,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Large payloads would drown a log line: show the size and a prefix.
        let (kind, bytes) = match self {
            Message::Text(s) => ("Text", s.as_bytes()),
            Message::Binary(b) => ("Binary", b.as_slice()),
        };
        let shown = &bytes[..bytes.len().min(32)];
        write!(
            f,
            "{kind}({} bytes: {:?})",
            bytes.len(),
            String::from_utf8_lossy(shown)
        )
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message::Text(s)
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Self {
        Message::Text(s.to_owned())
    }
}

impl From<Vec<u8>> for Message {
    fn from(b: Vec<u8>) -> Self {
        Message::Binary(b)
    }
}

impl From<&[u8]> for Message {
    fn from(b: &[u8]) -> Self {
        Message::Binary(b.to_vec())
    }
}

/// A WebSocket close status code (RFC 6455 §7.4). Any `u16` converts; the
/// named constants are the registered ones.
///
/// # Examples
///
/// ```
/// use lws::CloseCode;
/// assert_eq!(CloseCode::from(1001), CloseCode::AWAY);
/// assert!(CloseCode(4000).is_sendable()); // 4000-4999: for applications
/// assert!(!CloseCode::ABNORMAL.is_sendable()); // only ever reported locally
/// assert_eq!(CloseCode::TOO_BIG.to_string(), "1009");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page left).
    pub const AWAY: CloseCode = CloseCode(1001);
    /// 1002: protocol error.
    pub const PROTOCOL: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED: CloseCode = CloseCode(1003);
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: closed without a close frame (never sent on the wire).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: invalid payload data (e.g. text that is not UTF-8).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: policy violation.
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: message too big.
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client needed an extension the server did not offer.
    pub const EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: unexpected condition on the server.
    pub const INTERNAL: CloseCode = CloseCode(1011);

    /// True if the code may be sent in a close frame (RFC 6455 §7.4.1):
    /// 1000-1003, 1007-1011, and 3000-4999.
    pub fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1011 | 3000..=4999)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

impl fmt::Debug for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CloseCode({})", self.0)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
