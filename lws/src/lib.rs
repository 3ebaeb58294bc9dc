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
//! An echo server:
//!
//! ```no_run
//! use lws::{Callbacks, Context, ContextOptions, ListenOptions};
//!
//! let cx = Context::new(ContextOptions::default())?;
//! let port = cx.listen(
//!     ListenOptions::new(0),
//!     Callbacks::new().on_message(|conn, msg| {
//!         let _ = conn.send(msg);
//!     }),
//! )?.port();
//! println!("listening on ws://127.0.0.1:{port}/");
//! cx.run()?;
//! # Ok::<(), lws::Error>(())
//! ```
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
