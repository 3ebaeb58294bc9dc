//! The C example service (c/embed/embed_service.c with the Rust protocols
//! of src/bin/lws-c-embed-service.rs): a C program that owns its lws
//! context and runs lws's own poll loop serves its C protocol and both Rust
//! protocols side by side; a panic in a Rust callback does not take it down.

mod util;

use std::io::Read;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Error as WsError, Message, WebSocket};

/// The C service on an ephemeral port; stderr is captured.
fn start() -> (Child, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lws-c-embed-service"))
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the C embed service");
    let port = util::listening_port(&mut child, "ws").unwrap_or_else(|e| panic!("{e}"));
    (child, port)
}

/// SIGTERM, then its exit status must be 0 (lws_context_destroy ran with
/// the Rust protocols in the list); returns what it wrote to stderr.
fn stop(mut child: Child) -> String {
    // SAFETY: kill(2) on the PID of the child we started and still own.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "exit status {status:?}; stderr:\n{stderr}"
    );
    stderr
}

/// A client asking for `protocol`; checks the service agreed to it.
fn client(port: u16, protocol: &str) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut request = util::url(port).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    let (ws, response) = tungstenite::client(request, stream).expect("handshake");
    let agreed = response
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok());
    assert_eq!(agreed, Some(protocol), "the subprotocol the service chose");
    ws
}

fn echo(ws: &mut WebSocket<TcpStream>, message: Message) {
    ws.send(message.clone()).unwrap();
    assert_eq!(ws.read().unwrap(), message);
}

/// Message i of the mixed-size run: text or binary, 0 B to 256 KiB.
fn mixed(i: usize) -> Message {
    const SIZES: [usize; 10] = [0, 1, 125, 126, 127, 4095, 4096, 65535, 65536, 256 << 10];
    let size = SIZES[i % SIZES.len()] + (i * 7) % 13;
    if i.is_multiple_of(3) {
        Message::text("ü".repeat(size / 2))
    } else {
        Message::binary(util::payload(i, size))
    }
}

#[test]
fn serves_its_c_protocol_and_both_rust_protocols() {
    let _wd = util::watchdog("serves_its_c_protocol_and_both_rust_protocols", 120);
    let (child, port) = start();

    // The C protocol, for comparison.
    let mut c = client(port, "c-echo");
    for i in 0..20 {
        echo(&mut c, mixed(i));
    }

    // The safe API: 1,000 messages of mixed sizes, up to 8 in flight.
    let mut rust = client(port, "rust-echo");
    let total = 1000;
    let mut sent = 0;
    for received in 0..total {
        while sent < total && sent < received + 8 {
            rust.write(mixed(sent)).unwrap();
            sent += 1;
        }
        rust.flush().unwrap();
        assert_eq!(rust.read().unwrap(), mixed(received), "echo #{received}");
    }

    // The low-level layer.
    let mut raw = client(port, "rust-raw-echo");
    for i in 0..50 {
        echo(&mut raw, mixed(i));
    }

    // A close with code and reason, from the Rust side.
    rust.send(Message::text("close:4001:done here")).unwrap();
    match rust.read() {
        Ok(Message::Close(Some(frame))) => {
            assert_eq!(frame.code, CloseCode::from(4001));
            assert_eq!(frame.reason.as_str(), "done here");
        }
        other => panic!("expected the close frame, got {other:?}"),
    }
    match rust.read() {
        Err(WsError::ConnectionClosed) => {}
        Err(WsError::Io(e)) if util::raw_ws::is_reset(&e) => {}
        Ok(m) => panic!("after close: {m:?}"),
        Err(e) => panic!("after close: {e}"),
    }
    // A client's close is answered with its code.
    raw.close(Some(tungstenite::protocol::CloseFrame {
        code: CloseCode::from(4002),
        reason: "bye".into(),
    }))
    .unwrap();
    match raw.read() {
        Ok(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::from(4002)),
        other => panic!("expected the echoed close, got {other:?}"),
    }

    // The C protocol still serves after all that.
    echo(&mut c, Message::text("still here"));
    drop(c);
    stop(child);
}

#[test]
fn a_panicking_rust_callback_does_not_take_the_c_service_down() {
    let _wd = util::watchdog(
        "a_panicking_rust_callback_does_not_take_the_c_service_down",
        60,
    );
    let (child, port) = start();
    let mut c = client(port, "c-echo");
    let mut rust = client(port, "rust-echo");
    echo(&mut rust, Message::text("before"));
    // on_message panics: caught on the Rust side, the connection goes on.
    rust.send(Message::text("panic")).unwrap();
    echo(&mut rust, Message::text("after"));

    // The low-level layer closes the connection whose callback panicked.
    let mut raw = client(port, "rust-raw-echo");
    echo(&mut raw, Message::text("before"));
    raw.send(Message::text("panic")).unwrap();
    match raw.read() {
        Ok(Message::Close(Some(frame))) => {
            assert_eq!(frame.code, CloseCode::Error, "1011 after a panic");
        }
        other => panic!("after a raw callback panicked: {other:?}"),
    }

    // Everything else lives on: both connections, and new ones.
    echo(&mut rust, Message::binary(vec![7; 70_000]));
    echo(&mut c, Message::text("c after the panics"));
    let mut again = client(port, "rust-raw-echo");
    echo(&mut again, Message::text("new connection"));
    drop((c, rust, again));
    let stderr = stop(child);
    // The panics did happen (Rust's panic hook reports them on stderr).
    assert!(
        stderr.contains("asked to panic (the C service must live on)"),
        "stderr: {stderr}"
    );
    assert!(
        stderr.contains("asked to panic (raw layer)"),
        "stderr: {stderr}"
    );
}
