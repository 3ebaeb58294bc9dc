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
//! # Where the library comes from
//!
//! The build script takes the first that applies and prints its choice
//! (`cargo build -vv`):
//!
//! | mode | how | bindings |
//! |---|---|---|
//! | explicit dirs | `LWS_LIB_DIR` + `LWS_INCLUDE_DIR` (both or neither; `LWS_STATIC=1` links `libwebsockets.a`) | feature `bindgen` |
//! | system | feature `system` or `LWS_SYS_SYSTEM=1`: pkg-config's `libwebsockets` | feature `bindgen` |
//! | vendored (default) | 4.3.5 from `LWS_SOURCE_DIR`, or from `vendor/libwebsockets-4.3.5`, fetched and checked against pinned SHA-256 sums when missing | committed, for the default features (`tls`, `deflate`); otherwise feature `bindgen` |
//!
//! An external lws older than 4.3 is refused with a message saying so (the
//! custom event-lib API lws-rs needs appeared in 4.3). Each variable may
//! carry the target as a prefix for cross builds
//! (`X86_64_UNKNOWN_LINUX_GNU_LWS_LIB_DIR`). Dependent build scripts get
//! `DEP_WEBSOCKETS_INCLUDE`, `_ROOT`, `_VERSION`, `_VERSION_NUMBER`,
//! `_CONF` and, for the vendored build, `_VENDORED`.
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
