//! Server certificate checks lws cannot do itself: the IP address of a
//! wss:// client's IPv6 target (lws 4.3.5 derives the expected name from the
//! Host header, which breaks on `[v6]:port`).

use crate::context::Shared;
use lws_sys as sys;
use std::ffi::{c_void, CString};
use std::os::raw::{c_char, c_int, c_uint};

// From the OpenSSL that lws-sys links (libcrypto); opaque pointers only.
extern "C" {
    fn X509_STORE_CTX_get_current_cert(ctx: *mut c_void) -> *mut c_void;
    fn X509_STORE_CTX_get_error_depth(ctx: *mut c_void) -> c_int;
    fn X509_STORE_CTX_set_error(ctx: *mut c_void, error: c_int);
    fn X509_check_ip_asc(cert: *mut c_void, address: *const c_char, flags: c_uint) -> c_int;
}

/// OpenSSL's X509_V_ERR_IP_ADDRESS_MISMATCH.
const IP_ADDRESS_MISMATCH: c_int = 64;

/// `LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION`: 0 accepts (as
/// far as we are concerned: OpenSSL's own verdict `ok` still stands), 1
/// refuses.
///
/// # Safety
/// `ctx` must be the X509_STORE_CTX lws passes for this reason, and `wsi`
/// the client connection being verified.
pub(crate) unsafe fn server_cert(
    shared: &Shared,
    wsi: *mut sys::lws,
    ctx: *mut c_void,
    ok: bool,
) -> c_int {
    if !ok || ctx.is_null() {
        return 0; // OpenSSL refuses already; lws reports its reason
    }
    let Some(ip) = crate::callback::with_slot_of(shared, wsi, |s| s.verify_ip.clone()).flatten()
    else {
        return 0;
    };
    // SAFETY: ctx is a live X509_STORE_CTX during verification.
    if unsafe { X509_STORE_CTX_get_error_depth(ctx) } != 0 {
        return 0; // only the server's own certificate names it
    }
    let Ok(ip_c) = CString::new(ip.as_str()) else {
        return 1;
    };
    // SAFETY: as above; the current certificate stays owned by ctx.
    let cert = unsafe { X509_STORE_CTX_get_current_cert(ctx) };
    // SAFETY: cert is null or a live X509; ip_c is NUL-terminated.
    if !cert.is_null() && unsafe { X509_check_ip_asc(cert, ip_c.as_ptr(), 0) } == 1 {
        return 0;
    }
    log::debug!("server certificate does not name {ip}");
    // SAFETY: as above.
    unsafe { X509_STORE_CTX_set_error(ctx, IP_ADDRESS_MISMATCH) };
    1
}
