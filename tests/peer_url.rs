//! Peer addresses and URLs as EV::Websockets documents them: `peer_addr()`
//! is the bare IP (IPv4 dotted, IPv6 without brackets or port) on both
//! sides; a ws:// URL's path and query, Host header and default port reach
//! the server, its userinfo is ignored; unusable URLs fail in `connect`
//! with `Error::Url` and no callback.

mod util;

use lws::{Callbacks, CloseCode, Context, ContextOptions, ListenOptions};
use std::cell::RefCell;
use std::rc::Rc;
use util::connect_options;

/// What one client/server round trip showed.
#[derive(Debug, Default)]
struct Outcome {
    server_peer: Option<String>,
    client_peer: Option<String>,
    /// The request path (with query) the server saw.
    path: Option<String>,
    /// The request headers the server saw (lower-case names).
    request: Vec<(String, String)>,
    /// The client's on_error, if it failed.
    error: Option<String>,
    /// The close code the client saw.
    closed: Option<u16>,
}

impl Outcome {
    fn header(&self, name: &str) -> Option<&str> {
        self.request
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Listens with `listen`, connects to `url(port)` from the same context,
/// records both sides' view, and closes from the client once connected.
fn round_trip(listen: ListenOptions, url: impl FnOnce(u16) -> String) -> Outcome {
    try_round_trip(listen, url).expect("listen")
}

/// As [`round_trip`]; Err if the listener cannot be made.
fn try_round_trip(listen: ListenOptions, url: impl FnOnce(u16) -> String) -> lws::Result<Outcome> {
    let cx = Context::new(ContextOptions::default()).unwrap();
    let out: Rc<RefCell<Outcome>> = Rc::default();
    let o = out.clone();
    let server = Callbacks::new().on_connect(move |conn, headers| {
        let mut o = o.borrow_mut();
        o.server_peer = conn.peer_addr();
        o.path = headers.path().map(str::to_owned);
        o.request = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
    });
    let port = cx.listen(listen, server)?.port();
    let (o1, o2, o3) = (out.clone(), out.clone(), out.clone());
    let (stop1, stop2) = (cx.handle(), cx.handle());
    let client = Callbacks::new()
        .on_connect(move |conn, _| {
            o1.borrow_mut().client_peer = conn.peer_addr();
            conn.close(CloseCode::NORMAL, "");
        })
        .on_close(move |_, code, _| {
            o2.borrow_mut().closed = Some(code.0);
            let _ = stop1.stop();
        })
        .on_error(move |_, e| {
            o3.borrow_mut().error = Some(e.to_string());
            let _ = stop2.stop();
        });
    // Straight to the listener, whatever the environment says.
    cx.connect(connect_options(url(port)), client)
        .expect("connect");
    cx.run().unwrap();
    drop(cx);
    Ok(Rc::try_unwrap(out).unwrap().into_inner())
}

#[test]
fn ipv4_peer_addr_is_the_bare_address_on_both_sides() {
    let _wd = util::watchdog("ipv4_peer_addr", 10);
    let out = round_trip(ListenOptions::new(0), |port| {
        format!("ws://127.0.0.1:{port}/")
    });
    assert_eq!(out.error, None);
    assert_eq!(out.server_peer.as_deref(), Some("127.0.0.1"));
    assert_eq!(out.client_peer.as_deref(), Some("127.0.0.1"));
    assert_eq!(out.closed, Some(1000));
}

#[test]
fn ipv6_peer_addr_has_no_brackets_and_no_port() {
    let _wd = util::watchdog("ipv6_peer_addr", 10);
    if let Err(e) = std::net::TcpListener::bind("[::1]:0") {
        eprintln!("skipped: no IPv6 loopback on this machine ({e})");
        return;
    }
    let mut listen = ListenOptions::new(0);
    listen.host = "::1".into();
    let mut port_used = 0;
    let out = round_trip(listen, |port| {
        port_used = port;
        format!("ws://[::1]:{port}/v6")
    });
    assert_eq!(out.error, None);
    assert_eq!(out.server_peer.as_deref(), Some("::1"));
    assert_eq!(out.client_peer.as_deref(), Some("::1"));
    assert_eq!(out.path.as_deref(), Some("/v6"));
    // In the Host header an IPv6 literal keeps its brackets (RFC 3986).
    let host = format!("[::1]:{port_used}");
    assert_eq!(out.header("host"), Some(host.as_str()));
    assert_eq!(out.closed, Some(1000));
}

#[test]
fn path_query_and_host_header_reach_the_server() {
    let _wd = util::watchdog("path_query_host", 10);
    let mut port_used = 0;
    let out = round_trip(ListenOptions::new(0), |port| {
        port_used = port;
        format!("ws://127.0.0.1:{port}/path?x=1")
    });
    assert_eq!(out.error, None);
    assert_eq!(out.path.as_deref(), Some("/path?x=1"));
    let host = format!("127.0.0.1:{port_used}");
    assert_eq!(out.header("host"), Some(host.as_str()));

    // Several query arguments come back joined as sent.
    let out = round_trip(ListenOptions::new(0), |port| {
        format!("ws://127.0.0.1:{port}/a/b?x=1&y=two")
    });
    assert_eq!(out.path.as_deref(), Some("/a/b?x=1&y=two"));

    // No path at all: "/".
    let out = round_trip(ListenOptions::new(0), |port| {
        format!("ws://127.0.0.1:{port}")
    });
    assert_eq!(out.path.as_deref(), Some("/"));
}

#[test]
fn userinfo_in_the_url_is_ignored() {
    let _wd = util::watchdog("userinfo_ignored", 10);
    let mut port_used = 0;
    let out = round_trip(ListenOptions::new(0), |port| {
        port_used = port;
        format!("ws://user:pw@127.0.0.1:{port}/secret")
    });
    assert_eq!(out.error, None);
    assert_eq!(out.closed, Some(1000), "the connection works");
    assert_eq!(out.path.as_deref(), Some("/secret"));
    // Not turned into HTTP auth, and not leaked into any header.
    assert_eq!(out.header("authorization"), None, "{:?}", out.request);
    let host = format!("127.0.0.1:{port_used}");
    assert_eq!(out.header("host"), Some(host.as_str()));
    for (name, value) in &out.request {
        assert!(
            !value.contains("pw") && !value.contains("user:"),
            "{name}: {value}"
        );
    }
}

#[test]
fn ws_url_without_a_port_uses_port_80() {
    let _wd = util::watchdog("default_port_80", 10);
    // Only where listening on 127.0.0.1:80 is possible (root, port free);
    // nothing outside this machine is contacted.
    let out = match try_round_trip(ListenOptions::new(80), |port| {
        assert_eq!(port, 80);
        "ws://127.0.0.1/default".to_string()
    }) {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipped: cannot listen on 127.0.0.1:80 ({e})");
            return;
        }
    };
    assert_eq!(out.error, None);
    assert_eq!(out.path.as_deref(), Some("/default"));
    // The default port is left out of the Host header.
    assert_eq!(out.header("host"), Some("127.0.0.1"));
    assert_eq!(out.closed, Some(1000));
}

#[test]
fn unusable_urls_fail_in_connect_without_any_callback() {
    let _wd = util::watchdog("bad_urls", 10);
    let cx = Context::new(ContextOptions::default()).unwrap();
    let port = cx
        .listen(
            ListenOptions::new(0),
            Callbacks::new().on_message(|conn, msg| conn.send(msg).unwrap()),
        )
        .unwrap()
        .port();
    let events: Rc<RefCell<Vec<String>>> = Rc::default();
    let bad = [
        format!("http://127.0.0.1:{port}/"),
        format!("https://127.0.0.1:{port}/"),
        "ftp://127.0.0.1/".to_string(),
        "ws://".to_string(),
        "ws://:80/".to_string(),
        "wss://".to_string(),
        "not a url".to_string(),
        String::new(),
        "ws//127.0.0.1/".to_string(),
        "ws://[::1/".to_string(),
        "ws://127.0.0.1:99999/".to_string(),
    ];
    for url in &bad {
        let (e1, e2, e3, e4) = (
            events.clone(),
            events.clone(),
            events.clone(),
            events.clone(),
        );
        let u = url.clone();
        let handler = Callbacks::new()
            .on_connect(move |_, _| e1.borrow_mut().push("connect".into()))
            .on_message(move |_, _| e2.borrow_mut().push("message".into()))
            .on_close(move |_, _, _| e3.borrow_mut().push("close".into()))
            .on_error(move |_, e| e4.borrow_mut().push(format!("error for {u:?}: {e}")));
        let r = cx.connect(connect_options(url.clone()), handler);
        assert!(matches!(r, Err(lws::Error::Url(_))), "{url:?}: {r:?}");
    }

    // Run a good connection to its end, so any deferred callback of the
    // refused ones would have run by now.
    let stop = cx.handle();
    let good = Callbacks::new()
        .on_connect(|conn, _| conn.send_text("ping").unwrap())
        .on_message(|conn, _| conn.close(CloseCode::NORMAL, ""))
        .on_close(move |_, _, _| {
            let _ = stop.stop();
        });
    cx.connect(connect_options(util::url(port)), good).unwrap();
    cx.run().unwrap();
    assert!(events.borrow().is_empty(), "{:?}", events.borrow());
}
