//! Scale-out demo and bench: Redis, three examples/chat processes with the
//! Redis backplane and nginx in front of them, all on 127.0.0.1 from
//! Debian's packages (scripts/setup-scale.sh installs them); see
//! docs/SCALING.md.
//!
//! Run me with: `cargo build --release --example chat && cargo run --release --example scale_out -- [--bench] [--clients N] [--messages M]`
//! (or `scripts/scale-out.sh`, which does both).
//!
//! Without `--bench` it prints the chat's URL through nginx and keeps the
//! deployment up until SIGINT / SIGTERM. With `--bench` it measures chat
//! fan-out three ways, one after the other: through nginx to the three
//! processes, straight to the same three processes (clients spread over
//! them), and one process without Redis. Each run has N clients (default
//! 30) of which one sends: first 300 lines one at a time (latency from
//! send to each client's receipt, p50/p99), then M lines (default 3000)
//! with up to 32 in flight (deliveries per second over all clients).
//! Bounded: every read times out after 10 s, the whole run after 300 s.

mod common;
#[path = "chat/deploy.rs"]
mod deploy;

use hdrhistogram::Histogram;
use std::net::TcpStream;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tungstenite::Message as WsMessage;

type Ws = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

const USAGE: &str = "[--bench] [--clients N] [--messages M]";
const LIMIT: Duration = Duration::from_secs(10);
const LATENCY_LINES: u64 = 300;
const WINDOW: u64 = 32;

/// target/<profile>/examples/chat, beside this example.
fn chat_exe() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("own path");
    exe.parent().expect("examples dir").join("chat")
}

fn main() -> ExitCode {
    let (mut bench, mut clients, mut messages) = (false, 30usize, 3000u64);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().and_then(|v| v.parse::<u64>().ok());
        match arg.as_str() {
            "--bench" => bench = true,
            "--clients" => match value() {
                Some(n) if n >= 2 => clients = n as usize,
                _ => return common::usage("scale_out", USAGE, "--clients needs N >= 2"),
            },
            "--messages" => match value() {
                Some(n) if n > 0 => messages = n,
                _ => return common::usage("scale_out", USAGE, "--messages needs N > 0"),
            },
            _ => return common::usage("scale_out", USAGE, &format!("unexpected {arg:?}")),
        }
    }
    let programs = match deploy::Programs::find() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("scale_out: {e}");
            return ExitCode::FAILURE;
        }
    };
    let signals = match common::Signals::block() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("scale_out: {e}");
            return ExitCode::FAILURE;
        }
    };
    let d = match deploy::Deployment::start(&programs, &chat_exe(), 3, LIMIT) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("scale_out: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !bench {
        println!("chat through nginx: http://127.0.0.1:{}/", d.nginx_port);
        for c in &d.chats {
            println!("  {} direct: http://127.0.0.1:{}/", c.name, c.port);
        }
        println!("redis: 127.0.0.1:{}; SIGINT stops everything", d.redis_port);
        let (tx, rx) = mpsc::channel();
        signals.on_signal(move || {
            let _ = tx.send(());
        });
        let _ = rx.recv();
        return ExitCode::SUCCESS; // dropping d stops every child
    }
    // The bench's own watchdog: a stuck run fails instead of hanging.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(300));
        eprintln!("scale_out: bench still running after 300 s");
        std::process::exit(1);
    });
    println!("fan-out, {clients} clients, 1 sender; latency over {LATENCY_LINES} lines one at a time, throughput over {messages} lines {WINDOW} in flight");
    let nginx: Vec<String> = vec![d.url()];
    let direct: Vec<String> = d
        .chats
        .iter()
        .map(|c| format!("ws://127.0.0.1:{}/ws", c.port))
        .collect();
    let mut single = match SingleChat::start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("scale_out: {e}");
            return ExitCode::FAILURE;
        }
    };
    let single_url = vec![format!("ws://127.0.0.1:{}/ws", single.port)];
    let runs = [
        ("nginx -> 3 chats + redis", &nginx),
        ("direct -> 3 chats + redis", &direct),
        ("direct -> 1 chat, no redis", &single_url),
    ];
    for (label, urls) in runs {
        match run(urls, clients, messages) {
            Ok(r) => println!(
                "{label:<28} {:>9.0} deliveries/s  p50 {:>6} us  p99 {:>6} us",
                r.deliveries_per_s, r.p50_us, r.p99_us
            ),
            Err(e) => {
                eprintln!("scale_out: {label}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    single.stop();
    ExitCode::SUCCESS
}

/// One chat process without Redis, for the baseline.
struct SingleChat {
    port: u16,
    child: Child,
}

impl SingleChat {
    fn start() -> Result<SingleChat, String> {
        use std::io::BufRead;
        let mut child = Command::new(chat_exe())
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start chat: {e}"))?;
        let mut out = std::io::BufReader::new(child.stdout.take().expect("piped"));
        let mut first = String::new();
        let _ = out.read_line(&mut first);
        let port = first
            .trim()
            .strip_prefix("listening on http://127.0.0.1:")
            .and_then(|r| r.strip_suffix('/'))
            .and_then(|p| p.parse().ok());
        let mut s = SingleChat { port: 0, child };
        match port {
            Some(p) => s.port = p,
            None => {
                s.stop();
                return Err(format!("chat said {first:?}"));
            }
        }
        Ok(s)
    }

    fn stop(&mut self) {
        // SAFETY: kill(2) on the child we started, not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

struct Outcome {
    deliveries_per_s: f64,
    p50_us: u64,
    p99_us: u64,
}

fn connect(url: &str) -> Result<Ws, String> {
    let (ws, _) = tungstenite::connect(url).map_err(|e| format!("connect {url}: {e}"))?;
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(LIMIT)).map_err(|e| e.to_string())?;
    }
    Ok(ws)
}

/// `s1/4: b SEQ NANOS` -> (SEQ, NANOS); None for any other line.
fn parse(line: &str) -> Option<(u64, u64)> {
    let body = line.split_once(": b ")?.1;
    let (seq, t) = body.split_once(' ')?;
    Some((seq.parse().ok()?, t.parse().ok()?))
}

/// Reads until it has seen bench line `last`; reports (seq, latency ns).
fn receive(mut ws: Ws, start: Instant, last: u64, out: mpsc::Sender<(u64, u64)>) {
    loop {
        let line = match ws.read() {
            Ok(WsMessage::Text(t)) => t,
            Ok(_) => continue,
            Err(e) => {
                eprintln!("scale_out: receiver: {e}");
                return;
            }
        };
        if let Some((seq, t)) = parse(&line) {
            let now = start.elapsed().as_nanos() as u64;
            let _ = out.send((seq, now.saturating_sub(t)));
            if seq == last {
                let _ = ws.close(None);
                let _ = ws.flush();
                return;
            }
        }
    }
}

fn run(urls: &[String], clients: usize, messages: u64) -> Result<Outcome, String> {
    let start = Instant::now();
    let last = LATENCY_LINES + messages - 1;
    let (tx, rx) = mpsc::channel();
    let mut sender = connect(&urls[0])?;
    let mut threads = Vec::new();
    for i in 1..clients {
        let ws = connect(&urls[i % urls.len()])?;
        let tx = tx.clone();
        threads.push(std::thread::spawn(move || receive(ws, start, last, tx)));
    }
    drop(tx);
    // Let the join lines settle before timing anything.
    std::thread::sleep(Duration::from_millis(300));
    let send = |ws: &mut Ws, seq: u64| {
        let t = start.elapsed().as_nanos() as u64;
        ws.send(WsMessage::text(format!("b {seq} {t}")))
            .map_err(|e| format!("send: {e}"))
    };
    // The sender hears its own lines too: that is how it paces itself.
    let mut heard = 0u64; // bench lines the sender has received
    let read_own = |ws: &mut Ws, heard: &mut u64| -> Result<(), String> {
        loop {
            match ws.read().map_err(|e| format!("sender read: {e}"))? {
                WsMessage::Text(t) if parse(&t).is_some() => {
                    *heard += 1;
                    return Ok(());
                }
                _ => continue,
            }
        }
    };
    let receivers = (clients - 1) as u64;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    let collect = |hist: &mut Histogram<u64>, want: u64, seq_below: u64| -> Result<(), String> {
        let mut got = 0;
        while got < want {
            let (seq, ns) = rx
                .recv_timeout(LIMIT)
                .map_err(|_| format!("only {got} of {want} deliveries"))?;
            if seq < seq_below {
                let _ = hist.record(ns.max(1));
            }
            got += 1;
        }
        Ok(())
    };
    // Latency: one line at a time, the next once every client has it.
    for seq in 0..LATENCY_LINES {
        send(&mut sender, seq)?;
        read_own(&mut sender, &mut heard)?;
        collect(&mut hist, receivers, LATENCY_LINES)?;
    }
    // Throughput: up to WINDOW lines in flight, as the sender sees them.
    let t0 = Instant::now();
    let mut next = LATENCY_LINES;
    while next <= last {
        while next <= last && next - LATENCY_LINES < (heard - LATENCY_LINES) + WINDOW {
            send(&mut sender, next)?;
            next += 1;
        }
        read_own(&mut sender, &mut heard)?;
    }
    while heard < LATENCY_LINES + messages {
        read_own(&mut sender, &mut heard)?;
    }
    collect(&mut hist, receivers * messages, LATENCY_LINES)?;
    let secs = t0.elapsed().as_secs_f64();
    for t in threads {
        let _ = t.join();
    }
    let _ = sender.close(None);
    let _ = sender.flush();
    Ok(Outcome {
        deliveries_per_s: (clients as u64 * messages) as f64 / secs,
        p50_us: hist.value_at_quantile(0.5) / 1000,
        p99_us: hist.value_at_quantile(0.99) / 1000,
    })
}
