//! Safe libwebsockets bindings driven by a mio event loop (work in progress:
//! the safe core arrives with the next issue). For now this re-exports the
//! raw layer.
#![deny(missing_docs)]

pub use lws_sys as sys;
