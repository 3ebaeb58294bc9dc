//! Raw FFI bindings to [libwebsockets](https://libwebsockets.org) (lws).
//!
//! By default this crate builds lws 4.3.5, with Debian's security patches,
//! from Debian's source package (see `vendor/` in the repository) and uses
//! bindings generated once for that configuration and committed. It can link
//! an existing lws >= 4.3 instead (`LWS_LIB_DIR` + `LWS_INCLUDE_DIR`, or
//! pkg-config with the `system` feature / `LWS_SYS_SYSTEM=1`); bindings are
//! then generated at build time (feature `bindgen`), because lws's struct
//! layouts depend on its `lws_config.h`.
//!
//! Everything here is `unsafe` C API exactly as lws declares it. The `lws`
//! crate is the safe layer; use this one for what it does not wrap. The
//! `static inline` helpers of lws's headers, which bindgen cannot see, are
//! re-implemented at the bottom of this page (e.g. [`lws_write_ws_flags`]).
//!
//! # Examples
//!
//! ```
//! use std::ffi::CStr;
//! // SAFETY: lws_get_library_version returns a static NUL-terminated string.
//! let version = unsafe { CStr::from_ptr(lws_sys::lws_get_library_version()) };
//! assert!(version.to_str().unwrap().starts_with("4."));
//! ```
#![deny(missing_docs)]
#![allow(clippy::all)]

// Linked for lws's own use of OpenSSL and zlib; nothing in Rust calls them.
#[cfg(feature = "deflate")]
extern crate libz_sys as _;
#[cfg(feature = "tls")]
extern crate openssl_sys as _;

#[allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    missing_docs,
    dead_code,
    unnecessary_transmutes,
    rustdoc::all
)]
mod bindings {
    #[cfg(not(lws_sys_generated_bindings))]
    include!("bindings.rs");
    #[cfg(lws_sys_generated_bindings)]
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}
pub use bindings::*;

mod inline;
pub use inline::*;
