//! Connections: the per-connection state the context owns, and the cheap
//! [`Connection`] handle users hold.

use crate::context::Shared;
use crate::options::Limits;
use crate::{CloseCode, Error, Handle, Handler, Headers, Message, Result};
use lws_sys as sys;
use std::any::Any;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::CString;
use std::os::raw::c_int;
use std::rc::Rc;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// TCP/TLS connect or HTTP upgrade in progress (a server connection
    /// is in this state during `on_handshake`).
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
    /// Payload bytes it carries, for the queue size (a raw frame's buffer
    /// also holds the frame header).
    pub payload: usize,
}

impl Frame {
    /// A frame of `payload`, in the context's spare buffer when it is large
    /// (crate::buffers).
    pub(crate) fn new(
        spare: &crate::buffers::Spare,
        payload: &[u8],
        kind: sys::lws_write_protocol,
    ) -> Frame {
        let mut buf = spare.take(sys::LWS_PRE + payload.len());
        buf.resize(sys::LWS_PRE, 0);
        buf.extend_from_slice(payload);
        Frame {
            buf,
            kind,
            payload: payload.len(),
        }
    }

    /// A whole frame we built (crate::deflate::raw_frame), written as is.
    pub(crate) fn raw(buf: Vec<u8>, payload: usize) -> Frame {
        Frame {
            buf,
            kind: sys::LWS_WRITE_HTTP, // LWS_WRITE_RAW: sent as is
            payload,
        }
    }

    /// Bytes to hand to lws_write (after the LWS_PRE headroom).
    pub(crate) fn write_len(&self) -> usize {
        self.buf.len() - sys::LWS_PRE
    }

    /// A data frame lws runs through its extensions (not a control frame,
    /// not one we built).
    pub(crate) fn is_extended(&self) -> bool {
        let base = self.kind & 0x1f;
        base == sys::LWS_WRITE_TEXT
            || base == sys::LWS_WRITE_BINARY
            || base == sys::LWS_WRITE_CONTINUATION
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
    /// Bytes of the message being received in fragment mode.
    pub rx_streamed: usize,
    /// Closing because of a bad message: ignore what else arrives.
    pub rx_discard: bool,
    /// A client connection (its frames are masked).
    pub is_client: bool,
    /// The last chunk received did not end its frame.
    pub rx_in_frame: bool,
    /// on_writeable has handed the close to lws.
    pub close_sent: bool,
    pub limits: Limits,
    /// A message sent with send_fragment is in progress: is it binary?
    pub tx_fragment: Option<bool>,
    /// With deflate, the message in progress has put nothing on the wire
    /// yet (its fragments so far were empty and held back): the next
    /// fragment starts it.
    pub tx_fragment_held: bool,
    /// Our close (code and reason), sent once the queue has drained.
    pub close_request: Option<(CloseCode, String)>,
    /// The peer's close frame, when it sent one.
    pub peer_close: Option<(CloseCode, String)>,
    pub peer_addr: Option<String>,
    /// A wss:// client to an IPv6 literal: the address its server
    /// certificate must name (checked by us, not lws).
    pub verify_ip: Option<String>,
    /// Common name of the peer's TLS certificate.
    pub peer_cert_name: Option<String>,
    pub protocol: Option<String>,
    /// Request headers a client adds to its handshake.
    pub request_headers: Vec<(String, String)>,
    /// A client's handshake response headers, read before lws drops them.
    pub response_headers: Option<Headers>,
    /// Subprotocols a server connection may agree to.
    pub protocols_allowed: Vec<String>,
    /// Headers a server adds to its 101 response ("Name:", value).
    pub response_headers_out: Vec<(CString, CString)>,
    /// A server's request headers, read during the handshake.
    pub request_headers_in: Option<Headers>,
    /// The user's typed per-connection data (an `Rc<RefCell<T>>`).
    pub data: Option<Rc<dyn Any>>,
    /// Ping and hang-up limits (crate::keepalive).
    pub keepalive: Option<crate::Keepalive>,
    /// When the peer last proved alive (anything received), and whether
    /// our keepalive ping is outstanding.
    pub last_heard: std::time::Instant,
    pub pinged: bool,
    /// Bytes of ours the peer's TCP had acknowledged at the last keepalive
    /// sweep that looked (crate::keepalive: progress is a sign of life
    /// while we have data for the peer it cannot have had yet).
    pub acked_mark: Option<u64>,
    /// TCP_NODELAY to set once connected (None: leave lws's choice).
    pub nodelay: Option<bool>,
    /// permessage-deflate settings to accept (server) or offer (client).
    pub deflate: Option<crate::Deflate>,
    /// permessage-deflate was negotiated.
    pub deflate_active: bool,
    /// The last compressed frame handed to lws: zlib may still read it
    /// while lws drains the message over several writes.
    pub tx_in_flight: Option<Frame>,
    /// Counts this connection against its listener's max_connections
    /// while the slot exists (crate::limits).
    pub admitted: Option<crate::limits::Admission>,
}

impl ConnSlot {
    pub(crate) fn new(
        id: u64,
        handler: Rc<RefCell<dyn Handler>>,
        limits: Limits,
        state: State,
    ) -> Self {
        ConnSlot {
            id,
            wsi: std::ptr::null_mut(),
            state,
            handler,
            queue: VecDeque::new(),
            queued_bytes: 0,
            rx: Vec::new(),
            rx_binary: false,
            rx_streamed: 0,
            rx_discard: false,
            is_client: false,
            rx_in_frame: false,
            close_sent: false,
            limits,
            tx_fragment: None,
            tx_fragment_held: false,
            close_request: None,
            peer_close: None,
            peer_addr: None,
            peer_cert_name: None,
            verify_ip: None,
            protocol: None,
            request_headers: Vec::new(),
            response_headers: None,
            protocols_allowed: Vec::new(),
            response_headers_out: Vec::new(),
            request_headers_in: None,
            data: None,
            keepalive: None,
            last_heard: std::time::Instant::now(),
            pinged: false,
            acked_mark: None,
            nodelay: None,
            deflate: None,
            deflate_active: false,
            tx_in_flight: None,
            admitted: None,
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

    /// The common name (CN) of the certificate the peer presented over TLS:
    /// a client certificate on a mutual-TLS server, the server's on a wss://
    /// client. None without TLS or a certificate.
    pub fn peer_cert_name(&self) -> Option<String> {
        self.with_slot(|s| s.peer_cert_name.clone()).flatten()
    }

    /// True when permessage-deflate was negotiated on this connection.
    pub fn permessage_deflate(&self) -> bool {
        self.with_slot(|s| s.deflate_active).unwrap_or(false)
    }

    /// The negotiated subprotocol, if any.
    pub fn protocol(&self) -> Option<String> {
        self.with_slot(|s| s.protocol.clone()).flatten()
    }

    /// Payload bytes queued and not yet handed to lws (framing excluded).
    pub fn send_queue_size(&self) -> usize {
        self.with_slot(|s| s.queued_bytes).unwrap_or(0)
    }

    /// Sets this connection's send queue limit (payload bytes; 0 =
    /// unlimited), overriding `max_send_queue` from its options: sends
    /// beyond it fail with [`Error::QueueFull`] and hand the message back.
    /// What is queued already stays. No-op once the connection is gone.
    pub fn set_max_send_queue(&self, bytes: usize) {
        self.with_slot(|s| s.limits.max_send_queue = bytes);
    }

    /// A handle for other threads (send, close, stop, run on the loop).
    pub fn handle(&self) -> Handle {
        Handle::new(self.shared.remote.clone())
    }

    /// The context this connection belongs to, as a view: everything but
    /// [`Context::run`](crate::Context::run) works on it (list connections,
    /// broadcast, connect, listen, timers), and dropping it leaves the
    /// context alone. Once the owning `Context` is dropped, its methods
    /// fail with [`Error::ContextGone`] or do nothing.
    ///
    /// # Examples
    ///
    /// A chat relay: every message goes to every connection.
    ///
    /// ```
    /// let relay = lws::Callbacks::new().on_message(|conn, msg| {
    ///     conn.context().broadcast(&msg);
    /// });
    /// # let _ = relay;
    /// ```
    pub fn context(&self) -> crate::Context {
        crate::Context::view(&self.shared)
    }

    /// Queues a message (text or binary). Returns at once; the message is
    /// written when the socket can take it.
    ///
    /// # Errors
    /// [`Error::NotConnected`] before the handshake completed,
    /// [`Error::ConnectionClosed`] once closing, closed or gone,
    /// [`Error::QueueFull`] (with the message) when the send queue limit
    /// is reached, [`Error::FragmentInProgress`] while a message sent with
    /// [`Connection::send_fragment`] is unfinished.
    ///
    /// lws: the frame is kept with `LWS_PRE` bytes of headroom, and
    /// written at the next `LWS_CALLBACK_SERVER_WRITEABLE` /
    /// `LWS_CALLBACK_CLIENT_WRITEABLE` (lws's rule that `lws_write` is
    /// called only from there is kept for you).
    ///
    /// # Examples
    ///
    /// A server that greets each client; the client closes after reading
    /// the greeting. With a queue limit, a refused message comes back to
    /// be sent again after `on_drain`.
    ///
    /// ```
    /// use lws::{Callbacks, CloseCode, ConnectOptions, Context, ContextOptions, Error,
    ///           ListenOptions, Message};
    /// use std::{cell::RefCell, rc::Rc, time::Duration};
    ///
    /// let cx = Context::new(ContextOptions::default())?;
    /// let mut options = ListenOptions::new(0);
    /// options.max_send_queue = 1 << 20;
    /// let server = Callbacks::new().on_connect(|conn, _request| {
    ///     match conn.send(Message::Text("welcome".into())) {
    ///         Ok(()) => {}
    ///         Err(Error::QueueFull(message)) => {
    ///             // Over max_send_queue: keep `message`, resend from on_drain.
    ///             drop(message);
    ///         }
    ///         Err(e) => eprintln!("not sent: {e}"), // e.g. the client left
    ///     }
    /// });
    /// let port = cx.listen(options, server)?.port();
    ///
    /// let got = Rc::new(RefCell::new(Vec::new()));
    /// let seen = got.clone();
    /// let client = Callbacks::new()
    ///     .on_message(move |conn, msg| {
    ///         seen.borrow_mut().push(msg);
    ///         conn.close(CloseCode::NORMAL, "");
    ///     })
    ///     .on_close(|conn, _, _| conn.context().stop());
    /// cx.connect(ConnectOptions::new(format!("ws://127.0.0.1:{port}/")), client)?;
    /// cx.set_timeout(Duration::from_secs(10), |cx| cx.stop()); // a bound on the run
    /// cx.run()?;
    /// assert_eq!(*got.borrow(), [Message::Text("welcome".into())]);
    /// # Ok::<(), lws::Error>(())
    /// ```
    pub fn send(&self, message: impl Into<Message>) -> Result<()> {
        let message = message.into();
        let kind = if message.is_binary() {
            sys::LWS_WRITE_BINARY
        } else {
            sys::LWS_WRITE_TEXT
        };
        self.queue(message.as_bytes(), kind, Class::Message)
            .map_err(|r| r.or_message(|| message))
    }

    /// [`Connection::send`] without taking the message (a queue limit
    /// hands back a copy): for broadcasting one message to many.
    pub(crate) fn send_ref(&self, message: &Message) -> Result<()> {
        let kind = if message.is_binary() {
            sys::LWS_WRITE_BINARY
        } else {
            sys::LWS_WRITE_TEXT
        };
        self.queue(message.as_bytes(), kind, Class::Message)
            .map_err(|r| r.or_message(|| message.clone()))
    }

    /// Queues a text message (EV::Websockets' `send`).
    ///
    /// # Errors
    /// As [`Connection::send`].
    ///
    /// # Examples
    ///
    /// ```
    /// let server = lws::Callbacks::new().on_connect(|conn, _| {
    ///     if let Err(e) = conn.send_text("hello") {
    ///         eprintln!("connection {}: {e}", conn.id());
    ///     }
    /// });
    /// # let _ = server;
    /// ```
    pub fn send_text(&self, text: &str) -> Result<()> {
        self.queue(text.as_bytes(), sys::LWS_WRITE_TEXT, Class::Message)
            .map_err(|r| r.or_message(|| Message::Text(text.to_owned())))
    }

    /// Queues a binary message. Like every send, the payload is copied
    /// once, into a buffer with lws's `LWS_PRE` headroom in front.
    ///
    /// # Errors
    /// As [`Connection::send`].
    ///
    /// # Examples
    ///
    /// ```
    /// let server = lws::Callbacks::new().on_connect(|conn, _| {
    ///     let header = [0x01, 0x00, 0x02];
    ///     let _ = conn.send_binary(&header);
    ///     let _ = conn.send(vec![0u8; 1024]); // the same, from a Vec<u8>
    /// });
    /// # let _ = server;
    /// ```
    pub fn send_binary(&self, data: &[u8]) -> Result<()> {
        self.queue(data, sys::LWS_WRITE_BINARY, Class::Message)
            .map_err(|r| r.or_message(|| Message::Binary(data.to_vec())))
    }

    /// Queues one fragment of a message sent in pieces. The first call
    /// starts the message (text or binary per `is_binary`; later calls'
    /// `is_binary` is ignored); `is_final` ends it. Until then, `send` and
    /// friends fail with [`Error::FragmentInProgress`]; pings and pongs may
    /// still be sent. The peer receives one message.
    ///
    /// # Errors
    /// As [`Connection::send`]; a refused fragment comes back in
    /// [`Error::QueueFull`] as [`Message::Binary`], and the message is still
    /// in progress (send that fragment again later).
    ///
    /// # Examples
    ///
    /// A client sends one text message in two pieces; the server's
    /// `on_message` gets it whole.
    ///
    /// ```
    /// use lws::{Callbacks, CloseCode, ConnectOptions, Context, ContextOptions, ListenOptions};
    /// use std::{cell::RefCell, rc::Rc, time::Duration};
    ///
    /// let cx = Context::new(ContextOptions::default())?;
    /// let got = Rc::new(RefCell::new(None));
    /// let seen = got.clone();
    /// let server = Callbacks::new().on_message(move |conn, msg| {
    ///     *seen.borrow_mut() = Some(msg);
    ///     conn.close(CloseCode::NORMAL, "");
    /// });
    /// let port = cx.listen(ListenOptions::new(0), server)?.port();
    ///
    /// let client = Callbacks::new()
    ///     .on_connect(|conn, _| {
    ///         let _ = conn.send_fragment(b"Hello, ", false, false);
    ///         let _ = conn.ping(b"between the pieces"); // control frames may go between
    ///         let _ = conn.send_fragment(b"world", false, true);
    ///     })
    ///     .on_close(|conn, _, _| conn.context().stop());
    /// cx.connect(ConnectOptions::new(format!("ws://127.0.0.1:{port}/")), client)?;
    /// cx.set_timeout(Duration::from_secs(10), |cx| cx.stop()); // a bound on the run
    /// cx.run()?;
    /// assert_eq!(*got.borrow(), Some(lws::Message::Text("Hello, world".into())));
    /// # Ok::<(), lws::Error>(())
    /// ```
    pub fn send_fragment(&self, data: &[u8], is_binary: bool, is_final: bool) -> Result<()> {
        self.queue(
            data,
            0,
            Class::Fragment {
                is_binary,
                is_final,
            },
        )
        .map_err(|r| r.or_message(|| Message::Binary(data.to_vec())))
    }

    /// Queues a ping; the payload is cut to 125 bytes (RFC 6455 §5.5).
    /// Control frames are not counted against the send queue limit.
    ///
    /// # Errors
    /// [`Error::NotConnected`] or [`Error::ConnectionClosed`], as
    /// [`Connection::send`].
    pub fn ping(&self, payload: &[u8]) -> Result<()> {
        self.queue(
            &payload[..payload.len().min(125)],
            sys::LWS_WRITE_PING,
            Class::Control,
        )
        .map_err(|r| r.or_message(|| Message::Binary(payload.to_vec())))
    }

    /// Queues an unsolicited pong; the payload is cut to 125 bytes. (lws
    /// answers pings by itself.)
    ///
    /// # Errors
    /// As [`Connection::ping`].
    pub fn pong(&self, payload: &[u8]) -> Result<()> {
        self.queue(
            &payload[..payload.len().min(125)],
            sys::LWS_WRITE_PONG,
            Class::Control,
        )
        .map_err(|r| r.or_message(|| Message::Binary(payload.to_vec())))
    }

    fn queue(
        &self,
        payload: &[u8],
        kind: sys::lws_write_protocol,
        class: Class,
    ) -> Result<(), Refused> {
        let wsi = self
            .with_slot(|s| {
                match s.state {
                    State::Connected => {}
                    State::Connecting => return Err(Refused::Error(Error::NotConnected)),
                    _ => return Err(Refused::Error(Error::ConnectionClosed)),
                }
                // This frame starts a message (or is a whole one).
                let starts = match class {
                    Class::Control => false,
                    Class::Message => true,
                    Class::Fragment { .. } => s.tx_fragment.is_none() || s.tx_fragment_held,
                };
                let kind = match class {
                    Class::Control => kind,
                    Class::Message if s.tx_fragment.is_some() => {
                        return Err(Refused::Error(Error::FragmentInProgress))
                    }
                    Class::Message => kind,
                    Class::Fragment {
                        is_binary,
                        is_final,
                    } => {
                        let binary = s.tx_fragment.unwrap_or(is_binary);
                        let initial = if binary {
                            sys::LWS_WRITE_BINARY
                        } else {
                            sys::LWS_WRITE_TEXT
                        };
                        sys::lws_write_ws_flags(initial as c_int, starts, is_final)
                            as sys::lws_write_protocol
                    }
                };
                let limit = s.limits.max_send_queue;
                // A message bigger than the limit still goes out alone.
                if class != Class::Control
                    && limit > 0
                    && s.queued_bytes > 0
                    && s.queued_bytes + payload.len() > limit
                {
                    return Err(Refused::Full);
                }
                if let Class::Fragment {
                    is_binary,
                    is_final,
                } = class
                {
                    s.tx_fragment = if is_final {
                        None
                    } else {
                        Some(s.tx_fragment.unwrap_or(is_binary))
                    };
                }
                let whole = match class {
                    Class::Message => true,
                    Class::Fragment { is_final, .. } => starts && is_final,
                    Class::Control => false,
                };
                let unfinished = matches!(
                    class,
                    Class::Fragment {
                        is_final: false,
                        ..
                    }
                );
                if s.deflate_active && unfinished && payload.is_empty() {
                    // lws's compressor sends an empty first fragment as a
                    // plain frame, and the message's compressed rest then
                    // breaks the framing. An empty fragment that does not
                    // end the message carries nothing: it is not sent, and
                    // if it was to start the message the next fragment does.
                    s.tx_fragment_held = starts;
                    return Ok(None);
                }
                if class != Class::Control {
                    s.tx_fragment_held = false;
                }
                let was_empty = s.queue.is_empty();
                s.queued_bytes += payload.len();
                let max_frame = s.limits.max_frame_size;
                if class == Class::Message && max_frame > 0 && payload.len() > max_frame {
                    // Frames of at most max_frame_size: the message goes out
                    // as a start frame and continuations.
                    let chunks = payload.chunks(max_frame);
                    let last = chunks.len() - 1;
                    for (i, chunk) in chunks.enumerate() {
                        let flags = sys::lws_write_ws_flags(kind as c_int, i == 0, i == last);
                        s.queue.push_back(Frame::new(
                            &self.shared.spare,
                            chunk,
                            flags as sys::lws_write_protocol,
                        ));
                    }
                } else if whole
                    && s.deflate_active
                    && (payload.is_empty() || payload.len() < s.deflate.map_or(0, |d| d.threshold))
                    && (max_frame == 0 || payload.len() <= max_frame)
                {
                    // Too small to gain from compression: our own frame,
                    // RSV1 clear, which lws's compressor never sees. Always
                    // so for an empty message: lws compresses one that
                    // follows another to zero bytes, which no inflater
                    // reads (a compressed empty message is one byte, 00).
                    let mask = s
                        .is_client
                        .then(|| self.shared.mask_keys.one(self.shared.raw.get()));
                    let buf =
                        crate::deflate::raw_frame(payload, kind == sys::LWS_WRITE_BINARY, mask);
                    s.queue.push_back(Frame::raw(buf, payload.len()));
                } else {
                    s.queue
                        .push_back(Frame::new(&self.shared.spare, payload, kind));
                }
                // A non-empty queue always has a writable request
                // outstanding, so only the first frame asks.
                Ok(was_empty.then_some(s.wsi))
            })
            .unwrap_or(Err(Refused::Error(Error::ConnectionClosed)))?;
        if let Some(wsi) = wsi {
            request_writable(wsi);
        }
        Ok(())
    }

    /// Attaches typed data to this connection (EV::Websockets' `stash`,
    /// typed): set it once, e.g. in `on_handshake` or `on_connect`, then
    /// reach it in every callback with [`Connection::with_data`] or
    /// [`Connection::data`]. It is dropped when the connection is freed.
    ///
    /// # Errors
    /// [`Error::DataAlreadySet`] if data is already attached (change it
    /// through `with_data`), [`Error::ConnectionClosed`] if the connection
    /// is gone.
    ///
    /// # Examples
    ///
    /// ```
    /// struct User { name: String, messages: u32 }
    /// let handler = lws::Callbacks::new()
    ///     .on_connect(|conn, _headers| {
    ///         let _ = conn.set_data(User { name: "ann".into(), messages: 0 });
    ///     })
    ///     .on_message(|conn, _msg| {
    ///         conn.with_data(|u: &mut User| u.messages += 1);
    ///     });
    /// # let _ = handler;
    /// ```
    pub fn set_data<T: 'static>(&self, value: T) -> Result<()> {
        self.with_slot(|s| {
            if s.data.is_some() {
                return Err(Error::DataAlreadySet);
            }
            s.data = Some(Rc::new(RefCell::new(value)));
            Ok(())
        })
        .unwrap_or(Err(Error::ConnectionClosed))
    }

    /// The data attached with [`Connection::set_data`], if it is a `T` and
    /// the connection still exists.
    pub fn data<T: 'static>(&self) -> Option<Rc<RefCell<T>>> {
        let any = self.with_slot(|s| s.data.clone()).flatten()?;
        any.downcast::<RefCell<T>>().ok()
    }

    /// Runs `f` on the attached data. None if there is no `T` attached, the
    /// connection is gone, or the data is already borrowed (by an outer
    /// `with_data` on the same connection).
    pub fn with_data<T: 'static, R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let data = self.data::<T>()?;
        let mut value = data.try_borrow_mut().ok()?;
        Some(f(&mut value))
    }

    /// Closes the connection cleanly: messages already queued are sent
    /// first, then a close frame with `code` and `reason` (cut to 123 bytes
    /// at a character boundary); `on_close` follows once the peer answers.
    ///
    /// Does nothing if the connection is connecting, already closing,
    /// closed or gone.
    ///
    /// lws: `lws_close_reason` and a -1 return from the WRITEABLE callback
    /// once the queue has drained.
    ///
    /// # Examples
    ///
    /// The server answers one message, then closes with an application
    /// code (4000 to 4999 are free for applications); the client's
    /// `on_close` gets the answer first, then that code and reason.
    ///
    /// ```
    /// use lws::{Callbacks, CloseCode, ConnectOptions, Context, ContextOptions, ListenOptions};
    /// use std::{cell::RefCell, rc::Rc, time::Duration};
    ///
    /// let cx = Context::new(ContextOptions::default())?;
    /// let server = Callbacks::new().on_message(|conn, _msg| {
    ///     let _ = conn.send_text("last words");
    ///     conn.close(CloseCode(4000), "one message per connection");
    /// });
    /// let port = cx.listen(ListenOptions::new(0), server)?.port();
    ///
    /// let events = Rc::new(RefCell::new(Vec::new()));
    /// let (on_msg, on_close) = (events.clone(), events.clone());
    /// let client = Callbacks::new()
    ///     .on_connect(|conn, _| {
    ///         let _ = conn.send_text("hi");
    ///     })
    ///     .on_message(move |_conn, msg| on_msg.borrow_mut().push(format!("{msg:?}")))
    ///     .on_close(move |conn, code, reason| {
    ///         on_close.borrow_mut().push(format!("{code} {reason}"));
    ///         conn.context().stop();
    ///     });
    /// cx.connect(ConnectOptions::new(format!("ws://127.0.0.1:{port}/")), client)?;
    /// cx.set_timeout(Duration::from_secs(10), |cx| cx.stop()); // a bound on the run
    /// cx.run()?;
    /// assert_eq!(events.borrow().len(), 2, "{:?}", events.borrow());
    /// assert_eq!(events.borrow()[1], "4000 one message per connection");
    /// # Ok::<(), lws::Error>(())
    /// ```
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
    ///
    /// lws: `lws_rx_flow_control`. Use it when the work a message starts
    /// is slower than the peer sends, so memory stays bounded.
    ///
    /// # Examples
    ///
    /// A server that reads nothing for its first 20 ms; the client's
    /// message waits in the kernel and is echoed after the resume.
    ///
    /// ```
    /// use lws::{Callbacks, CloseCode, ConnectOptions, Context, ContextOptions, ListenOptions};
    /// use std::{cell::RefCell, rc::Rc, time::Duration};
    ///
    /// let cx = Context::new(ContextOptions::default())?;
    /// let events = Rc::new(RefCell::new(Vec::new()));
    /// let (resumed, echoed) = (events.clone(), events.clone());
    /// let server = Callbacks::new()
    ///     .on_connect(move |conn, _| {
    ///         conn.pause_recv();
    ///         let (conn, resumed) = (conn.clone(), resumed.clone());
    ///         conn.context().set_timeout(Duration::from_millis(20), move |_cx| {
    ///             resumed.borrow_mut().push("resumed");
    ///             conn.resume_recv();
    ///         });
    ///     })
    ///     .on_message(|conn, msg| {
    ///         let _ = conn.send(msg);
    ///     });
    /// let port = cx.listen(ListenOptions::new(0), server)?.port();
    ///
    /// let client = Callbacks::new()
    ///     .on_connect(|conn, _| {
    ///         let _ = conn.send_text("waiting");
    ///     })
    ///     .on_message(move |conn, _msg| {
    ///         echoed.borrow_mut().push("echoed");
    ///         conn.close(CloseCode::NORMAL, "");
    ///     })
    ///     .on_close(|conn, _, _| conn.context().stop());
    /// cx.connect(ConnectOptions::new(format!("ws://127.0.0.1:{port}/")), client)?;
    /// cx.set_timeout(Duration::from_secs(10), |cx| cx.stop()); // a bound on the run
    /// cx.run()?;
    /// assert_eq!(*events.borrow(), ["resumed", "echoed"]);
    /// # Ok::<(), lws::Error>(())
    /// ```
    pub fn pause_recv(&self) {
        self.flow(false)
    }

    /// Resumes reading after [`Connection::pause_recv`] (lws:
    /// `lws_rx_flow_control`; see `pause_recv` for an example). No-op once
    /// closed.
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

/// What is being queued: its rules differ.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// A whole text or binary message.
    Message,
    /// One piece of a message sent with send_fragment.
    Fragment { is_binary: bool, is_final: bool },
    /// Ping or pong: allowed between fragments, not counted by the limit.
    Control,
}

/// Why a frame was not queued.
enum Refused {
    Error(Error),
    /// The send queue limit: the caller hands its message back.
    Full,
}

impl Refused {
    fn or_message(self, message: impl FnOnce() -> Message) -> Error {
        match self {
            Refused::Error(e) => e,
            Refused::Full => Error::QueueFull(Box::new(message())),
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
