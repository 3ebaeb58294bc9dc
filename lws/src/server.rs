//! Server side: listeners (one lws vhost each) and adopted sockets.

use crate::callback::{protocol_callback, StaticProtocols};
use crate::connection::{ConnSlot, Connection, State};
use crate::context::{cstring, Context};
use crate::options::{AdoptOptions, Limits, ListenOptions};
use crate::{Error, Handler, Result};
use lws_sys as sys;
use std::cell::RefCell;
use std::ffi::{c_void, CStr, CString};
use std::os::fd::{IntoRawFd, OwnedFd};
use std::os::raw::c_int;
use std::path::Path;
use std::rc::Rc;

/// One listening vhost; boxed so the pointers lws keeps stay put.
pub(crate) struct Listener {
    pub(crate) handler: Rc<RefCell<dyn Handler>>,
    pub(crate) limits: Limits,
    /// The subprotocols offered (empty: none).
    pub(crate) protocols: Vec<String>,
    /// Response headers for every connection ("Name:", value).
    pub(crate) headers: Vec<(CString, CString)>,
    /// Strings lws points to; kept as long as the vhost.
    _strings: Vec<CString>,
    /// lws's protocol table for the vhost (terminated by a zeroed entry).
    table: Vec<sys::lws_protocols>,
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
    /// Starts a WebSocket server; returns the port it listens on.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for a reserved vhost name, a NUL in an
    /// option, a TLS file that cannot be read, or TLS on a context made
    /// with `ssl_init: false`; [`Error::Lws`] if lws cannot listen (port
    /// taken, bad address, unusable certificate or key).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use lws::{Callbacks, Context, ContextOptions, ListenOptions, ServerTls};
    /// let cx = Context::new(ContextOptions::default())?;
    /// let mut options = ListenOptions::new(8443).protocol("chat");
    /// options.tls = Some(ServerTls::new("cert.pem", "key.pem"));
    /// let port = cx.listen(options, Callbacks::new())?;
    /// # Ok::<(), lws::Error>(())
    /// ```
    pub fn listen(&self, options: ListenOptions, handler: impl Handler) -> Result<u16> {
        if options.name == "default" {
            return Err(Error::InvalidOption(
                "the vhost name \"default\" is reserved by lws".into(),
            ));
        }
        let mut strings = Vec::new();
        let mut keep = |c: CString| {
            let p = c.as_ptr();
            strings.push(c);
            p
        };
        let name = keep(cstring("name", &options.name)?);
        let iface = keep(cstring("host", &options.host)?);
        let mut protocol_names = Vec::new();
        for p in &options.protocols {
            crate::handshake::check_protocol_name(p)?;
            protocol_names.push(keep(cstring("protocol", p)?));
        }
        let mut info = sys::lws_context_creation_info {
            port: options.port as c_int,
            iface,
            vhost_name: name,
            ..Default::default()
        };
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
        let mut listener = Box::new(Listener {
            handler: Rc::new(RefCell::new(handler)),
            limits: Limits {
                max_message_size: options.max_message_size,
                max_send_queue: options.max_send_queue,
                receive: options.receive,
            },
            protocols: options.protocols.clone(),
            headers: header_cstrings(&options.headers)?,
            _strings: strings,
            table: Vec::new(),
        });
        let user = &*listener as *const Listener as *mut c_void;
        let entry = |name| sys::lws_protocols {
            name,
            callback: Some(protocol_callback),
            user,
            ..Default::default()
        };
        if protocol_names.is_empty() {
            protocol_names.push(NO_PROTOCOL.as_ptr());
        }
        listener.table = protocol_names.into_iter().map(entry).collect();
        listener.table.push(sys::lws_protocols::default());
        info.protocols = listener.table.as_ptr();
        // SAFETY: the context is live; info points into the boxed listener,
        // which we keep (in Shared) as long as the context.
        let vh = unsafe { sys::lws_create_vhost(self.raw(), &info) };
        if vh.is_null() {
            return Err(Error::Lws(format!(
                "cannot listen on {}:{} (address in use or not available{})",
                options.host,
                options.port,
                if options.tls.is_some() {
                    ", or the certificate, key or CA file is not usable"
                } else {
                    ""
                }
            )));
        }
        // SAFETY: vh is the vhost just created.
        let port = unsafe { sys::lws_get_vhost_listen_port(vh) };
        self.shared().listeners.borrow_mut().push(listener);
        Ok(port as u16)
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
    /// # Examples
    ///
    /// ```no_run
    /// use std::io::Read;
    /// # fn f(cx: &lws::Context, listener: std::net::TcpListener) -> lws::Result<()> {
    /// let (mut stream, _) = listener.accept()?;
    /// let mut head = [0u8; 4096];
    /// let n = stream.read(&mut head)?; // e.g. a router peeking at the request
    /// cx.adopt(stream, &head[..n], lws::AdoptOptions::default(), lws::Callbacks::new())?;
    /// # Ok(()) }
    /// ```
    pub fn adopt(
        &self,
        socket: impl Into<OwnedFd>,
        initial_data: &[u8],
        options: AdoptOptions,
        handler: impl Handler,
    ) -> Result<Connection> {
        let headers = header_cstrings(&options.headers)?;
        let vh = self.adopt_vhost()?;
        let shared = self.shared();
        let limits = Limits {
            max_message_size: options.max_message_size,
            max_send_queue: options.max_send_queue,
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
            crate::callback::tag_wsi(wsi, conn.key);
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
