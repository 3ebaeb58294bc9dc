//! The one protocol callback lws calls for our connections, mapping lws
//! callback reasons onto [`Handler`] methods; plus listeners and clients.

use crate::connection::{request_writable, ConnSlot, Connection, State};
use crate::context::{cstring, Context, Shared};
use crate::{CloseCode, Error, Handler, Headers, Message, Result};
use lws_sys as sys;
use std::cell::RefCell;
use std::ffi::{c_void, CStr, CString};
use std::os::raw::{c_char, c_int, c_uchar};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Options for [`Context::listen`].
#[derive(Clone, Debug)]
pub struct ListenOptions {
    /// TCP port; 0 lets the OS pick one (see the value `listen` returns).
    pub port: u16,
    /// Address to bind (IPv4 or IPv6 literal, or an interface name).
    /// Default: "127.0.0.1".
    pub host: String,
    /// lws vhost name. Default "server"; "default" is reserved.
    pub name: String,
    /// The subprotocol this server speaks, if any.
    pub protocol: Option<String>,
    /// Largest reassembled message accepted; bigger ones close the
    /// connection with 1009. 0 = unlimited (the default).
    pub max_message_size: usize,
    /// Headers added to every handshake response.
    pub headers: Vec<(String, String)>,
}

impl ListenOptions {
    /// Defaults, on `port`.
    pub fn new(port: u16) -> Self {
        ListenOptions {
            port,
            host: "127.0.0.1".into(),
            name: "server".into(),
            protocol: None,
            max_message_size: 0,
            headers: Vec::new(),
        }
    }
}

/// Options for [`Context::connect`].
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// `ws://host[:port]/path?query` (port 80 by default; IPv6 hosts in
    /// brackets). Userinfo is not used: put credentials in `headers`.
    pub url: String,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Subprotocol to ask for, if any.
    pub protocol: Option<String>,
    /// Largest reassembled message accepted (0 = unlimited).
    pub max_message_size: usize,
    /// Deadline for TCP connect and handshake; on expiry `on_error` gets
    /// "connect timeout" and the attempt is abandoned. None = lws's own
    /// timeouts only.
    pub connect_timeout: Option<Duration>,
}

impl ConnectOptions {
    /// Defaults, for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        ConnectOptions {
            url: url.into(),
            headers: Vec::new(),
            protocol: None,
            max_message_size: 0,
            connect_timeout: None,
        }
    }
}

/// One listening vhost; boxed so the pointers lws keeps stay put.
pub(crate) struct Listener {
    handler: Rc<RefCell<dyn Handler>>,
    max_message_size: usize,
    protocol: Option<String>,
    headers: Vec<(CString, CString)>,
    _name: CString,
    _iface: CString,
    _protocol_name: CString,
    protocols: [sys::lws_protocols; 2],
}

const CLIENT_PROTOCOL: &CStr = c"lws-rs-client";

/// The client vhost's protocol table (static: lws keeps the pointer).
struct Protocols([sys::lws_protocols; 2]);
// SAFETY: immutable table of static strings and a function pointer.
unsafe impl Sync for Protocols {}

static CLIENT_PROTOCOLS: Protocols = Protocols([
    sys::lws_protocols {
        name: CLIENT_PROTOCOL.as_ptr(),
        callback: Some(protocol_callback),
        per_session_data_size: 0,
        rx_buffer_size: 0,
        id: 0,
        user: std::ptr::null_mut(),
        tx_packet_size: 0,
    },
    sys::lws_protocols {
        name: std::ptr::null(),
        callback: None,
        per_session_data_size: 0,
        rx_buffer_size: 0,
        id: 0,
        user: std::ptr::null_mut(),
        tx_packet_size: 0,
    },
]);

/// The vhost client connections bind to (no listener).
pub(crate) fn create_client_vhost(raw: *mut sys::lws_context) -> Result<*mut sys::lws_vhost> {
    let info = sys::lws_context_creation_info {
        port: sys::CONTEXT_PORT_NO_LISTEN,
        vhost_name: c"lws-rs-client".as_ptr(),
        protocols: CLIENT_PROTOCOLS.0.as_ptr(),
        ..Default::default()
    };
    // SAFETY: raw is live; info's pointers are static.
    let vh = unsafe { sys::lws_create_vhost(raw, &info) };
    if vh.is_null() {
        return Err(Error::Lws("cannot create the client vhost".into()));
    }
    Ok(vh)
}

impl Context {
    /// Starts a WebSocket server; returns the port it listens on.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for a reserved vhost name or a NUL in an
    /// option, [`Error::Lws`] if lws cannot listen (port taken, bad address).
    pub fn listen(&self, options: ListenOptions, handler: impl Handler) -> Result<u16> {
        self.listen_rc(options, Rc::new(RefCell::new(handler)))
    }

    fn listen_rc(&self, options: ListenOptions, handler: Rc<RefCell<dyn Handler>>) -> Result<u16> {
        if options.name == "default" {
            return Err(Error::InvalidOption(
                "the vhost name \"default\" is reserved by lws".into(),
            ));
        }
        let name = cstring("name", &options.name)?;
        let iface = cstring("host", &options.host)?;
        let protocol_name = cstring("protocol", options.protocol.as_deref().unwrap_or("lws-rs"))?;
        let mut headers = Vec::new();
        for (k, v) in &options.headers {
            headers.push((
                cstring("header name", &format!("{k}:"))?,
                cstring("header value", v)?,
            ));
        }
        let mut listener = Box::new(Listener {
            handler,
            max_message_size: options.max_message_size,
            protocol: options.protocol.clone(),
            headers,
            _name: name,
            _iface: iface,
            _protocol_name: protocol_name,
            protocols: [sys::lws_protocols::default(), sys::lws_protocols::default()],
        });
        let user = &*listener as *const Listener as *mut c_void;
        listener.protocols[0] = sys::lws_protocols {
            name: listener._protocol_name.as_ptr(),
            callback: Some(protocol_callback),
            user,
            ..Default::default()
        };
        let info = sys::lws_context_creation_info {
            port: options.port as c_int,
            iface: listener._iface.as_ptr(),
            vhost_name: listener._name.as_ptr(),
            protocols: listener.protocols.as_ptr(),
            ..Default::default()
        };
        // SAFETY: the context is live; info points into the boxed listener,
        // which we keep (in Shared) as long as the context.
        let vh = unsafe { sys::lws_create_vhost(self.raw(), &info) };
        if vh.is_null() {
            return Err(Error::Lws(format!(
                "cannot listen on {}:{} (address in use or not available?)",
                options.host, options.port
            )));
        }
        // SAFETY: vh is the vhost just created.
        let port = unsafe { sys::lws_get_vhost_listen_port(vh) };
        self.shared().listeners.borrow_mut().push(listener);
        Ok(port as u16)
    }

    /// Starts a client connection. Returns its handle at once; the outcome
    /// arrives as `on_connect`, or `on_error` (never from inside this call).
    ///
    /// # Errors
    /// [`Error::Url`] for a URL that is not `ws://` with a host;
    /// [`Error::InvalidOption`] for a NUL in an option.
    pub fn connect(&self, options: ConnectOptions, handler: impl Handler) -> Result<Connection> {
        let url = url::Url::parse(&options.url)
            .map_err(|e| Error::Url(format!("{}: {e}", options.url)))?;
        let tls = match url.scheme() {
            "ws" => false,
            "wss" => true,
            other => {
                return Err(Error::Url(format!(
                    "scheme {other}: is not ws:// or wss://"
                )))
            }
        };
        let host = match url.host() {
            Some(url::Host::Ipv6(a)) => a.to_string(),
            Some(h) => h.to_string(),
            None => return Err(Error::Url(format!("{}: no host", options.url))),
        };
        let port = url
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 });
        let mut path = url.path().to_string();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        let host_header = match url.host() {
            Some(url::Host::Ipv6(_)) => format!("[{host}]"),
            _ => host.clone(),
        };
        let c_address = cstring("url host", &host)?;
        let c_path = cstring("url path", &path)?;
        let c_host = cstring("url host", &host_header)?;
        let c_protocol = options
            .protocol
            .as_deref()
            .map(|p| cstring("protocol", p))
            .transpose()?;
        for (k, v) in &options.headers {
            cstring("header name", k)?;
            cstring("header value", v)?;
        }

        let shared = self.shared();
        let mut slot = ConnSlot::new(
            shared.new_id(),
            Rc::new(RefCell::new(handler)),
            options.max_message_size,
            true,
        );
        slot.request_headers = options.headers.clone();
        let conn = shared.insert(slot);
        let mut wsi: *mut sys::lws = std::ptr::null_mut();
        let mut info = sys::lws_client_connect_info {
            context: self.raw(),
            address: c_address.as_ptr(),
            port: port as c_int,
            path: c_path.as_ptr(),
            host: c_host.as_ptr(),
            origin: c_host.as_ptr(),
            protocol: c_protocol.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
            local_protocol_name: CLIENT_PROTOCOL.as_ptr(),
            ietf_version_or_minus_one: -1,
            vhost: self.client_vhost(),
            opaque_user_data: (conn.key + 1) as *mut c_void,
            pwsi: &mut wsi,
            ..Default::default()
        };
        if tls {
            info.ssl_connection = sys::LCCSCF_USE_SSL as c_int;
        }
        shared.in_connect.set(true);
        // SAFETY: info and its strings outlive the call (lws copies them);
        // callbacks it makes are deferred (in_connect).
        let result = unsafe { sys::lws_client_connect_via_info(&info) };
        shared.in_connect.set(false);
        if result.is_null() {
            // lws may have reported the error already (deferred); if the
            // slot is still connecting, no one did. No wsi exists any more,
            // so no WSI_DESTROY will free the slot: free it here.
            if conn.with_slot(|s| s.state) == Some(State::Connecting) {
                fail_client(shared, &conn, "connect failed".into());
            }
            shared.remove(conn.key);
        } else {
            conn.with_slot(|s| {
                if s.state == State::Connecting && s.wsi.is_null() {
                    s.wsi = result;
                }
            });
            if let Some(timeout) = options.connect_timeout {
                self.add_timer(Instant::now() + timeout, conn.id);
            }
        }
        Ok(conn)
    }
}

/// A client attempt failed: state Closed, `on_error`.
fn fail_client(shared: &Shared, conn: &Connection, why: String) {
    let handler = conn.with_slot(|slot| {
        (slot.state == State::Connecting).then(|| {
            slot.state = State::Closed;
            slot.handler.clone()
        })
    });
    let Some(Some(handler)) = handler else { return };
    shared.call(&handler, conn, move |h, c| {
        h.on_error(c, &Error::Connect(why))
    });
}

/// The connect timeout of connection `id` expired.
pub(crate) fn connect_timed_out(shared: &Rc<Shared>, id: u64) {
    let Some(conn) = shared.connection(id) else {
        return;
    };
    let wsi = {
        let conns = shared.conns.borrow();
        match conns.get(conn.key) {
            Some(s) if s.state == State::Connecting => s.wsi,
            _ => return,
        }
    };
    fail_client(shared, &conn, "connect timeout".into());
    if !wsi.is_null() {
        // SAFETY: the slot still holds the wsi, so lws has not freed it;
        // LWS_TO_KILL_ASYNC closes it at lws's next service.
        unsafe { sys::lws_set_timeout(wsi, sys::PENDING_TIMEOUT_USER_OK, sys::LWS_TO_KILL_ASYNC) };
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

/// The slab key of the connection `wsi` is, if it is one of ours. lws
/// keeps key + 1 as the wsi's opaque user data (0 = none); the slot must
/// still belong to this wsi (a client's is set just after connecting).
fn slot_key(shared: &Shared, wsi: *mut sys::lws) -> Option<usize> {
    // SAFETY: only called from lws's callbacks, with their live wsi.
    let key = (unsafe { sys::lws_get_opaque_user_data(wsi) } as usize).checked_sub(1)?;
    let conns = shared.conns.borrow();
    conns
        .get(key)
        .is_some_and(|s| s.wsi == wsi || s.wsi.is_null())
        .then_some(key)
}

/// Runs `f` on the slot of the connection `wsi` is, if it is ours.
fn with_slot_of<R>(
    shared: &Shared,
    wsi: *mut sys::lws,
    f: impl FnOnce(&mut ConnSlot) -> R,
) -> Option<R> {
    let key = slot_key(shared, wsi)?;
    shared.conns.borrow_mut().get_mut(key).map(f)
}

/// The handle and handler of the connection `wsi` is, if it is ours.
fn conn_of(
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
    let bytes = || -> &[u8] {
        if input.is_null() || len == 0 {
            &[]
        } else {
            // SAFETY: for the reasons that carry data, lws passes len bytes.
            unsafe { std::slice::from_raw_parts(input as *const u8, len) }
        }
    };

    match reason {
        sys::LWS_CALLBACK_ESTABLISHED => on_established_server(&shared, wsi),
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
                let payload = bytes().to_vec();
                shared.call(&handler, &conn, move |h, c| h.on_pong(c, &payload));
            }
            0
        }
        sys::LWS_CALLBACK_SERVER_WRITEABLE | sys::LWS_CALLBACK_CLIENT_WRITEABLE => {
            on_writeable(&shared, wsi)
        }
        sys::LWS_CALLBACK_WS_PEER_INITIATED_CLOSE => {
            let data = bytes();
            let (code, reason) = if data.len() >= 2 {
                (
                    CloseCode(u16::from_be_bytes([data[0], data[1]])),
                    String::from_utf8_lossy(&data[2..]).into_owned(),
                )
            } else {
                (CloseCode::NO_STATUS, String::new())
            };
            with_slot_of(&shared, wsi, |slot| slot.peer_close = Some((code, reason)));
            0
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
            unsafe { add_response_headers(wsi, input as *mut sys::lws_process_html_args) }
        }
        sys::LWS_CALLBACK_WSI_DESTROY => {
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
unsafe fn listener_of<'a>(wsi: *mut sys::lws) -> Option<&'a Listener> {
    // SAFETY: the caller's contract; our listener protocols carry a pointer
    // to their boxed Listener, kept as long as the context.
    unsafe {
        let protocol = sys::lws_get_protocol(wsi);
        if protocol.is_null() {
            return None;
        }
        ((*protocol).user as *const Listener).as_ref()
    }
}

fn peer_address(wsi: *mut sys::lws) -> Option<String> {
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

fn on_established_server(shared: &Rc<Shared>, wsi: *mut sys::lws) -> c_int {
    // SAFETY: ESTABLISHED arrives on a server wsi bound to a listener protocol.
    let Some(listener) = (unsafe { listener_of(wsi) }) else {
        return -1;
    };
    // SAFETY: the header table is still attached during ESTABLISHED.
    let headers = unsafe { Headers::read(wsi) };
    let mut slot = ConnSlot::new(
        shared.new_id(),
        listener.handler.clone(),
        listener.max_message_size,
        false,
    );
    slot.wsi = wsi;
    slot.peer_addr = peer_address(wsi);
    slot.protocol = listener.protocol.clone().filter(|p| {
        headers
            .get("sec-websocket-protocol")
            .is_some_and(|offered| offered.split(',').any(|o| o.trim() == p))
    });
    let handler = slot.handler.clone();
    let conn = shared.insert(slot);
    // SAFETY: wsi is live; the key identifies the slot in later callbacks.
    unsafe { sys::lws_set_opaque_user_data(wsi, (conn.key + 1) as *mut c_void) };
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
        slot.protocol = headers.get("sec-websocket-protocol").map(str::to_owned);
        Some(headers)
    });
    let Some(Some(headers)) = headers else {
        return -1;
    };
    shared.call(&handler, &conn, move |h, c| h.on_connect(c, &headers));
    0
}

/// What one RECEIVE did to a connection's reassembly buffer.
enum Rx {
    /// More fragments are due.
    Partial,
    /// A whole message: payload, binary?
    Complete(Vec<u8>, bool),
    /// Over max_message_size: close with 1009.
    TooBig,
}

fn on_receive(shared: &Rc<Shared>, wsi: *mut sys::lws, data: &[u8]) -> c_int {
    let Some((conn, handler)) = conn_of(shared, wsi) else {
        return 0;
    };
    // SAFETY: wsi is live during RECEIVE.
    let (first, last, binary) = unsafe {
        (
            sys::lws_is_first_fragment(wsi) != 0,
            sys::lws_is_final_fragment(wsi) != 0 && sys::lws_remaining_packet_payload(wsi) == 0,
            sys::lws_frame_is_binary(wsi) != 0,
        )
    };
    let step = conn.with_slot(|slot| {
        if first {
            slot.rx.clear();
            slot.rx_binary = binary;
        }
        if slot.max_message_size > 0 && slot.rx.len() + data.len() > slot.max_message_size {
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
        Some(Rx::TooBig) => {
            close_now(wsi, CloseCode::TOO_BIG, "message too big");
            return -1;
        }
        Some(Rx::Partial) | None => return 0,
    };
    let message = if is_binary {
        Message::Binary(payload)
    } else {
        match String::from_utf8(payload) {
            Ok(text) => Message::Text(text),
            Err(_) => {
                close_now(wsi, CloseCode::INVALID_PAYLOAD, "invalid UTF-8");
                return -1;
            }
        }
    };
    shared.call(&handler, &conn, move |h, c| h.on_message(c, message));
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

fn on_writeable(shared: &Rc<Shared>, wsi: *mut sys::lws) -> c_int {
    let Some((conn, handler)) = conn_of(shared, wsi) else {
        return 0;
    };
    let corked = conn.with_slot(|s| s.queue.len() >= CORK_MIN_FRAMES) == Some(true);
    if corked {
        set_cork(wsi, true);
    }
    let mut wrote = false;
    let mut failed = false;
    loop {
        let next = conn.with_slot(|slot| {
            let frame = slot.queue.pop_front()?;
            slot.queued_bytes -= frame.payload_len();
            Some(frame)
        });
        let Some(Some(mut frame)) = next else { break };
        let len = frame.payload_len();
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
        // SAFETY: wsi is live.
        if unsafe { sys::lws_partial_buffered(wsi) } != 0 {
            break; // lws holds the rest; it asks for POLLOUT itself
        }
    }
    if corked {
        set_cork(wsi, false);
    }
    if failed {
        return -1;
    }
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
        close_now(wsi, code, &reason);
        return -1;
    }
    if wrote {
        shared.call(&handler, &conn, |h, c| h.on_drain(c));
    }
    0
}

fn on_closed(shared: &Rc<Shared>, wsi: *mut sys::lws) {
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
            (None, None) => (CloseCode::ABNORMAL, String::new()),
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

/// Adds a listener's static headers to the handshake response.
///
/// # Safety
/// `args` must be the lws_process_html_args lws passes with ADD_HEADERS.
unsafe fn add_response_headers(wsi: *mut sys::lws, args: *mut sys::lws_process_html_args) -> c_int {
    // SAFETY: ADD_HEADERS arrives on a server wsi of one of our listeners.
    let Some(listener) = (unsafe { listener_of(wsi) }) else {
        return 0;
    };
    if args.is_null() {
        return 0;
    }
    // SAFETY: args is valid for this callback (caller's contract).
    let args = unsafe { &mut *args };
    let mut p = args.p as *mut c_uchar;
    // SAFETY: p + max_len is the end of lws's buffer.
    let end = unsafe { p.add(args.max_len.max(0) as usize) };
    for (name, value) in &listener.headers {
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
            return 1;
        }
    }
    // SAFETY: p only moved forward within [args.p, end].
    let used = unsafe { p.offset_from(args.p as *mut c_uchar) } as c_int;
    args.max_len -= used;
    args.p = p as *mut c_char;
    0
}
