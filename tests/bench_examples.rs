//! examples/latency and examples/throughput against examples/echo_server:
//! every echo checked, results as JSON; and against tungstenite servers
//! that corrupt or drop echoes, which they must catch (non-zero exit).
//!
//! The example binaries are the ones `cargo test` (or `cargo build
//! --examples`) builds beside this test; this test builds nothing.

mod util;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use tungstenite::Message as WsMessage;

/// target/<profile>/examples/NAME.
fn example_path(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: build the examples first (cargo test, or cargo build --examples)",
        path.display()
    );
    path
}

/// examples/echo_server on a free port; SIGTERM by PID on drop.
struct EchoServer {
    child: Child,
    url: String,
}

impl EchoServer {
    fn start() -> EchoServer {
        let mut child = Command::new(example_path("echo_server"))
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start examples/echo_server");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("first line");
        let url = first
            .trim()
            .strip_prefix("listening on ")
            .filter(|u| u.starts_with("ws://127.0.0.1:") && u.ends_with('/'))
            .unwrap_or_else(|| panic!("first line {first:?}"))
            .to_string();
        EchoServer { child, url }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the child this test started, by its PID
        // (not yet waited for, so the PID is still its own).
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// Runs example `name` with `args`, waiting for it to exit.
fn run(name: &str, args: &[&str]) -> Output {
    Command::new(example_path(name))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run examples/{name}: {e}"))
}

/// The value of `"key":` in a one-line JSON object of numbers and plain
/// strings (what the examples print), quotes removed.
fn field<'a>(json: &'a str, key: &str) -> &'a str {
    let pat = format!("\"{key}\":");
    let start = json
        .find(&pat)
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + pat.len();
    let rest = &json[start..];
    if let Some(s) = rest.strip_prefix('"') {
        &s[..s.find('"').expect("closing quote")]
    } else {
        &rest[..rest.find([',', '}']).expect("end of value")]
    }
}

fn number(json: &str, key: &str) -> f64 {
    field(json, key)
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number in {json}"))
}

/// The one JSON line of `out`, with its stderr for failure messages.
fn json_line(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout {stdout:?}, stderr {stderr:?}");
    assert!(lines[0].starts_with('{') && lines[0].ends_with('}'));
    lines[0].to_string()
}

#[test]
fn latency_against_the_echo_server() {
    let _wd = util::watchdog("latency example", 90);
    let server = EchoServer::start();
    let out = run(
        "latency",
        &[
            &server.url,
            "--count",
            "200",
            "--warmup",
            "20",
            "--json",
            "--timeout",
            "60",
        ],
    );
    let json = json_line(&out);
    assert!(out.status.success(), "{json} {:?}", out.status);
    assert_eq!(field(&json, "status"), "ok", "{json}");
    assert_eq!(field(&json, "mode"), "rtt");
    assert_eq!(field(&json, "url"), server.url);
    assert_eq!(number(&json, "count"), 200.0, "{json}");
    assert_eq!(number(&json, "mismatches"), 0.0, "{json}");
    assert_eq!(number(&json, "lost"), 0.0, "{json}");
    assert!(number(&json, "msgs_per_s") > 0.0, "{json}");
    let (p50, p99, max) = (
        number(&json, "p50_us"),
        number(&json, "p99_us"),
        number(&json, "max_us"),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{json}");
}

#[test]
fn latency_with_several_connections_and_text() {
    let _wd = util::watchdog("latency example, 3 connections", 90);
    let server = EchoServer::start();
    let out = run(
        "latency",
        &[
            &server.url,
            "--count",
            "150",
            "--warmup",
            "15",
            "--connections",
            "3",
            "--text",
            "--size",
            "40",
            "--timeout",
            "60",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {:?}", out.status);
    let result = stdout
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line in {stdout}"));
    for kv in [
        "mode=rtt",
        "kind=text",
        "size=40",
        "conns=3",
        "n=150",
        "mismatches=0",
        "lost=0",
    ] {
        assert!(result.split(' ').any(|f| f == kv), "{kv} in {result}");
    }
    assert!(result.ends_with(" status=ok"), "{result}");
}

#[test]
fn throughput_against_the_echo_server() {
    let _wd = util::watchdog("throughput example", 90);
    let server = EchoServer::start();
    let out = run(
        "throughput",
        &[
            &server.url,
            "--connections",
            "4",
            "--window",
            "8",
            "--secs",
            "1",
            "--warmup-secs",
            "0",
            "--json",
        ],
    );
    let json = json_line(&out);
    assert!(out.status.success(), "{json} {:?}", out.status);
    assert_eq!(field(&json, "status"), "ok", "{json}");
    assert_eq!(field(&json, "mode"), "tp");
    assert_eq!(number(&json, "connections"), 4.0);
    assert_eq!(number(&json, "window"), 8.0);
    assert_eq!(number(&json, "mismatches"), 0.0, "{json}");
    assert_eq!(number(&json, "lost"), 0.0, "{json}");
    assert_eq!(number(&json, "conn_errors"), 0.0, "{json}");
    let (count, echoed) = (number(&json, "count"), number(&json, "echoed"));
    assert!(count > 0.0 && count <= echoed, "{json}");
    assert!(number(&json, "msgs_per_s") > 0.0, "{json}");
    // 64-byte payloads: MB/s is msg/s x 64 / 10^6 (both rounded).
    let mb = number(&json, "mb_per_s");
    let expected = number(&json, "msgs_per_s") * 64.0 / 1e6;
    assert!((mb - expected).abs() < 0.02, "{json}");
}

/// What the bad echo server does to the messages it gets.
#[derive(Clone, Copy)]
enum Bad {
    /// Echoes each with its last byte flipped.
    Flip,
    /// Echoes each but swallows every `n`th.
    DropEvery(usize),
}

/// A tungstenite echo server for one connection that misbehaves as `bad`
/// says; returns its URL.
fn bad_echo_server(bad: Bad) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let Ok(mut ws) = tungstenite::accept(stream) else {
            return;
        };
        let mut n = 0;
        loop {
            let msg = match ws.read() {
                Ok(m @ (WsMessage::Text(_) | WsMessage::Binary(_))) => m,
                Ok(_) => continue, // close: tungstenite answers it
                Err(_) => return,
            };
            n += 1;
            let reply = match bad {
                Bad::Flip => {
                    let mut data = msg.into_data().to_vec();
                    if let Some(last) = data.last_mut() {
                        *last ^= 0x01;
                    }
                    WsMessage::binary(data)
                }
                Bad::DropEvery(k) if n % k == 0 => continue,
                Bad::DropEvery(_) => msg,
            };
            if ws.send(reply).is_err() {
                return;
            }
        }
    });
    util::url(port)
}

#[test]
fn latency_catches_corrupted_echoes() {
    let _wd = util::watchdog("latency vs a corrupting server", 90);
    let url = bad_echo_server(Bad::Flip);
    let out = run(
        "latency",
        &[
            &url,
            "--count",
            "50",
            "--warmup",
            "5",
            "--json",
            "--timeout",
            "60",
        ],
    );
    let json = json_line(&out);
    assert!(!out.status.success(), "exited 0 with {json}");
    assert_eq!(field(&json, "status"), "fail", "{json}");
    // Every echo arrived, and every one differed.
    assert_eq!(number(&json, "mismatches"), 55.0, "{json}");
    assert_eq!(number(&json, "lost"), 0.0, "{json}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("differs: byte 63"), "{stderr}");
}

#[test]
fn latency_counts_a_swallowed_echo_as_lost() {
    let _wd = util::watchdog("latency vs a dropping server", 90);
    let url = bad_echo_server(Bad::DropEvery(10));
    let out = run(
        "latency",
        &[
            &url,
            "--count",
            "50",
            "--warmup",
            "0",
            "--json",
            "--timeout",
            "2",
        ],
    );
    let json = json_line(&out);
    assert!(!out.status.success(), "exited 0 with {json}");
    assert_eq!(field(&json, "status"), "fail", "{json}");
    // The 10th message never comes back: the run waits for it until the
    // timeout, then counts it lost.
    assert_eq!(number(&json, "count"), 9.0, "{json}");
    assert_eq!(number(&json, "lost"), 1.0, "{json}");
    assert_eq!(number(&json, "mismatches"), 0.0, "{json}");
    assert!(field(&json, "errors").contains("timed out"), "{json}");
}

#[test]
fn throughput_catches_corrupted_echoes() {
    let _wd = util::watchdog("throughput vs a corrupting server", 90);
    let url = bad_echo_server(Bad::Flip);
    let out = run(
        "throughput",
        &[
            &url,
            "--window",
            "4",
            "--secs",
            "0.3",
            "--warmup-secs",
            "0",
            "--json",
        ],
    );
    let json = json_line(&out);
    assert!(!out.status.success(), "exited 0 with {json}");
    assert_eq!(field(&json, "status"), "fail", "{json}");
    assert!(number(&json, "mismatches") > 0.0, "{json}");
    assert_eq!(
        number(&json, "mismatches"),
        number(&json, "echoed"),
        "{json}"
    );
}

#[test]
fn bad_arguments_are_usage_errors() {
    let _wd = util::watchdog("bench example arguments", 30);
    for (name, args) in [
        ("latency", &[][..]),
        ("latency", &["http://127.0.0.1:1/"][..]),
        ("latency", &["ws://127.0.0.1:1/", "--count", "0"][..]),
        ("latency", &["ws://127.0.0.1:1/", "--size", "big"][..]),
        ("latency", &["ws://127.0.0.1:1/", "--timeout", "-1"][..]),
        ("latency", &["ws://127.0.0.1:1/", "--warmup"][..]),
        ("throughput", &["ws://127.0.0.1:1/", "--window", "0"][..]),
        ("throughput", &["ws://127.0.0.1:1/", "--secs", "nan"][..]),
        ("throughput", &["ws://127.0.0.1:1/", "--frobnicate"][..]),
    ] {
        let out = run(name, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name} {args:?}: {stderr}");
        assert!(stderr.contains("usage:"), "{name} {args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name} {args:?}: {stderr}");
    }
}
