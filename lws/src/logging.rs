//! lws's log lines go to the `log` crate, never straight to stderr.

use lws_sys as sys;
use std::ffi::CStr;
use std::os::raw::{c_char, c_int};
use std::sync::Once;

/// Routes lws's errors and warnings (lws's default levels) through `log`;
/// with `LWS_RS_TRACE` set in the environment, every lws level (for
/// debugging lws itself). Called by every context creation; runs once.
pub(crate) fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let mask = if std::env::var_os("LWS_RS_TRACE").is_some() {
            0x7ff
        } else {
            (sys::LLL_ERR | sys::LLL_WARN) as c_int
        };
        // SAFETY: sets lws's global log mask and a static emit function.
        unsafe { sys::lws_set_log_level(mask, Some(emit)) };
    });
}

/// lws lines logged as errors that describe normal operation (lws 4.3.5
/// logs every adopt with initial data at error level).
const BENIGN: &[&str] = &["adopt_socket_readbuf: calling service"];

unsafe extern "C" fn emit(level: c_int, line: *const c_char) {
    crate::panic::guard("the lws log hook", (), || {
        if line.is_null() {
            return;
        }
        // SAFETY: lws passes a NUL-terminated line.
        let text = unsafe { CStr::from_ptr(line) }.to_string_lossy();
        let text = text.trim_end();
        let level = level as u32;
        if BENIGN.iter().any(|b| text.contains(b)) {
            log::debug!(target: "lws", "{text}");
        } else if level & sys::LLL_ERR != 0 {
            log::error!(target: "lws", "{text}");
        } else if level & (sys::LLL_WARN | sys::LLL_USER) != 0 {
            log::warn!(target: "lws", "{text}");
        } else if level & (sys::LLL_NOTICE | sys::LLL_INFO) != 0 {
            log::info!(target: "lws", "{text}");
        } else {
            log::debug!(target: "lws", "{text}");
        }
    })
}
