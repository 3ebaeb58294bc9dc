//! Rust protocols on an lws context a C service owns.
//!
//! [`EmbeddedProtocol`] turns a [`Handler`] (or [`Callbacks`](crate::Callbacks))
//! into an ordinary `struct lws_protocols` entry that C code puts in its own
//! protocol list. The C side creates the context and vhosts and drives the
//! loop (lws's own poll loop, libuv, ...); our mio loop is not involved.
//! Messages are reassembled, sends are queued and close works as with
//! [`Context`]: the same machinery runs, only fed from this module's
//! trampoline instead of our reactor.
//!
//! What differs from a listener of ours (see docs/EMBEDDING.md):
//! - server connections only (a C client bound to the protocol is refused);
//! - the handshake runs at `LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION` (lws
//!   sends `HTTP_CONFIRM_UPGRADE` to the vhost's HTTP protocol, not ours):
//!   `on_handshake` may add response headers, and a rejection makes lws hang
//!   up without an HTTP status;
//! - no timers, keepalive pings, handshake deadline or permessage-deflate
//!   (those belong to our loop; the C vhost's `retry_and_idle_policy` does
//!   pings there); [`Connection::context`](crate::Connection::context) is a
//!   view that refuses listen/connect/adopt;
//! - every callback must come from the thread that made the protocol (lws
//!   runs one service thread per context unless told otherwise); one from
//!   another thread is refused with an error log, never run;
//! - nothing here initialises OpenSSL or changes lws's log hook: the C
//!   side owns both.

use crate::callback::{self, conn_of, slot_key, tag_wsi};
use crate::connection::{ConnSlot, State};
use crate::context::{Context, Shared};
use crate::handshake::{check_header, header_bytes, Handshake, MAX_RESPONSE_HEADER_BYTES};
use crate::options::{Limits, ReceiveMode};
use crate::{Handler, Headers, Result};
use lws_sys as sys;
use std::cell::{Cell, RefCell};
use std::ffi::{c_void, CStr, CString};
use std::os::raw::{c_char, c_int};
use std::rc::Rc;
use std::thread::ThreadId;

/// Options of an [`EmbeddedProtocol`]: the per-connection limits of
/// [`ListenOptions`](crate::ListenOptions) and the entry's lws sizes.
#[derive(Clone, Debug)]
pub struct EmbedOptions {
    /// Largest reassembled message (0 = unlimited); over it the connection
    /// closes with 1009. Default 64 MiB.
    pub max_message_size: usize,
    /// Send queue limit in payload bytes (0 = unlimited). Default 0.
    pub max_send_queue: usize,
    /// Largest frame (0 = unlimited). Default 16 MiB.
    pub max_frame_size: usize,
    /// Whole messages (default) or fragments as they arrive.
    pub receive: ReceiveMode,
    /// The entry's `rx_buffer_size`: lws's receive buffer per connection
    /// (0 = lws's default, the context's `pt_serv_buf_size`). Messages are
    /// reassembled whatever it is.
    pub rx_buffer_size: usize,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions {
            max_message_size: crate::DEFAULT_MAX_MESSAGE_SIZE,
            max_send_queue: 0,
            max_frame_size: crate::DEFAULT_MAX_FRAME_SIZE,
            receive: ReceiveMode::Messages,
            rx_buffer_size: 0,
        }
    }
}

/// What the entry's `user` pointer leads to.
struct EmbedState {
    shared: Rc<Shared>,
    handler: Rc<RefCell<dyn Handler>>,
    limits: Limits,
    name: CString,
    thread: ThreadId,
    /// Vhosts that announced the protocol (PROTOCOL_INIT) and have not
    /// destroyed it yet.
    vhosts: Cell<usize>,
}

/// A Rust protocol exported as a `struct lws_protocols` entry for a C-owned
/// lws context.
///
/// # Examples
///
/// ```no_run
/// use lws::embed::{EmbedOptions, EmbeddedProtocol};
/// use lws::Callbacks;
///
/// let echo = EmbeddedProtocol::new(
///     "rust-echo",
///     EmbedOptions::default(),
///     Callbacks::new().on_message(|conn, msg| {
///         let _ = conn.send(msg);
///     }),
/// )?;
/// // Hand this to C (copied into its protocol list): it stays valid for
/// // the rest of the process.
/// let entry: &'static lws::sys::lws_protocols = echo.leak();
/// # let _ = entry;
/// # Ok::<(), lws::Error>(())
/// ```
pub struct EmbeddedProtocol {
    state: Box<EmbedState>,
    entry: sys::lws_protocols,
}

impl std::fmt::Debug for EmbeddedProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedProtocol")
            .field("name", &self.state.name)
            .field("connections", &self.state.shared.conns.borrow().len())
            .finish_non_exhaustive()
    }
}

impl EmbeddedProtocol {
    /// A protocol named `name` (what clients put in `Sec-WebSocket-Protocol`)
    /// served by `handler`. Make it on the thread that will run the C
    /// context's service loop.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for a name that is not an RFC 6455
    /// subprotocol token; [`Error::Io`] if the (idle) bookkeeping state
    /// cannot be created.
    pub fn new(name: &str, options: EmbedOptions, handler: impl Handler) -> Result<Self> {
        crate::handshake::check_protocol_name(name)?;
        let name = crate::context::cstring("protocol name", name)?;
        // The state a Context has, minus a running loop: its Poll is never
        // polled (nothing registers in it), it only completes the struct.
        let poll = mio::Poll::new()?;
        let shared = Shared::new(poll.registry().try_clone()?, 1 << 32, false, true)?;
        let state = Box::new(EmbedState {
            shared,
            handler: Rc::new(RefCell::new(handler)),
            limits: Limits {
                max_message_size: options.max_message_size,
                max_send_queue: options.max_send_queue,
                max_frame_size: options.max_frame_size,
                receive: options.receive,
            },
            name,
            thread: std::thread::current().id(),
            vhosts: Cell::new(0),
        });
        let entry = sys::lws_protocols {
            name: state.name.as_ptr(),
            callback: Some(embedded_callback),
            // Per-connection state lives in our slab (typed, via
            // Connection::set_data), not in lws's per-session memory.
            per_session_data_size: 0,
            rx_buffer_size: options.rx_buffer_size,
            id: 0,
            user: &*state as *const EmbedState as *mut c_void,
            tx_packet_size: callback::TX_PACKET_SIZE,
        };
        Ok(EmbeddedProtocol { state, entry })
    }

    /// The entry to copy into a C protocol list (or a vhost's
    /// `protocols`/`pprotocols`). It points into `self`: keep `self` alive
    /// until every lws context that uses the entry is destroyed, or use
    /// [`EmbeddedProtocol::leak`].
    pub fn entry(&self) -> sys::lws_protocols {
        self.entry
    }

    /// Keeps the protocol for the rest of the process and returns its
    /// entry, valid as long as any C context may use it.
    pub fn leak(self) -> &'static sys::lws_protocols {
        &Box::leak(Box::new(self)).entry
    }

    /// The protocol's name.
    pub fn name(&self) -> &str {
        self.state.name.to_str().unwrap_or_default()
    }

    /// Live connections of this protocol (handshake done, not closed yet).
    pub fn connections(&self) -> Vec<crate::Connection> {
        Context::view(&self.state.shared).connections()
    }

    /// A handle for other threads: sends, closes and closures run on the C
    /// loop's thread, woken through `lws_cancel_service` (our callback acts
    /// on `LWS_CALLBACK_EVENT_WAIT_CANCELLED`). [`crate::Handle::stop`] does
    /// nothing here: the C side owns the loop.
    pub fn handle(&self) -> crate::Handle {
        crate::Handle::new(self.state.shared.remote.clone())
    }
}

impl Drop for EmbeddedProtocol {
    fn drop(&mut self) {
        // Break cycles between handlers and the handles they hold, as a
        // Context does; lws must be done with the entry by now (documented).
        let shared = &self.state.shared;
        shared.remote.set_context(std::ptr::null_mut());
        shared.raw.set(std::ptr::null_mut());
        shared.deferred.borrow_mut().clear();
        let slots: Vec<ConnSlot> = shared.conns.borrow_mut().drain().collect();
        shared.ids.borrow_mut().clear();
        drop(slots);
    }
}

/// The callback of every [`EmbeddedProtocol`] entry.
unsafe extern "C" fn embedded_callback(
    wsi: *mut sys::lws,
    reason: sys::lws_callback_reasons,
    user: *mut c_void,
    input: *mut c_void,
    len: usize,
) -> c_int {
    crate::panic::guard("an embedded protocol's callback", -1, || {
        // SAFETY: lws's wsi for this callback; an entry with our callback
        // was made by EmbeddedProtocol: `user` is its boxed EmbedState,
        // alive while any context uses the entry (EmbeddedProtocol docs).
        let ours = embedded_callback as *const () as usize;
        let Some(state) = (unsafe { callback::entry_state::<EmbedState>(wsi, ours) }) else {
            // SAFETY: forwarding lws's own arguments to its default handler.
            return unsafe { sys::lws_callback_http_dummy(wsi, reason, user, input, len) };
        };
        if callback::off_its_thread(state.thread, "embedded protocol", &state.name) {
            return -1;
        }
        // SAFETY: lws's arguments for this reason, on its loop thread.
        let r = unsafe { dispatch(state, wsi, reason, user, input, len) };
        if !state.shared.deferred.borrow().is_empty() {
            // Events for a handler that was busy (a callback re-entered):
            // no loop of ours runs them later, so run them now.
            state.shared.run_deferred();
        }
        r
    })
}

unsafe fn dispatch(
    state: &EmbedState,
    wsi: *mut sys::lws,
    reason: sys::lws_callback_reasons,
    user: *mut c_void,
    input: *mut c_void,
    len: usize,
) -> c_int {
    let shared = &state.shared;
    // SAFETY: for the reasons that carry data, lws passes len bytes at
    // input, valid during this callback; the others pass null or 0.
    let bytes = || unsafe { callback::input_bytes(input, len) };
    match reason {
        sys::LWS_CALLBACK_PROTOCOL_INIT => {
            // SAFETY: lws passes a wsi carrying the context for this reason.
            let cx = unsafe { sys::lws_get_context(wsi) };
            let known = shared.raw.get();
            if !known.is_null() && known != cx {
                log::error!(
                    "embedded protocol {:?} is already in use by another lws context; refused",
                    state.name
                );
                return -1; // lws fails the vhost
            }
            shared.raw.set(cx);
            shared.remote.set_context(cx);
            state.vhosts.set(state.vhosts.get() + 1);
            0
        }
        sys::LWS_CALLBACK_PROTOCOL_DESTROY => {
            // SAFETY: as for PROTOCOL_INIT.
            if unsafe { sys::lws_get_context(wsi) } != shared.raw.get() {
                return 0; // a vhost of a context PROTOCOL_INIT refused
            }
            let left = state.vhosts.get().saturating_sub(1);
            state.vhosts.set(left);
            if left == 0 {
                // The context is going: other threads must not wake it.
                shared.remote.set_context(std::ptr::null_mut());
                shared.raw.set(std::ptr::null_mut());
            }
            0
        }
        sys::LWS_CALLBACK_EVENT_WAIT_CANCELLED => {
            // lws_cancel_service from a Handle (or anyone): run what other
            // threads asked for.
            let view = Context::view(shared);
            for command in shared.remote.take() {
                view.run_command(command);
            }
            0
        }
        sys::LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION => {
            // SAFETY: for this reason lws passes the request's
            // Sec-WebSocket-Protocol value (or null); the headers are
            // still attached to wsi.
            let offered = (!input.is_null())
                .then(|| unsafe { CStr::from_ptr(input as *const c_char) }.to_string_lossy());
            filter(state, wsi, offered.as_deref())
        }
        // Every permessage-deflate path of ours needs our own vhost setup.
        sys::LWS_CALLBACK_CONFIRM_EXTENSION_OKAY => 1,
        sys::LWS_CALLBACK_ADD_HEADERS => {
            // SAFETY: lws passes lws_process_html_args for this reason.
            unsafe {
                callback::add_response_headers(
                    shared,
                    wsi,
                    input as *mut sys::lws_process_html_args,
                )
            }
        }
        sys::LWS_CALLBACK_ESTABLISHED => callback::on_established_server(shared, wsi),
        sys::LWS_CALLBACK_RECEIVE => callback::on_receive(shared, wsi, bytes()),
        sys::LWS_CALLBACK_RECEIVE_PONG => {
            if let Some((conn, handler)) = conn_of(shared, wsi) {
                let payload = bytes().to_vec();
                shared.call(&handler, &conn, move |h, c| h.on_pong(c, &payload));
            }
            0
        }
        sys::LWS_CALLBACK_SERVER_WRITEABLE => callback::on_writeable(shared, wsi),
        sys::LWS_CALLBACK_WS_PEER_INITIATED_CLOSE => {
            let data = if input.is_null() || len == 0 {
                &mut [][..]
            } else {
                // SAFETY: lws passes the close payload it will echo, len
                // bytes in its own buffer, ours to change for this callback.
                unsafe { std::slice::from_raw_parts_mut(input as *mut u8, len) }
            };
            callback::on_peer_close(shared, wsi, data)
        }
        sys::LWS_CALLBACK_CLOSED => {
            callback::on_closed(shared, wsi);
            // WSI_DESTROY goes to the vhost's first protocol, which may be
            // a C one: CLOSED is the last callback we can count on (it
            // comes even when FILTER refused or the 101 failed, since lws
            // marks the connection established before FILTER).
            forget(shared, wsi);
            0
        }
        sys::LWS_CALLBACK_WSI_DESTROY => {
            // Only when ours is the vhost's first protocol; for one of our
            // wsis CLOSED normally forgot it already.
            forget(shared, wsi);
            0
        }
        sys::LWS_CALLBACK_CLIENT_ESTABLISHED => {
            log::warn!(
                "embedded protocol {:?}: client connections are not supported; closed",
                state.name
            );
            -1
        }
        // SAFETY: forwarding lws's own arguments to its default handler.
        _ => unsafe { sys::lws_callback_http_dummy(wsi, reason, user, input, len) },
    }
}

/// Drops the slot of `wsi` if it is one of ours.
fn forget(shared: &Rc<Shared>, wsi: *mut sys::lws) {
    let Some(key) = slot_key(shared, wsi) else {
        return;
    };
    crate::logging::unbind(wsi);
    shared.remove(key);
    // SAFETY: wsi is live during its callback; clearing our tag means
    // nothing reads the stale key again.
    unsafe { sys::lws_set_opaque_user_data(wsi, std::ptr::null_mut()) };
}

/// The handshake: a slot for the connection, then `on_handshake`. 0 lets
/// lws send the 101; non-zero makes it hang up.
fn filter(state: &EmbedState, wsi: *mut sys::lws, offered: Option<&str>) -> c_int {
    let shared = &state.shared;
    let name = state.name.to_string_lossy();
    let mut slot = ConnSlot::new(
        shared.new_id(),
        state.handler.clone(),
        state.limits,
        State::Connecting,
    );
    slot.wsi = wsi;
    // lws picked this protocol by name, or as the vhost's default when the
    // client named none: only the former is agreed in the 101.
    let named = offered.is_some_and(|o| o.split(',').any(|p| p.trim() == name));
    slot.protocol = named.then(|| name.into_owned());
    slot.keepalive = None;
    slot.deflate = None;
    let conn = shared.insert(slot);
    tag_wsi(wsi, conn.key, conn.id);
    // SAFETY: the header table is still attached during FILTER.
    let headers = unsafe { Headers::read(wsi) };
    let decision = match state.handler.try_borrow_mut() {
        Ok(mut h) => crate::panic::guard("on_handshake", Handshake::reject(500), || {
            h.on_handshake(&conn, &headers)
        }),
        Err(_) => Handshake::reject(503),
    };
    let Handshake::Accept { headers: extra } = decision else {
        log::debug!("connection {}: handshake refused (lws hangs up)", conn.id);
        return 1;
    };
    let mut out = Vec::with_capacity(extra.len());
    for (name, value) in &extra {
        let (Ok(()), Ok(n), Ok(v)) = (
            check_header(name, value),
            CString::new(format!("{name}:")),
            CString::new(value.as_str()),
        ) else {
            log::warn!(
                "connection {}: on_handshake returned a bad header; refused",
                conn.id
            );
            return 1;
        };
        out.push((n, v));
    }
    if header_bytes(extra.iter().map(|(n, v)| (n.as_str(), v.as_str()))) > MAX_RESPONSE_HEADER_BYTES
    {
        log::warn!(
            "connection {}: response headers too large; refused",
            conn.id
        );
        return 1;
    }
    conn.with_slot(|s| {
        s.response_headers_out = out;
        s.request_headers_in = Some(headers);
    });
    0
}
