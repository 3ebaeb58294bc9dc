//! Plain HTTP on a WebSocket listener's port: requests that are not
//! upgrades reach mounts, then `on_http`; answers carry an exact
//! Content-Length and the connection stays open for the next request
//! (keep-alive), bodies arrive whole, bad paths and big bodies are refused,
//! a panicking `on_http` answers 500, and upgrades on the same port still
//! work.

mod util;

use lws::{Callbacks, HttpResponse, ListenOptions, Mount};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;
use tungstenite::Message as WsMessage;
use util::http::parse_response;

/// One response read off a kept-alive socket: head, then exactly
/// Content-Length bytes of body.
fn read_response(stream: &mut TcpStream, head_only: bool) -> util::http::HttpResponse {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).expect("response head");
        assert_eq!(
            n,
            1,
            "EOF inside a response head: {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.push(byte[0]);
    }
    let head = parse_response(&raw);
    let length: usize = head
        .header("Content-Length")
        .expect("Content-Length")
        .parse()
        .expect("numeric Content-Length");
    let mut body = vec![0u8; if head_only { 0 } else { length }];
    stream.read_exact(&mut body).expect("body");
    util::http::HttpResponse { body, ..head }
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// A directory of this test's own (tests run in parallel).
fn static_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lws-rs-http-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.txt"), "static file\n").unwrap();
    std::fs::write(dir.join("index.html"), "<p>index</p>").unwrap();
    dir
}

fn server(dir: PathBuf) -> util::Server {
    let mut options = ListenOptions::new(0);
    options.mounts.push(Mount::new("/static/", dir));
    util::Server::start(options, || {
        Callbacks::new()
            .on_http(|req| match (req.method.as_str(), req.path_only()) {
                ("GET", "/hello") => HttpResponse::text(200, format!("hi {}", req.path()))
                    .with_header("X-Answer", "42"),
                ("POST", "/echo") => {
                    HttpResponse::new(200, "application/octet-stream", req.body.clone())
                }
                ("GET", "/panic") => panic!("on_http panics on purpose"),
                _ => HttpResponse::not_found(),
            })
            .on_message(|conn, msg| {
                conn.send(msg).expect("echo");
            })
    })
}

#[test]
fn requests_reach_on_http_and_the_connection_stays_open() {
    let _wd = util::watchdog("http keep-alive", 30);
    let dir = static_dir("keepalive");
    let srv = server(dir.clone());
    let mut s = connect(srv.port);
    for round in 0..3 {
        write!(s, "GET /hello?n={round} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let r = read_response(&mut s, false);
        assert!(r.status_line.starts_with("HTTP/1.1 200"), "{r:?}");
        assert_eq!(r.body, format!("hi /hello?n={round}").into_bytes());
        assert_eq!(r.header("X-Answer"), Some("42"));
        assert_ne!(r.header("Connection"), Some("close"), "{r:?}");
    }
    // A body, on the same connection.
    let body: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    write!(
        s,
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body).unwrap();
    let r = read_response(&mut s, false);
    assert!(r.status_line.starts_with("HTTP/1.1 200"), "{r:?}");
    assert_eq!(r.body, body);
    // Unknown paths: 404 with a body, still kept alive.
    write!(s, "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let r = read_response(&mut s, false);
    assert!(r.status_line.starts_with("HTTP/1.1 404"), "{r:?}");
    write!(s, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(read_response(&mut s, false).status_line.contains("200"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn mounts_serve_files_and_nothing_outside() {
    let _wd = util::watchdog("http mounts", 30);
    let dir = static_dir("mounts");
    let srv = server(dir.clone());
    let mut s = connect(srv.port);
    write!(s, "GET /static/a.txt HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let r = read_response(&mut s, false);
    assert!(r.status_line.contains("200"), "{r:?}");
    assert_eq!(r.body, b"static file\n");
    assert_eq!(r.header("Content-Type"), Some("text/plain; charset=utf-8"));

    write!(s, "GET /static/ HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s, false).body, b"<p>index</p>");

    write!(s, "HEAD /static/a.txt HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let r = read_response(&mut s, true);
    assert_eq!(r.header("Content-Length"), Some("12"), "{r:?}");
    // Nothing but the next response follows a HEAD answer.
    write!(s, "GET /static/missing.txt HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let r = read_response(&mut s, false);
    assert!(r.status_line.contains("404"), "{r:?}");

    // A path that climbs out of the directory, raw and encoded.
    std::fs::write(dir.with_extension("secret"), "secret").unwrap();
    let secret = dir.with_extension("secret");
    let name = secret.file_name().unwrap().to_str().unwrap();
    for path in [
        format!("/static/../{name}"),
        format!("/static/%2e%2e/{name}"),
    ] {
        let mut s = connect(srv.port);
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        assert!(
            !String::from_utf8_lossy(&raw).contains("secret\n") && !raw.ends_with(b"secret"),
            "{path}: {:?}",
            String::from_utf8_lossy(&raw)
        );
    }
    let _ = std::fs::remove_file(secret);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn big_bodies_are_refused_and_a_panic_answers_500() {
    let _wd = util::watchdog("http limits", 30);
    let dir = static_dir("limits");
    let srv = server(dir.clone());
    let mut s = connect(srv.port);
    write!(
        s,
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        lws::MAX_BODY + 1
    )
    .unwrap();
    let r = read_response(&mut s, false);
    assert!(r.status_line.contains("413"), "{r:?}");
    assert_eq!(r.header("Connection"), Some("close"));

    let mut s = connect(srv.port);
    write!(s, "GET /panic HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let r = read_response(&mut s, false);
    assert!(r.status_line.contains("500"), "{r:?}");
    // The server goes on.
    write!(s, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(read_response(&mut s, false).status_line.contains("200"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn websocket_upgrades_share_the_port() {
    let _wd = util::watchdog("http and ws", 30);
    let dir = static_dir("ws");
    let srv = server(dir.clone());
    let (mut ws, _) = tungstenite::connect(srv.url()).expect("upgrade");
    ws.send(WsMessage::text("both")).unwrap();
    assert_eq!(ws.read().unwrap(), WsMessage::text("both"));
    let mut s = connect(srv.port);
    write!(s, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(read_response(&mut s, false).status_line.contains("200"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_handler_without_on_http_answers_404() {
    let _wd = util::watchdog("http default", 30);
    let srv = util::Server::echo();
    let mut s = connect(srv.port);
    write!(s, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let r = read_response(&mut s, false);
    assert!(r.status_line.contains("404"), "{r:?}");
}
