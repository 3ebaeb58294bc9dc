//! Client side: URLs, the client vhosts (one per TLS files + proxy), and
//! connecting.

use crate::callback::StaticProtocols;
use crate::connection::{ConnSlot, Connection, State};
use crate::context::{cstring, Context, Shared};
use crate::options::{ClientTls, ConnectOptions, Proxy};
use crate::server::file_cstring;
use crate::{Error, Handler, Result};
use lws_sys as sys;
use std::cell::RefCell;
use std::ffi::{c_void, CStr, CString};
use std::os::raw::c_int;
use std::path::PathBuf;
use std::rc::Rc;

pub(crate) const CLIENT_PROTOCOL: &CStr = c"lws-rs-client";

/// The client vhosts' protocol table.
static CLIENT_PROTOCOLS: StaticProtocols = StaticProtocols::new(CLIENT_PROTOCOL);

/// What a client vhost is made of: lws keeps TLS files and the proxy per
/// vhost, so connections that differ in them need their own.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct VhostKey {
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    /// `host:port` (maybe with `user:pass@`), or None for direct.
    proxy: Option<String>,
    /// permessage-deflate offered (lws keeps the offer per vhost).
    deflate: Option<crate::Deflate>,
}

/// A ws:// or wss:// URL, taken apart as lws wants it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub tls: bool,
    /// Host name or address, IPv6 without brackets.
    pub host: String,
    pub port: u16,
    /// Path and query.
    pub path: String,
    /// The Host header: IPv6 in brackets, the port unless the default.
    pub host_header: String,
}

/// Parses a ws:// or wss:// URL (default ports 80 and 443; userinfo ignored).
pub(crate) fn parse_url(text: &str) -> Result<Target> {
    let url = url::Url::parse(text).map_err(|e| Error::Url(format!("{text}: {e}")))?;
    let tls = match url.scheme() {
        "ws" => false,
        "wss" => true,
        other => {
            return Err(Error::Url(format!(
                "{text}: scheme {other}: is not ws:// or wss://"
            )))
        }
    };
    let (host, bracketed) = match url.host() {
        Some(url::Host::Ipv6(a)) => (a.to_string(), format!("[{a}]")),
        Some(h) => (h.to_string(), h.to_string()),
        None => return Err(Error::Url(format!("{text}: no host"))),
    };
    let default_port = if tls { 443 } else { 80 };
    let port = url.port().unwrap_or(default_port);
    let mut path = url.path().to_string();
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    let host_header = if port == default_port {
        bracketed
    } else {
        format!("{bracketed}:{port}")
    };
    Ok(Target {
        tls,
        host,
        port,
        path,
        host_header,
    })
}

/// The proxy to use for `host`, as `[user:pass@]host:port`, or None.
/// `env` reads an environment variable (a parameter, for tests).
pub(crate) fn resolve_proxy(
    proxy: &Proxy,
    host: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<String>> {
    let read = |name: &str| {
        env(name)
            .or_else(|| env(&name.to_ascii_uppercase()))
            .filter(|v| !v.trim().is_empty())
    };
    let value = match proxy {
        Proxy::None => return Ok(None),
        Proxy::Http(p) => p.clone(),
        Proxy::FromEnv => {
            let Some(v) = ["https_proxy", "http_proxy", "all_proxy"]
                .iter()
                .find_map(|n| read(n))
            else {
                return Ok(None);
            };
            if read("no_proxy").is_some_and(|list| no_proxy_matches(&list, host)) {
                return Ok(None);
            }
            v
        }
    };
    let mut v = value.trim();
    if let Some(rest) = v.strip_prefix("http://") {
        v = rest;
    } else if let Some((scheme, _)) = v.split_once("://") {
        let why =
            format!("proxy {value}: only http:// (CONNECT) proxies are supported, not {scheme}://");
        if matches!(proxy, Proxy::FromEnv) {
            log::warn!("{why}; connecting directly");
            return Ok(None);
        }
        return Err(Error::InvalidOption(why));
    }
    let v = v.trim_end_matches('/');
    // The port is after the host: after ']' for an IPv6 literal.
    let host_part = v.rsplit_once('@').map_or(v, |(_, h)| h);
    let has_port = match host_part.rfind(']') {
        Some(i) => host_part[i..].contains(':'),
        None => host_part.contains(':'),
    };
    if host_part.is_empty() {
        return Err(Error::InvalidOption(format!("proxy {value}: no host")));
    }
    Ok(Some(if has_port {
        v.to_string()
    } else {
        format!("{v}:1080")
    }))
}

/// `no_proxy`: `*`, or host names / suffixes (`example.com`, `.example.com`).
fn no_proxy_matches(list: &str, host: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            let entry = entry.trim_start_matches('.');
            entry == "*"
                || host.eq_ignore_ascii_case(entry)
                || host
                    .to_ascii_lowercase()
                    .ends_with(&format!(".{}", entry.to_ascii_lowercase()))
        })
}

impl Context {
    /// Starts a client connection. Returns its handle at once; the outcome
    /// arrives as `on_connect`, or `on_error` (never from inside this call).
    ///
    /// # Errors
    /// [`Error::Url`] for a URL that is not `ws://` or `wss://` with a
    /// host; [`Error::InvalidOption`] for a NUL in an option, an unusable
    /// proxy or TLS file, or wss:// on a context made with `ssl_init: false`;
    /// [`Error::Lws`] if lws cannot set up the client's TLS.
    ///
    /// lws: `lws_client_connect_via_info`, on a client vhost per set of
    /// TLS files, proxy and deflate offer.
    ///
    /// # Examples
    ///
    /// A client that offers the `chat` subprotocol to a server of ours and
    /// reads which one was chosen:
    ///
    /// ```
    /// use lws::{Callbacks, CloseCode, ConnectOptions, Context, ContextOptions, ListenOptions};
    /// use std::{cell::RefCell, rc::Rc, time::Duration};
    ///
    /// let cx = Context::new(ContextOptions::default())?;
    /// let port = cx.listen(ListenOptions::new(0).protocol("chat"), Callbacks::new())?.port();
    ///
    /// let chosen = Rc::new(RefCell::new(None));
    /// let seen = chosen.clone();
    /// let mut options = ConnectOptions::new(format!("ws://127.0.0.1:{port}/room/1"));
    /// options = options.protocol("chat");
    /// options.headers.push(("Authorization".into(), "Bearer 42".into()));
    /// options.connect_timeout = Some(Duration::from_secs(5));
    /// let conn = cx.connect(options, Callbacks::new()
    ///     .on_connect(move |conn, _response| {
    ///         *seen.borrow_mut() = conn.protocol();
    ///         conn.close(CloseCode::NORMAL, "");
    ///     })
    ///     .on_close(|conn, _, _| conn.context().stop()))?;
    /// assert!(conn.is_connecting()); // the outcome comes later, on the loop
    /// cx.set_timeout(Duration::from_secs(10), |cx| cx.stop()); // a bound on the run
    /// cx.run()?;
    /// assert_eq!(chosen.borrow().as_deref(), Some("chat"));
    /// # Ok::<(), lws::Error>(())
    /// ```
    ///
    /// wss:// to a server elsewhere (the certificate is checked against the
    /// system's CAs):
    ///
    /// ```no_run
    /// use lws::{Callbacks, ConnectOptions, Context, ContextOptions};
    /// let cx = Context::new(ContextOptions::default())?;
    /// let options = ConnectOptions::new("wss://example.com/chat").protocol("chat");
    /// cx.connect(options, Callbacks::new().on_connect(|conn, _| {
    ///     let _ = conn.send_text("hello");
    /// }))?;
    /// cx.run()?;
    /// # Ok::<(), lws::Error>(())
    /// ```
    pub fn connect(&self, options: ConnectOptions, handler: impl Handler) -> Result<Connection> {
        self.live_raw()?; // refuses a C-owned context (crate::embed)
        let target = parse_url(&options.url)?;
        if target.tls && !self.shared().ssl_init {
            return Err(Error::InvalidOption(
                "wss:// needs a context with ssl_init: true (lws only sets up TLS when it initialises OpenSSL)".into(),
            ));
        }
        let proxy = resolve_proxy(&options.proxy, &target.host, |n| std::env::var(n).ok())?;
        let proxy_in_use = proxy.is_some();
        let vhost = self.client_vhost(&options.tls, proxy, options.deflate)?;
        // Through a proxy lws writes "CONNECT address:port": an IPv6
        // literal needs its brackets there (lws resolves only the proxy).
        let address = if proxy_in_use && target.host.contains(':') {
            format!("[{}]", target.host)
        } else {
            target.host.clone()
        };
        let c_address = cstring("url host", &address)?;
        let c_path = cstring("url path", &target.path)?;
        let c_host = cstring("url host", &target.host_header)?;
        for p in &options.protocols {
            crate::handshake::check_protocol_name(p)?;
        }
        let c_protocols = (!options.protocols.is_empty())
            .then(|| cstring("protocol", &options.protocols.join(", ")))
            .transpose()?;
        for (k, v) in &options.headers {
            crate::handshake::check_header(k, v).map_err(Error::InvalidOption)?;
        }

        let shared = self.shared();
        let limits = options.limits();
        let mut slot = ConnSlot::new(
            shared.new_id(),
            Rc::new(RefCell::new(handler)),
            limits,
            State::Connecting,
        );
        slot.request_headers = options.headers.clone();
        slot.keepalive = options.keepalive;
        slot.deflate = options.deflate;
        slot.is_client = true;
        // lws 4.3.5 takes the TLS name from the Host header cut at the first
        // ':', which leaves "[" for an IPv6 literal: check the address
        // ourselves (crate::tls_verify) and tell lws to skip its check.
        let verify_ip = target.tls && options.tls.verify && target.host.contains(':');
        if verify_ip {
            slot.verify_ip = Some(target.host.clone());
        }
        let conn = shared.insert(slot);
        let mut wsi: *mut sys::lws = std::ptr::null_mut();
        let mut info = sys::lws_client_connect_info {
            context: self.raw(),
            address: c_address.as_ptr(),
            port: target.port as c_int,
            path: c_path.as_ptr(),
            host: c_host.as_ptr(),
            origin: c_host.as_ptr(),
            protocol: c_protocols
                .as_ref()
                .map_or(std::ptr::null(), |p| p.as_ptr()),
            local_protocol_name: CLIENT_PROTOCOL.as_ptr(),
            ietf_version_or_minus_one: -1,
            vhost,
            opaque_user_data: (conn.key + 1) as *mut c_void,
            pwsi: &mut wsi,
            ..Default::default()
        };
        if target.tls {
            let mut flags = sys::LCCSCF_USE_SSL;
            if !options.tls.verify {
                flags |= sys::LCCSCF_ALLOW_SELFSIGNED
                    | sys::LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK
                    | sys::LCCSCF_ALLOW_EXPIRED
                    | sys::LCCSCF_ALLOW_INSECURE;
            }
            if verify_ip {
                flags |= sys::LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK;
            }
            info.ssl_connection = flags as c_int;
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
            crate::logging::bind(result, conn.id);
            if let Some(timeout) = options.connect_timeout {
                let id = conn.id;
                self.set_timeout(timeout, move |cx| connect_timed_out(cx.shared(), id));
            }
        }
        Ok(conn)
    }

    /// The client vhost for these TLS files and proxy, made on first use.
    fn client_vhost(
        &self,
        tls: &ClientTls,
        proxy: Option<String>,
        deflate: Option<crate::Deflate>,
    ) -> Result<*mut sys::lws_vhost> {
        let key = VhostKey {
            ca_file: tls.ca_file.clone(),
            cert_file: tls.cert_file.clone(),
            key_file: tls.key_file.clone(),
            proxy,
            deflate,
        };
        let shared = self.shared();
        if let Some(&vh) = shared.client_vhosts.borrow().get(&key) {
            return Ok(vh);
        }
        if key.cert_file.is_some() != key.key_file.is_some() {
            return Err(Error::InvalidOption(
                "a client certificate needs both cert_file and key_file".into(),
            ));
        }
        let file = |what: &str, p: &Option<PathBuf>| {
            p.as_deref().map(|p| file_cstring(what, p)).transpose()
        };
        let ca = file("TLS CA file", &key.ca_file)?;
        let cert = file("TLS client certificate", &key.cert_file)?;
        let private_key = file("TLS client key", &key.key_file)?;
        // ":0" is lws's way to say "no proxy" without reading http_proxy
        // from the environment itself.
        let proxy = cstring("proxy", key.proxy.as_deref().unwrap_or(":0"))?;
        let n = shared.client_vhosts.borrow().len();
        let name = CString::new(format!("lws-rs-client-{n}")).expect("no NUL");
        let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        let mut info = sys::lws_context_creation_info {
            port: sys::CONTEXT_PORT_NO_LISTEN,
            vhost_name: name.as_ptr(),
            protocols: CLIENT_PROTOCOLS.as_ptr(),
            client_ssl_ca_filepath: ptr(&ca),
            client_ssl_cert_filepath: ptr(&cert),
            client_ssl_private_key_filepath: ptr(&private_key),
            http_proxy_address: proxy.as_ptr(),
            retry_and_idle_policy: crate::keepalive::DISABLED.as_ptr(),
            ..Default::default()
        };
        if shared.ssl_init {
            info.options |= sys::LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT as u64;
        }
        let extensions = match &key.deflate {
            Some(d) => {
                let offer = cstring("deflate offer", &crate::deflate::client_offer(d))?;
                let table = crate::deflate::client_table(&offer);
                shared.keep_cstring(offer);
                Some(table)
            }
            None => None,
        };
        if let Some(table) = &extensions {
            info.extensions = table.0.as_ptr();
        }
        // SAFETY: the context is live; lws copies the file paths and proxy
        // while creating the vhost and keeps `name`, which we keep too.
        let vh = unsafe { sys::lws_create_vhost(self.raw(), &info) };
        if vh.is_null() {
            return Err(Error::Lws(
                "cannot create a client vhost (is a TLS CA, certificate or key file unusable?)"
                    .into(),
            ));
        }
        shared.keep_cstring(name);
        if let Some(table) = extensions {
            shared.keep_extensions(table);
        }
        shared.client_vhosts.borrow_mut().insert(key, vh);
        Ok(vh)
    }
}

/// A client attempt failed: state Closed, `on_error`.
pub(crate) fn fail_client(shared: &Shared, conn: &Connection, why: String) {
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
    if let Some(conn) = shared.connection(id) {
        abandon(shared, &conn, "connect timeout");
    }
}

/// Gives up a client that is still connecting: `on_error` with `why`, and
/// lws closes its attempt.
pub(crate) fn abandon(shared: &Shared, conn: &Connection, why: &str) {
    let wsi = {
        let conns = shared.conns.borrow();
        match conns.get(conn.key) {
            Some(s) if s.state == State::Connecting => s.wsi,
            _ => return,
        }
    };
    fail_client(shared, conn, why.into());
    if !wsi.is_null() {
        // SAFETY: the slot still holds the wsi, so lws has not freed it;
        // LWS_TO_KILL_ASYNC closes it at lws's next service.
        unsafe { sys::lws_set_timeout(wsi, sys::PENDING_TIMEOUT_USER_OK, sys::LWS_TO_KILL_ASYNC) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_as_ev_documents_them() {
        let t = parse_url("ws://example.com/chat?room=1").unwrap();
        assert_eq!(
            (t.tls, t.port, t.path.as_str()),
            (false, 80, "/chat?room=1")
        );
        assert_eq!(t.host_header, "example.com");
        let t = parse_url("wss://example.com").unwrap();
        assert_eq!((t.tls, t.port, t.path.as_str()), (true, 443, "/"));
        let t = parse_url("ws://[2001:db8::1]:9001/").unwrap();
        assert_eq!(t.host, "2001:db8::1");
        assert_eq!(t.host_header, "[2001:db8::1]:9001");
        let t = parse_url("ws://user:secret@127.0.0.1:8080/x").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 8080));
        assert!(matches!(
            parse_url("http://example.com/"),
            Err(Error::Url(_))
        ));
        assert!(matches!(parse_url("not a url"), Err(Error::Url(_))));
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn proxies_come_from_the_environment_in_evs_order() {
        let all = [
            ("https_proxy", "http://secure:3128/"),
            ("http_proxy", "plain:8080"),
            ("all_proxy", "any:1"),
        ];
        assert_eq!(
            resolve_proxy(&Proxy::FromEnv, "h", env(&all)).unwrap(),
            Some("secure:3128".into())
        );
        assert_eq!(
            resolve_proxy(&Proxy::FromEnv, "h", env(&all[1..])).unwrap(),
            Some("plain:8080".into())
        );
        assert_eq!(
            resolve_proxy(&Proxy::FromEnv, "h", env(&all[2..])).unwrap(),
            Some("any:1".into())
        );
        assert_eq!(
            resolve_proxy(&Proxy::FromEnv, "h", env(&[("HTTP_PROXY", "big")])).unwrap(),
            Some("big:1080".into())
        );
        assert_eq!(resolve_proxy(&Proxy::None, "h", env(&all)).unwrap(), None);
        assert_eq!(resolve_proxy(&Proxy::FromEnv, "h", env(&[])).unwrap(), None);
        assert_eq!(
            resolve_proxy(&Proxy::FromEnv, "h", env(&[("http_proxy", "")])).unwrap(),
            None
        );
        let with_no = [
            ("http_proxy", "p:1"),
            ("no_proxy", "localhost, .corp.example"),
        ];
        assert_eq!(
            resolve_proxy(&Proxy::FromEnv, "a.corp.example", env(&with_no)).unwrap(),
            None
        );
        assert_eq!(
            resolve_proxy(&Proxy::FromEnv, "localhost", env(&with_no)).unwrap(),
            None
        );
        assert_eq!(
            resolve_proxy(&Proxy::FromEnv, "other", env(&with_no)).unwrap(),
            Some("p:1".into())
        );
        assert_eq!(
            resolve_proxy(&Proxy::Http("u:p@[::1]:3128".into()), "h", env(&[])).unwrap(),
            Some("u:p@[::1]:3128".into())
        );
        assert_eq!(
            resolve_proxy(&Proxy::Http("[::1]".into()), "h", env(&[])).unwrap(),
            Some("[::1]:1080".into())
        );
        assert!(resolve_proxy(&Proxy::Http("socks5://x:1".into()), "h", env(&[])).is_err());
        assert_eq!(
            resolve_proxy(&Proxy::FromEnv, "h", env(&[("all_proxy", "socks5://x:1")])).unwrap(),
            None
        );
    }
}
