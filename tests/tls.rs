//! wss:// end to end with throwaway certificates: echo by name and by
//! address (text and 1 MiB binary), server verification on by default and
//! switchable off, untrusted CAs refused, mutual TLS (good, missing and
//! foreign client certificates), `peer_cert_name()` on both sides, the
//! IPv6 address of a wss://[::1] target checked against the server
//! certificate, interoperability with tungstenite over OpenSSL in both
//! directions, `ssl_init: false`, and TLS files that do not exist.

mod util;

use lws::{
    Callbacks, ClientTls, CloseCode, ConnectOptions, Context, ContextOptions, Error, ListenOptions,
    Message, ServerTls,
};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslAcceptor, SslConnector, SslFiletype, SslMethod, SslVerifyMode};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName, SubjectKeyIdentifier,
};
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use std::cell::RefCell;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tungstenite::Message as TMessage;
use util::echo_log::{echoed, run_client, GoneWatch};
use util::tls::TestPki;

/// The messages every echo test sends: a short text and a 1 MiB binary
/// (many TLS records, so record reassembly is exercised too).
fn messages() -> Vec<Message> {
    vec![
        Message::Text("hello over TLS".into()),
        Message::Binary(util::payload(7, 1 << 20)),
    ]
}

/// An lws echo server in its own thread that reports each `on_connect`
/// (server-side handshake completed) through a channel.
struct Server {
    port: u16,
    server: util::Server,
    connects: mpsc::Receiver<()>,
}

impl Server {
    fn start(options: ListenOptions) -> Server {
        let (connect_tx, connects) = mpsc::channel();
        let server = util::Server::start(options, move || {
            Callbacks::new()
                .on_connect(move |_, _| {
                    let _ = connect_tx.send(());
                })
                .on_message(|conn, msg| conn.send(msg).expect("echo send"))
        });
        Server {
            port: server.port,
            server,
            connects,
        }
    }

    fn tls(pki: &TestPki) -> Server {
        let mut options = ListenOptions::new(0);
        options.tls = Some(ServerTls::new(&pki.server_cert, &pki.server_key));
        Server::start(options)
    }

    fn mtls(pki: &TestPki) -> Server {
        let mut options = ListenOptions::new(0);
        options.tls = Some(mtls_config(pki));
        Server::start(options)
    }

    /// Stops the server and returns how many connections it accepted:
    /// once its thread is joined no further on_connect can come.
    fn finish(mut self) -> usize {
        self.stop();
        self.connects.try_iter().count()
    }

    fn stop(&mut self) {
        self.server.stop().expect("server thread");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn trusting(url: String, ca: &Path) -> ConnectOptions {
    let mut options = ConnectOptions::new(url);
    options.tls.ca_file = Some(ca.to_path_buf());
    options
}

/// A listener's TLS that requires a client certificate from the test CA.
fn mtls_config(pki: &TestPki) -> ServerTls {
    ServerTls {
        ca_file: Some(pki.ca_cert.clone()),
        require_client_cert: true,
        ..ServerTls::new(&pki.server_cert, &pki.server_key)
    }
}

/// A client of `wss://localhost:port/` that trusts the test CA and sends
/// the test client certificate.
fn mtls_client(port: u16, pki: &TestPki) -> ConnectOptions {
    let mut options = trusting(format!("wss://localhost:{port}/"), &pki.ca_cert);
    options.tls.cert_file = Some(pki.client_cert.clone());
    options.tls.key_file = Some(pki.client_key.clone());
    options
}

/// A refused attempt: the client never got the server's handshake answer,
/// so it ends in on_error alone (no on_connect, no echo, no on_close),
/// whether the server refused it during TLS or, with TLS 1.3, just after
/// the client finished its side of the handshake (see
/// `a_client_refused_after_its_tls_handshake_gets_on_error`).
fn assert_refused(log: &[String], what: &str) {
    assert!(
        !log.iter()
            .any(|l| l == "connected" || l.starts_with("echo")),
        "{what}: the client got through: {log:?}"
    );
    assert_eq!(log.len(), 1, "{what}: {log:?}");
    assert!(log[0].starts_with("error: "), "{what}: {log:?}");
}

/// The attempt ended in on_error alone (no on_connect, no on_close), for
/// a certificate problem rather than, say, a refused TCP connection.
fn assert_cert_error(log: &[String]) {
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(
        log[0].starts_with("error: ") && log[0].contains("cert"),
        "{log:?}"
    );
}

#[test]
fn wss_echo_by_name_and_by_address() {
    let _wd = util::watchdog("wss_echo_by_name_and_by_address", 30);
    let pki = TestPki::generate("wss-echo");
    let server = Server::tls(&pki);
    for host in ["localhost", "127.0.0.1"] {
        let url = format!("wss://{host}:{}/", server.port);
        let log = run_client(trusting(url, &pki.ca_cert), messages());
        assert_eq!(log, echoed(2), "{host}");
    }
    assert_eq!(server.finish(), 2);
}

// lws 4.3.5 cuts the host to check from "[::1]:PORT" at the first ':',
// leaving "["; a certificate that lists IP:::1 must still verify.
#[test]
fn wss_echo_over_ipv6_with_verification() {
    let _wd = util::watchdog("wss_echo_over_ipv6_with_verification", 30);
    let pki = TestPki::generate("wss-ipv6");
    let server = ipv6_server(&pki.server_cert, &pki.server_key);
    let url = format!("wss://[::1]:{}/", server.port);

    // The connection itself works: without verification it echoes.
    let mut insecure = ConnectOptions::new(url.clone());
    insecure.tls.verify = false;
    assert_eq!(run_client(insecure, messages()), echoed(2), "verify off");

    // The certificate is valid for ::1, so verification must pass too.
    let log = run_client(trusting(url, &pki.ca_cert), messages());
    assert_eq!(log, echoed(2), "verify on");
    assert_eq!(server.finish(), 2);
}

#[test]
fn verification_is_on_by_default() {
    let _wd = util::watchdog("verification_is_on_by_default", 30);
    let pki = TestPki::generate("verify-default");
    let server = Server::tls(&pki);
    let url = format!("wss://localhost:{}/", server.port);

    // The test CA is in no system store: the default client must refuse,
    // and say it was the certificate.
    let log = run_client(ConnectOptions::new(url.clone()), messages());
    assert_cert_error(&log);

    // The same server is fine once verification is off.
    let mut insecure = ConnectOptions::new(url);
    insecure.tls.verify = false;
    assert_eq!(run_client(insecure, messages()), echoed(2));

    // Only the unverified client got through the server's handshake.
    assert_eq!(server.finish(), 1);
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let _wd = util::watchdog("a_certificate_from_another_ca_is_refused", 30);
    let pki = TestPki::generate("other-ca");
    let server = Server::tls(&pki);
    // Host name matches, chain does not: trusting only the unrelated CA
    // must fail, for the name and for the address.
    for host in ["localhost", "127.0.0.1"] {
        let url = format!("wss://{host}:{}/", server.port);
        let log = run_client(trusting(url, &pki.other_ca_cert), messages());
        assert_cert_error(&log);
    }
    assert_eq!(server.finish(), 0);
}

#[test]
fn mtls_accepts_a_client_certificate_from_its_ca() {
    let _wd = util::watchdog("mtls_accepts_a_client_certificate_from_its_ca", 30);
    let pki = TestPki::generate("mtls-ok");
    let server = Server::mtls(&pki);
    let options = mtls_client(server.port, &pki);
    assert_eq!(run_client(options, messages()), echoed(2));
    assert_eq!(server.finish(), 1);
}

#[test]
fn mtls_refuses_a_client_without_a_certificate() {
    let _wd = util::watchdog("mtls_refuses_a_client_without_a_certificate", 30);
    let pki = TestPki::generate("mtls-none");
    let server = Server::mtls(&pki);
    let options = trusting(format!("wss://localhost:{}/", server.port), &pki.ca_cert);
    let log = run_client(options, messages());
    assert_refused(&log, "no client certificate");
    assert_eq!(server.finish(), 0, "server accepted: client saw {log:?}");
}

// lws's default client-certificate check accepts any certificate, even
// from a CA the listener does not trust; the listener's CA decides.
#[test]
fn mtls_refuses_a_client_certificate_from_another_ca() {
    let _wd = util::watchdog("mtls_refuses_a_client_certificate_from_another_ca", 30);
    let pki = TestPki::generate("mtls-other");
    let server = Server::mtls(&pki);
    let mut options = trusting(format!("wss://localhost:{}/", server.port), &pki.ca_cert);
    options.tls.cert_file = Some(pki.other_client_cert.clone());
    options.tls.key_file = Some(pki.other_client_key.clone());
    let log = run_client(options, messages());
    assert_refused(&log, "foreign client certificate");
    assert_eq!(server.finish(), 0, "server accepted: client saw {log:?}");
}

// ---- peer_cert_name ----

/// What `peer_cert_name()` said in each side's on_connect (None: no
/// on_connect on that side), and any client error.
#[derive(Debug, Default, PartialEq)]
struct CertNames {
    server: Option<Option<String>>,
    client: Option<Option<String>>,
    errors: Vec<String>,
}

/// One connection, in one context, between a listener (`tls` if given)
/// and a client made by `client` from the listener's port; the client
/// closes as soon as it is connected. Returns what each side read.
fn peer_cert_names(
    tls: Option<ServerTls>,
    client: impl FnOnce(u16) -> ConnectOptions,
) -> CertNames {
    let cx = Context::new(ContextOptions::default()).unwrap();
    let names: Rc<RefCell<CertNames>> = Rc::default();
    // The loop ends once both sides closed, or the client failed.
    let closed = util::stop_after(&cx, 2);
    let (n1, n2, n3) = (names.clone(), names.clone(), names.clone());
    let (c1, c2) = (closed.clone(), closed);
    let stop = cx.handle();
    let mut options = ListenOptions::new(0);
    options.tls = tls;
    let server = Callbacks::new()
        .on_connect(move |conn, _| n1.borrow_mut().server = Some(conn.peer_cert_name()))
        .on_close(move |_, _, _| c1());
    let port = cx.listen(options, server).unwrap().port();
    let callbacks = Callbacks::new()
        .on_connect(move |conn, _| {
            n2.borrow_mut().client = Some(conn.peer_cert_name());
            conn.close(CloseCode::NORMAL, "");
        })
        .on_error(move |_, e| {
            n3.borrow_mut().errors.push(e.to_string());
            stop.stop().unwrap();
        })
        .on_close(move |_, _, _| c2());
    cx.connect(client(port), callbacks).unwrap();
    cx.run().unwrap();
    drop(cx);
    Rc::try_unwrap(names).unwrap().into_inner()
}

#[test]
fn peer_cert_name_over_mtls_names_both_certificates() {
    let _wd = util::watchdog("peer_cert_name_over_mtls_names_both_certificates", 30);
    let pki = TestPki::generate("cert-name-mtls");
    let names = peer_cert_names(Some(mtls_config(&pki)), |port| mtls_client(port, &pki));
    assert_eq!(
        names,
        CertNames {
            server: Some(Some("lws-rs test client".into())),
            client: Some(Some("localhost".into())),
            errors: vec![],
        }
    );
}

#[test]
fn peer_cert_name_over_wss_without_a_client_certificate() {
    let _wd = util::watchdog("peer_cert_name_over_wss_without_a_client_certificate", 30);
    let pki = TestPki::generate("cert-name-wss");
    let tls = ServerTls::new(&pki.server_cert, &pki.server_key);
    let names = peer_cert_names(Some(tls), |port| {
        trusting(format!("wss://localhost:{port}/"), &pki.ca_cert)
    });
    // The client sent no certificate: nothing to name on the server.
    assert_eq!(
        names,
        CertNames {
            server: Some(None),
            client: Some(Some("localhost".into())),
            errors: vec![],
        }
    );
}

#[test]
fn peer_cert_name_over_plain_ws_is_none() {
    let _wd = util::watchdog("peer_cert_name_over_plain_ws_is_none", 30);
    let names = peer_cert_names(None, |port| {
        ConnectOptions::new(format!("ws://127.0.0.1:{port}/"))
    });
    assert_eq!(
        names,
        CertNames {
            server: Some(None),
            client: Some(None),
            errors: vec![],
        }
    );
}

// ---- the IPv6 address in the server certificate ----

/// PEM files of a fresh CA and of a server certificate it issued for
/// CN `localhost`, SAN `DNS:localhost` plus `IP:` each of `ips`.
struct ServerCert {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// Writes a [`ServerCert`] into `dir` (file names start with `tag`).
/// Unlike TestPki's, this server certificate names only the addresses
/// given, so a test can leave out ::1.
fn server_cert_naming(dir: &Path, tag: &str, ips: &[&str]) -> ServerCert {
    let new_key = || {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
    };
    // Back-dated a day so clock skew cannot make it "not yet valid".
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let yesterday = Asn1Time::from_unix((now.as_secs() - 86_400).try_into().unwrap()).unwrap();
    let month = Asn1Time::days_from_now(30).unwrap();
    let start = |cn: &str, serial: u32, key: &PKey<Private>, issuer: Option<&X509>| {
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap(); // X.509 v3
        let serial = BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap();
        b.set_serial_number(&serial).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(issuer.map_or(&*name, |i| i.subject_name()))
            .unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&yesterday).unwrap();
        b.set_not_after(&month).unwrap();
        b
    };

    let ca_key = new_key();
    let mut b = start(&format!("lws-rs {tag} CA"), 1, &ca_key, None);
    let bc = BasicConstraints::new().critical().ca().build().unwrap();
    b.append_extension(bc).unwrap();
    let ku = KeyUsage::new().critical().key_cert_sign().build().unwrap();
    b.append_extension(ku).unwrap();
    let skid = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(skid).unwrap();
    b.sign(&ca_key, MessageDigest::sha256()).unwrap();
    let ca = b.build();

    let key = new_key();
    let mut b = start("localhost", 2, &key, Some(&ca));
    let bc = BasicConstraints::new().critical().build().unwrap();
    b.append_extension(bc).unwrap();
    let ku = KeyUsage::new()
        .critical()
        .digital_signature()
        .build()
        .unwrap();
    b.append_extension(ku).unwrap();
    let eku = ExtendedKeyUsage::new().server_auth().build().unwrap();
    b.append_extension(eku).unwrap();
    let mut san = SubjectAlternativeName::new();
    san.dns("localhost");
    for ip in ips {
        san.ip(ip);
    }
    let san = san.build(&b.x509v3_context(Some(&ca), None)).unwrap();
    b.append_extension(san).unwrap();
    b.sign(&ca_key, MessageDigest::sha256()).unwrap();
    let cert = b.build();

    let files = ServerCert {
        ca: dir.join(format!("{tag}-ca.pem")),
        cert: dir.join(format!("{tag}-server.pem")),
        key: dir.join(format!("{tag}-server.key")),
    };
    fs::write(&files.ca, ca.to_pem().unwrap()).unwrap();
    fs::write(&files.cert, cert.to_pem().unwrap()).unwrap();
    fs::write(&files.key, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    files
}

/// A TLS listener on ::1 with this certificate and key.
fn ipv6_server(cert: &Path, key: &Path) -> Server {
    let mut options = ListenOptions::new(0);
    options.host = "::1".into();
    options.tls = Some(ServerTls::new(cert, key));
    Server::start(options)
}

#[test]
fn wss_to_ipv6_checks_the_address_in_the_server_certificate() {
    let _wd = util::watchdog(
        "wss_to_ipv6_checks_the_address_in_the_server_certificate",
        30,
    );
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("note: skipped: cannot bind ::1 (no IPv6 loopback here)");
        return;
    }
    let pki = TestPki::generate("wss-ipv6-san");

    // TestPki's server certificate names ::1: verified, it echoes.
    let server = ipv6_server(&pki.server_cert, &pki.server_key);
    let url = format!("wss://[::1]:{}/", server.port);
    assert_eq!(
        run_client(trusting(url, &pki.ca_cert), messages()),
        echoed(2),
        "TestPki certificate"
    );
    assert_eq!(server.finish(), 1);

    // Certificates from our own CA, with and without IP:::1 (both name
    // DNS:localhost and IP:127.0.0.1): only the SAN decides.
    let with = server_cert_naming(&pki.dir, "with-v6", &["127.0.0.1", "::1"]);
    let server = ipv6_server(&with.cert, &with.key);
    let url = format!("wss://[::1]:{}/", server.port);
    assert_eq!(
        run_client(trusting(url, &with.ca), messages()),
        echoed(2),
        "a certificate naming ::1"
    );
    assert_eq!(server.finish(), 1);

    let without = server_cert_naming(&pki.dir, "v4-only", &["127.0.0.1"]);
    let server = ipv6_server(&without.cert, &without.key);
    let url = format!("wss://[::1]:{}/", server.port);
    let log = run_client(trusting(url, &without.ca), messages());
    // on_error alone, for the certificate: never on_connect. lws reports
    // either OpenSSL's code (64 being X509_V_ERR_IP_ADDRESS_MISMATCH) or,
    // when the refusal ends SSL_connect itself, OpenSSL's "certificate
    // verify failed"; which one depends on how the handshake's reads fall.
    // The two certificates differ only in naming ::1, so either is the
    // address check.
    assert_cert_error(&log);
    assert!(
        log[0].contains("X509_V_ERR = 64") || log[0].contains("certificate verify failed"),
        "{log:?}"
    );
    assert_eq!(server.finish(), 0, "server accepted: client saw {log:?}");

    // The same certificate is good where it applies: 127.0.0.1.
    let mut options = ListenOptions::new(0);
    options.tls = Some(ServerTls::new(&without.cert, &without.key));
    let server = Server::start(options);
    let url = format!("wss://127.0.0.1:{}/", server.port);
    assert_eq!(
        run_client(trusting(url, &without.ca), messages()),
        echoed(2),
        "the IPv4-only certificate over 127.0.0.1"
    );
    assert_eq!(server.finish(), 1);
}

// ---- interoperability with tungstenite over OpenSSL ----

/// A tungstenite client over an OpenSSL stream: echoes the test messages
/// through `wss://localhost:port/`, then closes cleanly.
fn tungstenite_client(
    port: u16,
    ca: &Path,
    client_cert: Option<(&Path, &Path)>,
) -> Result<(), String> {
    let mut b = SslConnector::builder(SslMethod::tls()).map_err(|e| e.to_string())?;
    b.set_ca_file(ca).map_err(|e| format!("CA: {e}"))?;
    if let Some((cert, key)) = client_cert {
        b.set_certificate_file(cert, SslFiletype::PEM)
            .map_err(|e| format!("cert: {e}"))?;
        b.set_private_key_file(key, SslFiletype::PEM)
            .map_err(|e| format!("key: {e}"))?;
    }
    let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("tcp: {e}"))?;
    // Bounded: a server that stalls fails the test instead of hanging it.
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let tls = b
        .build()
        .connect("localhost", tcp)
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let (mut ws, _) = tungstenite::client(format!("wss://localhost:{port}/"), tls)
        .map_err(|e| format!("WebSocket handshake: {e}"))?;
    for (i, m) in messages().into_iter().enumerate() {
        let out = match &m {
            Message::Text(s) => TMessage::text(s.clone()),
            Message::Binary(b) => TMessage::binary(b.clone()),
        };
        ws.send(out).map_err(|e| format!("send {i}: {e}"))?;
        let echo = ws.read().map_err(|e| format!("read {i}: {e}"))?;
        let same = match (&m, &echo) {
            (Message::Text(a), TMessage::Text(b)) => a.as_str() == b.as_str(),
            (Message::Binary(a), TMessage::Binary(b)) => a[..] == b[..],
            _ => false,
        };
        if !same {
            return Err(format!("echo {i} differs: sent {m:?}, got {echo:?}"));
        }
    }
    ws.close(None).map_err(|e| format!("close: {e}"))?;
    for _ in 0..10 {
        match ws.read() {
            Ok(TMessage::Close(_)) => {}
            Ok(other) => return Err(format!("after close: {other:?}")),
            Err(tungstenite::Error::ConnectionClosed) => return Ok(()),
            Err(e) => return Err(format!("close handshake: {e}")),
        }
    }
    Err("close handshake did not finish".into())
}

/// Runs `client` in a thread against a listener with `tls` in this thread;
/// returns the client's result and the number of server-side on_connects.
fn our_server_with(
    tls: ServerTls,
    client: impl FnOnce(u16) -> Result<(), String> + Send + 'static,
) -> (Result<(), String>, usize) {
    let cx = Context::new(ContextOptions::default()).unwrap();
    let connects = Rc::new(RefCell::new(0));
    let c = connects.clone();
    let callbacks = Callbacks::new()
        .on_connect(move |_, _| *c.borrow_mut() += 1)
        .on_message(|conn, msg| conn.send(msg).expect("echo send"));
    let mut options = ListenOptions::new(0);
    options.tls = Some(tls);
    let port = cx.listen(options, callbacks).unwrap().port();
    let stop = cx.handle();
    let t = thread::spawn(move || {
        let result = client(port);
        stop.stop().unwrap();
        result
    });
    cx.run().unwrap();
    let result = t.join().expect("client thread");
    let n = *connects.borrow();
    (result, n)
}

#[test]
fn tungstenite_openssl_client_against_our_wss_server() {
    let _wd = util::watchdog("tungstenite_openssl_client_against_our_wss_server", 30);
    let pki = TestPki::generate("tung-client");
    let ca = pki.ca_cert.clone();
    let tls = ServerTls::new(&pki.server_cert, &pki.server_key);
    let (result, connects) = our_server_with(tls, move |port| tungstenite_client(port, &ca, None));
    assert_eq!(result, Ok(()));
    assert_eq!(connects, 1);
}

#[test]
fn tungstenite_openssl_client_against_our_mtls_server() {
    let _wd = util::watchdog("tungstenite_openssl_client_against_our_mtls_server", 30);
    let pki = TestPki::generate("tung-mtls");
    let mtls = mtls_config(&pki);

    // An independent client with a certificate from the server's CA.
    let (ca, cert, key) = (
        pki.ca_cert.clone(),
        pki.client_cert.clone(),
        pki.client_key.clone(),
    );
    let (result, connects) = our_server_with(mtls.clone(), move |port| {
        tungstenite_client(port, &ca, Some((&cert, &key)))
    });
    assert_eq!(result, Ok(()));
    assert_eq!(connects, 1);

    // Without one the server refuses it (during TLS or right after).
    let ca = pki.ca_cert.clone();
    let (result, connects) = our_server_with(mtls, move |port| tungstenite_client(port, &ca, None));
    assert!(result.is_err(), "no client certificate, yet: {result:?}");
    assert_eq!(connects, 0);
}

/// A tungstenite echo server over OpenSSL for one connection; `client_ca`
/// makes it require a client certificate issued by that CA. Returns its
/// port and a thread giving how many messages it echoed.
fn tungstenite_server(
    pki: &TestPki,
    client_ca: Option<&Path>,
) -> (u16, JoinHandle<Result<usize, String>>) {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    b.set_private_key_file(&pki.server_key, SslFiletype::PEM)
        .unwrap();
    b.set_certificate_chain_file(&pki.server_cert).unwrap();
    if let Some(ca) = client_ca {
        b.set_ca_file(ca).unwrap();
        b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    }
    let acceptor = b.build();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let t = thread::spawn(move || {
        let (tcp, _) = listener.accept().map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let tls = acceptor
            .accept(tcp)
            .map_err(|e| format!("TLS handshake: {e}"))?;
        let mut ws = tungstenite::accept(tls).map_err(|e| format!("WebSocket handshake: {e}"))?;
        let mut echoed = 0;
        loop {
            match ws.read() {
                Ok(m @ (TMessage::Text(_) | TMessage::Binary(_))) => {
                    ws.send(m).map_err(|e| format!("echo: {e}"))?;
                    echoed += 1;
                }
                Ok(_) => {} // ping, pong, close (tungstenite answers itself)
                Err(tungstenite::Error::ConnectionClosed) => return Ok(echoed),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    });
    (port, t)
}

#[test]
fn our_wss_client_against_a_tungstenite_openssl_server() {
    let _wd = util::watchdog("our_wss_client_against_a_tungstenite_openssl_server", 30);
    let pki = TestPki::generate("tung-server");
    let (port, server) = tungstenite_server(&pki, None);
    let log = run_client(
        trusting(format!("wss://localhost:{port}/"), &pki.ca_cert),
        messages(),
    );
    assert_eq!(log, echoed(2));
    assert_eq!(server.join().unwrap(), Ok(2));
}

#[test]
fn our_mtls_client_against_a_tungstenite_openssl_server() {
    let _wd = util::watchdog("our_mtls_client_against_a_tungstenite_openssl_server", 30);
    let pki = TestPki::generate("tung-server-mtls");
    // The server demands a certificate from the test CA: ours must send it.
    let (port, server) = tungstenite_server(&pki, Some(&pki.ca_cert));
    assert_eq!(run_client(mtls_client(port, &pki), messages()), echoed(2));
    assert_eq!(server.join().unwrap(), Ok(2));
}

/// An OpenSSL server that demands a client certificate from the test CA,
/// for `n` connections, each handled in its own thread. Returns its port
/// and a thread giving how many TLS handshakes it completed.
fn cert_demanding_server(pki: &TestPki, n: usize) -> (u16, JoinHandle<usize>) {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    b.set_private_key_file(&pki.server_key, SslFiletype::PEM)
        .unwrap();
    b.set_certificate_chain_file(&pki.server_cert).unwrap();
    b.set_ca_file(&pki.ca_cert).unwrap();
    b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    let acceptor = b.build();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let t = thread::spawn(move || {
        let handshakes: Vec<_> = (0..n)
            .map(|_| {
                let (tcp, _) = listener.accept().unwrap();
                let acceptor = acceptor.clone();
                thread::spawn(move || {
                    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    // Dropping the stream closes the connection at once.
                    acceptor.accept(tcp).is_ok()
                })
            })
            .collect();
        handshakes
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|&ok| ok)
            .count()
    });
    (port, t)
}

// With TLS 1.3 a client the server refuses just after the TLS handshake
// can fail while writing its upgrade request, which lws reports as a
// closed HTTP client rather than a connection error; it must still get
// on_error, not vanish. It is a race, so 100 clients at once: their
// interleaving in one loop makes it likely that some hit it.
#[test]
fn a_client_refused_after_its_tls_handshake_gets_on_error() {
    let _wd = util::watchdog("a_client_refused_after_its_tls_handshake_gets_on_error", 30);
    const N: usize = 100;
    let pki = TestPki::generate("refused-after-tls");
    let (port, server) = cert_demanding_server(&pki, N);
    let cx = Context::new(ContextOptions::default()).unwrap();
    let outcomes: Rc<RefCell<std::collections::HashMap<u64, String>>> = Rc::default();
    let mut ids = Vec::new();
    for _ in 0..N {
        let (o1, o2, o3) = (outcomes.clone(), outcomes.clone(), outcomes.clone());
        // No client certificate: the server must refuse every one.
        let callbacks = Callbacks::new()
            .on_connect(move |c, _| {
                o1.borrow_mut().insert(c.id(), "connected".into());
            })
            .on_error(move |c, _| {
                o2.borrow_mut().insert(c.id(), "error".into());
            })
            .on_close(move |c, _, _| {
                o3.borrow_mut().insert(c.id(), "closed".into());
            });
        let options = trusting(format!("wss://localhost:{port}/"), &pki.ca_cert);
        ids.push(cx.connect(options, callbacks).unwrap().id());
    }
    // The loop ends when every connection is gone, reported or not.
    let watch = GoneWatch::start(&cx, ids.clone());
    cx.run().unwrap();
    drop(watch);
    assert_eq!(server.join().unwrap(), 0, "the server accepted a client");
    let outcomes = outcomes.borrow();
    let mut tally = std::collections::BTreeMap::<&str, usize>::new();
    for id in &ids {
        let outcome = outcomes.get(id).map_or("vanished", |o| o.as_str());
        *tally.entry(outcome).or_default() += 1;
    }
    // Every attempt must end in on_error: the handshake never completed.
    assert_eq!(tally, [("error", N)].into());
}

// ---- options ----

#[test]
fn without_ssl_init_tls_is_refused_and_plain_ws_works() {
    let _wd = util::watchdog("without_ssl_init_tls_is_refused_and_plain_ws_works", 30);
    let pki = TestPki::generate("no-ssl-init");
    let cx = Context::new(ContextOptions {
        ssl_init: false,
        ..ContextOptions::default()
    })
    .unwrap();

    let mut options = ListenOptions::new(0);
    options.tls = Some(ServerTls::new(&pki.server_cert, &pki.server_key));
    let r = cx.listen(options, Callbacks::new());
    assert!(matches!(r, Err(Error::InvalidOption(_))), "listen: {r:?}");

    // Refused at once, whether or not anything listens there.
    let r = cx.connect(
        trusting("wss://localhost:1/".into(), &pki.ca_cert),
        Callbacks::new(),
    );
    assert!(matches!(r, Err(Error::InvalidOption(_))), "connect: {r:?}");

    // ws:// in the same context: a listener and a client echo.
    let port = cx
        .listen(
            ListenOptions::new(0),
            Callbacks::new().on_message(|conn, msg| conn.send(msg).unwrap()),
        )
        .unwrap()
        .port();
    let got: Rc<RefCell<Option<Message>>> = Rc::default();
    let g = got.clone();
    let stop = cx.handle();
    cx.connect(
        ConnectOptions::new(format!("ws://127.0.0.1:{port}/")),
        Callbacks::new()
            .on_connect(|conn, _| conn.send_text("plain").unwrap())
            .on_message(move |_, msg| {
                *g.borrow_mut() = Some(msg);
                stop.stop().unwrap();
            })
            .on_error(|_, e| panic!("plain ws failed: {e}")),
    )
    .unwrap();
    cx.run().unwrap();
    assert_eq!(*got.borrow(), Some(Message::Text("plain".into())));
}

/// `r` is an InvalidOption whose message names `path`.
fn assert_names<T: std::fmt::Debug>(r: lws::Result<T>, path: &Path) {
    match r {
        Err(Error::InvalidOption(msg)) => assert!(
            msg.contains(&path.display().to_string()),
            "{msg:?} does not name {}",
            path.display()
        ),
        other => panic!(
            "expected InvalidOption naming {}: {other:?}",
            path.display()
        ),
    }
}

#[test]
fn tls_files_that_do_not_exist_are_named() {
    let _wd = util::watchdog("tls_files_that_do_not_exist_are_named", 30);
    let pki = TestPki::generate("bad-paths");
    let missing = pki.dir.join("no-such-file.pem");
    let cx = Context::new(ContextOptions::default()).unwrap();

    let listen = |tls: ServerTls| {
        let mut options = ListenOptions::new(0);
        options.tls = Some(tls);
        cx.listen(options, Callbacks::new())
    };
    assert_names(listen(ServerTls::new(&missing, &pki.server_key)), &missing);
    assert_names(listen(ServerTls::new(&pki.server_cert, &missing)), &missing);
    assert_names(
        listen(ServerTls {
            ca_file: Some(missing.clone()),
            ..ServerTls::new(&pki.server_cert, &pki.server_key)
        }),
        &missing,
    );
    // mTLS without a CA to check client certificates against.
    let r = listen(ServerTls {
        require_client_cert: true,
        ..ServerTls::new(&pki.server_cert, &pki.server_key)
    });
    assert!(matches!(r, Err(Error::InvalidOption(_))), "{r:?}");

    let connect = |tls: ClientTls| {
        let mut options = ConnectOptions::new("wss://localhost:1/");
        options.tls = tls;
        cx.connect(options, Callbacks::new())
    };
    assert_names(
        connect(ClientTls {
            ca_file: Some(missing.clone()),
            ..ClientTls::default()
        }),
        &missing,
    );
    assert_names(
        connect(ClientTls {
            cert_file: Some(missing.clone()),
            key_file: Some(pki.client_key.clone()),
            ..ClientTls::default()
        }),
        &missing,
    );
    assert_names(
        connect(ClientTls {
            cert_file: Some(pki.client_cert.clone()),
            key_file: Some(missing.clone()),
            ..ClientTls::default()
        }),
        &missing,
    );
    // A certificate without its key.
    let r = connect(ClientTls {
        cert_file: Some(pki.client_cert.clone()),
        ..ClientTls::default()
    });
    assert!(matches!(r, Err(Error::InvalidOption(_))), "{r:?}");
}
