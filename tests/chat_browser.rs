//! examples/chat in a real browser: headless Chromium, driven over the
//! DevTools protocol, opens the chat page in two tabs; a message typed into
//! tab A's input and sent with Enter appears in tab B's message list (and
//! in A's), as the server relays it.
//!
//! Needs Debian's `chromium` (scripts/setup-interop.sh installs it;
//! LWS_CHROMIUM names another binary): without it the test fails under
//! CI=true and skips elsewhere. Chromium runs with its background
//! networking off and every host name but 127.0.0.1 unresolvable, so it
//! talks to nothing but the example.

mod util;

use serde_json::{json, Value};

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TEST: &str = "two_browser_tabs_chat_through_the_example";

/// How long any one wait (browser start, page load, a message) may take;
/// the test binary runs 10-50 times slower under valgrind.
fn wait_limit() -> Duration {
    Duration::from_secs(if util::under_valgrind() { 200 } else { 20 })
}

/// Calls `f` every 100 ms until it returns Some, or panics naming `what`
/// with the last value seen once [`wait_limit`] has passed.
fn poll<T>(what: &str, mut f: impl FnMut() -> Result<Option<T>, String>) -> T {
    let deadline = Instant::now() + wait_limit();
    let mut last = String::new();
    loop {
        match f() {
            Ok(Some(v)) => return v,
            Ok(None) => {}
            Err(e) => last = e,
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what} after {:?} (last: {last})",
            wait_limit()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child process that is ended when dropped (test failures included):
/// SIGTERM, then SIGKILL to its process group if it has not exited within
/// the wait limit.
struct Reaper {
    child: Child,
    name: &'static str,
    /// Removed once the child is gone (Chromium's profile).
    dir: Option<PathBuf>,
}

impl Reaper {
    fn pid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    /// Waits up to the wait limit for the child to exit by itself.
    fn wait_exit(&mut self) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + wait_limit();
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => return None,
            }
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on the child this test started, by its PID.
            unsafe { libc::kill(self.pid(), libc::SIGTERM) };
            if self.wait_exit().is_none() {
                eprintln!("{}: still running after SIGTERM; SIGKILL", self.name);
                // SAFETY: the child was started as the leader of its own
                // process group (process_group(0)): the group is its and its
                // helpers' only.
                unsafe { libc::kill(-self.pid(), libc::SIGKILL) };
                let _ = self.child.wait();
            }
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// target/<profile>/examples/chat, built by `cargo test` beside this test.
fn example_path() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    dir.join("examples").join("chat")
}

/// Starts examples/chat on a free port; returns it and the port.
fn start_chat() -> (Reaper, u16) {
    let mut child = Command::new(example_path())
        .args(["--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("start examples/chat (cargo test builds it)");
    let port = util::listening_port(&mut child, "http");
    // Made before the port is checked, so a bad start still ends the child.
    let reaper = Reaper {
        child,
        name: "chat example",
        dir: None,
    };
    let port = port.unwrap_or_else(|e| panic!("chat example: {e}"));
    (reaper, port)
}

/// LWS_CHROMIUM, or `chromium` / `chromium-browser` on PATH.
fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LWS_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
        .find(|p| p.is_file())
}

/// Starts headless Chromium with a fresh profile and the DevTools protocol
/// on a port it picks; returns it and the browser's DevTools URL.
fn start_chromium(binary: &Path) -> (Reaper, String) {
    let dir = std::env::temp_dir().join(format!("lws-chat-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("profile dir");
    let log = dir.join("stderr.log");
    let child = Command::new(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--remote-debugging-port=0",
            "--remote-debugging-address=127.0.0.1",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            // Nothing but the example on 127.0.0.1: no update checks, sync,
            // metrics or safe-browsing lookups, no proxy, no DNS.
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-domain-reliability",
            "--disable-client-side-phishing-detection",
            "--no-pings",
            "--no-proxy-server",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        ])
        .arg(format!("--user-data-dir={}", dir.display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // Mostly dbus and GPU complaints of a headless box; shown only if
        // it dies before it is up.
        .stderr(std::fs::File::create(&log).expect("chromium log file"))
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
    let mut reaper = Reaper {
        child,
        name: "chromium",
        dir: Some(dir.clone()),
    };
    // Chromium writes the port it picked and the browser target's path.
    let file = dir.join("DevToolsActivePort");
    let url = poll("chromium's DevToolsActivePort file", || {
        if let Ok(Some(status)) = reaper.child.try_wait() {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            panic!(
                "chromium exited with {status}; its stderr ends:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
        let mut lines = text.lines();
        match (lines.next(), lines.next()) {
            (Some(port), Some(path)) if !path.is_empty() => {
                Ok(Some(format!("ws://127.0.0.1:{}{path}", port.trim())))
            }
            _ => Ok(None), // not all written yet
        }
    });
    (reaper, url)
}

/// A DevTools protocol connection to the browser target (tungstenite, so
/// the browser is driven by an implementation independent of ours).
struct Cdp {
    ws: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Cdp {
    fn connect(url: &str) -> Cdp {
        let (ws, _) = tungstenite::connect(url).unwrap_or_else(|e| panic!("DevTools {url}: {e}"));
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
            // A browser that stops answering fails the test, not hangs it.
            s.set_read_timeout(Some(wait_limit()))
                .expect("read timeout");
        }
        Cdp { ws, next_id: 1 }
    }

    /// Calls `method` (in a tab's session, if given) and returns its
    /// result; events that arrive meanwhile are dropped.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut request = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            request["sessionId"] = json!(s);
        }
        self.ws
            .send(tungstenite::Message::text(request.to_string()))
            .unwrap_or_else(|e| panic!("send {method}: {e}"));
        loop {
            let msg = self
                .ws
                .read()
                .unwrap_or_else(|e| panic!("reply to {method}: {e}"));
            let tungstenite::Message::Text(text) = msg else {
                continue;
            };
            let reply: Value = serde_json::from_str(text.as_str())
                .unwrap_or_else(|e| panic!("DevTools sent bad JSON ({e}): {text}"));
            if reply["id"] != json!(id) {
                continue; // an event, or another call's reply
            }
            if let Some(err) = reply.get("error") {
                panic!("{method} failed: {err}");
            }
            return reply["result"].clone();
        }
    }

    /// Opens a tab at `url`; returns its session id.
    fn open_tab(&mut self, url: &str) -> String {
        let target = self.call(None, "Target.createTarget", json!({ "url": url }));
        let target_id = target["targetId"].as_str().expect("targetId").to_owned();
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
        );
        attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_owned()
    }

    /// Evaluates `expression` in the tab and returns its value (JSON), or
    /// the exception it threw as Err.
    fn eval(&mut self, session: &str, expression: &str) -> Result<Value, String> {
        let r = self.call(
            Some(session),
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        );
        match r.get("exceptionDetails") {
            Some(e) => Err(format!("{expression}: {e}")),
            None => Ok(r["result"]["value"].clone()),
        }
    }

    /// The tab's connection status line ("" before the page is there).
    fn status(&mut self, session: &str) -> Result<String, String> {
        let v = self.eval(
            session,
            "document.getElementById('status')?.textContent ?? ''",
        )?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// The lines of the tab's message list.
    fn lines(&mut self, session: &str) -> Result<Vec<String>, String> {
        let v = self.eval(
            session,
            "Array.from(document.querySelectorAll('#log p'), p => p.textContent)",
        )?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// A line `ID: text` as the chat server relays a message.
fn relayed(line: &str, text: &str) -> bool {
    line.split_once(": ")
        .is_some_and(|(id, t)| t == text && id.parse::<u64>().is_ok())
}

#[test]
fn two_browser_tabs_chat_through_the_example() {
    let _wd = util::watchdog(TEST, 120);
    let Some(chromium) = find_chromium() else {
        util::missing_tool(TEST, "no chromium on PATH (LWS_CHROMIUM unset)");
        return;
    };
    let (mut chat, port) = start_chat();
    let (mut browser, devtools) = start_chromium(&chromium);
    let mut cdp = Cdp::connect(&devtools);
    let page = format!("http://127.0.0.1:{port}/");

    // Each tab is open and connected before the next, so A hears B join.
    let a = cdp.open_tab(&page);
    poll("tab A to connect", || {
        Ok((cdp.status(&a)? == "connected").then_some(()))
    });
    let b = cdp.open_tab(&page);
    poll("tab B to connect", || {
        Ok((cdp.status(&b)? == "connected").then_some(()))
    });
    poll("tab A to hear tab B join", || {
        Ok((cdp.lines(&a)?.len() >= 2).then_some(()))
    });
    assert!(
        cdp.lines(&a)
            .unwrap()
            .iter()
            .all(|l| l.ends_with(" joined")),
        "tab A before any message: {:?}",
        cdp.lines(&a)
    );

    // Type into A's input as a user would (text input events, then Enter).
    let text = "hello from tab A, ünïcødé ✓";
    cdp.eval(&a, "document.getElementById('text').focus()")
        .expect("focus the input");
    cdp.call(Some(&a), "Input.insertText", json!({ "text": text }));
    assert_eq!(
        cdp.eval(&a, "document.getElementById('text').value"),
        Ok(json!(text)),
        "the typed text is in tab A's input"
    );
    for kind in ["keyDown", "keyUp"] {
        cdp.call(
            Some(&a),
            "Input.dispatchKeyEvent",
            json!({ "type": kind, "key": "Enter", "code": "Enter",
                    "windowsVirtualKeyCode": 13, "text": "\r" }),
        );
    }

    let in_b = poll("the message to appear in tab B", || {
        let lines = cdp.lines(&b)?;
        match lines.iter().find(|l| relayed(l, text)) {
            Some(l) => Ok(Some(l.clone())),
            None => Err(format!("tab B shows {lines:?}")),
        }
    });
    poll("tab A to show its own message", || {
        Ok(cdp.lines(&a)?.iter().any(|l| l == &in_b).then_some(()))
    });
    assert_eq!(
        cdp.eval(&a, "document.getElementById('text').value"),
        Ok(json!("")),
        "sending cleared tab A's input"
    );
    let b_lines = cdp.lines(&b).unwrap();
    assert_eq!(
        b_lines.iter().filter(|l| relayed(l, text)).count(),
        1,
        "tab B shows the message once: {b_lines:?}"
    );

    // The browser closes; chat then ends on SIGTERM with status 0.
    // Its reply may not come: the browser can hang up first.
    let _ = cdp.ws.send(tungstenite::Message::text(
        json!({ "id": 0, "method": "Browser.close" }).to_string(),
    ));
    assert!(browser.wait_exit().is_some(), "chromium did not exit");
    // SAFETY: kill(2) on the child this test started, by its PID.
    unsafe { libc::kill(chat.pid(), libc::SIGTERM) };
    let status = chat.wait_exit().expect("chat exits on SIGTERM");
    assert!(status.success(), "chat exited with {status}");
}
