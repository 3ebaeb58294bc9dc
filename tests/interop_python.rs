//! Interoperability with Python's `websockets` library (tests/interop/*.py,
//! run from the venv scripts/setup-interop.sh makes): its client against
//! our server and its server against our client echo text and binary
//! messages of every frame-length encoding up to 1 MiB byte-exact, carry
//! close codes and reasons both ways, and agree on permessage-deflate when
//! both offer it, which then really compresses on the wire in both
//! directions (the Python side counts the bytes on its socket).
//!
//! Without the venv the tests fail under CI=true and skip elsewhere.

mod util;

use lws::{Callbacks, CloseCode, Context, ContextOptions, Deflate, ListenOptions, Message};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::thread;

/// Payload sizes around the frame-length encodings (7-bit, 16-bit, 64-bit),
/// as in tests/interop/peer.py.
const SIZES: &[usize] = &[0, 1, 125, 126, 65535, 65536, 1 << 20];

/// peer.py's `text_payload`: compressible ASCII lines, cut to `size`.
fn text_payload(seed: usize, size: usize) -> String {
    util::compressible_text(seed, size)
}

/// peer.py's `binary_payload`: every byte value, period 256.
fn binary_payload(seed: usize, size: usize) -> Vec<u8> {
    (0..size)
        .map(|j| ((seed * 31 + j * 7) % 256) as u8)
        .collect()
}

/// peer.py's `all_messages`: each size as text, then as binary.
fn all_messages() -> Vec<Message> {
    let mut out = Vec::new();
    for (i, &size) in SIZES.iter().enumerate() {
        out.push(Message::Text(text_payload(2 * i, size)));
        out.push(Message::Binary(binary_payload(2 * i + 1, size)));
    }
    out
}

fn payload_total() -> u64 {
    all_messages()
        .iter()
        .map(|m| m.as_bytes().len() as u64)
        .sum()
}

/// A short description of a message (never its payload).
fn describe(m: &Message) -> String {
    let kind = if m.is_binary() { "binary" } else { "text" };
    format!("{kind} of {} bytes", m.as_bytes().len())
}

/// How long the Python side waits for any one step (open, a message, the
/// close handshake): our side runs 10-50 times slower under valgrind.
fn py_timeout() -> &'static str {
    if util::under_valgrind() {
        "120"
    } else {
        "10"
    }
}

/// The venv's python with `websockets` (LWS_INTEROP_PYTHON overrides the
/// path), or None when it is missing and the test may skip.
fn python(test: &str) -> Option<PathBuf> {
    let path = std::env::var_os("LWS_INTEROP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/.venv/bin/python")
        });
    let works = Command::new(&path)
        .args(["-c", "import websockets"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if works {
        Some(path)
    } else {
        util::missing_tool(
            test,
            &format!("{} cannot import websockets", path.display()),
        );
        None
    }
}

/// Starts tests/interop/`script` with `args`, stdout and stderr piped.
fn spawn_peer(python: &Path, script: &str, args: &[&str]) -> Child {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    Command::new(python)
        .arg("-B") // no __pycache__ in the source tree
        .arg(dir.join(script))
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {script}: {e}"))
}

/// What a Python peer printed (`key value` lines) and how it exited.
struct Report {
    lines: HashMap<String, String>,
    text: String,
    stderr: String,
    success: bool,
}

impl Report {
    fn parse(stdout: String, stderr: String, success: bool) -> Report {
        let lines = stdout
            .lines()
            .map(|l| {
                let (k, v) = l.split_once(' ').unwrap_or((l, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect();
        Report {
            lines,
            text: stdout,
            stderr,
            success,
        }
    }

    /// Panics with everything the peer said unless it exited 0 and
    /// reported no error.
    fn assert_ok(&self, who: &str) {
        assert!(
            self.success && !self.lines.contains_key("error") && self.get("done") == "ok",
            "{who} failed:\n{}\nstderr:\n{}",
            self.text,
            self.stderr
        );
    }

    fn get(&self, key: &str) -> &str {
        self.lines.get(key).map_or("", |v| v.as_str())
    }

    fn num(&self, key: &str) -> u64 {
        self.get(key)
            .parse()
            .unwrap_or_else(|_| panic!("no number {key:?} in the report:\n{}", self.text))
    }
}

/// Reads a child's stdout and stderr to their ends and waits for it.
fn finish(child: Child, stdout_head: String, stdout: impl Read) -> Report {
    let mut child = child;
    let mut err = child.stderr.take().expect("piped stderr");
    let err_thread = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut out = stdout_head;
    let mut stdout = stdout;
    let _ = stdout.read_to_string(&mut out);
    let status = child.wait().expect("wait for the python peer");
    let stderr = err_thread.join().unwrap_or_default();
    Report::parse(out, stderr, status.success())
}

// ---------------------------------------------------------------- python client, our server

/// What our server saw of the Python client's connection.
#[derive(Default, Debug)]
struct ServerSeen {
    deflate: Option<bool>,
    received: usize,
    failures: Vec<String>,
    close: Option<(u16, String)>,
}

/// Runs tests/interop/client.py (`mode`: echo or server-close) against an
/// lws server on this thread, until the client exits.
fn py_client_vs_our_server(python: &Path, mode: &str, deflate: bool) -> (Report, ServerSeen) {
    let cx = Context::new(ContextOptions::default()).expect("context");
    let mut options = ListenOptions::new(0);
    options.deflate = deflate.then(Deflate::default);
    let seen: Rc<RefCell<ServerSeen>> = Rc::default();
    let (s1, s2, s3) = (seen.clone(), seen.clone(), seen.clone());
    let expected = all_messages();
    let close_on_first = mode == "server-close";
    let port = cx
        .listen(
            options,
            Callbacks::new()
                .on_connect(move |conn, _| {
                    s1.borrow_mut().deflate = Some(conn.permessage_deflate());
                })
                .on_message(move |conn, msg| {
                    let mut seen = s2.borrow_mut();
                    let i = seen.received;
                    seen.received += 1;
                    if close_on_first {
                        if msg != Message::Text("close me".into()) {
                            seen.failures.push(format!("first message {msg:?}"));
                        }
                        conn.close(CloseCode(4003), "server bye");
                        return;
                    }
                    match expected.get(i) {
                        Some(e) if *e == msg => {}
                        Some(e) => seen.failures.push(format!(
                            "message #{i}: expected {}, got {} that differs",
                            describe(e),
                            describe(&msg)
                        )),
                        None => seen.failures.push(format!("extra {}", describe(&msg))),
                    }
                    if let Err(e) = conn.send(msg) {
                        seen.failures.push(format!("echo #{i}: {e}"));
                    }
                })
                .on_close(move |_, code, reason| {
                    s3.borrow_mut().close = Some((code.0, reason.to_owned()));
                }),
        )
        .expect("listen")
        .port();

    let port = port.to_string();
    let mut child = spawn_peer(
        python,
        "client.py",
        &[
            &port,
            mode,
            if deflate { "deflate" } else { "plain" },
            py_timeout(),
        ],
    );
    // The loop runs until the client process is gone, whatever it did.
    let stop = cx.handle();
    let stdout = child.stdout.take().expect("piped stdout");
    let waiter = thread::spawn(move || {
        let report = finish(child, String::new(), stdout);
        let _ = stop.stop();
        report
    });
    cx.run().expect("run");
    drop(cx);
    let report = waiter.join().expect("waiter thread");
    let seen = Rc::try_unwrap(seen)
        .map(RefCell::into_inner)
        .unwrap_or_else(|rc| std::mem::take(&mut *rc.borrow_mut()));
    (report, seen)
}

/// The echo run's common checks, either way: every message came back
/// byte-exact (the client checks), the client's close 4001 reached our
/// server and was answered with the same code.
fn check_py_client_echo(report: &Report, seen: &ServerSeen) {
    report.assert_ok("client.py");
    assert!(seen.failures.is_empty(), "server: {:?}", seen.failures);
    let n = all_messages().len();
    assert_eq!(report.num("echoed"), n as u64);
    assert_eq!(seen.received, n);
    assert_eq!(report.num("payload_bytes"), payload_total());
    assert_eq!(seen.close, Some((4001, "bye from python".to_string())));
    assert_eq!(report.get("close_sent"), "4001 bye from python");
    assert!(
        report.get("close_rcvd").starts_with("4001"),
        "our server answers the close with its code: {}",
        report.get("close_rcvd")
    );
}

#[test]
fn python_client_echoes_through_our_server() {
    let test = "python_client_echoes_through_our_server";
    let _wd = util::watchdog(test, 60);
    let Some(python) = python(test) else { return };
    let (report, seen) = py_client_vs_our_server(&python, "echo", false);
    check_py_client_echo(&report, &seen);
    assert_eq!(seen.deflate, Some(false));
    assert_eq!(report.get("extensions"), "none");
    // Uncompressed: the wire carries at least every payload byte.
    assert!(report.num("wire_out") > payload_total());
    assert!(report.num("wire_in") > payload_total());
}

#[test]
fn python_client_and_our_server_agree_on_permessage_deflate() {
    let test = "python_client_and_our_server_agree_on_permessage_deflate";
    let _wd = util::watchdog(test, 60);
    let Some(python) = python(test) else { return };
    let (report, seen) = py_client_vs_our_server(&python, "echo", true);
    check_py_client_echo(&report, &seen);
    assert_eq!(seen.deflate, Some(true), "our server agreed");
    assert_eq!(report.get("extensions"), "permessage-deflate");
    assert!(
        report
            .get("response_extensions")
            .starts_with("permessage-deflate"),
        "101 response: {}",
        report.get("response_extensions")
    );
    // The payloads are repetitive: compressed both ways, each direction's
    // wire bytes are a small fraction of the payload.
    let total = payload_total();
    for key in ["wire_out", "wire_in"] {
        assert!(
            report.num(key) < total / 10,
            "{key}: {} bytes on the wire for {total} payload bytes",
            report.num(key)
        );
    }
}

#[test]
fn our_server_closes_a_python_client_with_code_and_reason() {
    let test = "our_server_closes_a_python_client_with_code_and_reason";
    let _wd = util::watchdog(test, 60);
    let Some(python) = python(test) else { return };
    let (report, seen) = py_client_vs_our_server(&python, "server-close", true);
    report.assert_ok("client.py");
    assert!(seen.failures.is_empty(), "server: {:?}", seen.failures);
    assert_eq!(seen.received, 1);
    assert_eq!(report.get("close_rcvd"), "4003 server bye");
    // websockets answers with the code it got; we closed first, so our
    // on_close reports our own close.
    assert!(report.get("close_sent").starts_with("4003"));
    assert_eq!(seen.close, Some((4003, "server bye".to_string())));
}

// ---------------------------------------------------------------- our client, python server

/// What our client saw.
#[derive(Default, Debug)]
struct ClientSeen {
    deflate: Option<bool>,
    echoes: usize,
    failures: Vec<String>,
    close: Option<(u16, String)>,
}

/// Runs tests/interop/server.py (`mode`: echo or server-close) and our
/// client against it: in echo mode it sends every message at once, checks
/// the echoes in order and closes with 4002 "done"; in server-close mode
/// it sends one message and waits for the server's close.
fn our_client_vs_py_server(python: &Path, mode: &str, deflate: bool) -> (Report, ClientSeen) {
    let mut child = spawn_peer(
        python,
        "server.py",
        &[
            mode,
            if deflate { "deflate" } else { "plain" },
            py_timeout(),
        ],
    );
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut first = String::new();
    let _ = stdout.read_line(&mut first);
    let Some(port) = first
        .trim()
        .strip_prefix("port ")
        .and_then(|p| p.parse::<u16>().ok())
    else {
        let report = finish(child, first, stdout);
        panic!(
            "server.py printed no port:\n{}\nstderr:\n{}",
            report.text, report.stderr
        );
    };

    let cx = Context::new(ContextOptions::default()).expect("context");
    let seen: Rc<RefCell<ClientSeen>> = Rc::default();
    let (s1, s2, s3, s4) = (seen.clone(), seen.clone(), seen.clone(), seen.clone());
    let (stop1, stop2) = (cx.handle(), cx.handle());
    let expected = Rc::new(all_messages());
    let to_send = expected.clone();
    let echo = mode == "echo";
    let mut options = util::connect_options(util::url(port));
    options.deflate = deflate.then(Deflate::default);
    let _conn = cx
        .connect(
            options,
            Callbacks::new()
                .on_connect(move |conn, _| {
                    let mut seen = s1.borrow_mut();
                    seen.deflate = Some(conn.permessage_deflate());
                    let sent = if echo {
                        // All at once: the echoes must still come back in order.
                        to_send.iter().try_for_each(|m| conn.send(m.clone()))
                    } else {
                        conn.send_text("hello")
                    };
                    if let Err(e) = sent {
                        seen.failures.push(format!("send: {e}"));
                    }
                })
                .on_message(move |conn, msg| {
                    let mut seen = s2.borrow_mut();
                    let i = seen.echoes;
                    seen.echoes += 1;
                    match expected.get(i) {
                        Some(e) if echo && *e == msg => {}
                        Some(e) if echo => seen.failures.push(format!(
                            "echo #{i}: expected {}, got {} that differs",
                            describe(e),
                            describe(&msg)
                        )),
                        _ => seen.failures.push(format!("unexpected {}", describe(&msg))),
                    }
                    if seen.echoes == expected.len() {
                        conn.close(CloseCode(4002), "done");
                    }
                })
                .on_close(move |_, code, reason| {
                    s3.borrow_mut().close = Some((code.0, reason.to_owned()));
                    let _ = stop1.stop();
                })
                .on_error(move |_, e| {
                    s4.borrow_mut().failures.push(format!("on_error: {e}"));
                    let _ = stop2.stop();
                }),
        )
        .expect("connect");
    cx.run().expect("run");
    drop(cx); // closes any socket still open, so the server's handler ends
    let report = finish(child, first, stdout);
    let seen = Rc::try_unwrap(seen)
        .map(RefCell::into_inner)
        .unwrap_or_else(|rc| std::mem::take(&mut *rc.borrow_mut()));
    (report, seen)
}

/// The echo run's common checks: every echo byte-exact and in order, our
/// close 4002 "done" reached the server.
fn check_py_server_echo(report: &Report, seen: &ClientSeen) {
    report.assert_ok("server.py");
    assert!(seen.failures.is_empty(), "client: {:?}", seen.failures);
    let n = all_messages().len();
    assert_eq!(seen.echoes, n);
    assert_eq!(report.num("received"), n as u64);
    assert_eq!(report.num("payload_bytes"), payload_total());
    assert_eq!(report.get("close_rcvd"), "4002 done");
    // We closed first: on_close reports our close (websockets echoes it).
    assert_eq!(seen.close, Some((4002, "done".to_string())));
}

#[test]
fn our_client_echoes_through_a_python_server() {
    let test = "our_client_echoes_through_a_python_server";
    let _wd = util::watchdog(test, 60);
    let Some(python) = python(test) else { return };
    let (report, seen) = our_client_vs_py_server(&python, "echo", false);
    check_py_server_echo(&report, &seen);
    assert_eq!(seen.deflate, Some(false));
    assert_eq!(report.get("request_extensions"), "none", "nothing offered");
    assert_eq!(report.get("extensions"), "none");
    assert!(report.num("wire_in") > payload_total());
    assert!(report.num("wire_out") > payload_total());
}

#[test]
fn our_client_and_a_python_server_agree_on_permessage_deflate() {
    let test = "our_client_and_a_python_server_agree_on_permessage_deflate";
    let _wd = util::watchdog(test, 60);
    let Some(python) = python(test) else { return };
    let (report, seen) = our_client_vs_py_server(&python, "echo", true);
    check_py_server_echo(&report, &seen);
    assert_eq!(seen.deflate, Some(true), "our client agreed");
    assert!(
        report
            .get("request_extensions")
            .starts_with("permessage-deflate"),
        "our offer: {}",
        report.get("request_extensions")
    );
    assert_eq!(report.get("extensions"), "permessage-deflate");
    let total = payload_total();
    for key in ["wire_in", "wire_out"] {
        assert!(
            report.num(key) < total / 10,
            "{key}: {} bytes on the wire for {total} payload bytes",
            report.num(key)
        );
    }
}

#[test]
fn a_python_server_closes_our_client_with_code_and_reason() {
    let test = "a_python_server_closes_our_client_with_code_and_reason";
    let _wd = util::watchdog(test, 60);
    let Some(python) = python(test) else { return };
    let (report, seen) = our_client_vs_py_server(&python, "server-close", true);
    report.assert_ok("server.py");
    assert!(seen.failures.is_empty(), "client: {:?}", seen.failures);
    assert_eq!(report.num("received"), 1);
    assert_eq!(report.get("close_sent"), "4003 server bye");
    assert_eq!(seen.close, Some((4003, "server bye".to_string())));
    assert!(
        report.get("close_rcvd").starts_with("4003"),
        "our client answers with the server's code: {}",
        report.get("close_rcvd")
    );
}
