//! The server side of the opening handshake: the handler's decision
//! ([`Handshake`]), subprotocol choice, and HTTP error responses.
//!
//! lws asks at `LWS_CALLBACK_HTTP_CONFIRM_UPGRADE`, while the request's
//! headers are still attached and before it picks a subprotocol. Everything
//! that would make lws hang up without a word (an unknown subprotocol, a
//! missing key, another protocol version, a rejection by the handler) is
//! answered here with a real HTTP response instead.

use crate::connection::{ConnSlot, State};
use crate::context::Shared;
use crate::Headers;
use lws_sys as sys;
use std::ffi::CString;
use std::os::raw::c_int;
use std::rc::Rc;

/// What [`Handler::on_handshake`](crate::Handler::on_handshake) decides
/// about an upgrade request (at `LWS_CALLBACK_HTTP_CONFIRM_UPGRADE`).
/// Rejections are sent as full HTTP responses, which lws alone does not do.
///
/// # Examples
///
/// A bearer-token check:
///
/// ```
/// use lws::Handshake;
/// let auth = lws::Callbacks::new().on_handshake(|_conn, request| {
///     match request.get("authorization") {
///         Some("Bearer let-me-in") => Handshake::accept(),
///         Some(_) => Handshake::forbidden(),
///         None => Handshake::reject_with(
///             401,
///             vec![("WWW-Authenticate".into(), "Bearer".into())],
///             "a token is needed\n",
///         ),
///     }
/// });
/// # let _ = auth;
/// assert!(matches!(Handshake::reject(503), Handshake::Reject { status: 503, .. }));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// Complete the handshake, adding these headers to the 101 response.
    Accept {
        /// Extra response headers (name, value).
        headers: Vec<(String, String)>,
    },
    /// Refuse with an HTTP response; the connection is then closed.
    Reject {
        /// HTTP status, e.g. 401, 403, 503.
        status: u16,
        /// Extra response headers (name, value), e.g. `WWW-Authenticate`.
        headers: Vec<(String, String)>,
        /// Response body (sent with a `Content-Length`).
        body: Vec<u8>,
    },
}

impl Handshake {
    /// Accept, with no extra headers.
    pub fn accept() -> Self {
        Handshake::Accept {
            headers: Vec::new(),
        }
    }

    /// Accept, adding `headers` to the 101 response.
    pub fn accept_with_headers(headers: Vec<(String, String)>) -> Self {
        Handshake::Accept { headers }
    }

    /// Refuse with 403 Forbidden (what EV::Websockets does when
    /// `on_handshake` returns false).
    pub fn forbidden() -> Self {
        Self::reject(403)
    }

    /// Refuse with `status` and a short plain-text body naming it.
    pub fn reject(status: u16) -> Self {
        Handshake::Reject {
            status,
            headers: Vec::new(),
            body: format!("{status} {}\n", reason_phrase(status)).into_bytes(),
        }
    }

    /// Refuse with `status`, `headers` and `body`.
    pub fn reject_with(
        status: u16,
        headers: Vec<(String, String)>,
        body: impl Into<Vec<u8>>,
    ) -> Self {
        Handshake::Reject {
            status,
            headers,
            body: body.into(),
        }
    }
}

impl Default for Handshake {
    fn default() -> Self {
        Self::accept()
    }
}

/// `LWS_CALLBACK_HTTP_CONFIRM_UPGRADE` for a websocket upgrade: 0 lets lws
/// go on with the handshake, -1 hangs up (after our response is flushed).
pub(crate) fn confirm_upgrade(shared: &Rc<Shared>, wsi: *mut sys::lws) -> c_int {
    // An adopted socket has its slot already; a listener's gets one now.
    let conn = match crate::callback::conn_of(shared, wsi) {
        Some((conn, _)) => conn,
        None => {
            // SAFETY: a server wsi, bound to one of our protocols.
            let Some(listener) = (unsafe { crate::callback::listener_of(wsi) }) else {
                return reject(wsi, &Handshake::reject(500));
            };
            if crate::limits::is_full(listener) {
                log::debug!(
                    "listener {}: at max_connections; upgrade refused with 503",
                    listener.id
                );
                return reject(wsi, &crate::limits::over_capacity());
            }
            let config = listener.config.borrow();
            let mut slot = ConnSlot::new(
                shared.new_id(),
                listener.handler.clone(),
                config.options.limits(),
                State::Connecting,
            );
            slot.protocols_allowed = listener.protocols.clone();
            slot.response_headers_out = config.headers.clone();
            slot.keepalive = config.options.keepalive;
            slot.nodelay = Some(config.options.nodelay);
            slot.deflate = config.options.deflate;
            drop(config);
            let conn = shared.insert(slot);
            crate::callback::tag_wsi(wsi, conn.key, conn.id);
            conn
        }
    };
    // SAFETY: the header table is attached during CONFIRM_UPGRADE.
    let headers = unsafe { Headers::read(wsi) };
    if let Some(problem) = check_request(&headers) {
        return reject(wsi, &problem);
    }
    let allowed = conn
        .with_slot(|s| s.protocols_allowed.clone())
        .unwrap_or_default();
    let protocol = match choose_protocol(headers.get("sec-websocket-protocol"), &allowed) {
        Ok(p) => p,
        Err(why) => return reject(wsi, &Handshake::reject_with(400, Vec::new(), why)),
    };
    conn.with_slot(|s| {
        s.wsi = wsi;
        s.protocol = protocol;
    });
    let Some(handler) = conn.with_slot(|s| s.handler.clone()) else {
        return -1;
    };
    let decision = match handler.try_borrow_mut() {
        Ok(mut h) => crate::panic::guard("on_handshake", Handshake::reject(500), || {
            h.on_handshake(&conn, &headers)
        }),
        Err(_) => {
            log::warn!(
                "connection {}: handler busy during the handshake; refused with 503",
                conn.id
            );
            Handshake::reject(503)
        }
    };
    match decision {
        Handshake::Accept { headers: extra } => {
            let mut out = Vec::with_capacity(extra.len());
            for (name, value) in &extra {
                if let Err(why) = check_header(name, value) {
                    log::warn!("connection {}: on_handshake returned a bad header ({why}); refused with 500", conn.id);
                    return reject(wsi, &Handshake::reject(500));
                }
                let (Ok(n), Ok(v)) = (
                    CString::new(format!("{name}:")),
                    CString::new(value.as_str()),
                ) else {
                    return reject(wsi, &Handshake::reject(500)); // excluded by check_header
                };
                out.push((n, v));
            }
            let static_bytes: usize = conn
                .with_slot(|s| {
                    s.response_headers_out
                        .iter()
                        .map(|(n, v)| n.as_bytes().len() + v.as_bytes().len() + 3)
                        .sum()
                })
                .unwrap_or(0);
            let extra_bytes = header_bytes(extra.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            if static_bytes + extra_bytes > MAX_RESPONSE_HEADER_BYTES {
                log::warn!(
                    "connection {}: response headers take {} bytes, over the {MAX_RESPONSE_HEADER_BYTES} lws has room for; refused with 500",
                    conn.id,
                    static_bytes + extra_bytes
                );
                return reject(wsi, &Handshake::reject(500));
            }
            // Counted against max_connections from here until lws frees
            // the connection (and its slot); adopted sockets have no
            // listener and are not counted.
            // SAFETY: wsi is live and bound to one of our protocols.
            let admitted = unsafe { crate::callback::listener_of(wsi) }.map(crate::limits::admit);
            conn.with_slot(|s| {
                s.response_headers_out.extend(out);
                s.request_headers_in = Some(headers);
                s.admitted = admitted;
            });
            0
        }
        rejection => reject(wsi, &rejection),
    }
}

/// Room for extra response headers: lws builds the 101 in a 4 KiB buffer
/// that also holds its own lines; headers that do not fit would make it
/// hang up without an answer.
pub(crate) const MAX_RESPONSE_HEADER_BYTES: usize = 2048;

/// An RFC 7230 token character.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// A subprotocol name lws can negotiate: an RFC 7230 token that lws's
/// tokenizer does not read as a number.
pub(crate) fn check_protocol_name(name: &str) -> crate::Result<()> {
    let numeric = name.chars().all(|c| c.is_ascii_digit() || c == '.');
    if name.is_empty() || name.len() > 63 || !name.chars().all(is_tchar) || numeric {
        return Err(crate::Error::InvalidOption(format!(
            "subprotocol {name:?}: must be a token of 1 to 63 letters, digits or !#$%&'*+-.^_`|~, not only digits and dots"
        )));
    }
    Ok(())
}

/// A header lws can send: a token name, a value without line breaks or NULs.
pub(crate) fn check_header(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty() || !name.chars().all(is_tchar) {
        return Err(format!("header name {name:?} is not a token"));
    }
    if value.contains(['\r', '\n', '\0']) {
        return Err(format!(
            "header {name}: the value contains a line break or NUL"
        ));
    }
    Ok(())
}

/// Bytes `headers` take in a response ("Name: value\r\n" each).
pub(crate) fn header_bytes<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> usize {
    headers
        .into_iter()
        .map(|(n, v)| n.len() + v.len() + 4)
        .sum()
}

/// What lws would refuse without answering: missing upgrade pieces or an
/// unsupported protocol version.
fn check_request(headers: &Headers) -> Option<Handshake> {
    if headers.get("host").is_none() {
        return Some(Handshake::reject_with(400, Vec::new(), "Host is missing\n"));
    }
    let has_upgrade_token = headers.get("connection").is_some_and(|v| {
        v.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
    });
    if !has_upgrade_token {
        return Some(Handshake::reject_with(
            400,
            Vec::new(),
            "Connection: Upgrade is missing\n",
        ));
    }
    // RFC 6455 4.1: the base64 of 16 bytes, so 24 characters.
    let key_ok = headers.get("sec-websocket-key").is_some_and(|k| {
        let k = k.trim().as_bytes();
        k.len() == 24
            && k[22..] == *b"=="
            && k[..22]
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    });
    if !key_ok {
        return Some(Handshake::reject_with(
            400,
            Vec::new(),
            "Sec-WebSocket-Key is missing or malformed\n",
        ));
    }
    if headers.get("sec-websocket-version").map(str::trim) != Some("13") {
        return Some(Handshake::reject_with(
            426,
            vec![("Sec-WebSocket-Version".into(), "13".into())],
            "only WebSocket version 13 is supported\n",
        ));
    }
    None
}

/// The subprotocol lws will bind: the first one the client offers that the
/// server speaks. No offer: none. An offer with nothing in common: an error
/// (lws would hang up; we answer 400).
pub(crate) fn choose_protocol(
    offered: Option<&str>,
    allowed: &[String],
) -> Result<Option<String>, String> {
    let Some(offered) = offered.filter(|o| !o.trim().is_empty()) else {
        return Ok(None);
    };
    // lws copies the offer into a 128-byte buffer and gives up beyond it.
    if offered.len() > 127 {
        return Err("Sec-WebSocket-Protocol is too long\n".into());
    }
    offered
        .split(',')
        .map(str::trim)
        .find(|o| allowed.iter().any(|a| a == o))
        .map(|p| Some(p.to_owned()))
        .ok_or_else(|| {
            if allowed.is_empty() {
                "this server speaks no subprotocol\n".to_string()
            } else {
                format!(
                    "no supported subprotocol; this server speaks: {}\n",
                    allowed.join(", ")
                )
            }
        })
}

/// Sends `rejection` as an HTTP response and returns -1 (hang up once it
/// is flushed).
fn reject(wsi: *mut sys::lws, rejection: &Handshake) -> c_int {
    let Handshake::Reject {
        status,
        headers,
        body,
    } = rejection
    else {
        return -1;
    };
    let response = crate::HttpResponse {
        status: *status,
        headers: headers.clone(),
        body: body.clone(),
    };
    crate::http::send(wsi, &response, false, true)
}

/// The reason phrase of common statuses (RFC 9110), "Error" otherwise.
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        300..=399 => "Redirect",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_offered_protocol_the_server_speaks_wins() {
        let allowed = vec!["b".to_string(), "c".to_string()];
        assert_eq!(
            choose_protocol(Some("a, c, b"), &allowed),
            Ok(Some("c".into()))
        );
        assert_eq!(choose_protocol(None, &allowed), Ok(None));
        assert_eq!(choose_protocol(Some(" "), &allowed), Ok(None));
        assert!(choose_protocol(Some("x, y"), &allowed).is_err());
        assert!(choose_protocol(Some("x"), &[]).is_err());
        assert!(choose_protocol(Some(&"a".repeat(200)), &["a".repeat(200)]).is_err());
    }

    #[test]
    fn rejections_name_their_status() {
        match Handshake::reject(401) {
            Handshake::Reject { status, body, .. } => {
                assert_eq!(status, 401);
                assert_eq!(body, b"401 Unauthorized\n");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(reason_phrase(599), "Error");
    }
}
