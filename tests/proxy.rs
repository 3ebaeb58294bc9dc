//! Clients through an HTTP CONNECT proxy: an explicit proxy carries ws://
//! and wss:// (with verification), credentials in it become Basic
//! Proxy-Authorization, the environment (https_proxy, http_proxy,
//! all_proxy, no_proxy) is honoured in EV::Websockets' order unless
//! Proxy::None, an unreachable or failing proxy is an on_error, and
//! non-HTTP proxies are refused.

mod util;

use lws::{
    Callbacks, ConnectOptions, Context, ContextOptions, Error, ListenOptions, Message, Proxy,
    ServerTls,
};
use std::net::TcpListener;
use std::sync::{PoisonError, RwLock};
use util::echo_log::{self, echoed};
use util::proxy::ConnectProxy;
use util::tls::TestPki;
use util::Server;

/// The environment is process-wide and tests run in parallel: the one test
/// that changes it holds this for writing, every other test for reading,
/// so none connects (and reads the proxy variables) while it changes them.
static ENV: RwLock<()> = RwLock::new(());

/// The messages each connection sends: a text and a 1 MiB binary.
fn messages() -> Vec<Message> {
    vec![
        Message::Text("through the proxy".into()),
        Message::Binary(util::payload(3, 1 << 20)),
    ]
}

/// Runs one client in a fresh context until it closes or fails: it sends
/// `messages()` on connect and closes once all came back. The log is
/// [`echo_log::run_client`]'s.
fn run_client(options: ConnectOptions) -> Vec<String> {
    echo_log::run_client(options, messages())
}

fn via(url: String, proxy: Proxy) -> ConnectOptions {
    let mut options = ConnectOptions::new(url);
    options.proxy = proxy;
    options
}

/// A loopback port nothing listens on (bound, then released).
fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn an_explicit_proxy_carries_the_connection() {
    let _wd = util::watchdog("an_explicit_proxy_carries_the_connection", 30);
    let _env = ENV.read().unwrap_or_else(PoisonError::into_inner);
    let server = Server::echo();
    let proxy = ConnectProxy::start();
    let log = run_client(via(server.url(), Proxy::Http(proxy.addr())));
    assert_eq!(log, echoed(2));
    let target = format!("127.0.0.1:{}", server.port);
    assert_eq!(proxy.requests(), vec![target.clone()]);
    // No credentials, no Proxy-Authorization.
    assert_eq!(proxy.basic_auth(), vec![None]);

    // The documented http:// prefix (and a trailing slash) mean the same.
    let log = run_client(via(
        server.url(),
        Proxy::Http(format!("http://{}/", proxy.addr())),
    ));
    assert_eq!(log, echoed(2));
    assert_eq!(proxy.requests(), vec![target.clone(), target]);
}

#[test]
fn proxy_credentials_become_basic_auth() {
    let _wd = util::watchdog("proxy_credentials_become_basic_auth", 30);
    let _env = ENV.read().unwrap_or_else(PoisonError::into_inner);
    let server = Server::echo();
    let proxy = ConnectProxy::start();
    let log = run_client(via(
        server.url(),
        Proxy::Http(format!("user:pass@{}", proxy.addr())),
    ));
    assert_eq!(log, echoed(2));
    assert_eq!(proxy.requests(), vec![format!("127.0.0.1:{}", server.port)]);
    // base64("user:pass"). lws writes the scheme as "basic"; schemes are
    // case-insensitive (RFC 7235 section 2.1), the credentials are not.
    let auth = proxy.basic_auth();
    assert_eq!(auth.len(), 1, "{auth:?}");
    let (scheme, credentials) = auth[0]
        .as_deref()
        .and_then(|a| a.split_once(' '))
        .unwrap_or_else(|| panic!("no Basic credentials: {auth:?}"));
    assert!(scheme.eq_ignore_ascii_case("Basic"), "{auth:?}");
    assert_eq!(credentials, "dXNlcjpwYXNz");
}

#[test]
fn wss_goes_through_the_proxy_with_verification() {
    let _wd = util::watchdog("wss_goes_through_the_proxy_with_verification", 30);
    let _env = ENV.read().unwrap_or_else(PoisonError::into_inner);
    let pki = TestPki::generate("proxy-wss");
    let mut listen = ListenOptions::new(0);
    listen.tls = Some(ServerTls::new(&pki.server_cert, &pki.server_key));
    let server = Server::echo_with(listen);
    let proxy = ConnectProxy::start();
    let url = format!("wss://localhost:{}/", server.port);

    let mut options = via(url.clone(), Proxy::Http(proxy.addr()));
    options.tls.ca_file = Some(pki.ca_cert.clone());
    assert_eq!(run_client(options), echoed(2));
    // The tunnel is to the URL's host; TLS runs end to end inside it.
    assert_eq!(proxy.requests(), vec![format!("localhost:{}", server.port)]);

    // Verification still applies through the tunnel: an untrusted CA fails.
    let mut options = via(url, Proxy::Http(proxy.addr()));
    options.tls.ca_file = Some(pki.other_ca_cert.clone());
    let log = run_client(options);
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(log[0].starts_with("error: "), "{log:?}");
    assert_eq!(proxy.requests().len(), 2);
}

// lws writes the CONNECT target as "%s:%u"; an IPv6 literal must still go
// out as "[::1]:PORT" (RFC 9110 section 9.3.6), not the ambiguous
// "::1:PORT" the test proxy refuses.
#[test]
fn an_ipv6_target_goes_through_the_proxy_in_brackets() {
    let _wd = util::watchdog("an_ipv6_target_goes_through_the_proxy_in_brackets", 30);
    let _env = ENV.read().unwrap_or_else(PoisonError::into_inner);
    let mut listen = ListenOptions::new(0);
    listen.host = "::1".into();
    let server = Server::echo_with(listen);
    let url = format!("ws://[::1]:{}/", server.port);
    // Direct, the IPv6 listener is reachable.
    assert_eq!(run_client(via(url.clone(), Proxy::None)), echoed(2));

    let proxy = ConnectProxy::start();
    let log = run_client(via(url, Proxy::Http(proxy.addr())));
    assert_eq!(proxy.requests(), vec![format!("[::1]:{}", server.port)]);
    assert_eq!(log, echoed(2));
}

/// The proxy variables, in both spellings.
const PROXY_VARS: [&str; 8] = [
    "https_proxy",
    "http_proxy",
    "all_proxy",
    "no_proxy",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
];

/// Clears the proxy variables; puts the original values back on drop, even
/// when an assertion fails.
struct SavedEnv(Vec<(&'static str, Option<std::ffi::OsString>)>);

impl SavedEnv {
    fn clear() -> SavedEnv {
        let saved = PROXY_VARS
            .iter()
            .map(|&n| (n, std::env::var_os(n)))
            .collect();
        clear_vars();
        SavedEnv(saved)
    }
}

impl Drop for SavedEnv {
    fn drop(&mut self) {
        for (name, value) in &self.0 {
            match value {
                Some(v) => std::env::set_var(name, v),
                None => std::env::remove_var(name),
            }
        }
    }
}

fn clear_vars() {
    for n in PROXY_VARS {
        std::env::remove_var(n);
    }
}

/// Sets exactly these proxy variables (the others cleared).
fn set_vars(vars: &[(&str, &str)]) {
    clear_vars();
    for (name, value) in vars {
        std::env::set_var(name, value);
    }
}

/// Where a connection must go in a step of the environment test.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Route {
    P1,
    P2,
    Direct,
}

#[test]
fn the_environment_picks_the_proxy() {
    let _wd = util::watchdog("the_environment_picks_the_proxy", 30);
    let _env = ENV.write().unwrap_or_else(PoisonError::into_inner);
    let _saved = SavedEnv::clear();
    let server = Server::echo();
    let target = format!("127.0.0.1:{}", server.port);
    let (p1, p2) = (ConnectProxy::start(), ConnectProxy::start());
    let (a1, a2) = (format!("http://{}", p1.addr()), p2.addr());
    let (a1, a2) = (a1.as_str(), a2.as_str());
    use Route::*;
    // Each step: the variables set, the proxy option, where it must go.
    let steps = [
        (vec![("https_proxy", a1)], Proxy::FromEnv, P1),
        (vec![("http_proxy", a2)], Proxy::FromEnv, P2),
        (vec![("all_proxy", a1)], Proxy::FromEnv, P1),
        // https_proxy wins over http_proxy (and all_proxy), for ws:// too.
        (
            vec![("http_proxy", a2), ("https_proxy", a1), ("all_proxy", a2)],
            Proxy::FromEnv,
            P1,
        ),
        // http_proxy wins over all_proxy.
        (
            vec![("all_proxy", a1), ("http_proxy", a2)],
            Proxy::FromEnv,
            P2,
        ),
        // The upper-case spelling counts too.
        (vec![("HTTPS_PROXY", a2)], Proxy::FromEnv, P2),
        // Proxy::None ignores the environment.
        (
            vec![("https_proxy", a1), ("http_proxy", a2), ("all_proxy", a1)],
            Proxy::None,
            Direct,
        ),
        // no_proxy lists the target host: direct.
        (
            vec![
                ("https_proxy", a1),
                ("http_proxy", a2),
                ("no_proxy", "localhost,127.0.0.1"),
            ],
            Proxy::FromEnv,
            Direct,
        ),
        // An empty variable is no proxy: the next one in order is used.
        (
            vec![("https_proxy", ""), ("http_proxy", a2)],
            Proxy::FromEnv,
            P2,
        ),
        // Nothing set: direct.
        (vec![], Proxy::FromEnv, Direct),
    ];
    let (mut n1, mut n2) = (0, 0);
    for (i, (vars, proxy, route)) in steps.into_iter().enumerate() {
        set_vars(&vars);
        let log = run_client(via(server.url(), proxy.clone()));
        clear_vars();
        let what = format!("step {i}: {vars:?} {proxy:?}, expected {route:?}");
        assert_eq!(log, echoed(2), "{what}");
        match route {
            P1 => n1 += 1,
            P2 => n2 += 1,
            Direct => {}
        }
        // Every request of either proxy is for our server, and only the
        // expected one saw this step's connection.
        assert_eq!(p1.requests(), vec![target.clone(); n1], "{what}: proxy 1");
        assert_eq!(p2.requests(), vec![target.clone(); n2], "{what}: proxy 2");
    }
}

#[test]
fn an_unreachable_proxy_is_an_error() {
    let _wd = util::watchdog("an_unreachable_proxy_is_an_error", 30);
    let _env = ENV.read().unwrap_or_else(PoisonError::into_inner);
    let server = Server::echo();
    let proxy = format!("127.0.0.1:{}", dead_port());
    let log = run_client(via(server.url(), Proxy::Http(proxy)));
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(log[0].starts_with("error: "), "{log:?}");
}

#[test]
fn a_proxy_that_cannot_reach_the_target_is_an_error() {
    let _wd = util::watchdog("a_proxy_that_cannot_reach_the_target_is_an_error", 30);
    let _env = ENV.read().unwrap_or_else(PoisonError::into_inner);
    let proxy = ConnectProxy::start();
    // The proxy answers 502: nothing listens at the target.
    let target = format!("127.0.0.1:{}", dead_port());
    let log = run_client(via(format!("ws://{target}/"), Proxy::Http(proxy.addr())));
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(log[0].starts_with("error: "), "{log:?}");
    assert_eq!(proxy.requests(), vec![target]);
}

#[test]
fn non_http_proxies_are_refused() {
    let _wd = util::watchdog("non_http_proxies_are_refused", 30);
    let _env = ENV.read().unwrap_or_else(PoisonError::into_inner);
    let cx = Context::new(ContextOptions::default()).unwrap();
    for proxy in ["socks5://x:1", "https://127.0.0.1:1"] {
        let r = cx.connect(
            via("ws://127.0.0.1:1/".into(), Proxy::Http(proxy.into())),
            Callbacks::new(),
        );
        match r {
            Err(Error::InvalidOption(msg)) => assert!(msg.contains(proxy), "{msg}"),
            other => panic!("{proxy}: expected InvalidOption, got {other:?}"),
        }
    }
}
