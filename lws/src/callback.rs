//! The one protocol callback lws calls for our connections, mapping lws
//! callback reasons onto [`Handler`] methods: receive, write, close.

use crate::client::fail_client;
use crate::connection::{request_writable, ConnSlot, Connection, State};
use crate::context::Shared;
use crate::options::ReceiveMode;
use crate::server::ListenerState;
use crate::{CloseCode, Fragment, Handler, Headers, Message};
use lws_sys as sys;
use std::cell::RefCell;
use std::ffi::{c_void, CStr, CString};
use std::os::raw::{c_char, c_int, c_uchar};
use std::rc::Rc;

/// Most bytes lws hands the kernel per send (its default is 4096, which
/// makes a 64 KiB message take 16 sends, each after a POLLOUT wait;
/// lws-notes). A larger value lets the kernel take what it can at once;
/// lws buffers the rest itself. It does not size any per-connection buffer.
pub(crate) const TX_PACKET_SIZE: usize = 1 << 20;

/// A static protocol table of one entry served by [`protocol_callback`]
/// (lws keeps the pointer, so it must live forever).
pub(crate) struct StaticProtocols([sys::lws_protocols; 2]);
// SAFETY: an immutable table of static strings and a function pointer.
unsafe impl Sync for StaticProtocols {}

impl StaticProtocols {
    /// The table for protocol `name`, with no per-listener user pointer.
    pub(crate) const fn new(name: &'static CStr) -> Self {
        const END: sys::lws_protocols = sys::lws_protocols {
            name: std::ptr::null(),
            callback: None,
            per_session_data_size: 0,
            rx_buffer_size: 0,
            id: 0,
            user: std::ptr::null_mut(),
            tx_packet_size: 0,
        };
        let mut first = END;
        first.name = name.as_ptr();
        first.tx_packet_size = TX_PACKET_SIZE;
        first.callback = Some(protocol_callback);
        StaticProtocols([first, END])
    }

    pub(crate) fn as_ptr(&self) -> *const sys::lws_protocols {
        self.0.as_ptr()
    }
}

/// The protocol callback of every vhost we create.
pub(crate) unsafe extern "C" fn protocol_callback(
    wsi: *mut sys::lws,
    reason: sys::lws_callback_reasons,
    user: *mut c_void,
    input: *mut c_void,
    len: usize,
) -> c_int {
    crate::panic::guard("the lws protocol callback", -1, || {
        // SAFETY: lws passes a live wsi and, per reason, `len` bytes at `input`.
        unsafe { dispatch(wsi, reason, user, input, len) }
    })
}

/// The `len` bytes lws passed at `input` to a callback; empty when it
/// passed none (null or 0).
///
/// # Safety
/// A non-null `input` must point to `len` readable bytes that stay valid
/// for `'a` (for lws: the callback's duration).
pub(crate) unsafe fn input_bytes<'a>(input: *const c_void, len: usize) -> &'a [u8] {
    if input.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: the caller's promise.
        unsafe { std::slice::from_raw_parts(input as *const u8, len) }
    }
}

/// What one of our `lws_protocols` entries keeps at `user`: a `T`, for
/// the entry `wsi` is bound to when that entry's callback is `ours`. lws
/// also calls a vhost's first protocol about wsis bound to other (C)
/// protocols (WSI_DESTROY, HTTP): their entry and `user` are not ours, and
/// this is None.
///
/// # Safety
/// `wsi` is the one lws passed to the running callback, and every entry
/// whose callback is `ours` keeps at `user` a `T` that outlives the call.
pub(crate) unsafe fn entry_state<'a, T>(wsi: *mut sys::lws, ours: usize) -> Option<&'a T> {
    // SAFETY: wsi is live, or lws's fake wsi for vhost-wide reasons whose
    // protocol is the entry being called; a non-null entry pointer is
    // lws's, valid for the call.
    let entry = unsafe { sys::lws_get_protocol(wsi).as_ref() }?;
    if entry.callback.map(|f| f as usize) != Some(ours) {
        return None;
    }
    // SAFETY: the caller's promise for entries with our callback.
    unsafe { (entry.user as *const T).as_ref() }
}

/// Whether a callback of an entry made on thread `owner` comes from
/// another thread (then logged, to be refused: its state is not `Send`).
pub(crate) fn off_its_thread(
    owner: std::thread::ThreadId,
    what: &str,
    name: &std::ffi::CStr,
) -> bool {
    let off = std::thread::current().id() != owner;
    if off {
        log::error!(
            "{what} {name:?}: called from another thread than the one that made it; refused"
        );
    }
    off
}

/// The slab key of the connection `wsi` is, if it is one of ours. lws
/// keeps key + 1 as the wsi's opaque user data (0 = none); the slot must
/// still belong to this wsi (a client's is set just after connecting).
pub(crate) fn slot_key(shared: &Shared, wsi: *mut sys::lws) -> Option<usize> {
    // SAFETY: only called from lws's callbacks, with their live wsi.
    let tag = unsafe { sys::lws_get_opaque_user_data(wsi) } as usize;
    if tag == 0 {
        return adopted_now(shared, wsi);
    }
    let key = tag - 1;
    let conns = shared.conns.borrow();
    conns
        .get(key)
        .is_some_and(|s| s.wsi == wsi || s.wsi.is_null())
        .then_some(key)
}

/// Marks `wsi` as the connection in slot `key` (lws keeps key + 1 as its
/// opaque user data; 0 means none), so [`slot_key`] finds it.
/// Also notes its connection id for lws's log lines about it.
pub(crate) fn tag_wsi(wsi: *mut sys::lws, key: usize, id: u64) {
    // SAFETY: callers pass a live wsi (in its callback, or just returned by
    // lws); lws only stores the value.
    unsafe { sys::lws_set_opaque_user_data(wsi, (key + 1) as *mut c_void) };
    crate::logging::bind(wsi, id);
}

/// The slot of a wsi `adopt()` is creating right now (lws runs its first
/// callbacks before the call returns); tags the wsi with it.
fn adopted_now(shared: &Shared, wsi: *mut sys::lws) -> Option<usize> {
    let key = shared.adopting.get()?;
    // SAFETY: wsi is live (we are in its callback).
    if unsafe { sys::lws_get_vhost(wsi) } != shared.adopt_vhost.get() {
        return None;
    }
    shared.adopting.set(None);
    let id = {
        let mut conns = shared.conns.borrow_mut();
        let slot = conns.get_mut(key)?;
        slot.wsi = wsi;
        slot.id
    };
    tag_wsi(wsi, key, id);
    Some(key)
}

/// Runs `f` on the slot of the connection `wsi` is, if it is ours.
pub(crate) fn with_slot_of<R>(
    shared: &Shared,
    wsi: *mut sys::lws,
    f: impl FnOnce(&mut ConnSlot) -> R,
) -> Option<R> {
    let key = slot_key(shared, wsi)?;
    shared.conns.borrow_mut().get_mut(key).map(f)
}

/// The handle and handler of the connection `wsi` is, if it is ours.
pub(crate) fn conn_of(
    shared: &Rc<Shared>,
    wsi: *mut sys::lws,
) -> Option<(Connection, Rc<RefCell<dyn Handler>>)> {
    let key = slot_key(shared, wsi)?;
    let conns = shared.conns.borrow();
    let slot = conns.get(key)?;
    let conn = Connection {
        shared: shared.clone(),
        key,
        id: slot.id,
    };
    Some((conn, slot.handler.clone()))
}

unsafe fn dispatch(
    wsi: *mut sys::lws,
    reason: sys::lws_callback_reasons,
    user: *mut c_void,
    input: *mut c_void,
    len: usize,
) -> c_int {
    // SAFETY: wsi is live; its context is ours or lws_context_user is null.
    let shared_ref = unsafe { Shared::from_raw_context(sys::lws_get_context(wsi)) };
    let Some(shared_ref) = shared_ref else {
        // SAFETY: forwarding lws's own arguments to its default handler.
        return unsafe { sys::lws_callback_http_dummy(wsi, reason, user, input, len) };
    };
    // A counted handle for Connection values made here.
    // SAFETY: shared_ref points into an Rc<Shared> the Context keeps alive;
    // increment_strong_count + from_raw gives us our own reference.
    let shared: Rc<Shared> = unsafe {
        let ptr = shared_ref as *const Shared;
        Rc::increment_strong_count(ptr);
        Rc::from_raw(ptr)
    };
    // SAFETY: for the reasons that carry data, lws passes len bytes at
    // input, valid during this callback; the others pass null or 0.
    let bytes = || unsafe { input_bytes(input, len) };

    match reason {
        sys::LWS_CALLBACK_OPENSSL_PERFORM_CLIENT_CERT_VERIFICATION => {
            // lws's default accepts any client certificate; keep OpenSSL's
            // verdict (in `len`) against the listener's CA instead.
            c_int::from(len == 0)
        }
        sys::LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION => {
            // SAFETY: lws passes the X509_STORE_CTX and OpenSSL's verdict.
            unsafe { crate::tls_verify::server_cert(&shared, wsi, user, len != 0) }
        }
        sys::LWS_CALLBACK_CLOSED_CLIENT_HTTP => {
            // lws reports a client that failed while sending its upgrade
            // request (e.g. a TLS peer that refused it) as a closed HTTP
            // client, not a connection error.
            if let Some((conn, _)) = conn_of(&shared, wsi) {
                fail_client(
                    &shared,
                    &conn,
                    "connection closed before the handshake completed".into(),
                );
            }
            // SAFETY: forwarding lws's own arguments to its default handler.
            unsafe { sys::lws_callback_http_dummy(wsi, reason, user, input, len) }
        }
        // Plain HTTP on one of our listeners (the adopt vhost's requests
        // fall through to lws's default handler).
        sys::LWS_CALLBACK_HTTP
        | sys::LWS_CALLBACK_HTTP_BODY
        | sys::LWS_CALLBACK_HTTP_BODY_COMPLETION
            // SAFETY: wsi is live; listener_of only reads the protocol lws
            // bound it to.
            if unsafe { listener_of(wsi) }.is_some() =>
        {
            match reason {
                sys::LWS_CALLBACK_HTTP => crate::http::on_request(&shared, wsi),
                sys::LWS_CALLBACK_HTTP_BODY => crate::http::on_body(&shared, wsi, bytes()),
                _ => crate::http::on_body_done(&shared, wsi),
            }
        }
        sys::LWS_CALLBACK_CLOSED_HTTP => {
            crate::http::forget(&shared, wsi);
            // SAFETY: forwarding lws's own arguments to its default handler.
            unsafe { sys::lws_callback_http_dummy(wsi, reason, user, input, len) }
        }
        sys::LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED => {
            // A listener accepted a connection: its handshake deadline
            // starts (adopted sockets have no listener).
            // SAFETY: wsi is live and bound to its vhost's first protocol.
            if let Some(listener) = unsafe { listener_of(wsi) } {
                crate::limits::accepted(&shared, wsi, listener);
            }
            // SAFETY: forwarding lws's own arguments to its default handler.
            unsafe { sys::lws_callback_http_dummy(wsi, reason, user, input, len) }
        }
        sys::LWS_CALLBACK_FILTER_HTTP_CONNECTION => {
            // A plain HTTP request's headers are complete.
            crate::limits::settled(&shared, wsi);
            // SAFETY: forwarding lws's own arguments to its default handler.
            unsafe { sys::lws_callback_http_dummy(wsi, reason, user, input, len) }
        }
        sys::LWS_CALLBACK_HTTP_CONFIRM_UPGRADE => {
            // An upgrade request's headers are complete.
            crate::limits::settled(&shared, wsi);
            // SAFETY: for this reason lws passes the Upgrade header's value.
            let upgrade =
                (!input.is_null()).then(|| unsafe { CStr::from_ptr(input as *const c_char) });
            if upgrade.is_some_and(|u| u.to_bytes().eq_ignore_ascii_case(b"websocket")) {
                crate::handshake::confirm_upgrade(&shared, wsi)
            } else {
                0 // lws refuses other upgrades itself
            }
        }
        sys::LWS_CALLBACK_ESTABLISHED => on_established_server(&shared, wsi),
        sys::LWS_CALLBACK_CONFIRM_EXTENSION_OKAY => {
            // Every listener's vhost carries permessage-deflate; this
            // connection takes it only if its listener's settings say so.
            let wanted = with_slot_of(&shared, wsi, |s| s.deflate.is_some());
            c_int::from(wanted != Some(true))
        }
        sys::LWS_CALLBACK_CLIENT_FILTER_PRE_ESTABLISH => {
            // The last moment the response's header table is attached.
            // SAFETY: wsi is live and holds the parsed response headers.
            let headers = unsafe { Headers::read(wsi) };
            with_slot_of(&shared, wsi, |slot| slot.response_headers = Some(headers));
            0
        }
        sys::LWS_CALLBACK_CLIENT_ESTABLISHED => on_established_client(&shared, wsi),
        sys::LWS_CALLBACK_RECEIVE | sys::LWS_CALLBACK_CLIENT_RECEIVE => {
            on_receive(&shared, wsi, bytes())
        }
        sys::LWS_CALLBACK_RECEIVE_PONG | sys::LWS_CALLBACK_CLIENT_RECEIVE_PONG => {
            if let Some((conn, handler)) = conn_of(&shared, wsi) {
                let heard = shared.turn_started.get();
                conn.with_slot(|s| {
                    s.last_heard = heard;
                    s.pinged = false;
                });
                let payload = bytes().to_vec();
                shared.call(&handler, &conn, move |h, c| h.on_pong(c, &payload));
            }
            0
        }
        sys::LWS_CALLBACK_SERVER_WRITEABLE | sys::LWS_CALLBACK_CLIENT_WRITEABLE => {
            on_writeable(&shared, wsi)
        }
        sys::LWS_CALLBACK_WS_PEER_INITIATED_CLOSE => {
            let data = if input.is_null() || len == 0 {
                &mut [][..]
            } else {
                // SAFETY: lws passes the close payload it will echo, len
                // bytes in its own receive buffer, ours to change for this
                // callback (lws itself rewrites the code there).
                unsafe { std::slice::from_raw_parts_mut(input as *mut u8, len) }
            };
            on_peer_close(&shared, wsi, data)
        }
        sys::LWS_CALLBACK_CLOSED | sys::LWS_CALLBACK_CLIENT_CLOSED => {
            on_closed(&shared, wsi);
            0
        }
        sys::LWS_CALLBACK_CLIENT_CONNECTION_ERROR => {
            let why = if input.is_null() {
                "connection failed".to_string()
            } else {
                // SAFETY: lws passes a NUL-terminated message here.
                unsafe { CStr::from_ptr(input as *const c_char) }
                    .to_string_lossy()
                    .into_owned()
            };
            if let Some((conn, _)) = conn_of(&shared, wsi) {
                fail_client(&shared, &conn, why);
            }
            0
        }
        sys::LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER => {
            // SAFETY: lws passes `char **p` positioned in its header buffer,
            // with `len` bytes left.
            unsafe { append_client_headers(&shared, wsi, input as *mut *mut c_uchar, len) }
        }
        sys::LWS_CALLBACK_ADD_HEADERS => {
            // SAFETY: lws passes lws_process_html_args for this reason.
            unsafe { add_response_headers(&shared, wsi, input as *mut sys::lws_process_html_args) }
        }
        sys::LWS_CALLBACK_WSI_DESTROY => {
            crate::limits::settled(&shared, wsi); // a handshake that never ended
            crate::logging::unbind(wsi);
            if let Some(key) = slot_key(&shared, wsi) {
                shared.remove(key);
            }
            // SAFETY: wsi is live until this callback returns; clear our key
            // so nothing reads it again.
            unsafe { sys::lws_set_opaque_user_data(wsi, std::ptr::null_mut()) };
            0
        }
        // SAFETY: forwarding lws's own arguments to its default handler.
        _ => unsafe { sys::lws_callback_http_dummy(wsi, reason, user, input, len) },
    }
}

/// The listener a server wsi arrived on.
///
/// # Safety
/// `wsi` must be live and bound to one of our listener protocols.
pub(crate) unsafe fn listener_of<'a>(wsi: *mut sys::lws) -> Option<&'a ListenerState> {
    // SAFETY: the caller's contract; our listener protocols carry a pointer
    // to their boxed Listener, kept as long as the context.
    unsafe {
        let protocol = sys::lws_get_protocol(wsi);
        if protocol.is_null() {
            return None;
        }
        ((*protocol).user as *const ListenerState).as_ref()
    }
}

pub(crate) fn peer_address(wsi: *mut sys::lws) -> Option<String> {
    let mut buf = [0 as c_char; 128];
    // SAFETY: wsi is live; buf has room for the address and its NUL.
    let p = unsafe { sys::lws_get_peer_simple(wsi, buf.as_mut_ptr(), buf.len()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: lws wrote a NUL-terminated string into buf.
    let s = unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    // An IPv4 peer on a dual-stack socket reads as ::ffff:a.b.c.d.
    Some(s.strip_prefix("::ffff:").map(str::to_owned).unwrap_or(s))
}

/// The common name of the peer's TLS certificate, if it sent one.
pub(crate) fn peer_cert_name(wsi: *mut sys::lws) -> Option<String> {
    // SAFETY: wsi is live (callers are in its callbacks).
    if unsafe { sys::lws_is_ssl(wsi) } == 0 {
        return None;
    }
    // The union's name field is 64 bytes; lws writes up to `len` bytes
    // there, so give it a bigger, suitably aligned buffer.
    #[repr(C)]
    struct Big {
        results: sys::lws_tls_cert_info_results,
        _more: [u8; 192],
    }
    // SAFETY: plain C data; all-zero is a valid value.
    let mut big: Big = unsafe { std::mem::zeroed() };
    let room = 64 + 192;
    // SAFETY: wsi is a live TLS connection; `big` has `room` bytes of name
    // space after the union's length field.
    let rc = unsafe {
        sys::lws_tls_peer_cert_info(
            wsi,
            sys::LWS_TLS_CERT_INFO_COMMON_NAME,
            &mut big.results,
            room,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: on success lws wrote a NUL-terminated name into ns.name,
    // within the `room` bytes that follow ns.len.
    let name = unsafe { CStr::from_ptr(big.results.ns.name.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

pub(crate) fn on_established_server(shared: &Rc<Shared>, wsi: *mut sys::lws) -> c_int {
    // The slot was made when the upgrade was confirmed.
    let Some((conn, handler)) = conn_of(shared, wsi) else {
        return -1;
    };
    let headers = conn.with_slot(|slot| {
        if slot.state != State::Connecting {
            return None;
        }
        slot.wsi = wsi;
        slot.state = State::Connected;
        slot.peer_addr = peer_address(wsi);
        slot.peer_cert_name = peer_cert_name(wsi);
        slot.response_headers_out = Vec::new();
        slot.last_heard = std::time::Instant::now();
        if let Some(d) = slot.deflate {
            let offer = slot
                .request_headers_in
                .as_ref()
                .and_then(|h| h.get("sec-websocket-extensions"));
            let max_frame = slot.limits.max_frame_size;
            slot.deflate_active = crate::deflate::configure(wsi, &d, true, offer, max_frame);
        }
        if let Some(on) = slot.nodelay {
            // SAFETY: wsi is live.
            crate::server::set_nodelay(unsafe { sys::lws_get_socket_fd(wsi) }, on);
        }
        Some((
            slot.request_headers_in.take().unwrap_or_default(),
            slot.keepalive,
        ))
    });
    let Some(Some((headers, keepalive))) = headers else {
        return -1;
    };
    if let Some(k) = keepalive {
        crate::keepalive::watch(shared, &k);
    }
    shared.call(&handler, &conn, move |h, c| h.on_connect(c, &headers));
    0
}

fn on_established_client(shared: &Rc<Shared>, wsi: *mut sys::lws) -> c_int {
    let Some((conn, handler)) = conn_of(shared, wsi) else {
        return -1;
    };
    let headers = conn.with_slot(|slot| {
        if slot.state != State::Connecting {
            return None; // timed out meanwhile
        }
        let headers = slot.response_headers.take().unwrap_or_default();
        slot.wsi = wsi;
        slot.state = State::Connected;
        slot.peer_addr = peer_address(wsi);
        slot.peer_cert_name = peer_cert_name(wsi);
        slot.protocol = headers.get("sec-websocket-protocol").map(str::to_owned);
        slot.last_heard = std::time::Instant::now();
        if let Some(d) = slot.deflate {
            let max_frame = slot.limits.max_frame_size;
            slot.deflate_active = crate::deflate::configure(wsi, &d, false, None, max_frame);
        }
        Some((headers, slot.keepalive))
    });
    let Some(Some((headers, keepalive))) = headers else {
        return -1;
    };
    if let Some(k) = keepalive {
        crate::keepalive::watch(shared, &k);
    }
    shared.call(&handler, &conn, move |h, c| h.on_connect(c, &headers));
    0
}

/// The most a frame header's length makes us reserve for reassembly.
const RX_RESERVE_MAX: usize = 1 << 20;

/// What one RECEIVE did to a connection's reassembly buffer.
enum Rx {
    /// More fragments are due.
    Partial,
    /// A whole message: payload, binary?
    Complete(Vec<u8>, bool),
    /// A chunk, in fragment mode.
    Chunk(Fragment),
    /// Over max_message_size: close with 1009.
    TooBig,
}

pub(crate) fn on_receive(shared: &Rc<Shared>, wsi: *mut sys::lws, data: &[u8]) -> c_int {
    let Some((conn, handler)) = conn_of(shared, wsi) else {
        return 0;
    };
    // SAFETY: wsi is live during RECEIVE.
    let (first, remaining, binary) = unsafe {
        (
            sys::lws_is_first_fragment(wsi) != 0,
            sys::lws_remaining_packet_payload(wsi),
            sys::lws_frame_is_binary(wsi) != 0,
        )
    };
    // SAFETY: as above.
    let last = remaining == 0 && unsafe { sys::lws_is_final_fragment(wsi) } != 0;
    let heard = shared.turn_started.get();
    let step = conn.with_slot(|slot| {
        slot.last_heard = heard;
        slot.pinged = false;
        if slot.rx_discard {
            return Rx::Partial; // closing after a bad message: ignore the rest
        }
        // A chunk after one that ended its frame starts a frame: this
        // chunk and what lws says remains of it make the frame's length.
        let max_frame = slot.limits.max_frame_size;
        // With deflate, `data` is inflated while `remaining` counts wire
        // bytes: only the wire size of what is left is comparable.
        let frame_len = if slot.deflate_active {
            remaining
        } else {
            data.len() + remaining
        };
        if max_frame > 0 && !slot.rx_in_frame && frame_len > max_frame {
            return Rx::TooBig;
        }
        slot.rx_in_frame = remaining > 0;
        let max = slot.limits.max_message_size;
        if slot.limits.receive == ReceiveMode::Fragments {
            if first {
                slot.rx_streamed = 0;
                slot.rx_binary = binary;
            }
            slot.rx_streamed += data.len();
            if max > 0 && slot.rx_streamed > max {
                return Rx::TooBig;
            }
            return Rx::Chunk(Fragment {
                data: data.to_vec(),
                is_binary: slot.rx_binary,
                is_first: first,
                is_final: last,
            });
        }
        if first {
            slot.rx.clear();
            slot.rx_binary = binary;
        }
        if !last && slot.rx.is_empty() && !slot.deflate_active {
            // A message in several chunks: room for its first frame at
            // once rather than growing by doubling. Never more than the
            // size limit allows, nor past RX_RESERVE_MAX on the peer's say.
            let cap = if max > 0 { max } else { RX_RESERVE_MAX };
            slot.rx = shared
                .spare
                .take((data.len() + remaining).min(cap).min(RX_RESERVE_MAX));
        }
        if max > 0 && slot.rx.len() + data.len() > max {
            slot.rx = Vec::new();
            return Rx::TooBig;
        }
        if last && slot.rx.is_empty() {
            return Rx::Complete(data.to_vec(), slot.rx_binary); // one frame: one copy
        }
        slot.rx.extend_from_slice(data);
        if last {
            Rx::Complete(std::mem::take(&mut slot.rx), slot.rx_binary)
        } else {
            Rx::Partial
        }
    });
    let (payload, is_binary) = match step {
        Some(Rx::Complete(payload, is_binary)) => (payload, is_binary),
        Some(Rx::Chunk(fragment)) => {
            shared.call(&handler, &conn, move |h, c| h.on_fragment(c, fragment));
            return 0;
        }
        Some(Rx::TooBig) => return fail_now(&conn, wsi, CloseCode::TOO_BIG, "message too big"),
        Some(Rx::Partial) | None => return 0,
    };
    let message = if is_binary {
        Message::Binary(payload)
    } else {
        match String::from_utf8(payload) {
            Ok(text) => Message::Text(text),
            Err(_) => return fail_now(&conn, wsi, CloseCode::INVALID_PAYLOAD, "invalid UTF-8"),
        }
    };
    shared.call(&handler, &conn, move |h, c| h.on_message(c, message));
    0
}

/// We close because of what the peer sent (too big, bad UTF-8): drop what
/// is queued and what else arrives, and send the close frame from the next
/// WRITEABLE; `on_close` reports our code.
///
/// Not by returning -1 from RECEIVE: lws 4.3.5's client parser then keeps
/// its receive buffer position and, if more of the frame arrives before the
/// connection is gone, writes past the end of the buffer.
fn fail_now(conn: &Connection, wsi: *mut sys::lws, code: CloseCode, reason: &str) -> c_int {
    conn.with_slot(|s| {
        s.close_request = Some((code, reason.to_owned()));
        if s.state == State::Connected {
            s.state = State::Closing;
        }
        s.queue.clear();
        s.queued_bytes = 0;
        s.rx = Vec::new();
        s.rx_discard = true;
    });
    request_writable(wsi);
    0
}

/// Sets the close code and reason lws sends when the callback returns -1.
fn close_now(wsi: *mut sys::lws, code: CloseCode, reason: &str) {
    // SAFETY: wsi is live; lws only copies from the reason buffer (the
    // pointer is `*mut` in its signature, but it is never written).
    unsafe {
        sys::lws_close_reason(
            wsi,
            code.0 as sys::lws_close_status,
            reason.as_ptr() as *mut u8,
            reason.len(),
        )
    };
}

/// Cork threshold: with at least this many frames queued, hold TCP_CORK
/// around the batch so they leave in full segments, not one send each.
const CORK_MIN_FRAMES: usize = 2;

fn set_cork(wsi: *mut sys::lws, on: bool) {
    // SAFETY: wsi is live; a failing setsockopt (non-TCP fd) is harmless.
    unsafe {
        let fd = sys::lws_get_socket_fd(wsi);
        let v: c_int = on as c_int;
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            &v as *const c_int as *const c_void,
            std::mem::size_of::<c_int>() as libc::socklen_t,
        );
    }
}

/// Writes queued frames while lws takes them without buffering, small
/// frames several at a time as one raw write (crate::batch). Returns
/// whether anything was written, None if a write failed.
fn write_batched(shared: &Shared, conn: &Connection, wsi: *mut sys::lws) -> Option<bool> {
    let mut wrote = false;
    loop {
        // Taken out of the Cell so no borrow is held across lws_write.
        let mut batch = shared.tx_batch.take();
        batch.clear();
        batch.resize(sys::LWS_PRE, 0);
        let next = conn.with_slot(|slot| {
            let n = crate::batch::leading(&slot.queue);
            // A client frames even a lone small frame itself: lws would
            // read its masking key from the kernel, a syscall per frame.
            if n == 0 || (n == 1 && !slot.is_client) {
                let frame = slot.queue.pop_front()?;
                slot.queued_bytes -= frame.payload;
                return Some(Some(frame));
            }
            let mut keys = [[0u8; 4]; crate::batch::FRAMES_MAX];
            let keys = &mut keys[..n];
            if slot.is_client {
                shared.mask_keys.fill(shared.raw.get(), keys);
            }
            for key in keys.iter() {
                let frame = slot.queue.pop_front().expect("leading counted it");
                slot.queued_bytes -= frame.payload;
                crate::batch::encode(&mut batch, &frame, slot.is_client.then_some(*key));
            }
            Some(None)
        });
        let n = match next {
            Some(Some(Some(mut frame))) => {
                let len = frame.write_len();
                // SAFETY: the buffer has LWS_PRE bytes of headroom before
                // the payload, as lws_write requires; wsi is live.
                let n = unsafe {
                    sys::lws_write(
                        wsi,
                        frame.buf.as_mut_ptr().add(sys::LWS_PRE),
                        len,
                        frame.kind,
                    )
                };
                // Without an extension lws copies what the kernel did not
                // take: the buffer is ours again.
                shared.spare.give(frame.buf);
                Some(n)
            }
            Some(Some(None)) => {
                let len = batch.len() - sys::LWS_PRE;
                // SAFETY: as above; LWS_WRITE_RAW sends the bytes as they
                // are, and lws copies what the kernel does not take.
                Some(unsafe {
                    sys::lws_write(
                        wsi,
                        batch.as_mut_ptr().add(sys::LWS_PRE),
                        len,
                        sys::LWS_WRITE_HTTP,
                    )
                })
            }
            _ => None, // the queue is empty
        };
        shared.tx_batch.set(batch);
        let Some(n) = n else { break };
        if n < 0 {
            return None;
        }
        wrote = true;
        // SAFETY: wsi is live.
        if unsafe { sys::lws_partial_buffered(wsi) } != 0 {
            break; // lws holds the rest; it asks for POLLOUT itself
        }
    }
    Some(wrote)
}

/// Writes queued frames one lws_write each, for a connection whose data
/// frames go through permessage-deflate (lws must frame them itself).
/// Returns whether anything was written, None if a write failed.
fn write_through_extension(shared: &Shared, conn: &Connection, wsi: *mut sys::lws) -> Option<bool> {
    let corked = conn.with_slot(|s| s.queue.len() >= CORK_MIN_FRAMES) == Some(true);
    if corked {
        set_cork(wsi, true);
    }
    let mut wrote = false;
    let mut failed = false;
    loop {
        let next = conn.with_slot(|slot| {
            let frame = slot.queue.pop_front()?;
            slot.queued_bytes -= frame.payload;
            Some(frame)
        });
        let Some(Some(mut frame)) = next else { break };
        let len = frame.write_len();
        // SAFETY: the buffer has LWS_PRE bytes of headroom before the
        // payload, as lws_write requires; wsi is live.
        let n = unsafe {
            sys::lws_write(
                wsi,
                frame.buf.as_mut_ptr().add(sys::LWS_PRE),
                len,
                frame.kind,
            )
        };
        if n < 0 {
            failed = true;
            break;
        }
        wrote = true;
        if frame.is_extended() {
            // lws may drain this message over later writes, reading our
            // buffer as it goes, and would take another data write as part
            // of it: keep the frame and write no more data this time.
            conn.with_slot(|s| s.tx_in_flight = Some(frame));
            break;
        }
        shared.spare.give(frame.buf);
        // SAFETY: wsi is live.
        if unsafe { sys::lws_partial_buffered(wsi) } != 0 {
            break; // lws holds the rest; it asks for POLLOUT itself
        }
    }
    if corked {
        set_cork(wsi, false);
    }
    (!failed).then_some(wrote)
}

pub(crate) fn on_writeable(shared: &Rc<Shared>, wsi: *mut sys::lws) -> c_int {
    let Some((conn, handler)) = conn_of(shared, wsi) else {
        return 0;
    };
    // SAFETY: wsi is live (we are in its callback).
    if unsafe { sys::lws_get_close_length(wsi) } > 0 {
        // A close is on its way (lws failed the connection itself, or ours
        // already went): lws still offers WRITEABLE while it waits for the
        // answer, but no data frame may follow a close (RFC 6455 5.5.1).
        conn.with_slot(|s| s.queue.clear());
        return 0;
    }
    // lws calls WRITEABLE only once it has drained a compressed message,
    // so the frame zlib was reading can go now.
    let Some(deflating) = conn.with_slot(|s| {
        s.tx_in_flight = None;
        s.deflate_active
    }) else {
        return 0;
    };
    let written = if deflating {
        write_through_extension(shared, &conn, wsi)
    } else {
        write_batched(shared, &conn, wsi)
    };
    let Some(wrote) = written else {
        return -1;
    };
    let Some((more, close)) = conn.with_slot(|slot| {
        // The close request stays in the slot: on_close reports it.
        let close = slot
            .queue
            .is_empty()
            .then(|| slot.close_request.clone())
            .flatten();
        (!slot.queue.is_empty(), close)
    }) else {
        return 0;
    };
    if more {
        request_writable(wsi);
        return 0;
    }
    if let Some((code, reason)) = close {
        // SAFETY: wsi is live.
        if unsafe { sys::lws_partial_buffered(wsi) } != 0 {
            // lws still holds part of the last frame: a -1 now would make
            // it flush and then drop the connection without a close frame.
            request_writable(wsi);
            return 0;
        }
        // Once only: lws then sends the close frame and waits for the
        // peer's answer; another -1 would kill the connection at once.
        if conn.with_slot(|s| std::mem::replace(&mut s.close_sent, true)) == Some(true) {
            return 0;
        }
        close_now(wsi, code, &reason);
        return -1;
    }
    if wrote {
        shared.call(&handler, &conn, |h, c| h.on_drain(c));
    }
    0
}

/// Whether a close code may come from a peer (RFC 6455 7.4: the codes
/// defined for use, incl. 1012-1014 from IANA's registry, and 3000-4999;
/// 1004-1006 and 1015 must never be on the wire).
fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// The peer's close frame. `data` is the payload lws will echo: lws
/// already put 1002 there for most invalid codes, not for every one (a
/// client's lws lets 1015 through, neither side checks codes from 5000 up),
/// so we finish the job the same way. A 1-byte payload cannot carry a code:
/// we fail the connection with 1002.
pub(crate) fn on_peer_close(shared: &Rc<Shared>, wsi: *mut sys::lws, data: &mut [u8]) -> c_int {
    // SAFETY: wsi is live (we are in its callback).
    let lws_failed = unsafe { sys::lws_get_close_length(wsi) } > 0;
    let failed = with_slot_of(shared, wsi, |s| {
        // We (bad message, close still to send) or lws (bad frame)
        // already failed the connection: that close is the one to send and
        // report, whatever the peer says now.
        (s.rx_discard || (lws_failed && s.close_request.is_none())).then(|| {
            let ours = s.close_request.clone().filter(|_| !s.close_sent);
            s.close_sent = true;
            ours
        })
    })
    .flatten();
    if let Some(ours) = failed {
        if let Some((code, reason)) = ours {
            close_now(wsi, code, &reason);
        }
        return -1; // lws sends the close it has and hangs up
    }
    if data.len() == 1 {
        let reason = "bad close payload";
        with_slot_of(shared, wsi, |s| {
            s.close_request = Some((CloseCode::PROTOCOL, reason.into()));
            s.close_sent = true;
        });
        close_now(wsi, CloseCode::PROTOCOL, reason);
        return -1; // lws sends our 1002 and hangs up
    }
    let (code, reason) = if data.len() >= 2 {
        let mut code = u16::from_be_bytes([data[0], data[1]]);
        if !is_valid_close_code(code) {
            code = CloseCode::PROTOCOL.0;
            data[..2].copy_from_slice(&code.to_be_bytes());
        }
        (
            CloseCode(code),
            String::from_utf8_lossy(&data[2..]).into_owned(),
        )
    } else {
        (CloseCode::NO_STATUS, String::new())
    };
    with_slot_of(shared, wsi, |slot| slot.peer_close = Some((code, reason)));
    0
}

/// The close lws sent or will send on `wsi` (its own code when it failed
/// the connection itself), if it has one.
fn close_sent_by_lws(wsi: *mut sys::lws) -> Option<(CloseCode, String)> {
    // SAFETY: wsi is a live ws connection (ESTABLISHED ran for it).
    let len = unsafe { sys::lws_get_close_length(wsi) };
    if len < 2 {
        return None;
    }
    // SAFETY: lws keeps `len` bytes of close payload there (our patch has
    // a client's write mask a copy, so these are the bytes as sent).
    let payload =
        unsafe { std::slice::from_raw_parts(sys::lws_get_close_payload(wsi), len as usize) };
    Some((
        CloseCode(u16::from_be_bytes([payload[0], payload[1]])),
        String::from_utf8_lossy(&payload[2..]).into_owned(),
    ))
}

pub(crate) fn on_closed(shared: &Rc<Shared>, wsi: *mut sys::lws) {
    let Some((conn, handler)) = conn_of(shared, wsi) else {
        return;
    };
    let closed = conn.with_slot(|slot| {
        let was = std::mem::replace(&mut slot.state, State::Closed);
        if matches!(was, State::Closed | State::Connecting) {
            return None; // a client that never connected already got on_error
        }
        slot.queue.clear();
        slot.queued_bytes = 0;
        Some(match (&slot.peer_close, &slot.close_request) {
            (Some((code, reason)), _) | (None, Some((code, reason))) => (*code, reason.clone()),
            (None, None) => {
                close_sent_by_lws(wsi).unwrap_or_else(|| (CloseCode::ABNORMAL, String::new()))
            }
        })
    });
    let Some(Some((code, reason))) = closed else {
        return;
    };
    shared.call(&handler, &conn, move |h, c| h.on_close(c, code, &reason));
}

/// Adds a client's request headers to its handshake.
///
/// # Safety
/// `p` must be lws's write cursor for the handshake, with `len` bytes left.
unsafe fn append_client_headers(
    shared: &Rc<Shared>,
    wsi: *mut sys::lws,
    p: *mut *mut c_uchar,
    len: usize,
) -> c_int {
    let Some((conn, _)) = conn_of(shared, wsi) else {
        return 0;
    };
    let headers = {
        let conns = shared.conns.borrow();
        match conns.get(conn.key) {
            Some(s) => s.request_headers.clone(),
            None => return 0,
        }
    };
    // SAFETY: the caller's contract: *p + len is the end of the buffer.
    let end = unsafe { (*p).add(len) };
    for (name, value) in headers {
        let Ok(name) = CString::new(format!("{name}:")) else {
            continue;
        };
        // SAFETY: p/end delimit lws's buffer; lws checks the room itself.
        let r = unsafe {
            sys::lws_add_http_header_by_name(
                wsi,
                name.as_ptr() as *const c_uchar,
                value.as_ptr(),
                value.len() as c_int,
                p,
                end,
            )
        };
        if r != 0 {
            log::warn!("request header {name:?} does not fit the handshake buffer");
            return -1;
        }
    }
    0
}

/// Adds a server connection's response headers (the listener's, and those
/// `on_handshake` returned) to its 101 response.
///
/// # Safety
/// `args` must be the lws_process_html_args lws passes with ADD_HEADERS.
pub(crate) unsafe fn add_response_headers(
    shared: &Rc<Shared>,
    wsi: *mut sys::lws,
    args: *mut sys::lws_process_html_args,
) -> c_int {
    if args.is_null() {
        return 0;
    }
    let Some(headers) = with_slot_of(shared, wsi, |s| std::mem::take(&mut s.response_headers_out))
    else {
        return 0;
    };
    // SAFETY: args is valid for this callback (caller's contract).
    let args = unsafe { &mut *args };
    let mut p = args.p as *mut c_uchar;
    // SAFETY: p + max_len is the end of lws's buffer.
    let end = unsafe { p.add(args.max_len.max(0) as usize) };
    for (name, value) in &headers {
        // SAFETY: p/end delimit lws's buffer; lws checks the room itself.
        let r = unsafe {
            sys::lws_add_http_header_by_name(
                wsi,
                name.as_ptr() as *const c_uchar,
                value.as_ptr() as *const c_uchar,
                value.as_bytes().len() as c_int,
                &mut p,
                end,
            )
        };
        if r != 0 {
            log::warn!("response header {name:?} does not fit the handshake buffer");
            return 1;
        }
    }
    // SAFETY: p only moved forward within [args.p, end].
    let used = unsafe { p.offset_from(args.p as *mut c_uchar) } as c_int;
    args.max_len -= used;
    args.p = p as *mut c_char;
    0
}
