//! The plain-C reference echo server (c/echo_server.c, built by build.rs
//! against the same lws) echoes byte for byte, in order, pipelined, in
//! both write modes, and exits cleanly on SIGTERM; the C latency client
//! (c/latency_client.c) checks every echo. The benchmarks' baseline must
//! be correct, or its figures mean nothing.

mod util;

use std::process::{Child, Command, Stdio};
use tungstenite::Message;

fn start(args: &[&str]) -> (Child, u16) {
    let mut child = Command::new(env!("LWS_C_ECHO_SERVER"))
        .args(["--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the C echo server");
    let port = util::listening_port(&mut child, "ws").unwrap_or_else(|e| panic!("{e}"));
    (child, port)
}

fn echoes_everything(args: &[&str]) {
    let (mut child, port) = start(args);
    let mut ws = util::blocking_client(port).expect("connect");
    for (i, size) in [0, 1, 125, 126, 65535, 65536, 1 << 20]
        .into_iter()
        .enumerate()
    {
        let data = util::payload(i, size);
        ws.send(Message::binary(data.clone())).unwrap();
        assert_eq!(ws.read().unwrap(), Message::binary(data), "binary {size}");
        let text = "é".repeat(size / 2);
        ws.send(Message::text(text.clone())).unwrap();
        assert_eq!(ws.read().unwrap(), Message::text(text), "text {size}");
    }
    // Pipelined: all 200 sent before any echo is read, back in order.
    for i in 0..200 {
        ws.write(Message::binary(util::payload(i, 1 + i * 13)))
            .unwrap();
    }
    ws.flush().unwrap();
    for i in 0..200 {
        let echo = ws.read().unwrap();
        assert_eq!(echo, Message::binary(util::payload(i, 1 + i * 13)), "#{i}");
    }
    // SAFETY: kill(2) on the PID of the child we started and still own.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    assert!(child.wait().unwrap().success(), "exit status after SIGTERM");
}

#[test]
fn the_c_reference_echoes_one_write_per_writeable() {
    let _wd = util::watchdog("C reference echo", 60);
    echoes_everything(&[]);
}

#[test]
fn the_c_reference_echoes_batched_writes() {
    let _wd = util::watchdog("C reference echo, --batch", 60);
    echoes_everything(&["--batch"]);
}

#[test]
fn the_c_latency_client_checks_every_echo() {
    let _wd = util::watchdog("C latency client", 60);
    let (mut server, port) = start(&[]);
    for size in ["1", "64", "70000"] {
        let out = Command::new(env!("LWS_C_LATENCY"))
            .args(["--port", &port.to_string(), "--size", size])
            .args(["--count", "200", "--warmup", "20"])
            .output()
            .expect("run the C latency client");
        let line = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "size {size}: {line}");
        assert!(
            line.starts_with("RESULT name=c-lws-client mode=rtt"),
            "{line}"
        );
        assert!(
            line.contains(" n=200 ") && line.contains(" mismatches=0 "),
            "{line}"
        );
        assert!(line.trim_end().ends_with("status=ok"), "{line}");
    }
    // Nothing listens on a port we just closed: the client must fail.
    // SAFETY: kill(2) on the PID of the child we started and still own.
    assert_eq!(unsafe { libc::kill(server.id() as i32, libc::SIGTERM) }, 0);
    assert!(server.wait().unwrap().success());
    let out = Command::new(env!("LWS_C_LATENCY"))
        .args(["--port", &port.to_string(), "--count", "10"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "no server, yet: {:?}", out);
}
