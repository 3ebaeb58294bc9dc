//! Options for listeners ([`ListenOptions`]), clients ([`ConnectOptions`])
//! and adopted sockets ([`AdoptOptions`]), with their TLS and proxy parts.

use std::path::PathBuf;
use std::time::Duration;

/// How received data reaches the handler.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReceiveMode {
    /// Whole messages, reassembled from their fragments up to
    /// `max_message_size`, through [`Handler::on_message`](crate::Handler::on_message).
    #[default]
    Messages,
    /// Every chunk lws reads, as it arrives, through
    /// [`Handler::on_fragment`](crate::Handler::on_fragment): for messages too big to
    /// hold in memory. `max_message_size` still bounds a whole message.
    Fragments,
}

/// Keepalive (Net::WebSocket::Server's `silence_max`): a connection the
/// peer has been silent on is pinged, and one that stays silent is hung
/// up (`on_close` with [`CloseCode::ABNORMAL`](crate::CloseCode::ABNORMAL)).
/// Anything received counts as a sign of life: a message or a pong. So
/// does the peer taking data we still have for it (a long message to a
/// slow reader, which any ping waits behind: a ping cannot cut into a
/// frame): its TCP acknowledging new bytes (Linux `TCP_INFO`), which a
/// peer that stopped reading, or a host that is gone, does not do.
///
/// Checked on the loop every quarter of the smallest `ping_after` in use
/// (between 50 ms and 1 s), so each limit is met within that much.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let mut options = lws::ListenOptions::new(9001);
/// // Ping after 10 s of silence; hang up if nothing comes 10 s later.
/// options.keepalive = Some(lws::Keepalive::new(Duration::from_secs(10), Duration::from_secs(20)));
/// let mut quiet = lws::ConnectOptions::new("ws://127.0.0.1:9001/");
/// quiet.keepalive = None; // never ping, never hang up for silence
/// # let _ = (options, quiet);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Keepalive {
    /// Silence after which lws sends a ping. Default 30 s.
    pub ping_after: Duration,
    /// Silence after which the connection is hung up (counted from the
    /// same moment, so the peer has `hangup_after - ping_after` to answer
    /// the ping). Default 60 s.
    pub hangup_after: Duration,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            ping_after: Duration::from_secs(30),
            hangup_after: Duration::from_secs(60),
        }
    }
}

impl Keepalive {
    /// Ping after `ping_after` of silence, hang up after `hangup_after`.
    pub fn new(ping_after: Duration, hangup_after: Duration) -> Self {
        Keepalive {
            ping_after,
            hangup_after,
        }
    }
}

/// permessage-deflate (RFC 7692) settings, for a listener or a client.
///
/// A server accepts the extension when a client offers it, and answers
/// with the parameters below; a client offers it with them. Compressed
/// messages are inflated up to `max_message_size` like any other.
///
/// # Examples
///
/// UniEvent's `deflate => {compression_level => 3, compression_threshold => 1000}`:
///
/// ```
/// let mut options = lws::ListenOptions::new(9001);
/// options.deflate = Some(lws::Deflate { level: 3, threshold: 1000, ..Default::default() });
/// # let _ = options;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Deflate {
    /// zlib compression level, 1 (fastest) to 9 (smallest). Default 6.
    pub level: u8,
    /// LZ77 window (8 to 15 bits) the server compresses with; smaller
    /// windows use less memory per connection. Default 15. A client asks
    /// the server for it; a listener always uses 15 (lws's server inflates
    /// with this same value, so a smaller one would break clients that
    /// compress with 15).
    pub server_max_window_bits: u8,
    /// Window (8 to 15 bits) the client compresses with. Default 15.
    pub client_max_window_bits: u8,
    /// The server resets its compressor after each message (less memory,
    /// worse ratio). Default false.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after each message. Default false.
    pub client_no_context_takeover: bool,
    /// Messages shorter than this many bytes are sent uncompressed (RSV1
    /// clear), where compressing costs more than it saves. Default 64.
    /// Empty messages always go uncompressed (lws compresses some of them
    /// to nothing, which no peer can inflate).
    pub threshold: usize,
}

impl Default for Deflate {
    fn default() -> Self {
        Deflate {
            level: 6,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            threshold: 64,
        }
    }
}

/// TLS for a listener (wss://).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTls {
    /// PEM certificate (chain) the server presents.
    pub cert_file: PathBuf,
    /// PEM private key of that certificate.
    pub key_file: PathBuf,
    /// PEM CA certificates: the chain sent to clients, and the CAs that
    /// client certificates are checked against.
    pub ca_file: Option<PathBuf>,
    /// Require a client certificate signed by `ca_file` (mutual TLS);
    /// a client without one fails the TLS handshake.
    pub require_client_cert: bool,
}

impl ServerTls {
    /// TLS with this certificate and key; no client certificates.
    pub fn new(cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        ServerTls {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
            ca_file: None,
            require_client_cert: false,
        }
    }
}

/// TLS settings of a wss:// client.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientTls {
    /// Check the server's certificate chain and host name (default true).
    /// `false` accepts any certificate: self-signed, expired, wrong name.
    pub verify: bool,
    /// PEM CA certificates to trust, in addition to the system's.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (mutual TLS).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

impl Default for ClientTls {
    fn default() -> Self {
        ClientTls {
            verify: true,
            ca_file: None,
            cert_file: None,
            key_file: None,
        }
    }
}

/// Which HTTP proxy a client goes through (HTTP CONNECT).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Proxy {
    /// The first of the environment variables `https_proxy`, `http_proxy`,
    /// `all_proxy` that is set and not empty (EV::Websockets' order); no
    /// proxy if none is. Hosts listed in `no_proxy` go direct.
    #[default]
    FromEnv,
    /// No proxy, whatever the environment says.
    None,
    /// This proxy: `host:port`, `[v6addr]:port` or `user:pass@host:port`
    /// (an `http://` prefix is allowed).
    Http(String),
}

/// Options for [`Context::listen`](crate::Context::listen).
///
/// Every option here is honoured, including those lws cannot set itself
/// (the backlog is applied to lws's socket after it listens).
///
/// # Examples
///
/// [`ListenOptions::new`] gives the defaults; set the fields you need, or
/// use struct update syntax:
///
/// ```
/// use lws::{Deflate, Keepalive, ListenOptions};
/// use std::time::Duration;
///
/// let options = ListenOptions {
///     host: "::1".into(),
///     max_message_size: 1 << 20,
///     max_connections: 10_000,
///     deflate: Some(Deflate::default()),
///     keepalive: Some(Keepalive::new(Duration::from_secs(20), Duration::from_secs(40))),
///     ..ListenOptions::new(9001).protocol("chat").protocol("chat.v2")
/// };
/// assert_eq!(options.protocols, ["chat", "chat.v2"]);
/// assert_eq!(options.handshake_timeout, Some(lws::DEFAULT_HANDSHAKE_TIMEOUT));
/// ```
#[derive(Clone, Debug)]
pub struct ListenOptions {
    /// TCP port; 0 lets the OS pick one (see [`Listener::port`](crate::Listener::port)).
    pub port: u16,
    /// Address to bind (IPv4 or IPv6 literal, or an interface name).
    /// Default: "127.0.0.1".
    pub host: String,
    /// Listen on this unix-domain socket path instead of TCP (`host` and
    /// `port` are then unused). A stale socket file at the path is
    /// replaced; any other file there is an error. The file is removed when
    /// the listener is removed.
    pub unix_path: Option<PathBuf>,
    /// Length of the kernel's queue of accepted-but-unserved connections
    /// (`listen(2)`'s backlog, capped by `net.core.somaxconn`). Default 511.
    pub backlog: i32,
    /// Set `SO_REUSEPORT`, so several sockets (threads or processes) can
    /// listen on one port and the kernel spreads connections over them.
    /// Default false.
    pub reuse_port: bool,
    /// `TCP_NODELAY` on accepted connections (small messages leave at once
    /// instead of waiting for Nagle's algorithm). Default true.
    pub nodelay: bool,
    /// Ping silent connections and hang up dead ones. Default:
    /// `Some(Keepalive::default())` (ping after 30 s, hang up after 60 s).
    pub keepalive: Option<Keepalive>,
    /// Accept permessage-deflate when clients offer it. Default None.
    pub deflate: Option<Deflate>,
    /// Directories served over plain HTTP at URL prefixes, before
    /// [`Handler::on_http`](crate::Handler::on_http) sees the request.
    pub mounts: Vec<crate::Mount>,
    /// Largest single frame accepted; a bigger one closes the connection
    /// with 1009. Outgoing messages are split into frames of at most this
    /// size. 0 = unlimited. Default
    /// [`DEFAULT_MAX_FRAME_SIZE`](crate::DEFAULT_MAX_FRAME_SIZE) (16 MiB).
    pub max_frame_size: usize,
    /// lws vhost name. Default "server"; "default" is reserved.
    pub name: String,
    /// The subprotocols this server speaks, in order of preference is the
    /// client's: the first one the client offers that is listed here wins.
    /// Empty (the default): clients must not ask for a subprotocol.
    pub protocols: Vec<String>,
    /// Largest reassembled message accepted; bigger ones close the
    /// connection with 1009. 0 = unlimited. Default
    /// [`DEFAULT_MAX_MESSAGE_SIZE`](crate::DEFAULT_MAX_MESSAGE_SIZE) (64 MiB).
    pub max_message_size: usize,
    /// Payload bytes a connection may have queued before sends fail with
    /// [`Error::QueueFull`](crate::Error::QueueFull). 0 = unlimited (the default).
    pub max_send_queue: usize,
    /// Headers added to every handshake response.
    pub headers: Vec<(String, String)>,
    /// wss:// when set.
    pub tls: Option<ServerTls>,
    /// Whole messages (default) or fragments as they arrive.
    pub receive: ReceiveMode,
    /// Most WebSocket connections of this listener open at once, counted
    /// from the handshake's acceptance to the connection's end; beyond it
    /// new upgrades are refused with `503 Service Unavailable`,
    /// `Retry-After: 1` and `Connection: close`, before
    /// [`Handler::on_handshake`](crate::Handler::on_handshake) sees them.
    /// 0 = unlimited (the default; the process's file descriptor limit
    /// still applies). Plain HTTP requests are not counted. Lowering it
    /// with [`Context::configure_listener`](crate::Context::configure_listener)
    /// closes nothing: new upgrades wait until enough connections ended.
    pub max_connections: usize,
    /// Time a client has from TCP accept (TLS handshake included) to the
    /// end of its request headers; a client that is slower, whatever it
    /// sends meanwhile (a slowloris sending one byte a second), is dropped
    /// without an answer. None = lws's own timeouts only (whole seconds,
    /// restarted when the first bytes arrive). Default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`](crate::DEFAULT_HANDSHAKE_TIMEOUT)
    /// (10 s). lws's own timeout for the header phase is set one second
    /// behind it at [`Context::listen`](crate::Context::listen) as a
    /// backstop, and keeps that value when `configure_listener` changes
    /// this one: a timeout raised later is also bounded by it.
    pub handshake_timeout: Option<Duration>,
}

impl ListenOptions {
    /// Defaults, on `port`.
    pub fn new(port: u16) -> Self {
        ListenOptions {
            port,
            host: "127.0.0.1".into(),
            unix_path: None,
            backlog: 511,
            reuse_port: false,
            nodelay: true,
            keepalive: Some(Keepalive::default()),
            deflate: None,
            mounts: Vec::new(),
            max_frame_size: crate::DEFAULT_MAX_FRAME_SIZE,
            name: "server".into(),
            protocols: Vec::new(),
            max_message_size: crate::DEFAULT_MAX_MESSAGE_SIZE,
            max_send_queue: 0,
            headers: Vec::new(),
            tls: None,
            receive: ReceiveMode::Messages,
            max_connections: 0,
            handshake_timeout: Some(crate::DEFAULT_HANDSHAKE_TIMEOUT),
        }
    }

    /// Defaults, on a unix-domain socket at `path`.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        ListenOptions {
            unix_path: Some(path.into()),
            ..ListenOptions::new(0)
        }
    }

    /// Adds a subprotocol this server speaks.
    pub fn protocol(mut self, name: impl Into<String>) -> Self {
        self.protocols.push(name.into());
        self
    }

    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_message_size: self.max_message_size,
            max_send_queue: self.max_send_queue,
            max_frame_size: self.max_frame_size,
            receive: self.receive,
        }
    }
}

/// Options for [`Context::connect`](crate::Context::connect).
///
/// # Examples
///
/// ```
/// use lws::{ClientTls, ConnectOptions, Proxy};
/// use std::time::Duration;
///
/// let mut options = ConnectOptions::new("wss://chat.example/ws").protocol("chat");
/// options.headers.push(("Authorization".into(), "Bearer secret".into()));
/// options.connect_timeout = Some(Duration::from_secs(5));
/// options.proxy = Proxy::None; // whatever https_proxy says
/// options.tls = ClientTls {
///     ca_file: Some("private-ca.pem".into()), // added to the system's CAs
///     ..ClientTls::default()
/// };
/// assert!(options.tls.verify);
/// ```
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// `ws://host[:port]/path?query` or `wss://...` (ports 80 and 443 by
    /// default; IPv6 hosts in brackets). Userinfo is ignored: put
    /// credentials in `headers`.
    pub url: String,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Subprotocols to offer, in order of preference; the server picks one
    /// (see [`Connection::protocol`](crate::Connection::protocol)) or the
    /// handshake fails.
    pub protocols: Vec<String>,
    /// Largest reassembled message accepted (0 = unlimited). Default
    /// [`DEFAULT_MAX_MESSAGE_SIZE`](crate::DEFAULT_MAX_MESSAGE_SIZE) (64 MiB).
    pub max_message_size: usize,
    /// As [`ListenOptions::max_send_queue`].
    pub max_send_queue: usize,
    /// Deadline for TCP connect and handshake; on expiry `on_error` gets
    /// "connect timeout" and the attempt is abandoned. None = lws's own
    /// timeouts only.
    pub connect_timeout: Option<Duration>,
    /// TLS settings for wss:// (verification on by default).
    pub tls: ClientTls,
    /// HTTP proxy (default: from the environment).
    pub proxy: Proxy,
    /// Whole messages (default) or fragments as they arrive.
    pub receive: ReceiveMode,
    /// Ping a silent server and hang up a dead one. Default:
    /// `Some(Keepalive::default())`.
    pub keepalive: Option<Keepalive>,
    /// Offer permessage-deflate. Default None.
    pub deflate: Option<Deflate>,
    /// As [`ListenOptions::max_frame_size`] (default 16 MiB).
    pub max_frame_size: usize,
}

impl ConnectOptions {
    /// Defaults, for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        ConnectOptions {
            url: url.into(),
            headers: Vec::new(),
            protocols: Vec::new(),
            max_message_size: crate::DEFAULT_MAX_MESSAGE_SIZE,
            max_send_queue: 0,
            connect_timeout: None,
            tls: ClientTls::default(),
            proxy: Proxy::FromEnv,
            receive: ReceiveMode::Messages,
            keepalive: Some(Keepalive::default()),
            deflate: None,
            max_frame_size: crate::DEFAULT_MAX_FRAME_SIZE,
        }
    }

    /// Adds a subprotocol to offer.
    pub fn protocol(mut self, name: impl Into<String>) -> Self {
        self.protocols.push(name.into());
        self
    }

    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_message_size: self.max_message_size,
            max_send_queue: self.max_send_queue,
            max_frame_size: self.max_frame_size,
            receive: self.receive,
        }
    }
}

/// Options for [`Context::adopt`](crate::Context::adopt).
///
/// Adopted connections negotiate no subprotocol: a client that asks for
/// one is answered 400.
#[derive(Clone, Debug)]
pub struct AdoptOptions {
    /// As [`ListenOptions::max_message_size`] (default 64 MiB).
    pub max_message_size: usize,
    /// As [`ListenOptions::max_send_queue`].
    pub max_send_queue: usize,
    /// Headers added to the handshake response.
    pub headers: Vec<(String, String)>,
    /// Whole messages (default) or fragments as they arrive.
    pub receive: ReceiveMode,
    /// As [`ListenOptions::max_frame_size`] (default 16 MiB).
    pub max_frame_size: usize,
}

impl Default for AdoptOptions {
    fn default() -> Self {
        AdoptOptions {
            max_message_size: crate::DEFAULT_MAX_MESSAGE_SIZE,
            max_send_queue: 0,
            headers: Vec::new(),
            receive: ReceiveMode::Messages,
            max_frame_size: crate::DEFAULT_MAX_FRAME_SIZE,
        }
    }
}

/// Per-connection limits and modes, copied from the options that made it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Limits {
    pub max_message_size: usize,
    pub max_send_queue: usize,
    pub max_frame_size: usize,
    pub receive: ReceiveMode,
}
