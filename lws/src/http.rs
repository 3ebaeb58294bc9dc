//! Plain HTTP beside WebSocket on a listener's port: requests that are not
//! upgrades reach [`Handler::on_http`](crate::Handler::on_http) (after the
//! listener's static [`Mount`]s), and the answer goes back whole, with a
//! `Content-Length`, on a connection lws keeps alive for the next request.
//!
//! Answers are written inside the callback that completes the request
//! (`LWS_CALLBACK_HTTP`, or `LWS_CALLBACK_HTTP_BODY_COMPLETION` for a
//! request with a body): lws 4.3.5 drops a keep-alive connection that
//! receives its next request while an answer is still pending.

use crate::callback::listener_of;
use crate::context::Shared;
use crate::handshake::{check_header, reason_phrase};
use crate::Headers;
use lws_sys as sys;
use std::os::raw::c_int;
use std::path::{Component, Path, PathBuf};

/// Request bodies beyond this many bytes are refused with 413.
pub const MAX_BODY: usize = 1 << 20;

/// A plain HTTP request on a listener (not a WebSocket upgrade).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE`, `OPTIONS` or `HEAD`.
    pub method: String,
    /// The path with its query, and every header (see [`Headers::path`]).
    pub headers: Headers,
    /// The body (at most [`MAX_BODY`] bytes).
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// The path with its query (`/chat?room=1`).
    pub fn path(&self) -> &str {
        self.headers.path().unwrap_or("/")
    }

    /// The path without its query.
    pub fn path_only(&self) -> &str {
        let p = self.path();
        p.split_once('?').map_or(p, |(path, _)| path)
    }
}

/// The answer to an [`HttpRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// HTTP status, e.g. 200.
    pub status: u16,
    /// Response headers (name, value); `Content-Length` is added.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// `status` with `content_type` and `body`.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        HttpResponse {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    /// 200 with an HTML body.
    pub fn html(body: impl Into<Vec<u8>>) -> Self {
        Self::new(200, "text/html; charset=utf-8", body)
    }

    /// `status` with a plain-text body.
    pub fn text(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self::new(status, "text/plain; charset=utf-8", body)
    }

    /// 404 Not Found (the default answer).
    pub fn not_found() -> Self {
        Self::text(404, "404 Not Found\n")
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A directory served at a URL prefix (a static mount), for
/// [`ListenOptions::mounts`](crate::ListenOptions::mounts).
///
/// # Examples
///
/// A page and its assets over plain HTTP, WebSocket upgrades at `/ws` on
/// the same port (what `examples/chat.rs` does):
///
/// ```
/// let mut options = lws::ListenOptions::new(8080);
/// options.mounts.push(lws::Mount::new("/static/", "./public"));
/// let server = lws::Callbacks::new()
///     .on_http(|req| match req.path_only() {
///         "/" => lws::HttpResponse::html("<script src=/static/app.js></script>"),
///         _ => lws::HttpResponse::not_found(),
///     })
///     .on_handshake(|_conn, request| match request.path() {
///         Some("/ws") => lws::Handshake::accept(),
///         _ => lws::Handshake::reject(404),
///     });
/// # let _ = (options, server);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// URL prefix, e.g. `/static/` (`/` serves the whole tree).
    pub url: String,
    /// Directory whose files are served.
    pub dir: PathBuf,
    /// File served for a directory (default `index.html`).
    pub index: String,
}

impl Mount {
    /// Serves `dir` at `url`.
    pub fn new(url: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        Mount {
            url: url.into(),
            dir: dir.into(),
            index: "index.html".into(),
        }
    }

    /// The answer for `path` if it falls under this mount: the file, or
    /// 404 for a missing one or any path that would leave the directory.
    fn serve(&self, method: &str, path: &str) -> Option<HttpResponse> {
        let rest = path.strip_prefix(self.url.trim_end_matches('/'))?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None; // "/staticx" is not under "/static"
        }
        if method != "GET" && method != "HEAD" {
            return Some(
                HttpResponse::text(405, "405 Method Not Allowed\n")
                    .with_header("Allow", "GET, HEAD"),
            );
        }
        let relative = Path::new(rest.trim_start_matches('/'));
        if relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Some(HttpResponse::not_found());
        }
        let mut file = self.dir.join(relative);
        if file.is_dir() {
            file.push(&self.index);
        }
        match std::fs::read(&file) {
            Ok(body) => Some(HttpResponse::new(200, content_type(&file), body)),
            Err(_) => Some(HttpResponse::not_found()),
        }
    }
}

/// The content type of a file by its extension.
fn content_type(file: &Path) -> &'static str {
    let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// A request waiting for its body, by wsi.
pub(crate) struct Pending {
    wsi: usize,
    request: HttpRequest,
}

/// `LWS_CALLBACK_HTTP`: answer now, or wait for the body.
pub(crate) fn on_request(shared: &Shared, wsi: *mut sys::lws) -> c_int {
    // SAFETY: a server wsi in its HTTP callback: header table attached.
    let (headers, method) = unsafe { (Headers::read(wsi), method(wsi)) };
    let has_body = headers
        .get("content-length")
        .is_some_and(|n| n.trim() != "0")
        || headers.get("transfer-encoding").is_some();
    let request = HttpRequest {
        method,
        headers,
        body: Vec::new(),
    };
    if has_body {
        if request
            .headers
            .get("content-length")
            .and_then(|n| n.trim().parse::<usize>().ok())
            .is_some_and(|n| n > MAX_BODY)
        {
            return send(
                wsi,
                &HttpResponse::text(413, "413 Content Too Large\n"),
                false,
                true,
            );
        }
        shared.http_pending.borrow_mut().push(Pending {
            wsi: wsi as usize,
            request,
        });
        return 0;
    }
    answer(wsi, &request)
}

/// `LWS_CALLBACK_HTTP_BODY`: part of a body.
pub(crate) fn on_body(shared: &Shared, wsi: *mut sys::lws, data: &[u8]) -> c_int {
    let mut pending = shared.http_pending.borrow_mut();
    let Some(p) = pending.iter_mut().find(|p| p.wsi == wsi as usize) else {
        return 0;
    };
    if p.request.body.len() + data.len() > MAX_BODY {
        pending.retain(|p| p.wsi != wsi as usize);
        drop(pending);
        return send(
            wsi,
            &HttpResponse::text(413, "413 Content Too Large\n"),
            false,
            true,
        );
    }
    p.request.body.extend_from_slice(data);
    0
}

/// `LWS_CALLBACK_HTTP_BODY_COMPLETION`: the body is in; answer.
pub(crate) fn on_body_done(shared: &Shared, wsi: *mut sys::lws) -> c_int {
    let request = {
        let mut pending = shared.http_pending.borrow_mut();
        let Some(i) = pending.iter().position(|p| p.wsi == wsi as usize) else {
            return -1;
        };
        pending.swap_remove(i).request
    };
    answer(wsi, &request)
}

/// The wsi is gone: forget a request still waiting for its body.
pub(crate) fn forget(shared: &Shared, wsi: *mut sys::lws) {
    let mut pending = shared.http_pending.borrow_mut();
    if !pending.is_empty() {
        pending.retain(|p| p.wsi != wsi as usize);
    }
}

/// Mounts first, then the handler; then the answer goes out.
fn answer(wsi: *mut sys::lws, request: &HttpRequest) -> c_int {
    // SAFETY: a server wsi bound to one of our listener protocols.
    let Some(listener) = (unsafe { listener_of(wsi) }) else {
        return send(
            wsi,
            &HttpResponse::not_found(),
            request.method == "HEAD",
            false,
        );
    };
    let mounted = {
        let config = listener.config.borrow();
        config
            .options
            .mounts
            .iter()
            .find_map(|m| m.serve(&request.method, request.path_only()))
    };
    let response = match mounted {
        Some(r) => r,
        None => match listener.handler.try_borrow_mut() {
            Ok(mut h) => crate::panic::guard(
                "on_http",
                HttpResponse::text(500, "500 Internal Server Error\n"),
                || h.on_http(request),
            ),
            Err(_) => HttpResponse::text(503, "503 Service Unavailable\n"),
        },
    };
    send(wsi, &response, request.method == "HEAD", false)
}

/// Writes `response` whole; then lws is ready for the next request on the
/// connection, or, with `close`, says `Connection: close` and returns -1
/// so lws hangs up once it is flushed (handshake rejections too).
pub(crate) fn send(wsi: *mut sys::lws, response: &HttpResponse, head: bool, close: bool) -> c_int {
    let mut text = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason_phrase(response.status)
    );
    for (name, value) in &response.headers {
        if let Err(why) = check_header(name, value) {
            log::warn!("HTTP response header left out: {why}");
            continue;
        }
        if name.eq_ignore_ascii_case("content-length") {
            continue; // ours is the true one
        }
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    if close {
        text.push_str("Connection: close\r\n");
    }
    text.push_str("\r\n");
    let body: &[u8] = if head { &[] } else { &response.body };
    let mut buf = Vec::with_capacity(sys::LWS_PRE + text.len() + body.len());
    buf.resize(sys::LWS_PRE, 0);
    buf.extend_from_slice(text.as_bytes());
    buf.extend_from_slice(body);
    let len = buf.len() - sys::LWS_PRE;
    // SAFETY: wsi is live; buf has LWS_PRE bytes of headroom. lws buffers
    // what the socket does not take and sends it before the next request.
    let n = unsafe {
        sys::lws_write(
            wsi,
            buf.as_mut_ptr().add(sys::LWS_PRE),
            len,
            sys::LWS_WRITE_HTTP_HEADERS,
        )
    };
    if n < 0 || close {
        return -1;
    }
    // SAFETY: wsi is live; this ends the transaction (keep-alive).
    if unsafe { sys::lws_http_transaction_completed(wsi) } != 0 {
        return -1;
    }
    0
}

/// The request's method, from which URI token lws filled.
///
/// # Safety
/// `wsi` must be live with its header table.
unsafe fn method(wsi: *mut sys::lws) -> String {
    for (token, name) in crate::headers::METHOD_TOKENS {
        // SAFETY: the caller's contract.
        if unsafe { sys::lws_hdr_total_length(wsi, token) } > 0 {
            return name.into();
        }
    }
    "GET".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_stay_inside_their_directory() {
        let dir = std::env::temp_dir().join(format!("lws-rs-mount-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("index.html"), "<p>home</p>").unwrap();
        std::fs::write(dir.join("sub/a.css"), "p{}").unwrap();
        let m = Mount::new("/static/", &dir);
        let home = m.serve("GET", "/static/").unwrap();
        assert_eq!(
            (home.status, home.body.as_slice()),
            (200, &b"<p>home</p>"[..])
        );
        let css = m.serve("GET", "/static/sub/a.css").unwrap();
        assert_eq!(css.headers[0].1, "text/css; charset=utf-8");
        assert_eq!(m.serve("GET", "/static/../secret").unwrap().status, 404);
        assert_eq!(m.serve("GET", "/static/missing").unwrap().status, 404);
        assert_eq!(m.serve("POST", "/static/").unwrap().status, 405);
        assert!(m.serve("GET", "/staticx").is_none());
        assert!(m.serve("GET", "/other").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
