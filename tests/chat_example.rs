//! examples/chat serves its page over plain HTTP at `/` and relays every
//! message sent on `/ws` to every client; SIGTERM closes them with 1001 and
//! the process exits cleanly.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use tungstenite::Message as WsMessage;

/// target/<profile>/examples/chat, built by `cargo test` beside this test.
fn example_path() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    dir.join("examples").join("chat")
}

fn next_text(
    ws: &mut tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
) -> String {
    match ws.read().expect("message") {
        WsMessage::Text(t) => t.to_string(),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn the_chat_example_serves_its_page_and_relays_messages() {
    let _wd = util::watchdog("chat example", 60);
    let mut child = Command::new(example_path())
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start examples/chat (cargo test builds it)");
    let port = util::listening_port(&mut child, "http").unwrap_or_else(|e| panic!("{e}"));

    let mut http = TcpStream::connect(("127.0.0.1", port)).unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut page = String::new();
    http.read_to_string(&mut page).unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("<title>lws-rs chat</title>"), "{page}");

    let url = format!("ws://127.0.0.1:{port}/ws");
    let (mut a, _) = tungstenite::connect(&url).expect("a connects");
    assert!(next_text(&mut a).ends_with("joined"));
    let (mut b, _) = tungstenite::connect(&url).expect("b connects");
    assert!(next_text(&mut b).ends_with("joined"));
    assert!(next_text(&mut a).ends_with("joined"), "a hears b join");
    a.send(WsMessage::text("hello, b")).unwrap();
    assert!(next_text(&mut b).ends_with(": hello, b"));
    assert!(
        next_text(&mut a).ends_with(": hello, b"),
        "the sender hears itself"
    );
    assert!(
        tungstenite::connect(format!("ws://127.0.0.1:{port}/elsewhere")).is_err(),
        "only /ws upgrades"
    );

    // SAFETY: kill(2) on the child this test started, by its PID.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    for (name, ws) in [("a", &mut a), ("b", &mut b)] {
        let code = loop {
            match ws.read() {
                Ok(WsMessage::Close(f)) => break f.map(|f| u16::from(f.code)),
                Ok(_) => continue, // a "left" line may come first
                Err(e) => panic!("{name}: no close frame: {e}"),
            }
        };
        assert_eq!(code, Some(1001), "{name}");
        let _ = ws.flush(); // sends tungstenite's close reply
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "chat exited with {status}");
}
