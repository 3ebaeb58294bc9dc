//! Scale-out behind nginx with a Redis backplane (docs/SCALING.md): real
//! redis-server and nginx from Debian's packages on 127.0.0.1, three
//! examples/chat processes with `--redis`, clients through nginx. A line
//! sent on one process reaches the clients of all three, in one order;
//! nginx's X-Forwarded-For shows in the join line (read in on_handshake);
//! stopping a process closes its clients with 1001 and they reconnect
//! through nginx to the others.
//!
//! Without redis-server or nginx it fails under CI=true and is skipped,
//! loudly, otherwise (scripts/setup-scale.sh installs both).

#[path = "../examples/chat/deploy.rs"]
mod deploy;
mod util;

use std::net::TcpStream;
use std::time::Duration;
use tungstenite::Message as WsMessage;

type Ws = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

/// target/<profile>/examples/chat, built by `cargo test` beside this test.
fn chat_exe() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    dir.join("examples").join("chat")
}

/// A bound for each wait: children are not under valgrind, we are.
fn limit() -> Duration {
    Duration::from_secs(if util::under_valgrind() { 60 } else { 10 })
}

/// Connects through nginx; every read is bounded.
fn connect(url: &str) -> Ws {
    let (ws, _) = tungstenite::connect(url).expect("connect through nginx");
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(limit())).unwrap();
    }
    ws
}

fn next_text(ws: &mut Ws, who: &str) -> String {
    match ws.read() {
        Ok(WsMessage::Text(t)) => t.to_string(),
        other => panic!("{who}: expected a text line, got {other:?}"),
    }
}

/// The next line that is not a join or leave (`* ...`), skipping at most 20.
fn next_said(ws: &mut Ws, who: &str) -> String {
    for _ in 0..20 {
        let line = next_text(ws, who);
        if !line.starts_with("* ") {
            return line;
        }
    }
    panic!("{who}: only join/leave lines");
}

/// `* s2/7 from 127.0.0.1 joined` -> "s2"; panics on any other shape, so
/// a missing X-Forwarded-For fails the test.
fn joined_on(line: &str) -> String {
    let rest = line
        .strip_prefix("* ")
        .and_then(|r| r.strip_suffix(" from 127.0.0.1 joined"))
        .unwrap_or_else(|| panic!("not a join line with X-Forwarded-For: {line:?}"));
    rest.split('/').next().unwrap().to_owned()
}

/// The programs, or None when the test should skip (never under CI=true).
fn programs() -> Option<deploy::Programs> {
    match deploy::Programs::find() {
        Ok(p) => Some(p),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("{e}"),
        Err(e) => {
            eprintln!("SKIPPED scale_out: {e}");
            None
        }
    }
}

#[test]
fn three_chat_processes_behind_nginx_share_one_chat_through_redis() {
    let _wd = util::watchdog("scale out", 120);
    let Some(programs) = programs() else { return };
    let mut d = deploy::Deployment::start(&programs, &chat_exe(), 3, limit())
        .unwrap_or_else(|e| panic!("deployment: {e}"));
    let url = d.url();

    let page = deploy::http_get(d.nginx_port, "/").expect("GET / through nginx");
    assert!(page.contains("<title>lws-rs chat</title>"), "{page}");

    // One at a time, so the first join a client has not seen before is its
    // own; the earlier ones hear it too (it went through Redis to every
    // process). An earlier join may still reach a new client first: each
    // process hands Redis's lines to its clients when it gets to them.
    let mut clients: Vec<(Ws, String)> = Vec::new();
    let mut joins: Vec<String> = Vec::new();
    for i in 0..3 {
        let mut ws = connect(&url);
        let line = (0..5)
            .map(|_| next_text(&mut ws, "new client"))
            .find(|l| !joins.contains(l))
            .expect("its own join line");
        joins.push(line.clone());
        let server = joined_on(&line);
        for (other, _) in &mut clients {
            assert_eq!(
                next_text(other, "earlier client"),
                line,
                "join {i} reaches all"
            );
        }
        clients.push((ws, server));
    }
    let mut servers: Vec<&str> = clients.iter().map(|(_, s)| s.as_str()).collect();
    servers.sort();
    assert_eq!(
        servers,
        ["s1", "s2", "s3"],
        "round robin puts one client on each"
    );

    // All three talk at once: everyone gets all three lines, in one order.
    for (i, (ws, _)) in clients.iter_mut().enumerate() {
        ws.send(WsMessage::text(format!("hello {i}"))).unwrap();
    }
    let mut seen = Vec::new();
    for (ws, server) in &mut clients {
        let lines: Vec<String> = (0..3).map(|_| next_said(ws, server)).collect();
        seen.push(lines);
    }
    for lines in &seen {
        assert_eq!(lines, &seen[0], "every process relays in Redis's order");
    }
    for (i, (_, server)) in clients.iter().enumerate() {
        let want = format!(": hello {i}");
        assert!(
            seen[0]
                .iter()
                .any(|l| l.ends_with(&want) && l.starts_with(&format!("{server}/"))),
            "{want} from {server} in {:?}",
            seen[0]
        );
    }

    // Stop the first client's process: close 1001, then it reconnects
    // through nginx and lands on one of the two left.
    let (mut gone, stopped) = clients.remove(0);
    let stopping = d.terminate_chat(&stopped).expect("a running chat");
    let code = loop {
        match gone.read() {
            Ok(WsMessage::Close(f)) => break f.map(|f| u16::from(f.code)),
            Ok(_) => continue, // lines queued before the close
            Err(e) => panic!("no close frame from {stopped}: {e}"),
        }
    };
    assert_eq!(code, Some(1001), "going away");
    let _ = gone.flush(); // tungstenite's close reply lets it exit at once
    let status = stopping.wait(limit()).expect("chat stops");
    assert!(status.success(), "{stopped} exited with {status}");
    drop(gone);

    let mut back = None;
    for _ in 0..5 {
        // nginx may try the stopped process first; it then moves on to the
        // next upstream by itself (proxy_next_upstream error).
        if let Ok((ws, _)) = tungstenite::connect(&url) {
            back = Some(ws);
            break;
        }
    }
    let mut back = back.expect("reconnect through nginx");
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = back.get_ref() {
        s.set_read_timeout(Some(limit())).unwrap();
    }
    // A leave line of the stopped process's clients may still be on its way.
    let line = (0..5)
        .map(|_| next_text(&mut back, "reconnected"))
        .find(|l| !l.ends_with(" left"))
        .expect("a join line");
    let now_on = joined_on(&line);
    assert_ne!(now_on, stopped, "reconnected to a live process");
    back.send(WsMessage::text("back again")).unwrap();
    let said = next_said(&mut back, "reconnected");
    assert!(said.starts_with(&format!("{now_on}/")) && said.ends_with(": back again"));
    for (ws, server) in &mut clients {
        assert_eq!(
            next_said(ws, server),
            said,
            "{server} hears the reconnected client"
        );
    }
}

/// examples/scale_out's bench, tiny: every line reaches every client in
/// all three set-ups (it exits 1 on a lost line) and it prints one result
/// line for each. The figures themselves are for docs/SCALING.md.
#[test]
fn the_scale_out_bench_runs_all_three_set_ups() {
    let _wd = util::watchdog("scale out bench", 120);
    if programs().is_none() {
        return;
    }
    let exe = chat_exe().with_file_name("scale_out");
    let out = std::process::Command::new(&exe)
        .args(["--bench", "--clients", "4", "--messages", "50"])
        .output()
        .unwrap_or_else(|e| panic!("run {exe:?} (cargo test builds it): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let results = stdout
        .lines()
        .filter(|l| l.contains(" deliveries/s "))
        .count();
    assert_eq!(results, 3, "{stdout}");
}
