//! Safe libwebsockets (lws) bindings driven by a [mio] event loop.
//!
//! lws does the WebSocket protocol (handshakes, framing, masking, close,
//! ping/pong, UTF-8 validation); this crate runs it on mio as an lws
//! *foreign loop* (`event_lib_custom`) and turns lws's callback reasons into
//! Rust closures or a [`Handler`] implementation, with a send queue per
//! connection.
//!
//! * [`Context`]: one lws context; [`Context::listen`] for servers,
//!   [`Context::connect`] for clients; [`Context::run`] to drive it, or
//!   [`Context::embedded`] to share a mio `Poll` you own.
//! * [`Connection`]: a cheap handle to one connection (send, ping, close,
//!   pause/resume reading); safe to keep after the connection is gone.
//! * [`Handle`]: `Send + Clone`, for other threads.
//!
//! Callbacks run on the loop thread and may call back into the API freely.
//! A panic in a callback is caught and logged (via `log`); the connection
//! goes on, and nothing unwinds into C.
//!
//! # Examples
//!
//! An echo server and a client on one context: the server listens on a
//! port the OS picks, the client sends one message, closes when the echo
//! comes back, and its `on_close` stops the loop.
//!
//! ```
//! use lws::{Callbacks, CloseCode, ConnectOptions, Context, ContextOptions, ListenOptions};
//! use std::{cell::RefCell, rc::Rc, time::Duration};
//!
//! let cx = Context::new(ContextOptions::default())?;
//! let server = Callbacks::new().on_message(|conn, msg| {
//!     let _ = conn.send(msg); // queued; written when the socket can take it
//! });
//! let port = cx.listen(ListenOptions::new(0), server)?.port();
//!
//! let echoed = Rc::new(RefCell::new(Vec::new()));
//! let seen = echoed.clone();
//! let client = Callbacks::new()
//!     .on_connect(|conn, _response_headers| {
//!         let _ = conn.send_text("hello");
//!     })
//!     .on_message(move |conn, msg| {
//!         seen.borrow_mut().push(msg);
//!         conn.close(CloseCode::NORMAL, "done");
//!     })
//!     .on_close(|conn, _code, _reason| conn.context().stop());
//! cx.connect(ConnectOptions::new(format!("ws://127.0.0.1:{port}/")), client)?;
//!
//! // A bound on the run, should something go wrong.
//! cx.set_timeout(Duration::from_secs(10), |cx| cx.stop());
//! cx.run()?;
//! assert_eq!(*echoed.borrow(), [lws::Message::Text("hello".into())]);
//! # Ok::<(), lws::Error>(())
//! ```
//!
//! A server alone, as `examples/echo_server.rs` runs it:
//!
//! ```no_run
//! use lws::{Callbacks, Context, ContextOptions, ListenOptions};
//!
//! let cx = Context::new(ContextOptions::default())?;
//! let port = cx.listen(
//!     ListenOptions::new(9001),
//!     Callbacks::new().on_message(|conn, msg| {
//!         let _ = conn.send(msg);
//!     }),
//! )?.port();
//! println!("listening on ws://127.0.0.1:{port}/");
//! cx.run()?; // until Context::stop or Handle::stop
//! # Ok::<(), lws::Error>(())
//! ```
//!
//! # Which lws callback reason drives what
//!
//! | lws reason | [`Handler`] method / [`Callbacks`] closure |
//! |---|---|
//! | `LWS_CALLBACK_HTTP_CONFIRM_UPGRADE` (where lws's own `LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION` would be) | [`Callbacks::on_origin`], then [`Handler::on_handshake`] |
//! | `LWS_CALLBACK_ESTABLISHED`, `LWS_CALLBACK_CLIENT_ESTABLISHED` | [`Handler::on_connect`] |
//! | `LWS_CALLBACK_RECEIVE`, `LWS_CALLBACK_CLIENT_RECEIVE` | [`Handler::on_message`] (whole messages) or [`Handler::on_fragment`] ([`ReceiveMode::Fragments`]) |
//! | `LWS_CALLBACK_RECEIVE_PONG`, `LWS_CALLBACK_CLIENT_RECEIVE_PONG` | [`Handler::on_pong`] |
//! | `LWS_CALLBACK_SERVER_WRITEABLE`, `LWS_CALLBACK_CLIENT_WRITEABLE` | the send queue is written; [`Handler::on_drain`] once it is empty |
//! | `LWS_CALLBACK_CLOSED`, `LWS_CALLBACK_CLIENT_CLOSED` (code from `LWS_CALLBACK_WS_PEER_INITIATED_CLOSE`) | [`Handler::on_close`] |
//! | `LWS_CALLBACK_CLIENT_CONNECTION_ERROR` (or [`ConnectOptions::connect_timeout`]) | [`Handler::on_error`] |
//! | `LWS_CALLBACK_HTTP`, `LWS_CALLBACK_HTTP_BODY_COMPLETION` | [`Handler::on_http`] |
//!
//! `docs/PORTING.md` in the repository maps the rest of lws's API, and
//! EV::Websockets, Net::WebSocket::Server, WebSocket::Connection and
//! UniEvent::WebSocket::Server, to this crate.
#![deny(missing_docs)]

mod batch;
mod buffers;
mod callback;
mod client;
mod connection;
mod context;
mod deflate;
pub mod embed;
mod error;
mod event_loop;
mod handler;
mod handshake;
mod headers;
mod http;
mod keepalive;
mod limits;
mod logging;
mod message;
mod options;
mod panic;
pub mod raw;
mod remote;
mod server;
mod shutdown;
mod threads;
mod timers;
mod tls_verify;
mod watch;

pub use connection::{Connection, State};
pub use context::{Context, ContextOptions};
pub use error::{Error, Result};
pub use handler::{Callbacks, Handler};
pub use handshake::Handshake;
pub use headers::Headers;
pub use http::{HttpRequest, HttpResponse, Mount, MAX_BODY};
pub use limits::{
    DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_HEADER_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE, MAX_HEADER_SIZE_RANGE,
};
pub use logging::set_lws_log_level;
pub use message::{CloseCode, Fragment, Message};
pub use options::{
    AdoptOptions, ClientTls, ConnectOptions, Deflate, Keepalive, ListenOptions, Proxy, ReceiveMode,
    ServerTls,
};
pub use remote::Handle;
pub use server::{ListenAddr, Listener, ListenerId};
pub use shutdown::{Broadcast, ShutdownReport};
pub use threads::ServerThreads;
pub use timers::TimerId;

/// The raw FFI layer, for what this crate does not wrap.
pub use lws_sys as sys;
