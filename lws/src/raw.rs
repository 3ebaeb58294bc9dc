//! The low-level layer: lws's callback switch in safe Rust, for ports that
//! move an lws C protocol to Rust one `case` at a time.
//!
//! A [`RawProtocol`] is a `struct lws_protocols` entry whose callback is a
//! Rust closure `FnMut(&mut Wsi<S>, Reason, Args) -> Action`: the C callback
//! `(wsi, reason, user, in, len) -> int` with
//! - [`Reason`] for `reason` (open-ended: [`Reason::Other`] keeps the rest),
//! - [`Wsi`] for `wsi`, lent for the duration of the callback (it cannot be
//!   kept), with the calls a C callback makes on it,
//! - typed per-session data `S` for `user` ([`Wsi::session`]),
//! - [`Args`] for `in`/`len`, with an accessor per reason,
//! - [`Action`] for the return value.
//!
//! It also enforces the rules C code gets wrong:
//! - writes are only allowed in a WRITEABLE callback, with LWS_PRE
//!   headroom provided by [`Wsi::write`]; a second write in the same
//!   callback is refused while lws still holds part of the last one
//!   ([`WriteError::Buffered`]): ask for another WRITEABLE instead;
//! - closing with a code means `lws_close_reason` then returning -1:
//!   [`Wsi::close`] does the first and returns the [`Action`] for the second;
//! - `CLOSED` also arrives for a connection whose handshake never completed
//!   (lws marks it established before `FILTER_PROTOCOL_CONNECTION`): the
//!   session `S` exists only from `ESTABLISHED` on, so there
//!   [`Wsi::session`] is `None`;
//! - a panic is caught; the connection it happened on is closed with
//!   1011 (internal error).
//!
//! Like [`crate::embed`], nothing here runs our mio loop: it runs on
//! whatever loop drives the C context, on the thread that made it.
//!
//! # Examples
//!
//! An echo protocol, as its C callback's `switch` would read:
//!
//! ```
//! use lws::raw::{Action, RawProtocol, Reason};
//!
//! #[derive(Default)]
//! struct Session {
//!     pending: std::collections::VecDeque<(Vec<u8>, bool)>,
//! }
//!
//! let echo = RawProtocol::new("raw-echo", 4096, |wsi, reason, args| {
//!     match reason {
//!         Reason::Receive => {
//!             let binary = wsi.frame_is_binary();
//!             let data = args.data().to_vec();
//!             wsi.session::<Session>().expect("established").pending.push_back((data, binary));
//!             wsi.callback_on_writable();
//!         }
//!         Reason::ServerWriteable => {
//!             let Some((data, binary)) = wsi.session::<Session>().and_then(|s| s.pending.pop_front()) else {
//!                 return Action::Continue;
//!             };
//!             let kind = if binary { lws::raw::WriteKind::Binary } else { lws::raw::WriteKind::Text };
//!             if wsi.write(&data, kind).is_err() {
//!                 return Action::Close;
//!             }
//!             if wsi.session::<Session>().is_some_and(|s| !s.pending.is_empty()) {
//!                 wsi.callback_on_writable();
//!             }
//!         }
//!         _ => {}
//!     }
//!     Action::Continue
//! }).unwrap();
//! # let _ = echo.entry();
//! ```

use lws_sys as sys;
use std::any::Any;
use std::cell::RefCell;
use std::ffi::{c_void, CStr, CString};
use std::marker::PhantomData;
use std::os::raw::{c_char, c_int};
use std::thread::ThreadId;

macro_rules! reasons {
    ($($(#[$doc:meta])* $variant:ident = $c:ident,)*) => {
        /// An lws callback reason (`enum lws_callback_reasons`). Open-ended:
        /// reasons without a variant come as [`Reason::Other`], and new
        /// variants may be added.
        #[non_exhaustive]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[$doc])* #[doc = concat!("`", stringify!($c), "`")] $variant,)*
            /// Any other reason, by its number.
            Other(u32),
        }

        impl Reason {
            /// The reason lws passed.
            pub fn from_raw(raw: sys::lws_callback_reasons) -> Reason {
                match raw {
                    $(sys::$c => Reason::$variant,)*
                    other => Reason::Other(other),
                }
            }

            /// The number lws uses for this reason.
            pub fn to_raw(self) -> sys::lws_callback_reasons {
                match self {
                    $(Reason::$variant => sys::$c,)*
                    Reason::Other(other) => other,
                }
            }
        }
    };
}

reasons! {
    ProtocolInit = LWS_CALLBACK_PROTOCOL_INIT,
    ProtocolDestroy = LWS_CALLBACK_PROTOCOL_DESTROY,
    WsiCreate = LWS_CALLBACK_WSI_CREATE,
    WsiDestroy = LWS_CALLBACK_WSI_DESTROY,
    ServerNewClientInstantiated = LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED,
    FilterNetworkConnection = LWS_CALLBACK_FILTER_NETWORK_CONNECTION,
    Http = LWS_CALLBACK_HTTP,
    HttpBody = LWS_CALLBACK_HTTP_BODY,
    HttpBodyCompletion = LWS_CALLBACK_HTTP_BODY_COMPLETION,
    HttpWriteable = LWS_CALLBACK_HTTP_WRITEABLE,
    ClosedHttp = LWS_CALLBACK_CLOSED_HTTP,
    FilterHttpConnection = LWS_CALLBACK_FILTER_HTTP_CONNECTION,
    HttpConfirmUpgrade = LWS_CALLBACK_HTTP_CONFIRM_UPGRADE,
    HttpBindProtocol = LWS_CALLBACK_HTTP_BIND_PROTOCOL,
    HttpDropProtocol = LWS_CALLBACK_HTTP_DROP_PROTOCOL,
    AddHeaders = LWS_CALLBACK_ADD_HEADERS,
    FilterProtocolConnection = LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION,
    ConfirmExtensionOkay = LWS_CALLBACK_CONFIRM_EXTENSION_OKAY,
    Established = LWS_CALLBACK_ESTABLISHED,
    Receive = LWS_CALLBACK_RECEIVE,
    ReceivePong = LWS_CALLBACK_RECEIVE_PONG,
    ServerWriteable = LWS_CALLBACK_SERVER_WRITEABLE,
    WsPeerInitiatedClose = LWS_CALLBACK_WS_PEER_INITIATED_CLOSE,
    Closed = LWS_CALLBACK_CLOSED,
    WsServerBindProtocol = LWS_CALLBACK_WS_SERVER_BIND_PROTOCOL,
    WsServerDropProtocol = LWS_CALLBACK_WS_SERVER_DROP_PROTOCOL,
    ClientConnectionError = LWS_CALLBACK_CLIENT_CONNECTION_ERROR,
    ClientFilterPreEstablish = LWS_CALLBACK_CLIENT_FILTER_PRE_ESTABLISH,
    ClientEstablished = LWS_CALLBACK_CLIENT_ESTABLISHED,
    ClientAppendHandshakeHeader = LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER,
    ClientReceive = LWS_CALLBACK_CLIENT_RECEIVE,
    ClientReceivePong = LWS_CALLBACK_CLIENT_RECEIVE_PONG,
    ClientWriteable = LWS_CALLBACK_CLIENT_WRITEABLE,
    ClientClosed = LWS_CALLBACK_CLIENT_CLOSED,
    EventWaitCancelled = LWS_CALLBACK_EVENT_WAIT_CANCELLED,
    Timer = LWS_CALLBACK_TIMER,
    User = LWS_CALLBACK_USER,
}

/// What the callback returns to lws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// 0: carry on.
    Continue,
    /// -1: close this connection (after [`Wsi::close`], with its code).
    Close,
    /// Any other value, for reasons where non-zero means something else
    /// (e.g. 1 from `FILTER_PROTOCOL_CONNECTION` refuses the handshake).
    Value(c_int),
}

impl Action {
    fn to_raw(self) -> c_int {
        match self {
            Action::Continue => 0,
            Action::Close => -1,
            Action::Value(v) => v,
        }
    }
}

/// How [`Wsi::write`] frames its data (`enum lws_write_protocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    /// A whole text message.
    Text,
    /// A whole binary message.
    Binary,
    /// A ping (payload at most 125 bytes).
    Ping,
    /// A pong (payload at most 125 bytes).
    Pong,
    /// Bytes as they are, no framing (`LWS_WRITE_RAW`).
    Raw,
}

impl WriteKind {
    fn to_raw(self) -> sys::lws_write_protocol {
        match self {
            WriteKind::Text => sys::LWS_WRITE_TEXT,
            WriteKind::Binary => sys::LWS_WRITE_BINARY,
            WriteKind::Ping => sys::LWS_WRITE_PING,
            WriteKind::Pong => sys::LWS_WRITE_PONG,
            WriteKind::Raw => sys::LWS_WRITE_HTTP, // LWS_WRITE_RAW
        }
    }
}

/// Why [`Wsi::write`] did not write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// Not in a WRITEABLE callback: call [`Wsi::callback_on_writable`]
    /// and write from there.
    NotWriteable,
    /// lws still holds part of this callback's earlier write: write the
    /// rest from the next WRITEABLE (it asks for POLLOUT itself).
    Buffered,
    /// lws_write failed: the connection is broken; return
    /// [`Action::Close`].
    Failed,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WriteError::NotWriteable => "writes belong in a WRITEABLE callback",
            WriteError::Buffered => "lws still holds part of the previous write",
            WriteError::Failed => "lws_write failed",
        })
    }
}

impl std::error::Error for WriteError {}

/// The `in`/`len` arguments of one callback, read per reason.
#[derive(Clone, Copy)]
pub struct Args<'a> {
    reason: Reason,
    input: *mut c_void,
    len: usize,
    _lent: PhantomData<&'a mut [u8]>,
}

impl std::fmt::Debug for Args<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field("reason", &self.reason)
            .field("len", &self.len)
            .finish()
    }
}

impl<'a> Args<'a> {
    /// The payload bytes of `RECEIVE`, `CLIENT_RECEIVE`, `RECEIVE_PONG`,
    /// `CLIENT_RECEIVE_PONG`, `HTTP_BODY` and `WS_PEER_INITIATED_CLOSE`
    /// (the close payload: 2-byte code, then the reason); empty for
    /// other reasons.
    pub fn data(&self) -> &'a [u8] {
        let carries = matches!(
            self.reason,
            Reason::Receive
                | Reason::ClientReceive
                | Reason::ReceivePong
                | Reason::ClientReceivePong
                | Reason::HttpBody
                | Reason::WsPeerInitiatedClose
        );
        if !carries {
            return &[];
        }
        // SAFETY: for these reasons lws passes `len` bytes at `in`, valid
        // for the callback ('a).
        unsafe { crate::callback::input_bytes(self.input, self.len) }
    }

    /// The peer's close code and reason (`WS_PEER_INITIATED_CLOSE`); None
    /// for other reasons or a close without a code.
    pub fn peer_close(&self) -> Option<(u16, &'a [u8])> {
        if self.reason != Reason::WsPeerInitiatedClose {
            return None;
        }
        let data = self.data();
        (data.len() >= 2).then(|| (u16::from_be_bytes([data[0], data[1]]), &data[2..]))
    }

    /// The C string lws passes: the requested `Sec-WebSocket-Protocol`
    /// (`FILTER_PROTOCOL_CONNECTION`), the error (`CLIENT_CONNECTION_ERROR`),
    /// the Upgrade value (`HTTP_CONFIRM_UPGRADE`) or the URI (`HTTP`).
    pub fn text(&self) -> Option<&'a CStr> {
        let carries = matches!(
            self.reason,
            Reason::FilterProtocolConnection
                | Reason::ClientConnectionError
                | Reason::HttpConfirmUpgrade
                | Reason::Http
        );
        if !carries || self.input.is_null() {
            return None;
        }
        // SAFETY: for these reasons lws passes a NUL-terminated string.
        Some(unsafe { CStr::from_ptr(self.input as *const c_char) })
    }

    /// `in` and `len` as lws passed them, for reasons this type does not read.
    pub fn raw(&self) -> (*mut c_void, usize) {
        (self.input, self.len)
    }
}

/// The connection of one callback, lent for its duration.
pub struct Wsi<'a> {
    raw: *mut sys::lws,
    reason: Reason,
    /// Our per-session slot in lws's user space (null when the reason has
    /// none or the wsi is not bound to our protocol).
    session: *mut Option<Box<Box<dyn Any>>>,
    /// Written in this callback already.
    wrote: bool,
    _lent: PhantomData<&'a mut sys::lws>,
}

impl std::fmt::Debug for Wsi<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wsi")
            .field("raw", &self.raw)
            .field("reason", &self.reason)
            .finish()
    }
}

impl Wsi<'_> {
    /// The lws connection, for calls this type does not wrap; valid only
    /// during this callback.
    pub fn as_ptr(&self) -> *mut sys::lws {
        self.raw
    }

    /// This connection's typed session data, which lives from
    /// `ESTABLISHED` / `CLIENT_ESTABLISHED` until `CLOSED` /
    /// `CLIENT_CLOSED` (after the callback) and is made with
    /// `S::default()` on first use. None outside that span (e.g. a
    /// `CLOSED` whose handshake never completed) or if `S` is not the type
    /// the session was made with.
    pub fn session<S: 'static>(&mut self) -> Option<&mut S> {
        // SAFETY: non-null only for our protocol's wsis, where it points
        // at the Option our per_session_data_size reserved (zeroed by lws:
        // None), valid during the callback.
        let slot = unsafe { self.session.as_mut() }?;
        slot.as_mut()?.downcast_mut::<S>()
    }

    /// `lws_callback_on_writable`: a WRITEABLE callback will follow.
    pub fn callback_on_writable(&mut self) {
        // SAFETY: the wsi is live during its callback.
        unsafe { sys::lws_callback_on_writable(self.raw) };
    }

    /// `lws_write` with the LWS_PRE headroom lws needs (the data is
    /// copied once into a buffer that has it). Returns the bytes lws took
    /// (all of them: lws buffers what the kernel refuses).
    ///
    /// # Errors
    /// See [`WriteError`].
    pub fn write(&mut self, data: &[u8], kind: WriteKind) -> Result<usize, WriteError> {
        if !matches!(
            self.reason,
            Reason::ServerWriteable | Reason::ClientWriteable | Reason::HttpWriteable
        ) {
            return Err(WriteError::NotWriteable);
        }
        if self.wrote && self.partial_buffered() {
            return Err(WriteError::Buffered);
        }
        let mut buf = Vec::with_capacity(sys::LWS_PRE + data.len());
        buf.resize(sys::LWS_PRE, 0);
        buf.extend_from_slice(data);
        // SAFETY: buf has LWS_PRE bytes of headroom before the payload, as
        // lws_write requires; the wsi is live and in WRITEABLE.
        let n = unsafe {
            sys::lws_write(
                self.raw,
                buf.as_mut_ptr().add(sys::LWS_PRE),
                data.len(),
                kind.to_raw(),
            )
        };
        self.wrote = true;
        if n < 0 {
            return Err(WriteError::Failed);
        }
        Ok(n as usize)
    }

    /// `lws_partial_buffered`: lws holds unsent data of an earlier write.
    pub fn partial_buffered(&self) -> bool {
        // SAFETY: the wsi is live.
        unsafe { sys::lws_partial_buffered(self.raw) != 0 }
    }

    /// `lws_close_reason(code, reason)`; return the [`Action::Close`] it
    /// gives back from the callback so lws sends the close frame. The
    /// reason is cut to 123 bytes.
    #[must_use = "lws only closes when the callback returns Action::Close"]
    pub fn close(&mut self, code: u16, reason: &[u8]) -> Action {
        let reason = &reason[..reason.len().min(123)];
        // SAFETY: the wsi is live; lws copies the reason (its pointer is
        // `*mut` in the signature but never written through).
        unsafe {
            sys::lws_close_reason(
                self.raw,
                code as sys::lws_close_status,
                reason.as_ptr() as *mut u8,
                reason.len(),
            )
        };
        Action::Close
    }

    /// `lws_rx_flow_control`: stop (false) or resume (true) reading.
    pub fn rx_flow_control(&mut self, enable: bool) {
        // SAFETY: the wsi is live.
        unsafe { sys::lws_rx_flow_control(self.raw, enable as c_int) };
    }

    /// `lws_is_first_fragment` (in RECEIVE).
    pub fn is_first_fragment(&self) -> bool {
        // SAFETY: the wsi is live.
        unsafe { sys::lws_is_first_fragment(self.raw) != 0 }
    }

    /// `lws_is_final_fragment` (in RECEIVE).
    pub fn is_final_fragment(&self) -> bool {
        // SAFETY: the wsi is live.
        unsafe { sys::lws_is_final_fragment(self.raw) != 0 }
    }

    /// `lws_frame_is_binary` (in RECEIVE).
    pub fn frame_is_binary(&self) -> bool {
        // SAFETY: the wsi is live.
        unsafe { sys::lws_frame_is_binary(self.raw) != 0 }
    }

    /// `lws_remaining_packet_payload` (in RECEIVE): bytes of this frame
    /// still to come.
    pub fn remaining_packet_payload(&self) -> usize {
        // SAFETY: the wsi is live.
        unsafe { sys::lws_remaining_packet_payload(self.raw) }
    }

    /// A whole message ends with this RECEIVE: the final fragment, and
    /// nothing of its frame left to come.
    pub fn is_message_end(&self) -> bool {
        self.remaining_packet_payload() == 0 && self.is_final_fragment()
    }

    /// `lws_get_peer_simple`: the peer's address.
    pub fn peer_address(&self) -> Option<String> {
        crate::callback::peer_address(self.raw)
    }
}

/// The closure type of a [`RawProtocol`].
type RawFn = dyn FnMut(&mut Wsi<'_>, Reason, Args<'_>) -> Action;

/// What a [`RawProtocol`] entry's `user` points to.
struct RawState {
    f: RefCell<Box<RawFn>>,
    /// Makes the session data for ESTABLISHED (the closure's `S`).
    new_session: fn() -> Box<dyn Any>,
    name: CString,
    thread: ThreadId,
}

/// A `struct lws_protocols` entry whose callback is a Rust closure over
/// the low-level layer (see the [module docs](self)).
pub struct RawProtocol {
    state: Box<RawState>,
    entry: sys::lws_protocols,
}

impl std::fmt::Debug for RawProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawProtocol")
            .field("name", &self.state.name)
            .finish_non_exhaustive()
    }
}

impl RawProtocol {
    /// A protocol named `name` with lws receive buffer `rx_buffer_size`
    /// (0: lws's default), whose session data has no particular type (use
    /// [`RawProtocol::with_session`] for one). Make it on the thread that
    /// runs the C context's loop.
    ///
    /// # Errors
    /// [`crate::Error::InvalidOption`] for a name with a NUL byte.
    pub fn new(
        name: &str,
        rx_buffer_size: usize,
        f: impl FnMut(&mut Wsi<'_>, Reason, Args<'_>) -> Action + 'static,
    ) -> crate::Result<Self> {
        Self::build(name, rx_buffer_size, || Box::new(()), Box::new(f))
    }

    /// As [`RawProtocol::new`], with session data of type `S` made by
    /// `S::default()` at `ESTABLISHED` ([`Wsi::session::<S>`](Wsi::session)).
    ///
    /// # Errors
    /// As [`RawProtocol::new`].
    pub fn with_session<S: Default + 'static>(
        name: &str,
        rx_buffer_size: usize,
        f: impl FnMut(&mut Wsi<'_>, Reason, Args<'_>) -> Action + 'static,
    ) -> crate::Result<Self> {
        Self::build(name, rx_buffer_size, || Box::new(S::default()), Box::new(f))
    }

    fn build(
        name: &str,
        rx_buffer_size: usize,
        new_session: fn() -> Box<dyn Any>,
        f: Box<RawFn>,
    ) -> crate::Result<Self> {
        let name = crate::context::cstring("protocol name", name)?;
        let state = Box::new(RawState {
            f: RefCell::new(f),
            new_session,
            name,
            thread: std::thread::current().id(),
        });
        let entry = sys::lws_protocols {
            name: state.name.as_ptr(),
            callback: Some(raw_callback),
            // lws zeroes it: an all-zero Option<Box<_>> (thin) is None.
            per_session_data_size: std::mem::size_of::<Option<Box<Box<dyn Any>>>>(),
            rx_buffer_size,
            id: 0,
            user: &*state as *const RawState as *mut c_void,
            tx_packet_size: 0,
        };
        Ok(RawProtocol { state, entry })
    }

    /// The entry for a C protocol list; keep `self` alive until every
    /// context using it is destroyed, or use [`RawProtocol::leak`].
    pub fn entry(&self) -> sys::lws_protocols {
        self.entry
    }

    /// Keeps the protocol for the rest of the process; its entry.
    pub fn leak(self) -> &'static sys::lws_protocols {
        &Box::leak(Box::new(self)).entry
    }
}

unsafe extern "C" fn raw_callback(
    wsi: *mut sys::lws,
    reason: sys::lws_callback_reasons,
    user: *mut c_void,
    input: *mut c_void,
    len: usize,
) -> c_int {
    crate::panic::guard("a raw protocol's callback", -1, || {
        // SAFETY: lws's wsi for this callback; an entry with our callback
        // was made by RawProtocol: its user is the boxed RawState, alive
        // while contexts use the entry.
        let ours = raw_callback as *const () as usize;
        let Some(state) = (unsafe { crate::callback::entry_state::<RawState>(wsi, ours) }) else {
            // SAFETY: forwarding lws's own arguments to its default handler.
            return unsafe { sys::lws_callback_http_dummy(wsi, reason, user, input, len) };
        };
        if crate::callback::off_its_thread(state.thread, "raw protocol", &state.name) {
            return -1;
        }
        let reason = Reason::from_raw(reason);
        let session = user as *mut Option<Box<Box<dyn Any>>>;
        if !session.is_null() && matches!(reason, Reason::Established | Reason::ClientEstablished) {
            // SAFETY: user is our per-session slot (our wsi), zeroed by lws.
            unsafe { *session = Some(Box::new((state.new_session)())) };
        }
        let mut lent = Wsi {
            raw: wsi,
            reason,
            session,
            wrote: false,
            _lent: PhantomData,
        };
        let args = Args {
            reason,
            input,
            len,
            _lent: PhantomData,
        };
        let action = match state.f.try_borrow_mut() {
            Ok(mut f) => {
                let r = crate::panic::guard("a raw protocol's callback", None, || {
                    Some(f(&mut lent, reason, args))
                });
                match r {
                    Some(action) => action.to_raw(),
                    None if !session.is_null() => {
                        // The connection's state is unknown now: close it,
                        // telling the peer why (1011, internal error).
                        let _ = lent.close(1011, b"panic in callback");
                        -1
                    }
                    None => -1,
                }
            }
            Err(_) => {
                log::warn!(
                    "raw protocol {:?}: {reason:?} arrived inside its own callback; ignored",
                    state.name
                );
                0
            }
        };
        if !session.is_null()
            && matches!(
                reason,
                Reason::Closed | Reason::ClientClosed | Reason::WsiDestroy
            )
        {
            // The last callbacks we get for it (WSI_DESTROY goes to the
            // vhost's first protocol): the session ends here; lws frees the
            // memory that held it.
            // SAFETY: as above; nothing else refers to the taken value.
            drop(unsafe { (*session).take() });
        }
        action
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip_and_unknown_ones_are_kept() {
        for raw in 0..300 {
            assert_eq!(Reason::from_raw(raw).to_raw(), raw);
        }
        assert_eq!(Reason::from_raw(sys::LWS_CALLBACK_RECEIVE), Reason::Receive);
        assert_eq!(Reason::from_raw(9999), Reason::Other(9999));
    }

    #[test]
    fn args_read_only_what_the_reason_carries() {
        let mut close = [0x0f, 0xa1, b'b', b'y', b'e'];
        let args = |reason, buf: &mut [u8]| Args {
            reason,
            input: buf.as_mut_ptr() as *mut c_void,
            len: buf.len(),
            _lent: PhantomData,
        };
        let peer = args(Reason::WsPeerInitiatedClose, &mut close);
        assert_eq!(peer.peer_close(), Some((4001, &b"bye"[..])));
        let writeable = args(Reason::ServerWriteable, &mut close);
        assert_eq!(writeable.data(), b"");
        assert_eq!(writeable.peer_close(), None);
        assert!(writeable.text().is_none());
        let received = args(Reason::Receive, &mut close);
        assert_eq!(received.data().len(), 5);
    }

    #[test]
    fn actions_are_lws_return_values() {
        assert_eq!(Action::Continue.to_raw(), 0);
        assert_eq!(Action::Close.to_raw(), -1);
        assert_eq!(Action::Value(1).to_raw(), 1);
    }
}
