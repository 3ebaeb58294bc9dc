//! The opening handshake, server and client side: `on_handshake` sees the
//! path, query and every request header; accepting adds headers to the 101
//! response (next to the listener's static ones); rejecting sends a
//! complete HTTP response (403, 401 with headers and body, any status, 500
//! on a panic) and the server goes on serving; data attached in
//! `on_handshake` stays with the connection; malformed upgrades are
//! answered 400 / 426 without asking the handler; a client's `on_connect`
//! sees the server's response headers (ours and tungstenite's).

mod util;

use lws::{
    Callbacks, CloseCode, Context, ContextOptions, Error, Handshake, ListenOptions, Message, State,
};
use std::cell::RefCell;
use std::net::TcpListener;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use tungstenite::Message as TMessage;
use util::http::{raw_exchange, response_head, upgrade_request};
use util::{connect_options, stop_when_gone, Server};

// ---- helpers ----

/// A tungstenite client on `url` that sends `text` and returns the echo,
/// then closes.
fn tungstenite_echo(request: impl IntoClientRequest, text: &str) -> String {
    let (mut ws, _) = tungstenite::connect(request).expect("tungstenite connect");
    ws.send(TMessage::text(text)).expect("send");
    let echo = match ws.read().expect("read echo") {
        TMessage::Text(t) => t.as_str().to_owned(),
        other => panic!("expected a text echo, got {other:?}"),
    };
    let _ = ws.close(None);
    echo
}

fn echo_on_message(conn: &lws::Connection, msg: Message) {
    let _ = conn.send(msg);
}

// ---- on_handshake sees the request; accepting adds response headers ----

#[test]
fn on_handshake_sees_path_query_and_every_request_header() {
    let _wd = util::watchdog("on_handshake_sees_path_query_and_every_request_header", 30);
    let (tx, rx) = mpsc::channel();
    let mut options = ListenOptions::new(0);
    options.headers = vec![("X-Static".into(), "always".into())];
    let server = Server::start(options, move || {
        Callbacks::new()
            .on_handshake(move |_conn, request| {
                let names: Vec<String> = request.iter().map(|(n, _)| n.to_string()).collect();
                let get = |n: &str| request.get(n).map(str::to_owned);
                let _ = tx.send((
                    request.path().map(str::to_owned),
                    names,
                    [
                        get("X-Token"),
                        get("x-token"), // lookups ignore case
                        get("Cookie"),
                        get("Origin"),
                        get("User-Agent"),
                        get("X-Forwarded-For"),
                        get("Host"),
                        get("Sec-WebSocket-Version"),
                    ],
                ));
                Handshake::accept_with_headers(vec![
                    ("X-Accepted".into(), "yes".into()),
                    ("X-Request-Id".into(), "r-17".into()),
                ])
            })
            .on_message(echo_on_message)
    });

    let mut request = format!("ws://127.0.0.1:{}/chat?room=7&lang=en", server.port)
        .into_client_request()
        .unwrap();
    let h = request.headers_mut();
    for (name, value) in [
        ("X-Token", "t0k3n"),
        ("Cookie", "a=1; b=2"),
        ("Origin", "http://example.test"),
        ("User-Agent", "lws-rs-test/1.0"),
        ("X-Forwarded-For", "10.1.2.3"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    let (mut ws, response) = tungstenite::connect(request).expect("tungstenite connect");
    // on_handshake's headers and the listener's static one are in the 101.
    assert_eq!(response.status().as_u16(), 101);
    let header = |n: &str| response.headers().get(n).map(|v| v.to_str().unwrap());
    assert_eq!(header("X-Accepted"), Some("yes"));
    assert_eq!(header("X-Request-Id"), Some("r-17"));
    assert_eq!(header("X-Static"), Some("always"));
    ws.send(TMessage::text("hi")).unwrap();
    assert_eq!(ws.read().unwrap(), TMessage::text("hi"));
    let _ = ws.close(None);

    let (path, names, values) = rx.recv().expect("on_handshake was called");
    assert_eq!(path.as_deref(), Some("/chat?room=7&lang=en"));
    let port_host = format!("127.0.0.1:{}", server.port);
    assert_eq!(
        values,
        [
            Some("t0k3n".to_string()),
            Some("t0k3n".to_string()),
            Some("a=1; b=2".to_string()),
            Some("http://example.test".to_string()),
            Some("lws-rs-test/1.0".to_string()),
            Some("10.1.2.3".to_string()),
            Some(port_host),
            Some("13".to_string()),
        ]
    );
    // iter() lists every header, names in lower case.
    for name in [
        "x-token",
        "cookie",
        "origin",
        "user-agent",
        "x-forwarded-for",
        "host",
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-version",
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }
    // Exactly one handshake happened.
    assert!(rx.try_recv().is_err());
}

#[test]
fn our_client_sees_static_and_handshake_response_headers() {
    let _wd = util::watchdog("our_client_sees_static_and_handshake_response_headers", 30);
    let cx = Context::new(ContextOptions::default()).unwrap();
    let server_saw: Rc<RefCell<Vec<Option<String>>>> = Rc::default();
    let s = server_saw.clone();
    let mut options = ListenOptions::new(0);
    options.headers = vec![("Set-Cookie".into(), "session=abc123; Path=/".into())];
    let port = cx
        .listen(
            options,
            Callbacks::new().on_handshake(move |_conn, request| {
                s.borrow_mut().extend([
                    request.path().map(str::to_owned),
                    request.get("X-Token").map(str::to_owned),
                    request.get("Cookie").map(str::to_owned),
                ]);
                Handshake::accept_with_headers(vec![("X-Session".into(), "s-42".into())])
            }),
        )
        .unwrap()
        .port();

    let client_saw: Rc<RefCell<Vec<String>>> = Rc::default();
    let (c1, c2) = (client_saw.clone(), client_saw.clone());
    let (stop1, stop2) = (cx.handle(), cx.handle());
    let mut connect = connect_options(format!("ws://127.0.0.1:{port}/login?next=home"));
    connect.headers = vec![
        ("X-Token".into(), "t0k3n".into()),
        ("Cookie".into(), "theme=dark".into()),
    ];
    cx.connect(
        connect,
        Callbacks::new()
            .on_connect(move |_conn, headers| {
                for name in ["set-cookie", "X-Session", "sec-websocket-accept"] {
                    c1.borrow_mut()
                        .push(format!("{name}={}", headers.get(name).unwrap_or("<none>")));
                }
                let _ = stop1.stop();
            })
            .on_error(move |_conn, e| {
                c2.borrow_mut().push(format!("error: {e}"));
                let _ = stop2.stop();
            }),
    )
    .unwrap();
    cx.run().unwrap();

    assert_eq!(
        *server_saw.borrow(),
        vec![
            Some("/login?next=home".to_string()),
            Some("t0k3n".to_string()),
            Some("theme=dark".to_string()),
        ]
    );
    let client_saw = client_saw.borrow();
    assert_eq!(client_saw.len(), 3, "{client_saw:?}");
    assert_eq!(client_saw[0], "set-cookie=session=abc123; Path=/");
    assert_eq!(client_saw[1], "X-Session=s-42");
    // lws's own handshake headers are there too.
    assert_ne!(client_saw[2], "sec-websocket-accept=<none>");
}

// ---- rejections ----

#[test]
fn forbidden_sends_a_complete_403_then_eof() {
    let _wd = util::watchdog("forbidden_sends_a_complete_403_then_eof", 30);
    let server = Server::start(ListenOptions::new(0), || {
        Callbacks::new().on_handshake(|_, _| Handshake::forbidden())
    });
    let response = raw_exchange(server.port, &upgrade_request("/", &[], &[]));
    assert_eq!(response.status_line, "HTTP/1.1 403 Forbidden");
    response.assert_complete();
    assert_eq!(response.body, b"403 Forbidden\n");
    // Not an upgrade: no handshake headers.
    assert_eq!(response.header("Sec-WebSocket-Accept"), None);
    assert_eq!(response.header("Upgrade"), None);
}

#[test]
fn our_client_refused_with_403_gets_on_error_only() {
    let _wd = util::watchdog("our_client_refused_with_403_gets_on_error_only", 30);
    let cx = Context::new(ContextOptions::default()).unwrap();
    let handshakes = Rc::new(RefCell::new(0));
    let n = handshakes.clone();
    let port = cx
        .listen(
            ListenOptions::new(0),
            Callbacks::new().on_handshake(move |_, _| {
                *n.borrow_mut() += 1;
                Handshake::forbidden()
            }),
        )
        .unwrap()
        .port();
    let events: Rc<RefCell<Vec<String>>> = Rc::default();
    let (e1, e2, e3) = (events.clone(), events.clone(), events.clone());
    let handle = cx.handle();
    let conn = cx
        .connect(
            connect_options(format!("ws://127.0.0.1:{port}/")),
            Callbacks::new()
                .on_connect(move |_, _| e1.borrow_mut().push("connect".into()))
                .on_close(move |_, code, _| e2.borrow_mut().push(format!("close {}", code.0)))
                .on_error(move |conn, e| {
                    let kind = if matches!(e, Error::Connect(_)) {
                        "Connect"
                    } else {
                        "other"
                    };
                    e3.borrow_mut().push(format!("error {kind}"));
                    stop_when_gone(handle.clone(), conn.id(), 1000);
                }),
        )
        .unwrap();
    cx.run().unwrap();
    assert_eq!(*events.borrow(), vec!["error Connect".to_string()]);
    assert_eq!(*handshakes.borrow(), 1);
    assert_eq!(conn.state(), State::Destroyed);
}

#[test]
fn reject_with_sends_status_headers_and_body_exactly() {
    let _wd = util::watchdog("reject_with_sends_status_headers_and_body_exactly", 30);
    let server = Server::start(ListenOptions::new(0), || {
        Callbacks::new().on_handshake(|_, _| {
            Handshake::reject_with(
                401,
                vec![("WWW-Authenticate".into(), "Bearer realm=\"x\"".into())],
                "no token",
            )
        })
    });
    let response = raw_exchange(server.port, &upgrade_request("/private", &[], &[]));
    assert_eq!(response.status_line, "HTTP/1.1 401 Unauthorized");
    assert_eq!(
        response.header("WWW-Authenticate"),
        Some("Bearer realm=\"x\"")
    );
    response.assert_complete();
    assert_eq!(response.body, b"no token");
}

#[test]
fn any_status_can_refuse_the_upgrade() {
    let _wd = util::watchdog("any_status_can_refuse_the_upgrade", 30);
    // The status comes from the path: /status/NNN.
    let server = Server::start(ListenOptions::new(0), || {
        Callbacks::new().on_handshake(|_, request| {
            let status: u16 = request
                .path()
                .and_then(|p| p.strip_prefix("/status/"))
                .and_then(|s| s.parse().ok())
                .unwrap_or(400);
            if status == 429 {
                Handshake::reject_with(429, vec![("Retry-After".into(), "7".into())], "slow down")
            } else {
                Handshake::reject(status)
            }
        })
    });
    let cases: [(u16, &str, &[u8]); 4] = [
        (
            503,
            "HTTP/1.1 503 Service Unavailable",
            b"503 Service Unavailable\n",
        ),
        (429, "HTTP/1.1 429 Too Many Requests", b"slow down"),
        (404, "HTTP/1.1 404 Not Found", b"404 Not Found\n"),
        // No reason phrase known: a generic one, the status stays.
        (599, "HTTP/1.1 599 Error", b"599 Error\n"),
    ];
    for (status, line, body) in cases {
        let response = raw_exchange(
            server.port,
            &upgrade_request(&format!("/status/{status}"), &[], &[]),
        );
        assert_eq!(response.status_line, line, "status {status}");
        response.assert_complete();
        assert_eq!(response.body, body, "status {status}");
        let retry = (status == 429).then_some("7");
        assert_eq!(response.header("Retry-After"), retry, "status {status}");
    }
}

#[test]
fn server_keeps_serving_after_a_rejection() {
    let _wd = util::watchdog("server_keeps_serving_after_a_rejection", 30);
    let server = Server::start(ListenOptions::new(0), || {
        Callbacks::new()
            .on_handshake(|_, request| match request.get("X-Token") {
                Some("good") => Handshake::accept(),
                _ => Handshake::forbidden(),
            })
            .on_message(echo_on_message)
    });
    let url = format!("ws://127.0.0.1:{}/", server.port);

    // Without a token: tungstenite sees the 403 and its body.
    match tungstenite::connect(url.as_str()) {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 403);
            assert_eq!(
                response.body().as_deref(),
                Some(&b"403 Forbidden\n"[..]),
                "body of the 403"
            );
        }
        Err(e) => panic!("expected an HTTP 403, got {e}"),
        Ok(_) => panic!("the upgrade without a token was accepted"),
    }
    // A raw one too, for good measure.
    let response = raw_exchange(server.port, &upgrade_request("/", &[], &[]));
    assert_eq!(response.status_line, "HTTP/1.1 403 Forbidden");

    // With it: accepted, and the connection works.
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("X-Token", HeaderValue::from_static("good"));
    assert_eq!(tungstenite_echo(request, "still here"), "still here");
}

#[test]
fn panic_in_on_handshake_answers_500_and_the_server_goes_on() {
    let _wd = util::watchdog(
        "panic_in_on_handshake_answers_500_and_the_server_goes_on",
        30,
    );
    let server = Server::start(ListenOptions::new(0), || {
        Callbacks::new()
            .on_handshake(|_, request| {
                if request.path() == Some("/panic") {
                    panic!("on_handshake panics on purpose (test)");
                }
                Handshake::accept()
            })
            .on_message(echo_on_message)
    });
    let response = raw_exchange(server.port, &upgrade_request("/panic", &[], &[]));
    assert_eq!(response.status_line, "HTTP/1.1 500 Internal Server Error");
    response.assert_complete();
    // The handler survives the panic: the next request is accepted, twice.
    for i in 0..2 {
        let text = format!("after the panic {i}");
        assert_eq!(
            tungstenite_echo(format!("ws://127.0.0.1:{}/ok", server.port), &text),
            text
        );
    }
    let response = raw_exchange(server.port, &upgrade_request("/panic", &[], &[]));
    assert_eq!(response.status_line, "HTTP/1.1 500 Internal Server Error");
}

// ---- per-connection data ----

struct Session {
    user: String,
    messages: u32,
}

#[test]
fn data_set_in_on_handshake_stays_with_its_connection() {
    let _wd = util::watchdog("data_set_in_on_handshake_stays_with_its_connection", 30);
    let cx = Context::new(ContextOptions::default()).unwrap();
    let server_log: Rc<RefCell<Vec<String>>> = Rc::default();
    let (s1, s2) = (server_log.clone(), server_log.clone());
    let port = cx
        .listen(
            ListenOptions::new(0),
            Callbacks::new()
                .on_handshake(move |conn, request| {
                    let user = request.get("X-User").unwrap_or("?").to_string();
                    s1.borrow_mut().push(format!(
                        "handshake #{} {user} {:?} set={:?}",
                        conn.id(),
                        conn.state(),
                        conn.set_data(Session {
                            user: user.clone(),
                            messages: 0
                        })
                        .is_ok()
                    ));
                    Handshake::accept()
                })
                .on_connect(move |conn, _| {
                    let user = conn.with_data(|s: &mut Session| s.user.clone());
                    // The data is the one from on_handshake: a second
                    // set_data is refused.
                    let again = matches!(conn.set_data(0u8), Err(Error::DataAlreadySet));
                    s2.borrow_mut().push(format!(
                        "connect #{} {} again-refused={again}",
                        conn.id(),
                        user.as_deref().unwrap_or("<no data>")
                    ));
                })
                .on_message(|conn, _| {
                    let reply = conn
                        .with_data(|s: &mut Session| {
                            s.messages += 1;
                            format!("{} {}", s.user, s.messages)
                        })
                        .unwrap_or_else(|| "<no data>".into());
                    let _ = conn.send_text(&reply);
                }),
        )
        .unwrap()
        .port();

    let replies: Rc<RefCell<Vec<String>>> = Rc::default();
    // Stops once both clients closed.
    let finished = util::stop_after(&cx, 2);
    for user in ["ann", "bob"] {
        let mut connect = connect_options(format!("ws://127.0.0.1:{port}/"));
        connect.headers = vec![("X-User".into(), user.into())];
        let (r, r2) = (replies.clone(), replies.clone());
        let done = finished.clone();
        let got = Rc::new(RefCell::new(0));
        cx.connect(
            connect,
            Callbacks::new()
                .on_connect(|conn, _| {
                    conn.send_text("one").unwrap();
                    conn.send_text("two").unwrap();
                })
                .on_message(move |conn, msg| {
                    r.borrow_mut()
                        .push(String::from_utf8(msg.into_bytes()).unwrap());
                    *got.borrow_mut() += 1;
                    if *got.borrow() == 2 {
                        conn.close(CloseCode::NORMAL, "");
                    }
                })
                .on_error(move |_, e| r2.borrow_mut().push(format!("error {e}")))
                .on_close(move |_, _, _| done()),
        )
        .unwrap();
    }
    cx.run().unwrap();

    let mut replies = replies.borrow().clone();
    replies.sort();
    assert_eq!(replies, vec!["ann 1", "ann 2", "bob 1", "bob 2"]);

    // Per connection: the handshake (Connecting, data attached) and the
    // connect of the same id with the same data.
    let log = server_log.borrow();
    assert_eq!(log.len(), 4, "{log:?}");
    for user in ["ann", "bob"] {
        let handshake = log
            .iter()
            .find(|l| l.starts_with("handshake") && l.contains(&format!(" {user} ")))
            .unwrap_or_else(|| panic!("no handshake for {user}: {log:?}"));
        let id = handshake.split(' ').nth(1).unwrap();
        assert_eq!(
            *handshake,
            format!("handshake {id} {user} Connecting set=true")
        );
        assert!(
            log.contains(&format!("connect {id} {user} again-refused=true")),
            "{user}: {log:?}"
        );
    }
}

// ---- malformed upgrades, answered by the server itself ----

/// A server that counts on_handshake calls (reported through a channel)
/// and accepts.
fn counting_server() -> (Server, mpsc::Receiver<String>) {
    let (tx, rx) = mpsc::channel();
    let server = Server::start(ListenOptions::new(0), move || {
        Callbacks::new().on_handshake(move |_, request| {
            let _ = tx.send(request.path().unwrap_or("").to_string());
            Handshake::accept()
        })
    });
    (server, rx)
}

/// A valid request reaches on_handshake: proves the counter can count (the
/// server answers 101; we read only its head, up to the blank line).
fn assert_valid_request_reaches_handler(port: u16, calls: &mpsc::Receiver<String>) {
    let head = response_head(port, &upgrade_request("/valid", &[], &[]));
    assert!(
        head.starts_with("HTTP/1.1 101 ") && head.ends_with("\r\n\r\n"),
        "{head:?}"
    );
    assert_eq!(calls.try_recv().as_deref(), Ok("/valid"));
}

#[test]
fn missing_key_is_answered_400_without_the_handler() {
    let _wd = util::watchdog("missing_key_is_answered_400_without_the_handler", 30);
    let (server, calls) = counting_server();
    let response = raw_exchange(
        server.port,
        &upgrade_request("/nokey", &["Sec-WebSocket-Key"], &[]),
    );
    assert_eq!(response.status_line, "HTTP/1.1 400 Bad Request");
    response.assert_complete();
    let body = String::from_utf8_lossy(&response.body);
    assert!(body.contains("Sec-WebSocket-Key"), "body: {body:?}");
    // The handler is asked before the response is sent, so had it been
    // called, its report would be in the channel by now.
    assert!(calls.try_recv().is_err(), "on_handshake was called");
    assert_valid_request_reaches_handler(server.port, &calls);
}

#[test]
fn other_versions_are_answered_426_naming_version_13() {
    let _wd = util::watchdog("other_versions_are_answered_426_naming_version_13", 30);
    let (server, calls) = counting_server();
    let response = raw_exchange(
        server.port,
        &upgrade_request("/v8", &[], &[("Sec-WebSocket-Version", "8")]),
    );
    assert_eq!(response.status_line, "HTTP/1.1 426 Upgrade Required");
    assert_eq!(response.header("Sec-WebSocket-Version"), Some("13"));
    response.assert_complete();
    assert!(calls.try_recv().is_err(), "on_handshake was called");
    assert_valid_request_reaches_handler(server.port, &calls);
}

// ---- client side: response headers from a tungstenite server ----

#[test]
fn our_client_sees_a_tungstenite_servers_response_headers() {
    let _wd = util::watchdog("our_client_sees_a_tungstenite_servers_response_headers", 30);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || -> Result<Option<String>, String> {
        let (stream, _) = listener.accept().map_err(|e| e.to_string())?;
        let mut token = None;
        // The callback's type is tungstenite's (its error is an HTTP response).
        #[allow(clippy::result_large_err)]
        let callback =
            |request: &tungstenite::handshake::server::Request,
             mut response: tungstenite::handshake::server::Response| {
                token = request
                    .headers()
                    .get("X-Token")
                    .map(|v| v.to_str().unwrap_or("").to_string());
                let h = response.headers_mut();
                h.insert("Set-Cookie", HeaderValue::from_static("sid=xyz; HttpOnly"));
                h.insert("Server", HeaderValue::from_static("tungstenite-test"));
                h.insert(
                    "WWW-Authenticate",
                    HeaderValue::from_static("Basic realm=\"t\""),
                );
                Ok(response)
            };
        let mut ws = tungstenite::accept_hdr(stream, callback).map_err(|e| e.to_string())?;
        // Serve until the client closes.
        loop {
            match ws.read() {
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed) => return Ok(token),
                Err(e) => return Err(e.to_string()),
            }
        }
    });

    let cx = Context::new(ContextOptions::default()).unwrap();
    let saw: Rc<RefCell<Vec<String>>> = Rc::default();
    let (s1, s2, s3) = (saw.clone(), saw.clone(), saw.clone());
    let (stop1, stop2) = (cx.handle(), cx.handle());
    let mut connect = connect_options(format!("ws://127.0.0.1:{port}/"));
    connect.headers = vec![("X-Token".into(), "abc".into())];
    cx.connect(
        connect,
        Callbacks::new()
            .on_connect(move |conn, headers| {
                for name in ["Set-Cookie", "server", "WWW-AUTHENTICATE"] {
                    s1.borrow_mut()
                        .push(format!("{name}: {}", headers.get(name).unwrap_or("<none>")));
                }
                conn.close(CloseCode::NORMAL, "");
            })
            .on_close(move |_, code, _| {
                s2.borrow_mut().push(format!("close {}", code.0));
                let _ = stop1.stop();
            })
            .on_error(move |_, e| {
                s3.borrow_mut().push(format!("error {e}"));
                let _ = stop2.stop();
            }),
    )
    .unwrap();
    cx.run().unwrap();
    drop(cx);

    assert_eq!(
        *saw.borrow(),
        vec![
            "Set-Cookie: sid=xyz; HttpOnly",
            "server: tungstenite-test",
            "WWW-AUTHENTICATE: Basic realm=\"t\"",
            "close 1000",
        ]
    );
    assert_eq!(
        server.join().expect("server thread"),
        Ok(Some("abc".to_string()))
    );
}

// ---- requests and answers lws alone would mishandle ----

/// `request` is answered 400 without on_handshake being asked.
fn assert_400_without_the_handler(request: &str) {
    let (server, calls) = counting_server();
    let head = response_head(server.port, request);
    let called = calls.try_recv().ok();
    assert!(
        head.starts_with("HTTP/1.1 400 "),
        "expected a 400, got {head:?} (on_handshake called for {called:?})"
    );
    assert_eq!(called, None, "on_handshake was called");
}

// lws hangs up without a response when Host is missing (after the handler
// accepted); we answer 400 before asking the handler.
#[test]
fn missing_host_is_answered_400_without_the_handler() {
    let _wd = util::watchdog("missing_host_is_answered_400_without_the_handler", 30);
    assert_400_without_the_handler(&upgrade_request("/nohost", &["Host"], &[]));
}

// lws hangs up without a response on a key of 128 bytes or more; a key
// that is not the base64 of 16 bytes (RFC 6455 4.2.1) gets a 400 before
// the handler is asked.
#[test]
fn an_overlong_key_is_answered_400_without_the_handler() {
    let _wd = util::watchdog("an_overlong_key_is_answered_400_without_the_handler", 30);
    let key = "A".repeat(200);
    assert_400_without_the_handler(&upgrade_request(
        "/longkey",
        &[],
        &[("Sec-WebSocket-Key", &key)],
    ));
}

// Response splitting: a header value with a line break (static or from
// on_handshake) must never reach the 101, where it would add headers.
#[test]
fn header_values_with_line_breaks_do_not_reach_the_101() {
    let _wd = util::watchdog("header_values_with_line_breaks_do_not_reach_the_101", 30);
    let mut problems = Vec::new();

    let cx = Context::new(ContextOptions::default()).unwrap();
    let mut options = ListenOptions::new(0);
    options.headers = vec![("X-Static".into(), "1\r\nX-Static-Injected: evil".into())];
    if let Ok(port) = cx.listen(options, Callbacks::new()) {
        problems.push(format!(
            "listen() accepted a static header with CRLF (listener {port:?})"
        ));
    }
    drop(cx);

    let server = Server::start(ListenOptions::new(0), || {
        Callbacks::new().on_handshake(|_, _| {
            Handshake::accept_with_headers(vec![(
                "X-Session".into(),
                "1\r\nX-Injected: evil".into(),
            )])
        })
    });
    let head = response_head(server.port, &upgrade_request("/", &[], &[]));
    if head.split("\r\n").any(|l| l == "X-Injected: evil") {
        problems.push(format!("the 101 carries an injected header: {head:?}"));
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

// Accept headers larger than lws's response buffer (4096 bytes) make lws
// hang up without a response; the client gets an HTTP answer instead.
#[test]
fn oversized_accept_headers_get_an_http_answer() {
    let _wd = util::watchdog("oversized_accept_headers_get_an_http_answer", 30);
    let server = Server::start(ListenOptions::new(0), || {
        Callbacks::new().on_handshake(|_, _| {
            Handshake::accept_with_headers(vec![("X-Big".into(), "b".repeat(8000))])
        })
    });
    let head = response_head(server.port, &upgrade_request("/", &[], &[]));
    assert!(
        head.starts_with("HTTP/1.1 "),
        "the server hung up without any response: {head:?}"
    );
}

// lws percent-decodes the query as it parses it; path() must keep an
// encoded '&' or '=' apart from a real one, or two different targets read
// the same.
#[test]
fn path_keeps_encoded_delimiters_apart() {
    let _wd = util::watchdog("path_keeps_encoded_delimiters_apart", 30);
    let (server, calls) = counting_server();
    let mut seen = Vec::new();
    for target in ["/q?x=1%26y%3D2", "/q?x=1&y=2"] {
        let head = response_head(server.port, &upgrade_request(target, &[], &[]));
        assert!(head.starts_with("HTTP/1.1 101 "), "{target}: {head:?}");
        seen.push(calls.try_recv().expect("on_handshake was called"));
    }
    assert_ne!(
        seen[0], seen[1],
        "\"/q?x=1%26y%3D2\" (one argument) and \"/q?x=1&y=2\" (two) read the same"
    );
}
