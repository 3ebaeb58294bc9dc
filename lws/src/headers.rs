//! HTTP headers of a handshake, read from lws's header table.

use lws_sys as sys;
use std::ffi::c_void;
use std::ffi::CStr;
use std::fmt::Write;
use std::os::raw::{c_char, c_int};

/// The headers of a handshake: request headers on a server, response
/// headers on a client. Names are lower case; lookups ignore case.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    path: Option<String>,
    fields: Vec<(String, String)>,
}

impl Headers {
    /// The request path with its query (`/chat?room=1`), on a server
    /// (for any method).
    ///
    /// lws decodes the request target as it parses it (percent-escapes,
    /// `+` in the query, `.`/`..` segments and repeated `/` collapsed); the
    /// characters whose decoding would change the meaning (`%`, `?`, `#`,
    /// and `&`, `;`, `=`, `+` inside a query argument), spaces, controls
    /// and non-ASCII bytes are percent-encoded again, so
    /// `/q?x=1%26y` still has one argument `x` with value `1&y`.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// The first value of header `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header, in lws's table order, names lower case.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Reads every known header lws parsed for `wsi`.
    ///
    /// # Safety
    /// `wsi` must be live and still hold its header table (true during the
    /// handshake and ESTABLISHED callbacks).
    pub(crate) unsafe fn read(wsi: *mut sys::lws) -> Headers {
        let mut headers = Headers::default();
        for token in 0..sys::WSI_TOKEN_COUNT {
            // SAFETY: wsi is live (caller's contract); token is in range.
            let Some(value) = (unsafe { copy_token(wsi, token) }) else {
                continue;
            };
            // SAFETY: lws_token_to_string returns NULL or a static string.
            let name = unsafe { sys::lws_token_to_string(token) };
            if name.is_null() {
                continue;
            }
            // SAFETY: non-null static NUL-terminated string.
            let name = unsafe { CStr::from_ptr(name as *const c_char) }.to_string_lossy();
            let name = name.trim_end_matches([':', ' ']).to_ascii_lowercase();
            if METHOD_TOKENS.iter().any(|(t, _)| *t == token) {
                // The request target arrives under its method's token.
                headers.path = Some(encode(value.as_bytes(), b"%?# "));
                continue;
            }
            if token == sys::WSI_TOKEN_HTTP_URI_ARGS {
                continue; // folded into path below
            }
            if name.is_empty() || name.starts_with(':') {
                continue; // h2 pseudo-headers and uri tokens other than GET
            }
            headers.fields.push((name, value));
        }
        // lws keeps the query apart, one decoded fragment per argument.
        // SAFETY: wsi is live (caller's contract).
        let args = unsafe { query_args(wsi) };
        if let (Some(path), false) = (&mut headers.path, args.is_empty()) {
            path.push('?');
            path.push_str(&args.join("&"));
        }
        // Headers lws has no token for (X-Token, X-Forwarded-For, ...).
        let mut names: Vec<Vec<u8>> = Vec::new();
        // SAFETY: wsi is live; the callback only appends to `names`, which
        // outlives the call.
        unsafe {
            sys::lws_hdr_custom_name_foreach(
                wsi,
                Some(collect_name),
                &mut names as *mut _ as *mut c_void,
            );
        }
        for name in names {
            // SAFETY: wsi is live; name is one lws just reported.
            let Some(value) = (unsafe { copy_custom(wsi, &name) }) else {
                continue;
            };
            let name = String::from_utf8_lossy(&name);
            let name = name.trim_end_matches(':').to_ascii_lowercase();
            headers.fields.push((name, value));
        }
        headers
    }
}

/// The tokens lws files a request target under, by method.
pub(crate) const METHOD_TOKENS: [(sys::lws_token_indexes, &str); 7] = [
    (sys::WSI_TOKEN_GET_URI, "GET"),
    (sys::WSI_TOKEN_POST_URI, "POST"),
    (sys::WSI_TOKEN_PUT_URI, "PUT"),
    (sys::WSI_TOKEN_PATCH_URI, "PATCH"),
    (sys::WSI_TOKEN_DELETE_URI, "DELETE"),
    (sys::WSI_TOKEN_OPTIONS_URI, "OPTIONS"),
    (sys::WSI_TOKEN_HEAD_URI, "HEAD"),
];

/// The query arguments, each re-encoded so that it reads as one argument.
///
/// # Safety
/// `wsi` must be live with its header table.
unsafe fn query_args(wsi: *mut sys::lws) -> Vec<String> {
    let token = sys::WSI_TOKEN_HTTP_URI_ARGS;
    // SAFETY: wsi is live (caller's contract).
    let total = unsafe { sys::lws_hdr_total_length(wsi, token) };
    if total <= 0 {
        return Vec::new();
    }
    let mut buf = vec![0u8; total as usize + 1];
    let mut args = Vec::new();
    for index in 0.. {
        // SAFETY: wsi is live; buf has buf.len() writable bytes, more than
        // any one fragment of the token.
        let n = unsafe {
            sys::lws_hdr_copy_fragment(
                wsi,
                buf.as_mut_ptr() as *mut c_char,
                buf.len() as c_int,
                token,
                index,
            )
        };
        let Ok(n) = usize::try_from(n) else { break };
        let arg = &buf[..n];
        // The name ends at the first '='; later ones belong to the value.
        args.push(match arg.iter().position(|&b| b == b'=') {
            Some(eq) => format!(
                "{}={}",
                encode(&arg[..eq], QUERY_SPECIALS),
                encode(&arg[eq + 1..], QUERY_SPECIALS)
            ),
            None => encode(arg, QUERY_SPECIALS),
        });
    }
    args
}

/// Characters that delimit or escape inside a query.
const QUERY_SPECIALS: &[u8] = b"%&;=+#? ";

/// Percent-encodes `specials`, controls and non-ASCII bytes.
fn encode(bytes: &[u8], specials: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_graphic() && !specials.contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}"); // writing to a String cannot fail
        }
    }
    out
}

unsafe extern "C" fn collect_name(name: *const c_char, nlen: c_int, opaque: *mut c_void) {
    crate::panic::guard("the custom header walk", (), || {
        if name.is_null() || nlen <= 0 || opaque.is_null() {
            return;
        }
        // SAFETY: opaque is the Vec passed by Headers::read; lws passes nlen
        // bytes of name.
        unsafe {
            let names = &mut *(opaque as *mut Vec<Vec<u8>>);
            names.push(std::slice::from_raw_parts(name as *const u8, nlen as usize).to_vec());
        }
    })
}

/// The value of a custom header `name` (with its trailing ':').
///
/// # Safety
/// `wsi` must be live with its header table.
unsafe fn copy_custom(wsi: *mut sys::lws, name: &[u8]) -> Option<String> {
    let (n, nlen) = (name.as_ptr() as *const c_char, name.len() as c_int);
    // SAFETY: wsi is live; name/nlen describe a valid byte string.
    let len = unsafe { sys::lws_hdr_custom_length(wsi, n, nlen) };
    read_value((len >= 0).then_some(len as usize), |buf, size| {
        // SAFETY: wsi is live; buf has `size` writable bytes.
        unsafe { sys::lws_hdr_custom_copy(wsi, buf, size, n, nlen) }
    })
}

/// The value of one header token, if present (lws reports absent as 0).
///
/// # Safety
/// `wsi` must be live with its header table.
unsafe fn copy_token(wsi: *mut sys::lws, token: sys::lws_token_indexes) -> Option<String> {
    // SAFETY: wsi is live (caller's contract).
    let len = unsafe { sys::lws_hdr_total_length(wsi, token) };
    read_value((len > 0).then_some(len as usize), |buf, size| {
        // SAFETY: wsi is live; buf has `size` writable bytes.
        unsafe { sys::lws_hdr_copy(wsi, buf, size, token) }
    })
}

/// A value of `len` bytes fetched by `copy(buf, size)`, which writes it and
/// its NUL and returns the length copied (< 0 on failure).
fn read_value(
    len: Option<usize>,
    copy: impl FnOnce(*mut c_char, c_int) -> c_int,
) -> Option<String> {
    let mut buf = vec![0u8; len? + 1];
    let copied = copy(buf.as_mut_ptr() as *mut c_char, buf.len() as c_int);
    buf.truncate(usize::try_from(copied).ok()?);
    Some(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn decoded_specials_are_encoded_again() {
        assert_eq!(encode(b"1&y=2", super::QUERY_SPECIALS), "1%26y%3D2");
        assert_eq!(
            encode("/caf\u{e9} x?".as_bytes(), b"%?# "),
            "/caf%C3%A9%20x%3F"
        );
        assert_eq!(encode(b"/plain/path", b"%?# "), "/plain/path");
    }
}
