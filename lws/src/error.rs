//! The crate's error type.

use std::fmt;

/// What went wrong; each variant says what the caller can do about it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The connection is closing, closed or gone: nothing more can be sent on
    /// it. Not a bug as such (the peer may have left); safe to ignore.
    ConnectionClosed,
    /// The connection has not finished its handshake yet; wait for
    /// `on_connect` before sending.
    NotConnected,
    /// The URL cannot be used (bad syntax, not ws:// or wss://, no host).
    Url(String),
    /// An option is invalid (the message says which and why).
    InvalidOption(String),
    /// libwebsockets refused an operation (creating the context or a vhost,
    /// starting a connection); the message names which.
    Lws(String),
    /// The context has been dropped; the handle can no longer reach it.
    ContextGone,
    /// A client connection failed before or during its handshake (refused,
    /// unreachable, bad handshake answer, connect timeout, ...).
    Connect(String),
    /// The connection's send queue is at its limit
    /// (`max_send_queue`); the message comes back untouched. Wait for
    /// `on_drain`, then send it again.
    QueueFull(Box<crate::Message>),
    /// A message sent with `send_fragment` is unfinished: send its final
    /// fragment before another message.
    FragmentInProgress,
    /// `set_data` was called on a connection that already has data.
    DataAlreadySet,
    /// An I/O error from the event loop.
    Io(std::io::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ConnectionClosed => f.write_str("connection is not open"),
            Error::NotConnected => f.write_str("connection has not completed its handshake"),
            Error::Url(e) => write!(f, "invalid URL: {e}"),
            Error::InvalidOption(e) => write!(f, "invalid option: {e}"),
            Error::Lws(e) => write!(f, "libwebsockets: {e}"),
            Error::ContextGone => f.write_str("the context has been dropped"),
            Error::Connect(e) => f.write_str(e),
            Error::QueueFull(m) => write!(
                f,
                "send queue full; a {}-byte message was handed back",
                m.as_bytes().len()
            ),
            Error::FragmentInProgress => {
                f.write_str("a fragmented message is in progress; send its final fragment first")
            }
            Error::DataAlreadySet => f.write_str("this connection already has data attached"),
            Error::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}
