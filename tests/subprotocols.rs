//! Subprotocol negotiation: the server picks the first protocol the client
//! offers that it speaks, and both sides report it through
//! `Connection::protocol()` (and the 101's Sec-WebSocket-Protocol), with
//! our client and a tungstenite one; no offer means no protocol; an offer
//! with nothing in common is refused with a 400 naming what the server
//! speaks; reserved names and bad tokens are refused as options; two
//! listeners on one context negotiate each with its own set.

mod util;

use lws::{Callbacks, Context, ContextOptions, Error, Handshake, ListenOptions};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;
use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use util::{connect_options, http, stop_when_gone, ServerThread};

// ---- helpers ----

/// lws listeners on their own thread, one context; each reports what it
/// sees as "L<index> handshake <path>" and "L<index> connect <path>
/// <protocol>" through `events`. Stopped on drop.
struct Server {
    ports: Vec<u16>,
    events: mpsc::Receiver<String>,
    _thread: ServerThread,
}

impl Server {
    fn start(listeners: Vec<ListenOptions>) -> Server {
        let (tx, events) = mpsc::channel();
        let (thread, ports) = ServerThread::start(move |cx| {
            let mut ports = Vec::new();
            for (i, options) in listeners.into_iter().enumerate() {
                let (t1, t2) = (tx.clone(), tx.clone());
                let callbacks = Callbacks::new()
                    .on_handshake(move |_, request| {
                        let path = request.path().unwrap_or("");
                        let _ = t1.send(format!("L{i} handshake {path}"));
                        Handshake::accept()
                    })
                    .on_connect(move |conn, request| {
                        let path = request.path().unwrap_or("");
                        let _ = t2.send(format!("L{i} connect {path} {:?}", conn.protocol()));
                    });
                ports.push(cx.listen(options, callbacks).expect("listen").port());
            }
            ports
        });
        Server {
            ports,
            events,
            _thread: thread,
        }
    }

    /// The next report (the server makes it before it answers, so after a
    /// client has its answer the report is already here).
    fn next(&self) -> Option<String> {
        self.events.try_recv().ok()
    }

    /// The next `n` reports, waiting for each (a client may see the 101
    /// before the server's on_connect has run), then whatever else is
    /// already there.
    fn take(&self, n: usize) -> Vec<String> {
        let mut out: Vec<String> = (0..n)
            .map_while(|_| self.events.recv_timeout(Duration::from_secs(5)).ok())
            .collect();
        out.extend(self.events.try_iter());
        out
    }
}

fn listener(protocols: &[&str]) -> ListenOptions {
    let mut options = ListenOptions::new(0);
    options.protocols = protocols.iter().map(|p| p.to_string()).collect();
    options
}

/// Connects our client (own context) to `port` + `path` offering
/// `protocols`; returns what it saw: "connect <protocol()> <response
/// header>", "error", "close <code>". Stops at the first connect, or once a
/// failed connection is gone.
fn lws_client(port: u16, path: &str, protocols: &[&str]) -> Vec<String> {
    let cx = Context::new(ContextOptions::default()).unwrap();
    let events: Rc<RefCell<Vec<String>>> = Rc::default();
    let (e1, e2, e3) = (events.clone(), events.clone(), events.clone());
    let (stop, handle) = (cx.handle(), cx.handle());
    let mut options = connect_options(format!("ws://127.0.0.1:{port}{path}"));
    options.protocols = protocols.iter().map(|p| p.to_string()).collect();
    cx.connect(
        options,
        Callbacks::new()
            .on_connect(move |conn, headers| {
                e1.borrow_mut().push(format!(
                    "connect {:?} {:?}",
                    conn.protocol(),
                    headers.get("Sec-WebSocket-Protocol")
                ));
                let _ = stop.stop();
            })
            .on_error(move |conn, e| {
                assert!(matches!(e, Error::Connect(_)), "{e:?}");
                e2.borrow_mut().push("error".into());
                stop_when_gone(handle.clone(), conn.id(), 1000);
            })
            .on_close(move |_, code, _| e3.borrow_mut().push(format!("close {}", code.0))),
    )
    .unwrap();
    cx.run().unwrap();
    let seen = events.borrow().clone();
    seen
}

/// A tungstenite client offering `offer` (None: no header); returns the
/// response's Sec-WebSocket-Protocol, or the HTTP status if refused.
fn tungstenite_client(port: u16, path: &str, offer: Option<&str>) -> Result<Option<String>, u16> {
    let mut request = format!("ws://127.0.0.1:{port}{path}")
        .into_client_request()
        .unwrap();
    if let Some(offer) = offer {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(offer).unwrap(),
        );
    }
    match tungstenite::connect(request) {
        Ok((mut ws, response)) => {
            let protocol = response
                .headers()
                .get("Sec-WebSocket-Protocol")
                .map(|v| v.to_str().unwrap().to_string());
            let _ = ws.close(None);
            Ok(protocol)
        }
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("tungstenite connect: {e}"),
    }
}

/// Sends a raw upgrade request with `Sec-WebSocket-Protocol: offer` and
/// reads the answer to EOF: (status line, Content-Length, body).
fn raw_offer(port: u16, offer: &str) -> (String, Option<usize>, String) {
    let request = http::upgrade_request("/raw", &[], &[("Sec-WebSocket-Protocol", offer)]);
    let response = http::raw_exchange(port, &request);
    let length = response
        .header("Content-Length")
        .map(|v| v.parse().expect("numeric Content-Length"));
    let body = String::from_utf8_lossy(&response.body).into_owned();
    (response.status_line, length, body)
}

// ---- negotiation ----

#[test]
fn the_first_offered_protocol_the_server_speaks_wins() {
    let _wd = util::watchdog("the_first_offered_protocol_the_server_speaks_wins", 30);
    let server = Server::start(vec![listener(&["chat", "superchat"])]);
    let port = server.ports[0];

    assert_eq!(
        lws_client(port, "/a", &["superchat"]),
        vec![r#"connect Some("superchat") Some("superchat")"#]
    );
    assert_eq!(
        server.take(2),
        vec!["L0 handshake /a", r#"L0 connect /a Some("superchat")"#]
    );

    // The client's order decides, not the server's: "x" is unknown, "chat"
    // comes before "superchat".
    assert_eq!(
        lws_client(port, "/b", &["x", "chat", "superchat"]),
        vec![r#"connect Some("chat") Some("chat")"#]
    );
    assert_eq!(
        server.take(2),
        vec!["L0 handshake /b", r#"L0 connect /b Some("chat")"#]
    );
    assert_eq!(
        lws_client(port, "/c", &["superchat", "chat"]),
        vec![r#"connect Some("superchat") Some("superchat")"#]
    );
    assert_eq!(
        server.take(2),
        vec!["L0 handshake /c", r#"L0 connect /c Some("superchat")"#]
    );

    // A tungstenite client: the 101 names the chosen one.
    assert_eq!(
        tungstenite_client(port, "/t1", Some("x, superchat, chat")),
        Ok(Some("superchat".to_string()))
    );
    assert_eq!(
        tungstenite_client(port, "/t2", Some("x, chat, superchat")),
        Ok(Some("chat".to_string()))
    );
    assert_eq!(
        server.take(4),
        vec![
            "L0 handshake /t1",
            r#"L0 connect /t1 Some("superchat")"#,
            "L0 handshake /t2",
            r#"L0 connect /t2 Some("chat")"#,
        ]
    );
}

#[test]
fn no_offer_means_no_protocol_on_either_side() {
    let _wd = util::watchdog("no_offer_means_no_protocol_on_either_side", 30);
    let server = Server::start(vec![listener(&["chat", "superchat"])]);
    let port = server.ports[0];
    assert_eq!(lws_client(port, "/none", &[]), vec!["connect None None"]);
    assert_eq!(
        server.take(2),
        vec!["L0 handshake /none", "L0 connect /none None"]
    );
    // No Sec-WebSocket-Protocol in the 101 either.
    assert_eq!(tungstenite_client(port, "/t", None), Ok(None));
    assert_eq!(
        server.take(2),
        vec!["L0 handshake /t", "L0 connect /t None"]
    );
}

// ---- refusals ----

#[test]
fn an_offer_the_server_does_not_speak_gets_400_naming_what_it_speaks() {
    let _wd = util::watchdog(
        "an_offer_the_server_does_not_speak_gets_400_naming_what_it_speaks",
        30,
    );
    let server = Server::start(vec![listener(&["chat", "superchat"])]);
    let port = server.ports[0];

    let (status, length, body) = raw_offer(port, "nope");
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert_eq!(length, Some(body.len()), "Content-Length, then EOF");
    assert!(
        body.contains("chat") && body.contains("superchat"),
        "the body names what the server speaks: {body:?}"
    );
    // Refused before on_handshake.
    assert_eq!(server.next(), None);

    assert_eq!(lws_client(port, "/nope", &["nope"]), vec!["error"]);
    assert_eq!(
        tungstenite_client(port, "/nope", Some("nope, other")),
        Err(400)
    );
    assert_eq!(server.take(0), Vec::<String>::new());

    // Protocol names match exactly: no prefix or case games.
    assert_eq!(lws_client(port, "/case", &["Chat", "cha"]), vec!["error"]);
    assert_eq!(server.take(0), Vec::<String>::new());
}

#[test]
fn a_listener_without_protocols_refuses_any_offer() {
    let _wd = util::watchdog("a_listener_without_protocols_refuses_any_offer", 30);
    let server = Server::start(vec![ListenOptions::new(0)]);
    let port = server.ports[0];

    let (status, length, body) = raw_offer(port, "chat");
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert_eq!(length, Some(body.len()), "Content-Length, then EOF");
    assert!(!body.is_empty());
    assert_eq!(lws_client(port, "/chat", &["chat"]), vec!["error"]);
    // Not even the name lws-rs gives its internal protocol entry.
    assert_eq!(lws_client(port, "/internal", &["lws-rs"]), vec!["error"]);
    assert_eq!(server.take(0), Vec::<String>::new());

    // Without an offer the same listener accepts.
    assert_eq!(lws_client(port, "/plain", &[]), vec!["connect None None"]);
    assert_eq!(
        server.take(2),
        vec!["L0 handshake /plain", "L0 connect /plain None"]
    );
}

#[test]
fn reserved_names_and_bad_tokens_are_invalid_options() {
    let _wd = util::watchdog("reserved_names_and_bad_tokens_are_invalid_options", 30);
    let cx = Context::new(ContextOptions::default()).unwrap();

    let mut options = listener(&["chat"]);
    options.name = "default".into();
    let r = cx.listen(options, Callbacks::new());
    assert!(matches!(r, Err(Error::InvalidOption(_))), "{r:?}");

    let too_long = "p".repeat(64);
    for bad in ["a,b", "a b", "", too_long.as_str()] {
        let r = cx.listen(listener(&["chat", bad]), Callbacks::new());
        assert!(
            matches!(r, Err(Error::InvalidOption(_))),
            "listen protocol {bad:?}: {r:?}"
        );
        let mut connect = connect_options("ws://127.0.0.1:9/");
        connect.protocols = vec![bad.to_string()];
        if bad.len() < 64 {
            let r = cx.connect(connect, Callbacks::new());
            assert!(
                matches!(r, Err(Error::InvalidOption(_))),
                "connect protocol {bad:?}: {r:?}"
            );
        }
    }

    // The refusals left the context usable: good options still listen.
    let good = "p".repeat(63);
    let r = cx.listen(listener(&["chat", good.as_str()]), Callbacks::new());
    assert!(matches!(r, Ok(ref l) if l.port() != 0), "{r:?}");
}

#[test]
fn two_listeners_on_one_context_negotiate_their_own_sets() {
    let _wd = util::watchdog("two_listeners_on_one_context_negotiate_their_own_sets", 30);
    let server = Server::start(vec![
        listener(&["alpha", "shared"]),
        listener(&["beta", "shared"]),
    ]);
    let (a, b) = (server.ports[0], server.ports[1]);
    assert_ne!(a, b);

    let offer = ["beta", "alpha"];
    assert_eq!(
        lws_client(a, "/1", &offer),
        vec![r#"connect Some("alpha") Some("alpha")"#]
    );
    assert_eq!(
        lws_client(b, "/2", &offer),
        vec![r#"connect Some("beta") Some("beta")"#]
    );
    assert_eq!(
        server.take(4),
        vec![
            "L0 handshake /1",
            r#"L0 connect /1 Some("alpha")"#,
            "L1 handshake /2",
            r#"L1 connect /2 Some("beta")"#,
        ]
    );

    // One listener's protocol is unknown to the other.
    assert_eq!(lws_client(b, "/3", &["alpha"]), vec!["error"]);
    assert_eq!(
        tungstenite_client(a, "/4", Some("beta")),
        Err(400),
        "beta on the alpha listener"
    );
    assert_eq!(server.take(0), Vec::<String>::new());

    // A name both speak works on both.
    assert_eq!(
        tungstenite_client(a, "/5", Some("shared")),
        Ok(Some("shared".to_string()))
    );
    assert_eq!(
        tungstenite_client(b, "/6", Some("gamma, shared")),
        Ok(Some("shared".to_string()))
    );
    assert_eq!(
        server.take(4),
        vec![
            "L0 handshake /5",
            r#"L0 connect /5 Some("shared")"#,
            "L1 handshake /6",
            r#"L1 connect /6 Some("shared")"#,
        ]
    );
}

// ---- names lws cannot tokenize ----

// lws's own pass over the offered protocols splits names at '/', ':', '='
// and reads "42" as a number, then drops the connection without a
// response; listen() must refuse such a name or negotiate it properly.
#[test]
fn protocol_names_are_refused_or_negotiated() {
    let _wd = util::watchdog("protocol_names_are_refused_or_negotiated", 30);
    let mut problems = Vec::new();
    for name in ["chat/v1", "x:y", "a=b", "42"] {
        let cx = Context::new(ContextOptions::default()).unwrap();
        let accepted = cx.listen(listener(&["ok", name]), Callbacks::new()).is_ok();
        drop(cx);
        if !accepted {
            continue; // refused as an option: fine
        }
        let server = Server::start(vec![listener(&["ok", name])]);
        let mut request = format!("ws://127.0.0.1:{}/", server.ports[0])
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(name).unwrap(),
        );
        match tungstenite::connect(request) {
            Ok((mut ws, response)) => {
                let chosen = response.headers().get("Sec-WebSocket-Protocol");
                if chosen.and_then(|v| v.to_str().ok()) != Some(name) {
                    problems.push(format!("{name:?}: accepted, but 101 names {chosen:?}"));
                }
                let _ = ws.close(None);
            }
            Err(e) => problems.push(format!(
                "{name:?}: listen() accepted it, offering it fails: {e} (server saw {:?})",
                server.take(0)
            )),
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
