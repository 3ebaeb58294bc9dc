//! Rust versions of lws's `static inline` header helpers, which have no
//! symbol in the library and so are invisible to bindgen.

use crate::{LWS_WRITE_CONTINUATION, LWS_WRITE_NO_FIN};
use libc::c_int;

/// The `lws_write` flags for one fragment of a multi-frame message
/// (`lws_write_ws_flags()` in lws-write.h).
///
/// `initial` is the message's type (`LWS_WRITE_TEXT` or `LWS_WRITE_BINARY`);
/// fragments after the first are continuations, and all but the last carry
/// `LWS_WRITE_NO_FIN`.
///
/// # Examples
///
/// ```
/// use lws_sys::*;
/// let text = LWS_WRITE_TEXT as i32;
/// assert_eq!(lws_write_ws_flags(text, true, true), text);
/// assert_eq!(
///     lws_write_ws_flags(text, false, false),
///     (LWS_WRITE_CONTINUATION | LWS_WRITE_NO_FIN) as i32
/// );
/// ```
pub const fn lws_write_ws_flags(initial: c_int, is_start: bool, is_end: bool) -> c_int {
    let mut r = if is_start {
        initial
    } else {
        LWS_WRITE_CONTINUATION as c_int
    };
    if !is_end {
        r |= LWS_WRITE_NO_FIN as c_int;
    }
    r
}

/// Bytes of headroom lws needs in front of every payload passed to
/// `lws_write` (`LWS_PRE`, a function-like macro bindgen cannot evaluate:
/// `_LWS_PAD(4 + 10 + 2)`, which is 16 for every pad size lws uses).
///
/// # Examples
///
/// The buffer layout `lws_write` expects: lws writes the frame header into
/// the headroom, in front of the payload, so the payload is not copied.
///
/// ```
/// use lws_sys::LWS_PRE;
/// let payload = b"hello";
/// let mut buf = vec![0u8; LWS_PRE + payload.len()];
/// buf[LWS_PRE..].copy_from_slice(payload);
/// // In a WRITEABLE callback: lws_write(wsi, buf.as_mut_ptr().add(LWS_PRE),
/// //                                    payload.len(), LWS_WRITE_TEXT)
/// assert_eq!(&buf[LWS_PRE..], payload);
/// ```
pub const LWS_PRE: usize = 16;
