//! Connections: the per-connection state the context owns, and the cheap
//! [`Connection`] handle users hold.

use crate::context::Shared;
use crate::{CloseCode, Error, Handle, Handler, Message, Result};
use lws_sys as sys;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::os::raw::c_int;
use std::rc::Rc;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// TCP/TLS connect or HTTP upgrade in progress (clients only).
    Connecting,
    /// Open: messages can be sent and received.
    Connected,
    /// `close()` was called; queued messages are still being sent.
    Closing,
    /// The connection has ended; `on_close` or `on_error` has run.
    Closed,
    /// The context no longer knows the connection (freed, or the context
    /// was dropped).
    Destroyed,
}

/// One queued outgoing frame: LWS_PRE bytes of headroom, then the payload,
/// so lws_write can put the frame header in front without another copy.
pub(crate) struct Frame {
    pub buf: Vec<u8>,
    pub kind: sys::lws_write_protocol,
}

impl Frame {
    pub(crate) fn new(payload: &[u8], kind: sys::lws_write_protocol) -> Frame {
        let mut buf = Vec::with_capacity(sys::LWS_PRE + payload.len());
        buf.resize(sys::LWS_PRE, 0);
        buf.extend_from_slice(payload);
        Frame { buf, kind }
    }

    pub(crate) fn payload_len(&self) -> usize {
        self.buf.len() - sys::LWS_PRE
    }
}

/// What the context keeps per connection (in a slab; the slab key is stored
/// on the wsi as its opaque user data).
pub(crate) struct ConnSlot {
    /// Unique within the context, never reused.
    pub id: u64,
    /// The lws connection; null once lws has freed it.
    pub wsi: *mut sys::lws,
    pub state: State,
    pub handler: Rc<RefCell<dyn Handler>>,
    pub queue: VecDeque<Frame>,
    pub queued_bytes: usize,
    /// Reassembly of a fragmented message.
    pub rx: Vec<u8>,
    pub rx_binary: bool,
    /// 0 = unlimited.
    pub max_message_size: usize,
    /// Our close (code and reason), sent once the queue has drained.
    pub close_request: Option<(CloseCode, String)>,
    /// The peer's close frame, when it sent one.
    pub peer_close: Option<(CloseCode, String)>,
    pub peer_addr: Option<String>,
    pub protocol: Option<String>,
    /// Request headers a client adds to its handshake.
    pub request_headers: Vec<(String, String)>,
    /// A client's handshake response headers, read before lws drops them.
    pub response_headers: Option<crate::Headers>,
}

impl ConnSlot {
    pub(crate) fn new(
        id: u64,
        handler: Rc<RefCell<dyn Handler>>,
        max_message_size: usize,
        is_client: bool,
    ) -> Self {
        ConnSlot {
            id,
            wsi: std::ptr::null_mut(),
            state: if is_client {
                State::Connecting
            } else {
                State::Connected
            },
            handler,
            queue: VecDeque::new(),
            queued_bytes: 0,
            rx: Vec::new(),
            rx_binary: false,
            max_message_size,
            close_request: None,
            peer_close: None,
            peer_addr: None,
            protocol: None,
            request_headers: Vec::new(),
            response_headers: None,
        }
    }
}

/// A handle to one WebSocket connection: cheap to clone, usable only on the
/// loop thread (use [`Handle`] from other threads).
///
/// It names the connection by slab key and unique id, so a handle kept
/// after the connection is gone never reaches another connection: sends
/// then return [`Error::ConnectionClosed`], and `close`, `pause_recv` and
/// `resume_recv` do nothing.
#[derive(Clone)]
pub struct Connection {
    pub(crate) shared: Rc<Shared>,
    pub(crate) key: usize,
    pub(crate) id: u64,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("state", &self.state())
            .finish()
    }
}

impl PartialEq for Connection {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.shared, &other.shared) && self.id == other.id
    }
}

impl Eq for Connection {}

impl Connection {
    /// The connection's id: unique within its context, never reused.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Runs `f` on this connection's slot, if it still exists.
    pub(crate) fn with_slot<R>(&self, f: impl FnOnce(&mut ConnSlot) -> R) -> Option<R> {
        let mut conns = self.shared.conns.borrow_mut();
        match conns.get_mut(self.key) {
            Some(slot) if slot.id == self.id => Some(f(slot)),
            _ => None,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.with_slot(|s| s.state).unwrap_or(State::Destroyed)
    }

    /// True while the state is [`State::Connected`].
    pub fn is_connected(&self) -> bool {
        self.state() == State::Connected
    }

    /// True while the state is [`State::Connecting`].
    pub fn is_connecting(&self) -> bool {
        self.state() == State::Connecting
    }

    /// The peer's IP address (IPv4 dotted, IPv6 without brackets), when known.
    pub fn peer_addr(&self) -> Option<String> {
        self.with_slot(|s| s.peer_addr.clone()).flatten()
    }

    /// The negotiated subprotocol, if any.
    pub fn protocol(&self) -> Option<String> {
        self.with_slot(|s| s.protocol.clone()).flatten()
    }

    /// Payload bytes queued and not yet handed to lws (framing excluded).
    pub fn send_queue_size(&self) -> usize {
        self.with_slot(|s| s.queued_bytes).unwrap_or(0)
    }

    /// A handle for other threads (send, close, stop, run on the loop).
    pub fn handle(&self) -> Handle {
        Handle::new(self.shared.remote.clone())
    }

    /// Queues a message (text or binary). Returns at once; the message is
    /// written when the socket can take it.
    ///
    /// # Errors
    /// [`Error::NotConnected`] before the handshake completed,
    /// [`Error::ConnectionClosed`] once closing, closed or gone.
    pub fn send(&self, message: impl Into<Message>) -> Result<()> {
        let message = message.into();
        let kind = if message.is_binary() {
            sys::LWS_WRITE_BINARY
        } else {
            sys::LWS_WRITE_TEXT
        };
        self.queue(Frame::new(message.as_bytes(), kind))
    }

    /// Queues a text message.
    ///
    /// # Errors
    /// As [`Connection::send`].
    pub fn send_text(&self, text: &str) -> Result<()> {
        self.queue(Frame::new(text.as_bytes(), sys::LWS_WRITE_TEXT))
    }

    /// Queues a binary message.
    ///
    /// # Errors
    /// As [`Connection::send`].
    pub fn send_binary(&self, data: &[u8]) -> Result<()> {
        self.queue(Frame::new(data, sys::LWS_WRITE_BINARY))
    }

    /// Queues a ping; the payload is cut to 125 bytes (RFC 6455 §5.5).
    ///
    /// # Errors
    /// As [`Connection::send`].
    pub fn ping(&self, payload: &[u8]) -> Result<()> {
        self.queue(Frame::new(
            &payload[..payload.len().min(125)],
            sys::LWS_WRITE_PING,
        ))
    }

    /// Queues an unsolicited pong; the payload is cut to 125 bytes. (lws
    /// answers pings by itself.)
    ///
    /// # Errors
    /// As [`Connection::send`].
    pub fn pong(&self, payload: &[u8]) -> Result<()> {
        self.queue(Frame::new(
            &payload[..payload.len().min(125)],
            sys::LWS_WRITE_PONG,
        ))
    }

    fn queue(&self, frame: Frame) -> Result<()> {
        let wsi = self
            .with_slot(|s| match s.state {
                State::Connected => {
                    let was_empty = s.queue.is_empty();
                    s.queued_bytes += frame.payload_len();
                    s.queue.push_back(frame);
                    // A non-empty queue always has a writable request
                    // outstanding, so only the first frame asks.
                    Ok(was_empty.then_some(s.wsi))
                }
                State::Connecting => Err(Error::NotConnected),
                _ => Err(Error::ConnectionClosed),
            })
            .unwrap_or(Err(Error::ConnectionClosed))?;
        if let Some(wsi) = wsi {
            request_writable(wsi);
        }
        Ok(())
    }

    /// Closes the connection cleanly: messages already queued are sent
    /// first, then a close frame with `code` and `reason` (cut to 123 bytes
    /// at a character boundary); `on_close` follows once the peer answers.
    ///
    /// Does nothing if the connection is connecting, already closing,
    /// closed or gone.
    pub fn close(&self, code: CloseCode, reason: &str) {
        let wsi = self.with_slot(|s| {
            if s.state != State::Connected {
                return None;
            }
            s.state = State::Closing;
            s.close_request = Some((code, truncate_reason(reason).to_owned()));
            Some(s.wsi)
        });
        if let Some(Some(wsi)) = wsi {
            request_writable(wsi);
        }
    }

    /// Stops reading from the peer (TCP flow control): its data backs up in
    /// the kernel until [`Connection::resume_recv`]. No-op once closed.
    pub fn pause_recv(&self) {
        self.flow(false)
    }

    /// Resumes reading after [`Connection::pause_recv`]. No-op once closed.
    pub fn resume_recv(&self) {
        self.flow(true)
    }

    fn flow(&self, enable: bool) {
        let wsi = self
            .with_slot(|s| matches!(s.state, State::Connected | State::Closing).then_some(s.wsi));
        if let Some(Some(wsi)) = wsi {
            // SAFETY: the slot is live, so wsi is a live lws connection.
            unsafe { sys::lws_rx_flow_control(wsi, enable as c_int) };
        }
    }
}

/// Asks lws for a WRITEABLE callback on a live wsi.
pub(crate) fn request_writable(wsi: *mut sys::lws) {
    if !wsi.is_null() {
        // SAFETY: callers pass the wsi of a live slot.
        unsafe { sys::lws_callback_on_writable(wsi) };
    }
}

/// A close reason fits a control frame: at most 123 bytes, whole characters.
fn truncate_reason(reason: &str) -> &str {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::truncate_reason;

    #[test]
    fn close_reason_is_cut_at_a_char_boundary() {
        let long = "é".repeat(100); // 200 bytes
        let cut = truncate_reason(&long);
        assert!(cut.len() <= 123);
        assert_eq!(cut.len(), 122);
        assert_eq!(truncate_reason("bye"), "bye");
    }
}
