//! Server side: listeners (one lws vhost each, listening on its own
//! socket) and adopted sockets.
//!
//! lws binds and listens; we then set what it cannot: the backlog (lws
//! fixes it at compile time) is set again with `listen(2)` on its socket,
//! and stopping or restarting a listener swaps the file behind lws's fd
//! number with `dup3` (an unbound socket to stop, a fresh listening one to
//! start), so lws never sees a closed fd and open connections go on.

use crate::callback::{protocol_callback, StaticProtocols};
use crate::connection::{ConnSlot, Connection, State};
use crate::context::{cstring, Context};
use crate::options::{AdoptOptions, Limits, ListenOptions};
use crate::{Error, Handler, Result};
use lws_sys as sys;
use socket2::{Domain, SockAddr, Socket, Type};
use std::cell::RefCell;
use std::ffi::{c_void, CStr, CString};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::os::fd::{IntoRawFd, OwnedFd};
use std::os::raw::c_int;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Names a listener of a context, for [`Context::stop_listening`],
/// [`Context::start_listening`], [`Context::configure_listener`] and
/// [`Context::remove_listener`]. Never reused within a context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerId(pub(crate) u64);

/// Where a listener listens.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    /// A TCP address (the port the OS picked, for port 0).
    Tcp(SocketAddr),
    /// A unix-domain socket path.
    Unix(PathBuf),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A listener [`Context::listen`] started: its id and bound address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    id: ListenerId,
    addr: ListenAddr,
}

impl Listener {
    /// Its id.
    pub fn id(&self) -> ListenerId {
        self.id
    }

    /// The address it is bound to.
    pub fn local_addr(&self) -> &ListenAddr {
        &self.addr
    }

    /// The TCP port it listens on (the one the OS picked for port 0); 0
    /// for a unix-domain listener.
    pub fn port(&self) -> u16 {
        match &self.addr {
            ListenAddr::Tcp(a) => a.port(),
            ListenAddr::Unix(_) => 0,
        }
    }
}

/// One listener: an lws vhost listening on its socket; boxed so the
/// pointers lws keeps into it stay put.
pub(crate) struct ListenerState {
    pub(crate) id: u64,
    pub(crate) handler: Rc<RefCell<dyn Handler>>,
    /// The subprotocols offered (empty: none); fixed, as lws's table is.
    pub(crate) protocols: Vec<String>,
    /// What [`Context::configure_listener`] may change.
    pub(crate) config: RefCell<ListenConfig>,
    /// Its WebSocket connections from handshake accept to close, against
    /// `max_connections` (crate::limits).
    pub(crate) live: crate::limits::LiveCount,
    /// Strings lws points to; kept as long as the vhost.
    _strings: Vec<CString>,
    /// lws's protocol table for the vhost (terminated by a zeroed entry).
    table: Vec<sys::lws_protocols>,
    /// The listening sockets lws made (their fd numbers stay lws's; stop
    /// and start swap the file behind them).
    fds: Vec<RawFd>,
    /// lws's listen wsi of each of `fds`, closed when the listener is
    /// removed.
    listen_wsis: Vec<*mut sys::lws>,
    addr: ListenAddr,
    listening: bool,
}

/// A listener's settings for the connections it accepts from now on.
pub(crate) struct ListenConfig {
    pub(crate) options: ListenOptions,
    /// Response headers for every connection ("Name:", value).
    pub(crate) headers: Vec<(CString, CString)>,
}

/// The name of the one protocol entry of a listener that offers none: lws
/// needs an entry to bind upgrades to, and never negotiates it (clients that
/// ask for any subprotocol are refused before lws looks).
const NO_PROTOCOL: &CStr = c"lws-rs";

/// The protocol table of the vhost adopted sockets join.
static ADOPT_PROTOCOLS: StaticProtocols = StaticProtocols::new(c"lws-rs-adopted");

/// Static response headers, checked (token names, no line breaks, room in
/// lws's buffer) and ready for lws.
fn header_cstrings(headers: &[(String, String)]) -> Result<Vec<(CString, CString)>> {
    for (k, v) in headers {
        crate::handshake::check_header(k, v).map_err(Error::InvalidOption)?;
    }
    let bytes =
        crate::handshake::header_bytes(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if bytes > crate::handshake::MAX_RESPONSE_HEADER_BYTES {
        return Err(Error::InvalidOption(format!(
            "response headers take {bytes} bytes; lws has room for {}",
            crate::handshake::MAX_RESPONSE_HEADER_BYTES
        )));
    }
    headers
        .iter()
        .map(|(k, v)| {
            Ok((
                cstring("header name", &format!("{k}:"))?,
                cstring("header value", v)?,
            ))
        })
        .collect()
}

/// A readable file's path as a C string, or an error naming the option.
pub(crate) fn file_cstring(what: &str, path: &Path) -> Result<CString> {
    if let Err(e) = std::fs::metadata(path) {
        return Err(Error::InvalidOption(format!(
            "{what} {}: {e}",
            path.display()
        )));
    }
    let s = path
        .to_str()
        .ok_or_else(|| Error::InvalidOption(format!("{what} {}: not UTF-8", path.display())))?;
    cstring(what, s)
}

impl Context {
    /// Starts a WebSocket server: listens as `options` say and serves every
    /// connection it accepts with `handler`. A context may have any number
    /// of listeners (TCP and unix-domain, plain and TLS), added, stopped,
    /// reconfigured and removed while it runs.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for a reserved vhost name, a NUL in an
    /// option, a TLS file that cannot be read, TLS on a context made with
    /// `ssl_init: false`, or a non-socket file at a unix path;
    /// [`Error::Lws`] if lws cannot listen (port taken, bad address,
    /// unusable certificate or key).
    ///
    /// lws: one vhost per listener (`lws_create_vhost` with our protocol
    /// table), on a socket bound by us so the backlog, `SO_REUSEPORT` and
    /// stop/start work.
    ///
    /// # Examples
    ///
    /// Two listeners on one context, on ports the OS picks: one for
    /// `chat`, one for anything.
    ///
    /// ```
    /// use lws::{Callbacks, Context, ContextOptions, ListenAddr, ListenOptions};
    /// let cx = Context::new(ContextOptions::default())?;
    /// let chat = cx.listen(ListenOptions::new(0).protocol("chat"), Callbacks::new())?;
    /// let mut options = ListenOptions::new(0);
    /// options.max_message_size = 1 << 20;
    /// options.max_connections = 1000;
    /// let other = cx.listen(options, Callbacks::new())?;
    /// assert_ne!(chat.port(), other.port());
    /// assert!(matches!(chat.local_addr(), ListenAddr::Tcp(a) if a.ip().is_loopback()));
    /// assert_eq!(cx.listeners().len(), 2);
    /// # Ok::<(), lws::Error>(())
    /// ```
    ///
    /// wss:// with a certificate and key in PEM files:
    ///
    /// ```no_run
    /// use lws::{Callbacks, Context, ContextOptions, ListenOptions, ServerTls};
    /// let cx = Context::new(ContextOptions::default())?;
    /// let mut options = ListenOptions::new(8443).protocol("chat");
    /// options.host = "0.0.0.0".into();
    /// options.tls = Some(ServerTls::new("cert.pem", "key.pem"));
    /// let listener = cx.listen(options, Callbacks::new())?;
    /// println!("listening on {} (port {})", listener.local_addr(), listener.port());
    /// # Ok::<(), lws::Error>(())
    /// ```
    pub fn listen(&self, options: ListenOptions, handler: impl Handler) -> Result<Listener> {
        let raw = self.live_raw()?;
        if options.name == "default" {
            return Err(Error::InvalidOption(
                "the vhost name \"default\" is reserved by lws".into(),
            ));
        }
        if options.backlog < 1 {
            return Err(Error::InvalidOption("backlog must be at least 1".into()));
        }
        check_handshake_timeout(&options)?;
        if let Some(other) = self.listener_at(&options) {
            // lws would not listen again: it would share that listener's
            // socket (and hand its connections to that listener).
            return Err(Error::Lws(format!(
                "cannot listen on {}: listener {other} of this context listens there (remove it first)",
                describe_at(&options)
            )));
        }
        let mut strings = Vec::new();
        let mut keep = |c: CString| {
            let p = c.as_ptr();
            strings.push(c);
            p
        };
        let name = keep(cstring("name", &options.name)?);
        let mut info = sys::lws_context_creation_info {
            port: options.port as c_int,
            vhost_name: name,
            // lws's own header-phase timeout, a backstop behind ours.
            timeout_secs_ah_idle: crate::limits::lws_guard_secs(options.handshake_timeout),
            ..Default::default()
        };
        if let Some(path) = &options.unix_path {
            remove_stale_socket(path)?;
            let path = path.to_str().ok_or_else(|| {
                Error::InvalidOption(format!("unix socket path {}: not UTF-8", path.display()))
            })?;
            info.iface = keep(cstring("unix socket path", path)?);
            info.options |= sys::LWS_SERVER_OPTION_UNIX_SOCK as u64;
        } else {
            info.iface = keep(cstring("host", &options.host)?);
        }
        if options.reuse_port {
            info.options |= sys::LWS_SERVER_OPTION_ALLOW_LISTEN_SHARE as u64;
        }
        let mut protocol_names = Vec::new();
        for p in &options.protocols {
            crate::handshake::check_protocol_name(p)?;
            protocol_names.push(keep(cstring("protocol", p)?));
        }
        if let Some(tls) = &options.tls {
            if !self.shared().ssl_init {
                return Err(Error::InvalidOption(
                    "TLS needs a context with ssl_init: true (lws only sets up TLS when it initialises OpenSSL)".into(),
                ));
            }
            info.ssl_cert_filepath = keep(file_cstring("TLS certificate", &tls.cert_file)?);
            info.ssl_private_key_filepath = keep(file_cstring("TLS key", &tls.key_file)?);
            if let Some(ca) = &tls.ca_file {
                info.ssl_ca_filepath = keep(file_cstring("TLS CA file", ca)?);
            } else if tls.require_client_cert {
                return Err(Error::InvalidOption(
                    "require_client_cert needs a ca_file to check client certificates against"
                        .into(),
                ));
            }
            info.options |= sys::LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT as u64;
            if tls.require_client_cert {
                info.options |= sys::LWS_SERVER_OPTION_REQUIRE_VALID_OPENSSL_CLIENT_CERT as u64;
            }
        }
        let headers = header_cstrings(&options.headers)?;
        let mut listener = Box::new(ListenerState {
            id: self.shared().new_id(),
            handler: Rc::new(RefCell::new(handler)),
            protocols: options.protocols.clone(),
            config: RefCell::new(ListenConfig {
                options: options.clone(),
                headers,
            }),
            live: Default::default(),
            _strings: strings,
            table: Vec::new(),
            fds: Vec::new(),
            listen_wsis: Vec::new(),
            addr: ListenAddr::Unix(PathBuf::new()),
            listening: true,
        });
        let user = &*listener as *const ListenerState as *mut c_void;
        let entry = |name| sys::lws_protocols {
            name,
            callback: Some(protocol_callback),
            user,
            tx_packet_size: crate::callback::TX_PACKET_SIZE,
            ..Default::default()
        };
        if protocol_names.is_empty() {
            protocol_names.push(NO_PROTOCOL.as_ptr());
        }
        listener.table = protocol_names.into_iter().map(entry).collect();
        listener.table.push(sys::lws_protocols::default());
        info.protocols = listener.table.as_ptr();
        // Offered on every listener, taken per connection (crate::deflate).
        info.extensions = crate::deflate::SERVER.0.as_ptr();
        // Keepalive is ours (crate::keepalive): lws's is switched off.
        info.retry_and_idle_policy = crate::keepalive::DISABLED.as_ptr();
        // SAFETY: the context is live; info points into the boxed listener,
        // which we keep (in Shared) as long as the context.
        let vh = unsafe { sys::lws_create_vhost(raw, &info) };
        if vh.is_null() {
            let at = describe_at(&options);
            return Err(Error::Lws(format!(
                "cannot listen on {at} (address in use or not available{})",
                if options.tls.is_some() {
                    ", or the certificate, key or CA file is not usable"
                } else {
                    ""
                }
            )));
        }
        (listener.fds, listener.listen_wsis) = {
            let mut all = self.shared().listen_fds.borrow_mut();
            let mine = all
                .iter()
                .filter(|(v, _, _)| *v == vh)
                .map(|(_, fd, wsi)| (*fd, *wsi))
                .unzip();
            all.retain(|(v, _, _)| *v != vh);
            mine
        };
        if listener.fds.is_empty() {
            // lws made the vhost but no socket (e.g. an address on no
            // interface): nothing would ever arrive.
            // SAFETY: vh was just created and has no connections.
            unsafe { sys::lws_vhost_destroy(vh) };
            return Err(Error::Lws(format!(
                "cannot listen on {} (no socket could be bound)",
                describe_at(&options)
            )));
        }
        for &fd in &listener.fds {
            // lws listens with its compile-time backlog; ours replaces it.
            // SAFETY: fd is lws's open listening socket.
            unsafe { libc::listen(fd, options.backlog) };
        }
        listener.addr = match &options.unix_path {
            Some(p) => ListenAddr::Unix(p.clone()),
            None => {
                // SAFETY: vh is the vhost just created.
                let port = unsafe { sys::lws_get_vhost_listen_port(vh) } as u16;
                let bound = listener.fds.first().and_then(|&fd| local_addr(fd));
                ListenAddr::Tcp(bound.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], port))))
            }
        };
        let public = Listener {
            id: ListenerId(listener.id),
            addr: listener.addr.clone(),
        };
        self.shared().listeners.borrow_mut().push(listener);
        Ok(public)
    }

    /// The listeners, with their bound addresses (stopped ones included).
    pub fn listeners(&self) -> Vec<Listener> {
        self.shared()
            .listeners
            .borrow()
            .iter()
            .filter(|l| l.id != 0) // 0: removed
            .map(|l| Listener {
                id: ListenerId(l.id),
                addr: l.addr.clone(),
            })
            .collect()
    }

    /// True while the listener accepts connections (not stopped, not
    /// removed).
    pub fn is_listening(&self, id: ListenerId) -> bool {
        self.shared()
            .listeners
            .borrow()
            .iter()
            .any(|l| l.id == id.0 && l.listening)
    }

    /// Stops accepting on this listener: its socket stops listening, so
    /// new connects are refused (and those the kernel had queued are
    /// reset); open connections go on. False for an unknown or already
    /// stopped listener.
    pub fn stop_listening(&self, id: ListenerId) -> bool {
        let fds = {
            let mut listeners = self.shared().listeners.borrow_mut();
            let Some(l) = listeners.iter_mut().find(|l| l.id == id.0 && l.listening) else {
                return false;
            };
            l.listening = false;
            l.fds.clone()
        };
        for fd in fds {
            // An unbound socket of the same family takes the listening
            // socket's place under lws's fd number; the old one closes.
            let domain = socket_domain(fd).unwrap_or(Domain::IPV4);
            match Socket::new(domain, Type::STREAM, None) {
                Ok(idle) => {
                    swap_socket(fd, &idle);
                    self.shared().reactor.borrow_mut().quiesce(fd);
                }
                Err(e) => log::warn!("listener {}: cannot stop listening: {e}", id.0),
            }
        }
        true
    }

    /// Listens again on a stopped listener, at the address it had (the
    /// same port, also when the OS picked it). Ok(false) if it was
    /// listening already.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for an unknown listener; [`Error::Io`] if
    /// the address is taken now.
    pub fn start_listening(&self, id: ListenerId) -> Result<bool> {
        let (fds, addr, options) = {
            let listeners = self.shared().listeners.borrow();
            let Some(l) = listeners.iter().find(|l| l.id == id.0) else {
                return Err(Error::InvalidOption(format!("no listener {}", id.0)));
            };
            if l.listening {
                return Ok(false);
            }
            let options = l.config.borrow().options.clone();
            (l.fds.clone(), l.addr.clone(), options)
        };
        let mut sockets = Vec::new();
        for _ in &fds {
            sockets.push(bind_like(&addr, &options)?);
        }
        for (fd, socket) in fds.iter().zip(&sockets) {
            swap_socket(*fd, socket);
            self.shared().reactor.borrow_mut().rearm(*fd);
        }
        if let Some(l) = self
            .shared()
            .listeners
            .borrow_mut()
            .iter_mut()
            .find(|l| l.id == id.0)
        {
            l.listening = true;
        }
        Ok(true)
    }

    /// Stops listening for good; the listener's open connections go on,
    /// and its address may be listened on again. (lws keeps its vhost
    /// until the context is dropped.) False for an unknown listener.
    pub fn remove_listener(&self, id: ListenerId) -> bool {
        self.stop_listening(id);
        let wsis = {
            let mut listeners = self.shared().listeners.borrow_mut();
            let Some(l) = listeners.iter_mut().find(|l| l.id == id.0) else {
                return false;
            };
            if let ListenAddr::Unix(path) = &l.addr {
                let _ = std::fs::remove_file(path);
            }
            // Kept (lws points into it), but no longer listed.
            l.id = 0;
            l.fds.clear();
            std::mem::take(&mut l.listen_wsis)
        };
        for wsi in wsis {
            // lws's listen wsi goes too (with the idle socket stop left
            // under its fd): otherwise lws would hand it to the next vhost
            // of this context listening at the same address instead of
            // listening again. Never the wsi being serviced (listen wsis
            // run no user code), so closing it now is safe.
            // SAFETY: the wsi is lws's live listen wsi of this listener.
            unsafe {
                sys::lws_set_timeout(wsi, sys::PENDING_TIMEOUT_USER_OK, sys::LWS_TO_KILL_SYNC)
            };
        }
        true
    }

    /// The listener (live or stopped) whose address lws would take as the
    /// same as `options`': same host string and port (not 0), or same unix
    /// path.
    fn listener_at(&self, options: &ListenOptions) -> Option<u64> {
        let listeners = self.shared().listeners.borrow();
        let other = listeners.iter().filter(|l| l.id != 0).find(|l| {
            let theirs = &l.config.borrow().options;
            match (&options.unix_path, &l.addr) {
                (Some(path), ListenAddr::Unix(p)) => path == p,
                (None, ListenAddr::Tcp(a)) => {
                    options.port != 0 && a.port() == options.port && theirs.host == options.host
                }
                _ => false,
            }
        });
        other.map(|l| l.id)
    }

    /// Changes a listener's settings for the connections it accepts from
    /// now on (UniEvent's `configure`): `max_message_size`,
    /// `max_send_queue`, `max_frame_size`, `headers`, `keepalive`,
    /// `nodelay`, `receive`, `backlog`, `max_connections` (counting the
    /// connections already open) and `handshake_timeout` (within lws's
    /// backstop set at listen; see [`ListenOptions::handshake_timeout`]).
    /// Connections already open keep what they had.
    /// What lws fixes per listening vhost (address, TLS, subprotocols)
    /// cannot change: remove the listener and listen again for that.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for an unknown listener, a change lws
    /// fixes, or a bad header.
    ///
    /// # Examples
    ///
    /// ```
    /// let cx = lws::Context::new(lws::ContextOptions::default())?;
    /// let listener = cx.listen(lws::ListenOptions::new(0), lws::Callbacks::new())?;
    /// cx.configure_listener(listener.id(), |o| {
    ///     o.max_message_size = 1 << 20;
    ///     o.headers.push(("X-Served-By".into(), "node-1".into()));
    /// })?;
    /// // The address is fixed: a change there is refused.
    /// assert!(cx.configure_listener(listener.id(), |o| o.port += 1).is_err());
    /// # Ok::<(), lws::Error>(())
    /// ```
    pub fn configure_listener(
        &self,
        id: ListenerId,
        change: impl FnOnce(&mut ListenOptions),
    ) -> Result<()> {
        let listeners = self.shared().listeners.borrow();
        let Some(l) = listeners.iter().find(|l| l.id == id.0) else {
            return Err(Error::InvalidOption(format!("no listener {}", id.0)));
        };
        let mut options = l.config.borrow().options.clone();
        let before = options.clone();
        change(&mut options);
        let fixed = |o: &ListenOptions| {
            (
                o.host.clone(),
                o.port,
                o.unix_path.clone(),
                o.reuse_port,
                o.name.clone(),
                o.protocols.clone(),
                o.tls.clone(),
            )
        };
        if fixed(&options) != fixed(&before) {
            return Err(Error::InvalidOption(
                "configure_listener cannot change the address, name, TLS or subprotocols: remove the listener and listen again".into(),
            ));
        }
        let headers = header_cstrings(&options.headers)?;
        check_handshake_timeout(&options)?;
        if options.backlog != before.backlog {
            if options.backlog < 1 {
                return Err(Error::InvalidOption("backlog must be at least 1".into()));
            }
            for &fd in &l.fds {
                // SAFETY: fd is lws's open socket; on a stopped listener
                // (not listening) this fails harmlessly.
                unsafe { libc::listen(fd, options.backlog) };
            }
        }
        *l.config.borrow_mut() = ListenConfig { options, headers };
        Ok(())
    }

    /// Hands a connected socket to lws as a WebSocket server connection,
    /// with the bytes already read from it (for example the HTTP upgrade
    /// request another HTTP server read). lws takes the socket over and
    /// answers the handshake; then it runs like a listener's connection.
    /// `on_handshake` and `on_connect` see the request's headers.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for a NUL in a header; [`Error::Lws`] if lws
    /// cannot adopt the socket.
    ///
    /// lws: `lws_adopt_socket_vhost_readbuf`.
    ///
    /// # Examples
    ///
    /// A listening socket of your own, accepted on the loop (through
    /// [`Context::watch_readable`]); each connection is handed to lws with
    /// nothing read yet. With another HTTP server in front, pass the bytes
    /// it already read as `initial_data`.
    ///
    /// ```
    /// use lws::{AdoptOptions, Callbacks, CloseCode, ConnectOptions, Context, ContextOptions};
    /// use std::os::fd::AsRawFd;
    /// use std::{cell::RefCell, rc::Rc, time::Duration};
    ///
    /// let cx = Context::new(ContextOptions::default())?;
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// listener.set_nonblocking(true)?;
    /// let port = listener.local_addr()?.port();
    /// let fd = listener.as_raw_fd();
    /// cx.watch_readable(fd, move |cx, _fd| {
    ///     while let Ok((stream, _peer)) = listener.accept() {
    ///         let echo = Callbacks::new().on_message(|conn, msg| {
    ///             let _ = conn.send(msg);
    ///         });
    ///         if let Err(e) = cx.adopt(stream, &[], AdoptOptions::default(), echo) {
    ///             eprintln!("adopt: {e}");
    ///         }
    ///     }
    /// })?;
    ///
    /// let echoed = Rc::new(RefCell::new(None));
    /// let seen = echoed.clone();
    /// let client = Callbacks::new()
    ///     .on_connect(|conn, _| {
    ///         let _ = conn.send_text("adopted");
    ///     })
    ///     .on_message(move |conn, msg| {
    ///         *seen.borrow_mut() = Some(msg);
    ///         conn.close(CloseCode::NORMAL, "");
    ///     })
    ///     .on_close(|conn, _, _| conn.context().stop());
    /// cx.connect(ConnectOptions::new(format!("ws://127.0.0.1:{port}/")), client)?;
    /// cx.set_timeout(Duration::from_secs(10), |cx| cx.stop()); // a bound on the run
    /// cx.run()?;
    /// cx.unwatch(fd);
    /// assert_eq!(*echoed.borrow(), Some(lws::Message::Text("adopted".into())));
    /// # Ok::<(), lws::Error>(())
    /// ```
    pub fn adopt(
        &self,
        socket: impl Into<OwnedFd>,
        initial_data: &[u8],
        options: AdoptOptions,
        handler: impl Handler,
    ) -> Result<Connection> {
        self.live_raw()?; // refuses a C-owned context (crate::embed)
        let headers = header_cstrings(&options.headers)?;
        let vh = self.adopt_vhost()?;
        let shared = self.shared();
        let limits = Limits {
            max_message_size: options.max_message_size,
            max_send_queue: options.max_send_queue,
            max_frame_size: options.max_frame_size,
            receive: options.receive,
        };
        let mut slot = ConnSlot::new(
            shared.new_id(),
            Rc::new(RefCell::new(handler)),
            limits,
            State::Connecting,
        );
        slot.response_headers_out = headers;
        let conn = shared.insert(slot);
        let fd = socket.into().into_raw_fd();
        // lws services the initial data inside the call, before we could
        // tag the wsi: slot_key tags it on first sight. Events other than
        // on_handshake wait until the call returns.
        shared.adopting.set(Some(conn.key));
        shared.in_connect.set(true);
        let (ptr, len) = if initial_data.is_empty() {
            (std::ptr::null(), 0)
        } else {
            (
                initial_data.as_ptr() as *const std::os::raw::c_char,
                initial_data.len(),
            )
        };
        // SAFETY: vh is our live adopt vhost; lws owns fd from here on and
        // copies `len` bytes from ptr.
        let wsi = unsafe { sys::lws_adopt_socket_vhost_readbuf(vh, fd, ptr, len) };
        shared.in_connect.set(false);
        shared.adopting.set(None);
        if wsi.is_null() && conn.with_slot(|s| s.wsi.is_null()) == Some(true) {
            // lws gave up before the wsi reached us: no WSI_DESTROY will free
            // the slot.
            shared.remove(conn.key);
            return Err(Error::Lws("cannot adopt the socket".into()));
        }
        if !wsi.is_null() && conn.with_slot(|s| s.wsi.is_null()) == Some(true) {
            // lws only buffered the data (an incomplete head): tag the wsi
            // now, before its next callback.
            crate::callback::tag_wsi(wsi, conn.key, conn.id);
            conn.with_slot(|s| s.wsi = wsi);
        }
        Ok(conn)
    }

    fn adopt_vhost(&self) -> Result<*mut sys::lws_vhost> {
        let shared = self.shared();
        if !shared.adopt_vhost.get().is_null() {
            return Ok(shared.adopt_vhost.get());
        }
        let info = sys::lws_context_creation_info {
            port: sys::CONTEXT_PORT_NO_LISTEN_SERVER,
            vhost_name: c"lws-rs-adopted".as_ptr(),
            protocols: ADOPT_PROTOCOLS.as_ptr(),
            retry_and_idle_policy: crate::keepalive::DISABLED.as_ptr(),
            ..Default::default()
        };
        // SAFETY: the context is live; info's pointers are static.
        let vh = unsafe { sys::lws_create_vhost(self.raw(), &info) };
        if vh.is_null() {
            return Err(Error::Lws(
                "cannot create the vhost for adopted sockets".into(),
            ));
        }
        shared.adopt_vhost.set(vh);
        Ok(vh)
    }
}

/// A handshake timeout of zero would drop every connection at once.
fn check_handshake_timeout(options: &ListenOptions) -> Result<()> {
    if options.handshake_timeout == Some(std::time::Duration::ZERO) {
        return Err(Error::InvalidOption(
            "handshake_timeout must be more than zero (None for lws's own timeouts only)".into(),
        ));
    }
    Ok(())
}

/// Where `options` listen, for messages.
fn describe_at(options: &ListenOptions) -> String {
    match &options.unix_path {
        Some(p) => format!("unix:{}", p.display()),
        None => format!("{}:{}", options.host, options.port),
    }
}

/// The local address of a socket.
fn local_addr(fd: RawFd) -> Option<SocketAddr> {
    // SAFETY: getsockname writes at most `len` bytes into storage.
    let (_, addr) = unsafe {
        SockAddr::try_init(|storage, len| {
            if libc::getsockname(fd, storage.cast(), len) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        })
    }
    .ok()?;
    addr.as_socket()
}

fn socket_domain(fd: RawFd) -> Option<Domain> {
    let mut v: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: SO_DOMAIN writes one int.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            &mut v as *mut c_int as *mut c_void,
            &mut len,
        )
    };
    (r == 0).then(|| Domain::from(v))
}

/// Puts `socket`'s file behind `fd` (lws's number), closing what was
/// there; `socket` keeps its own number and is closed by its owner.
fn swap_socket(fd: RawFd, socket: &Socket) {
    // SAFETY: both are open descriptors; dup3 closes fd's old file
    // atomically and makes fd refer to socket's. lws keeps using fd.
    // O_CLOEXEC as lws sets it on its sockets (dup2 would clear it, and
    // every child process would inherit the listening socket, which then
    // keeps accepting in the child after stop_listening).
    if unsafe { libc::dup3(socket.as_raw_fd(), fd, libc::O_CLOEXEC) } < 0 {
        log::warn!(
            "cannot swap listening socket {fd}: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// A listening socket on `addr`, made as lws makes its own, with our
/// backlog.
fn bind_like(addr: &ListenAddr, options: &ListenOptions) -> Result<Socket> {
    let (socket, sockaddr) = match addr {
        ListenAddr::Unix(path) => {
            remove_stale_socket(path)?;
            (
                Socket::new(Domain::UNIX, Type::STREAM, None)?,
                SockAddr::unix(path)?,
            )
        }
        ListenAddr::Tcp(a) => {
            let socket = Socket::new(Domain::for_address(*a), Type::STREAM, None)?;
            socket.set_reuse_address(true)?;
            if options.reuse_port {
                socket.set_reuse_port(true)?;
            }
            if a.is_ipv6() {
                socket.set_only_v6(false)?;
            }
            (socket, (*a).into())
        }
    };
    socket
        .bind(&sockaddr)
        .and_then(|()| socket.listen(options.backlog))
        .map_err(|e| listen_error(&addr.to_string(), e))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn listen_error(addr: &str, e: std::io::Error) -> Error {
    Error::Io(std::io::Error::new(
        e.kind(),
        format!("cannot listen on {addr}: {e}"),
    ))
}

/// A socket file left by an earlier run is replaced; anything else at the
/// path is not ours to remove.
fn remove_stale_socket(path: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => Ok(std::fs::remove_file(path)?),
        Ok(_) => Err(Error::InvalidOption(format!(
            "unix socket path {}: a file that is not a socket is in the way",
            path.display()
        ))),
        Err(_) => Ok(()),
    }
}

/// Sets TCP_NODELAY on a socket lws owns (a failure only costs latency).
pub(crate) fn set_nodelay(fd: RawFd, on: bool) {
    let v: c_int = on.into();
    // SAFETY: fd is an open socket; setsockopt reads one int.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            &v as *const c_int as *const c_void,
            std::mem::size_of::<c_int>() as libc::socklen_t,
        )
    };
}
