//! HTTP headers of a handshake, read from lws's header table.

use lws_sys as sys;
use std::ffi::CStr;
use std::os::raw::{c_char, c_int};

/// The headers of a handshake: request headers on a server, response
/// headers on a client. Names are lower case; lookups ignore case.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    path: Option<String>,
    fields: Vec<(String, String)>,
}

impl Headers {
    /// The request path with its query (`/chat?room=1`), on a server.
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
            if token == sys::WSI_TOKEN_GET_URI {
                headers.path = Some(value);
                continue;
            }
            if name.is_empty() || name.starts_with(':') {
                continue; // h2 pseudo-headers and uri tokens other than GET
            }
            headers.fields.push((name, value));
        }
        headers
    }
}

/// The value of one header token, if present.
///
/// # Safety
/// `wsi` must be live with its header table.
unsafe fn copy_token(wsi: *mut sys::lws, token: sys::lws_token_indexes) -> Option<String> {
    // SAFETY: wsi is live (caller's contract).
    let len = unsafe { sys::lws_hdr_total_length(wsi, token) };
    if len <= 0 {
        return None;
    }
    let mut buf = vec![0u8; len as usize + 1];
    // SAFETY: buf has len + 1 bytes for the value and its NUL.
    let n = unsafe {
        sys::lws_hdr_copy(
            wsi,
            buf.as_mut_ptr() as *mut c_char,
            buf.len() as c_int,
            token,
        )
    };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(String::from_utf8_lossy(&buf).into_owned())
}
