//! What a connection's events call: the [`Handler`] trait, and [`Callbacks`],
//! its closure-based implementation.

use crate::{
    CloseCode, Connection, Error, Fragment, Handshake, Headers, HttpRequest, HttpResponse, Message,
};

/// Receives a connection's events. Every method has a default that does
/// nothing, so an implementation overrides only what it needs.
///
/// Methods run on the loop thread, inside lws's callback. They may call
/// anything on the [`Connection`] or its context (send, close, connect,
/// list connections). A panic in a method is caught, logged through `log`
/// and the connection goes on (nothing unwinds into C).
///
/// Each method's doc names the lws callback reason(s) it is called from.
/// [`Callbacks`] is the same thing as closures.
///
/// # Examples
///
/// A handler with its own state: an echo server that counts messages.
/// The client side uses [`Callbacks`].
///
/// ```
/// use lws::{Callbacks, CloseCode, Connection, ConnectOptions, Context, ContextOptions,
///           Handler, ListenOptions, Message};
/// use std::{cell::Cell, rc::Rc, time::Duration};
///
/// struct Echo {
///     messages: Rc<Cell<u32>>,
/// }
///
/// impl Handler for Echo {
///     fn on_message(&mut self, conn: &Connection, message: Message) {
///         self.messages.set(self.messages.get() + 1);
///         let _ = conn.send(message);
///     }
/// }
///
/// let cx = Context::new(ContextOptions::default())?;
/// let messages = Rc::new(Cell::new(0));
/// let port = cx.listen(ListenOptions::new(0), Echo { messages: messages.clone() })?.port();
///
/// let client = Callbacks::new()
///     .on_connect(|conn, _| {
///         let _ = conn.send_text("one");
///         let _ = conn.send_text("two");
///     })
///     .on_message(|conn, msg| {
///         if msg == Message::Text("two".into()) {
///             conn.close(CloseCode::NORMAL, "");
///         }
///     })
///     .on_close(|conn, _, _| conn.context().stop());
/// cx.connect(ConnectOptions::new(format!("ws://127.0.0.1:{port}/")), client)?;
/// cx.set_timeout(Duration::from_secs(10), |cx| cx.stop()); // a bound on the run
/// cx.run()?;
/// assert_eq!(messages.get(), 2);
/// # Ok::<(), lws::Error>(())
/// ```
pub trait Handler: 'static {
    /// A client asks to upgrade (server side only;
    /// `LWS_CALLBACK_HTTP_CONFIRM_UPGRADE`, where lws's
    /// `LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION` would be). `request` holds
    /// the path with its query and every request header. Return
    /// [`Handshake::Accept`] (the default), optionally with extra response
    /// headers, or [`Handshake::Reject`] with any status, headers and body.
    ///
    /// `conn` is in state [`Connecting`](crate::State::Connecting): data
    /// attached here with [`Connection::set_data`] stays with the
    /// connection; nothing can be sent yet. A panic here refuses the
    /// request with 500.
    fn on_handshake(&mut self, conn: &Connection, request: &Headers) -> Handshake {
        let _ = (conn, request);
        Handshake::accept()
    }

    /// The handshake completed (`LWS_CALLBACK_ESTABLISHED` on a server,
    /// `LWS_CALLBACK_CLIENT_ESTABLISHED` on a client). On a server `headers`
    /// are the request's, on a client the response's.
    fn on_connect(&mut self, conn: &Connection, headers: &Headers) {
        let _ = (conn, headers);
    }

    /// A complete message arrived, reassembled from its fragments
    /// (`LWS_CALLBACK_RECEIVE` / `LWS_CALLBACK_CLIENT_RECEIVE`).
    fn on_message(&mut self, conn: &Connection, message: Message) {
        let _ = (conn, message);
    }

    /// A chunk of a message arrived (`LWS_CALLBACK_RECEIVE` /
    /// `LWS_CALLBACK_CLIENT_RECEIVE`), for connections made with
    /// [`ReceiveMode::Fragments`](crate::ReceiveMode::Fragments), which call
    /// this instead of `on_message`. A text message's chunks may split a
    /// UTF-8 character; lws checks the whole message's UTF-8 as it goes.
    fn on_fragment(&mut self, conn: &Connection, fragment: Fragment) {
        let _ = (conn, fragment);
    }

    /// The connection closed (`LWS_CALLBACK_CLOSED` /
    /// `LWS_CALLBACK_CLIENT_CLOSED`). `code` is the peer's close code when it
    /// sent one, ours when we closed first, or [`CloseCode::ABNORMAL`] when
    /// the connection ended without a close frame.
    fn on_close(&mut self, conn: &Connection, code: CloseCode, reason: &str) {
        let _ = (conn, code, reason);
    }

    /// A client connection failed (`LWS_CALLBACK_CLIENT_CONNECTION_ERROR`;
    /// also `LWS_CALLBACK_CLOSED_CLIENT_HTTP` when lws drops the attempt
    /// during its upgrade request, the connect timeout, and a
    /// [`Context::shutdown`](crate::Context::shutdown) abandoning it).
    /// `error` is [`Error::Connect`] with lws's reason. `on_close` does not
    /// follow.
    fn on_error(&mut self, conn: &Connection, error: &Error) {
        let _ = (conn, error);
    }

    /// A pong arrived (`LWS_CALLBACK_RECEIVE_PONG` /
    /// `LWS_CALLBACK_CLIENT_RECEIVE_PONG`).
    fn on_pong(&mut self, conn: &Connection, payload: &[u8]) {
        let _ = (conn, payload);
    }

    /// The send queue became empty (from `LWS_CALLBACK_SERVER_WRITEABLE` /
    /// `LWS_CALLBACK_CLIENT_WRITEABLE`). Not called once `close()` is queued.
    fn on_drain(&mut self, conn: &Connection) {
        let _ = conn;
    }

    /// A plain HTTP request (not an upgrade) arrived on the listener's
    /// port and no [`Mount`](crate::Mount) took it (`LWS_CALLBACK_HTTP`,
    /// or `LWS_CALLBACK_HTTP_BODY_COMPLETION` once a body is in). The
    /// answer is sent whole and the connection stays open for the next
    /// request. Default: 404. A panic here answers 500.
    fn on_http(&mut self, request: &HttpRequest) -> HttpResponse {
        let _ = request;
        HttpResponse::not_found()
    }
}

type HandshakeFn = Box<dyn FnMut(&Connection, &Headers) -> Handshake>;
type OriginFn = Box<dyn FnMut(Option<&str>) -> bool>;
type HttpFn = Box<dyn FnMut(&HttpRequest) -> HttpResponse>;
type FragmentFn = Box<dyn FnMut(&Connection, Fragment)>;
type ConnectFn = Box<dyn FnMut(&Connection, &Headers)>;
type MessageFn = Box<dyn FnMut(&Connection, Message)>;
type CloseFn = Box<dyn FnMut(&Connection, CloseCode, &str)>;
type ErrorFn = Box<dyn FnMut(&Connection, &Error)>;
type BytesFn = Box<dyn FnMut(&Connection, &[u8])>;
type DrainFn = Box<dyn FnMut(&Connection)>;

/// A [`Handler`] made of closures, one per event, as EV::Websockets takes
/// them. Events without a closure are ignored.
///
/// # Examples
///
/// ```
/// let echo = lws::Callbacks::new()
///     .on_message(|conn, msg| {
///         let _ = conn.send(msg);
///     })
///     .on_close(|_conn, code, reason| println!("closed {code} {reason}"));
/// # let _ = echo;
/// ```
#[derive(Default)]
pub struct Callbacks {
    origin: Option<OriginFn>,
    handshake: Option<HandshakeFn>,
    fragment: Option<FragmentFn>,
    connect: Option<ConnectFn>,
    message: Option<MessageFn>,
    close: Option<CloseFn>,
    error: Option<ErrorFn>,
    pong: Option<BytesFn>,
    drain: Option<DrainFn>,
    http: Option<HttpFn>,
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks")
            .field("on_origin", &self.origin.is_some())
            .field("on_handshake", &self.handshake.is_some())
            .field("on_fragment", &self.fragment.is_some())
            .field("on_connect", &self.connect.is_some())
            .field("on_message", &self.message.is_some())
            .field("on_close", &self.close.is_some())
            .field("on_error", &self.error.is_some())
            .field("on_pong", &self.pong.is_some())
            .field("on_drain", &self.drain.is_some())
            .field("on_http", &self.http.is_some())
            .finish()
    }
}

impl Callbacks {
    /// No closures yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the request's `Origin` header (None when the client sent
    /// none, as non-browser clients do) before `on_handshake`: false
    /// refuses the upgrade with 403 Forbidden. Part of the handshake
    /// (`LWS_CALLBACK_HTTP_CONFIRM_UPGRADE`, server side).
    ///
    /// # Examples
    ///
    /// ```
    /// let server = lws::Callbacks::new()
    ///     .on_origin(|origin| origin.is_none_or(|o| o == "https://chat.example"));
    /// # let _ = server;
    /// ```
    pub fn on_origin(mut self, f: impl FnMut(Option<&str>) -> bool + 'static) -> Self {
        self.origin = Some(Box::new(f));
        self
    }

    /// Decides on an upgrade request, at
    /// `LWS_CALLBACK_HTTP_CONFIRM_UPGRADE` (server side). See
    /// [`Handler::on_handshake`].
    ///
    /// # Examples
    ///
    /// Only `/chat` is a WebSocket endpoint; its 101 gets a header. A
    /// client asking for another path fails (`on_error`).
    ///
    /// ```
    /// use lws::{Callbacks, ConnectOptions, Context, ContextOptions, Handshake, ListenOptions};
    /// use std::{cell::RefCell, rc::Rc, time::Duration};
    ///
    /// let cx = Context::new(ContextOptions::default())?;
    /// let server = Callbacks::new().on_handshake(|_conn, request| match request.path() {
    ///     Some("/chat") => Handshake::accept_with_headers(vec![("X-Room".into(), "lobby".into())]),
    ///     _ => Handshake::reject(404),
    /// });
    /// let port = cx.listen(ListenOptions::new(0), server)?.port();
    ///
    /// let outcome = Rc::new(RefCell::new(Vec::new()));
    /// for path in ["/chat", "/other"] {
    ///     let (ok, failed) = (outcome.clone(), outcome.clone());
    ///     let client = Callbacks::new()
    ///         .on_connect(move |conn, response| {
    ///             ok.borrow_mut().push(format!("{path}: room {:?}", response.get("x-room")));
    ///             conn.close(lws::CloseCode::NORMAL, "");
    ///         })
    ///         .on_error(move |_conn, _err| failed.borrow_mut().push(format!("{path}: refused")));
    ///     cx.connect(ConnectOptions::new(format!("ws://127.0.0.1:{port}{path}")), client)?;
    /// }
    /// let done = outcome.clone();
    /// cx.set_interval(Duration::from_millis(5), move |cx| {
    ///     if done.borrow().len() == 2 {
    ///         cx.stop();
    ///     }
    /// });
    /// cx.set_timeout(Duration::from_secs(10), |cx| cx.stop()); // a bound on the run
    /// cx.run()?;
    /// let mut outcome = outcome.borrow().clone();
    /// outcome.sort();
    /// assert_eq!(outcome, ["/chat: room Some(\"lobby\")", "/other: refused"]);
    /// # Ok::<(), lws::Error>(())
    /// ```
    pub fn on_handshake(
        mut self,
        f: impl FnMut(&Connection, &Headers) -> Handshake + 'static,
    ) -> Self {
        self.handshake = Some(Box::new(f));
        self
    }

    /// Receives chunks of messages as lws reads them
    /// (`LWS_CALLBACK_RECEIVE` / `LWS_CALLBACK_CLIENT_RECEIVE`), for
    /// connections in [`ReceiveMode::Fragments`](crate::ReceiveMode::Fragments).
    /// See [`Handler::on_fragment`].
    ///
    /// # Examples
    ///
    /// ```
    /// let mut options = lws::ListenOptions::new(0);
    /// options.receive = lws::ReceiveMode::Fragments;
    /// let mut total = 0;
    /// let upload = lws::Callbacks::new().on_fragment(move |_conn, fragment| {
    ///     total += fragment.data.len(); // e.g. write it to a file instead
    ///     if fragment.is_final {
    ///         println!("message of {total} bytes");
    ///         total = 0;
    ///     }
    /// });
    /// # let _ = (options, upload);
    /// ```
    pub fn on_fragment(mut self, f: impl FnMut(&Connection, Fragment) + 'static) -> Self {
        self.fragment = Some(Box::new(f));
        self
    }

    /// Called when the handshake completed: `LWS_CALLBACK_ESTABLISHED` on a
    /// server (with the request headers), `LWS_CALLBACK_CLIENT_ESTABLISHED`
    /// on a client (with the response headers). See [`Handler::on_connect`].
    ///
    /// # Examples
    ///
    /// ```
    /// let server = lws::Callbacks::new().on_connect(|conn, request| {
    ///     let agent = request.get("user-agent").unwrap_or("?");
    ///     let _ = conn.send_text(&format!("welcome, {agent}"));
    /// });
    /// # let _ = server;
    /// ```
    pub fn on_connect(mut self, f: impl FnMut(&Connection, &Headers) + 'static) -> Self {
        self.connect = Some(Box::new(f));
        self
    }

    /// Receives whole messages (`LWS_CALLBACK_RECEIVE` /
    /// `LWS_CALLBACK_CLIENT_RECEIVE`, reassembled up to
    /// `max_message_size`). See [`Handler::on_message`].
    ///
    /// # Examples
    ///
    /// ```
    /// use lws::Message;
    /// let server = lws::Callbacks::new().on_message(|conn, msg| match msg {
    ///     Message::Text(text) => {
    ///         let _ = conn.send_text(&text.to_uppercase());
    ///     }
    ///     Message::Binary(bytes) => {
    ///         let _ = conn.send_binary(&bytes);
    ///     }
    /// });
    /// # let _ = server;
    /// ```
    pub fn on_message(mut self, f: impl FnMut(&Connection, Message) + 'static) -> Self {
        self.message = Some(Box::new(f));
        self
    }

    /// Called once the connection has closed (`LWS_CALLBACK_CLOSED` /
    /// `LWS_CALLBACK_CLIENT_CLOSED`; the peer's code and reason come from
    /// `LWS_CALLBACK_WS_PEER_INITIATED_CLOSE`). See [`Handler::on_close`].
    ///
    /// # Examples
    ///
    /// ```
    /// let client = lws::Callbacks::new().on_close(|conn, code, reason| {
    ///     if code == lws::CloseCode::ABNORMAL {
    ///         eprintln!("connection {} dropped without a close frame", conn.id());
    ///     } else {
    ///         println!("closed: {code} {reason}");
    ///     }
    /// });
    /// # let _ = client;
    /// ```
    pub fn on_close(mut self, f: impl FnMut(&Connection, CloseCode, &str) + 'static) -> Self {
        self.close = Some(Box::new(f));
        self
    }

    /// Called when a client connection fails before it is established
    /// (`LWS_CALLBACK_CLIENT_CONNECTION_ERROR`, or the connect timeout).
    /// See [`Handler::on_error`].
    ///
    /// # Examples
    ///
    /// Connecting to a port nobody listens on:
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc, time::Duration};
    /// let cx = lws::Context::new(lws::ContextOptions::default())?;
    /// // A port that was free a moment ago.
    /// let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    ///
    /// let error = Rc::new(RefCell::new(None));
    /// let seen = error.clone();
    /// let client = lws::Callbacks::new().on_error(move |conn, err| {
    ///     println!("connect failed: {err}");
    ///     *seen.borrow_mut() = Some(matches!(err, lws::Error::Connect(_)));
    ///     conn.context().stop();
    /// });
    /// let mut options = lws::ConnectOptions::new(format!("ws://127.0.0.1:{port}/"));
    /// options.connect_timeout = Some(Duration::from_secs(5));
    /// cx.connect(options, client)?;
    /// cx.set_timeout(Duration::from_secs(10), |cx| cx.stop()); // a bound on the run
    /// cx.run()?;
    /// assert_eq!(*error.borrow(), Some(true));
    /// # Ok::<(), lws::Error>(())
    /// ```
    pub fn on_error(mut self, f: impl FnMut(&Connection, &Error) + 'static) -> Self {
        self.error = Some(Box::new(f));
        self
    }

    /// Receives pongs (`LWS_CALLBACK_RECEIVE_PONG` /
    /// `LWS_CALLBACK_CLIENT_RECEIVE_PONG`). lws answers pings by itself.
    /// See [`Handler::on_pong`].
    ///
    /// # Examples
    ///
    /// A client pings the server; lws on the server answers with a pong
    /// that carries the same payload.
    ///
    /// ```
    /// use lws::{Callbacks, CloseCode, ConnectOptions, Context, ContextOptions, ListenOptions};
    /// use std::{cell::RefCell, rc::Rc, time::Duration};
    ///
    /// let cx = Context::new(ContextOptions::default())?;
    /// let port = cx.listen(ListenOptions::new(0), Callbacks::new())?.port();
    /// let pong = Rc::new(RefCell::new(Vec::new()));
    /// let seen = pong.clone();
    /// let client = Callbacks::new()
    ///     .on_connect(|conn, _| {
    ///         let _ = conn.ping(b"are you there?");
    ///     })
    ///     .on_pong(move |conn, payload| {
    ///         seen.borrow_mut().extend_from_slice(payload);
    ///         conn.close(CloseCode::NORMAL, "");
    ///     })
    ///     .on_close(|conn, _, _| conn.context().stop());
    /// cx.connect(ConnectOptions::new(format!("ws://127.0.0.1:{port}/")), client)?;
    /// cx.set_timeout(Duration::from_secs(10), |cx| cx.stop()); // a bound on the run
    /// cx.run()?;
    /// assert_eq!(&pong.borrow()[..], b"are you there?");
    /// # Ok::<(), lws::Error>(())
    /// ```
    pub fn on_pong(mut self, f: impl FnMut(&Connection, &[u8]) + 'static) -> Self {
        self.pong = Some(Box::new(f));
        self
    }

    /// Called when the send queue has emptied, from
    /// `LWS_CALLBACK_SERVER_WRITEABLE` / `LWS_CALLBACK_CLIENT_WRITEABLE`
    /// (not once `close()` was called). See [`Handler::on_drain`].
    ///
    /// # Examples
    ///
    /// Sending a large stream in pieces, one more piece each time the
    /// queue drains, so at most one piece is queued:
    ///
    /// ```
    /// let mut left = 100; // pieces still to send
    /// let producer = lws::Callbacks::new()
    ///     .on_connect(|conn, _| {
    ///         let _ = conn.send_binary(&[0; 64 * 1024]);
    ///     })
    ///     .on_drain(move |conn| {
    ///         if left > 0 {
    ///             left -= 1;
    ///             let _ = conn.send_binary(&[0; 64 * 1024]);
    ///         }
    ///     });
    /// # let _ = producer;
    /// ```
    pub fn on_drain(mut self, f: impl FnMut(&Connection) + 'static) -> Self {
        self.drain = Some(Box::new(f));
        self
    }

    /// Answers plain HTTP requests on the listener's port
    /// (`LWS_CALLBACK_HTTP`, or `LWS_CALLBACK_HTTP_BODY_COMPLETION` once a
    /// body is in). See [`Handler::on_http`].
    ///
    /// # Examples
    ///
    /// ```
    /// let server = lws::Callbacks::new().on_http(|req| match req.path_only() {
    ///     "/" => lws::HttpResponse::html("<h1>hello</h1>"),
    ///     _ => lws::HttpResponse::not_found(),
    /// });
    /// # let _ = server;
    /// ```
    pub fn on_http(mut self, f: impl FnMut(&HttpRequest) -> HttpResponse + 'static) -> Self {
        self.http = Some(Box::new(f));
        self
    }
}

impl Handler for Callbacks {
    fn on_handshake(&mut self, conn: &Connection, request: &Headers) -> Handshake {
        if let Some(origin) = &mut self.origin {
            if !origin(request.get("origin")) {
                return Handshake::forbidden();
            }
        }
        match &mut self.handshake {
            Some(f) => f(conn, request),
            None => Handshake::accept(),
        }
    }
    fn on_fragment(&mut self, conn: &Connection, fragment: Fragment) {
        if let Some(f) = &mut self.fragment {
            f(conn, fragment)
        }
    }
    fn on_connect(&mut self, conn: &Connection, headers: &Headers) {
        if let Some(f) = &mut self.connect {
            f(conn, headers)
        }
    }
    fn on_message(&mut self, conn: &Connection, message: Message) {
        if let Some(f) = &mut self.message {
            f(conn, message)
        }
    }
    fn on_close(&mut self, conn: &Connection, code: CloseCode, reason: &str) {
        if let Some(f) = &mut self.close {
            f(conn, code, reason)
        }
    }
    fn on_error(&mut self, conn: &Connection, error: &Error) {
        if let Some(f) = &mut self.error {
            f(conn, error)
        }
    }
    fn on_pong(&mut self, conn: &Connection, payload: &[u8]) {
        if let Some(f) = &mut self.pong {
            f(conn, payload)
        }
    }
    fn on_drain(&mut self, conn: &Connection) {
        if let Some(f) = &mut self.drain {
            f(conn)
        }
    }
    fn on_http(&mut self, request: &HttpRequest) -> HttpResponse {
        match &mut self.http {
            Some(f) => f(request),
            None => HttpResponse::not_found(),
        }
    }
}
