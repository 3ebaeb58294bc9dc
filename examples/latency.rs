//! Round-trip latency against any ws:// or wss:// echo server.
//!
//! Run me with: `cargo run --release --example latency -- ws://127.0.0.1:9001/ [--size BYTES] [--count N] [--warmup N] [--connections C] [--text] [--insecure] [--json] [--name NAME] [--timeout SECS]`
//!
//! Defaults: 64-byte binary messages, 10000 timed round trips after 1000
//! untimed warm-up ones, one connection, 120 s timeout. `--count` and
//! `--warmup` are totals over all connections: with C connections (all on
//! one [`Context`]) each keeps one message in flight and sends the next
//! when its echo is back, until the total is reached; one histogram holds
//! them all. Each round trip is timed with `Instant` from just before the
//! send to the echo's arrival (so it includes our send queue and the loop
//! turn that writes it), in an hdrhistogram with ns resolution.
//!
//! Every message carries its sequence number (the rest of it is derived
//! from that number) and every echo is checked byte for byte. `--text`
//! sends ASCII text messages instead of binary; `--insecure` accepts any
//! server certificate on wss://. Connections go direct, never through a
//! proxy from the environment.
//!
//! Prints p50 / p90 / p99 / p99.9 / max in µs and msg/s, then the shared
//! benchmark harness's `RESULT key=value ...` line; `--json` prints one JSON
//! object instead. Exit code 0 when every echo came back intact, 1 on a
//! mismatch, a lost echo, a connection error or close, or the timeout; 2 for
//! bad arguments.

mod bench;
mod common;

use hdrhistogram::Histogram;
use lws::{Callbacks, CloseCode, Connection, Context, ContextOptions, Message};
use std::cell::RefCell;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

const NAME: &str = "latency";
const USAGE: &str = "URL [--size BYTES] [--count N] [--warmup N] [--connections C] [--text] [--insecure] [--json] [--name NAME] [--timeout SECS]";

/// How often the progress line and the timeout are looked at.
const TICK: Duration = Duration::from_millis(250);
/// How long closing the connections may take once the run is over.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Most connections accepted (each is a socket).
const MAX_CONNECTIONS: usize = 100_000;
/// Largest round trip the histogram holds, in ns (longer ones count as this).
const MAX_RTT_NS: u64 = 3_600_000_000_000;

struct Config {
    url: String,
    size: usize,
    count: u64,
    warmup: u64,
    connections: usize,
    text: bool,
    insecure: bool,
    json: bool,
    name: String,
    timeout: Duration,
}

enum Parsed {
    Run(Config),
    Help,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Parsed, String> {
    let mut c = Config {
        url: String::new(),
        size: 64,
        count: 10_000,
        warmup: 1_000,
        connections: 1,
        text: false,
        insecure: false,
        json: false,
        name: "lws-rs".into(),
        timeout: Duration::from_secs(120),
    };
    let mut url = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--text" => c.text = true,
            "--insecure" => c.insecure = true,
            "--json" => c.json = true,
            "--size" => c.size = bench::value(&arg, args.next())?,
            "--count" => c.count = bench::value(&arg, args.next())?,
            "--warmup" => c.warmup = bench::value(&arg, args.next())?,
            "--connections" => c.connections = bench::value(&arg, args.next())?,
            "--name" => c.name = bench::value(&arg, args.next())?,
            "--timeout" => c.timeout = bench::seconds(&arg, bench::value(&arg, args.next())?)?,
            a if a.starts_with('-') => return Err(format!("unknown option {a}")),
            _ if url.is_none() => url = Some(arg),
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    c.url = url.ok_or("the URL of an echo server is missing")?;
    bench::check_url(&c.url)?;
    if c.size > bench::MAX_SIZE {
        return Err(format!("--size must be at most {}", bench::MAX_SIZE));
    }
    if c.count == 0 {
        return Err("--count must be at least 1".into());
    }
    if c.count.checked_add(c.warmup).is_none() {
        return Err("--count plus --warmup is too big".into());
    }
    if c.connections == 0 || c.connections > MAX_CONNECTIONS {
        return Err(format!("--connections must be 1 to {MAX_CONNECTIONS}"));
    }
    if c.timeout.is_zero() {
        return Err("--timeout must be more than 0".into());
    }
    if c.name.is_empty() {
        return Err("--name must not be empty".into());
    }
    Ok(Parsed::Run(c))
}

/// The message a connection has in flight.
struct Pending {
    seq: u64,
    sent_at: Instant,
    /// Past the warm-up: its round trip goes into the histogram.
    timed: bool,
}

/// One connection's part.
#[derive(Default)]
struct Slot {
    conn: Option<Connection>,
    /// Sequence number of its next message.
    next_seq: u64,
    pending: Option<Pending>,
    /// Handshake done and not closed yet.
    open: bool,
    /// Connect not resolved yet (neither on_connect nor on_error).
    connecting: bool,
    echoes: u64,
}

/// The whole run, shared by every connection's callbacks and the timer.
struct Run {
    size: usize,
    text: bool,
    warmup: u64,
    /// warm-up + count: messages to send over all connections.
    total: u64,
    slots: Vec<Slot>,
    connected: usize,
    /// Messages sent so far (all connections), warm-up included.
    issued: u64,
    /// Echoes received of those (intact or not).
    echoed: u64,
    /// Echoes received of timed messages (intact or not).
    timed: u64,
    hist: Histogram<u64>,
    timed_from: Option<Instant>,
    last_echo: Option<Instant>,
    mismatches: u64,
    first_mismatch: Option<String>,
    lost: u64,
    errors: Vec<String>,
    /// When the run stopped sending (done, failed or timed out): the
    /// connections are closing.
    finishing: Option<Instant>,
    send_buf: Vec<u8>,
    scratch: Vec<u8>,
}

type Shared = Rc<RefCell<Run>>;

impl Run {
    /// Sends the next message on connection `i`, if any are left to send.
    fn issue(&mut self, i: usize) {
        if self.issued >= self.total || self.finishing.is_some() {
            return;
        }
        let Some(conn) = self.slots[i].conn.clone() else {
            return;
        };
        let seq = self.slots[i].next_seq;
        self.slots[i].next_seq += 1;
        let timed = self.issued >= self.warmup;
        bench::fill(&mut self.send_buf, i, seq, self.size, self.text);
        let sent_at = Instant::now();
        let sent = if self.text {
            match std::str::from_utf8(&self.send_buf) {
                Ok(s) => conn.send_text(s),
                Err(_) => Err(lws::Error::InvalidOption(
                    "text payload is not UTF-8".into(),
                )),
            }
        } else {
            conn.send_binary(&self.send_buf)
        };
        self.issued += 1;
        if self.issued == self.warmup + 1 {
            self.timed_from = Some(sent_at);
        }
        match sent {
            Ok(()) => {
                self.slots[i].pending = Some(Pending {
                    seq,
                    sent_at,
                    timed,
                })
            }
            Err(e) => {
                self.lost += 1;
                self.fail(format!("connection {i}: send failed: {e}"));
            }
        }
    }

    /// An echo arrived on connection `i`.
    fn echo(&mut self, i: usize, msg: &Message, at: Instant) {
        let Some(p) = self.slots[i].pending.take() else {
            self.mismatch(format!(
                "connection {i}: a {}-byte message arrived with none in flight",
                msg.len()
            ));
            return;
        };
        self.echoed += 1;
        self.slots[i].echoes += 1;
        let kind_ok = msg.is_binary() != self.text;
        let intact = kind_ok
            && bench::matches(
                &mut self.scratch,
                msg.as_bytes(),
                i,
                p.seq,
                self.size,
                self.text,
            );
        if p.timed {
            self.timed += 1;
            self.last_echo = Some(at);
        }
        if !intact {
            let why = if kind_ok {
                describe_difference(&self.scratch, msg.as_bytes())
            } else if self.text {
                "binary instead of text".into()
            } else {
                "text instead of binary".into()
            };
            self.mismatch(format!(
                "connection {i}: echo of message {} differs: {why}",
                p.seq
            ));
        } else if p.timed {
            let ns = u64::try_from(at.duration_since(p.sent_at).as_nanos()).unwrap_or(u64::MAX);
            self.hist.saturating_record(ns.clamp(1, MAX_RTT_NS));
        }
        if self.issued < self.total {
            self.issue(i);
        } else if self.echoed == self.issued {
            self.finish();
        }
    }

    fn mismatch(&mut self, why: String) {
        self.mismatches += 1;
        self.first_mismatch.get_or_insert(why);
    }

    /// Records why the run failed and winds it up.
    fn fail(&mut self, why: String) {
        self.errors.push(why);
        self.finish();
    }

    /// Stops sending and closes every open connection (once).
    fn finish(&mut self) {
        if self.finishing.is_some() {
            return;
        }
        self.finishing = Some(Instant::now());
        for slot in &self.slots {
            if let (true, Some(conn)) = (slot.open, &slot.conn) {
                conn.close(CloseCode::NORMAL, "done");
            }
        }
    }

    /// Finishing and nothing left open or connecting: the loop may stop.
    fn all_closed(&self) -> bool {
        self.finishing.is_some() && self.slots.iter().all(|s| !s.open && !s.connecting)
    }

    /// A message still in flight on `i` when it closed is lost.
    fn closed(&mut self, i: usize) {
        self.slots[i].open = false;
        if self.slots[i].pending.take().is_some() {
            self.lost += 1;
        }
    }
}

/// Where `got` first differs from `want`, for the report.
fn describe_difference(want: &[u8], got: &[u8]) -> String {
    if got.len() != want.len() {
        return format!("{} bytes back instead of {}", got.len(), want.len());
    }
    match want.iter().zip(got).position(|(a, b)| a != b) {
        Some(at) => format!("byte {at} is {:#04x} instead of {:#04x}", got[at], want[at]),
        None => "differs".into(),
    }
}

fn callbacks(run: &Shared, i: usize) -> Callbacks {
    let (r1, r2, r3, r4) = (run.clone(), run.clone(), run.clone(), run.clone());
    Callbacks::new()
        .on_connect(move |conn, _| {
            let mut r = r1.borrow_mut();
            let n = r.slots.len();
            let slot = &mut r.slots[i];
            slot.connecting = false;
            slot.open = true;
            slot.conn = Some(conn.clone());
            r.connected += 1;
            if r.finishing.is_some() {
                conn.close(CloseCode::NORMAL, "done");
            } else if r.connected == n {
                // Everyone is connected: start every connection's ping-pong.
                for j in 0..n {
                    r.issue(j);
                }
            }
        })
        .on_message(move |conn, msg| {
            let at = Instant::now();
            let mut r = r2.borrow_mut();
            r.echo(i, &msg, at);
            if r.all_closed() {
                conn.context().stop();
            }
        })
        .on_close(move |conn, code, reason| {
            let mut r = r3.borrow_mut();
            if r.finishing.is_none() {
                let echoes = r.slots[i].echoes;
                r.closed(i);
                r.fail(format!(
                    "connection {i} closed by the server ({code} {reason:?}) after {echoes} echoes"
                ));
            } else {
                r.closed(i);
            }
            if r.all_closed() {
                conn.context().stop();
            }
        })
        .on_error(move |conn, e| {
            let mut r = r4.borrow_mut();
            r.slots[i].connecting = false;
            r.fail(format!("connection {i}: {e}"));
            if r.all_closed() {
                conn.context().stop();
            }
        })
}

fn main() -> ExitCode {
    let config = match parse_args(std::env::args().skip(1)) {
        Ok(Parsed::Run(c)) => c,
        Ok(Parsed::Help) => {
            println!("usage: {NAME} {USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(why) => return common::usage(NAME, USAGE, &why),
    };
    match run(&config) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("{NAME}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark and prints its results; Ok(true) if all went well.
fn run(c: &Config) -> Result<bool, String> {
    let hist = Histogram::<u64>::new_with_bounds(1, MAX_RTT_NS, 3)
        .map_err(|e| format!("histogram: {e}"))?;
    let run: Shared = Rc::new(RefCell::new(Run {
        size: c.size,
        text: c.text,
        warmup: c.warmup,
        total: c.warmup + c.count,
        slots: (0..c.connections)
            .map(|_| Slot {
                connecting: true,
                ..Slot::default()
            })
            .collect(),
        connected: 0,
        issued: 0,
        echoed: 0,
        timed: 0,
        hist,
        timed_from: None,
        last_echo: None,
        mismatches: 0,
        first_mismatch: None,
        lost: 0,
        errors: Vec::new(),
        finishing: None,
        send_buf: Vec::with_capacity(c.size),
        scratch: Vec::with_capacity(c.size),
    }));
    let cx = Context::new(ContextOptions::default()).map_err(|e| format!("context: {e}"))?;
    for i in 0..c.connections {
        let options = bench::connect_options(&c.url, c.size, c.insecure);
        cx.connect(options, callbacks(&run, i))
            .map_err(|e| format!("{}: {e}", c.url))?;
    }

    let deadline = Instant::now() + c.timeout;
    let timeout = c.timeout;
    let progress = Rc::new(RefCell::new(bench::Progress::new()));
    let (r, p) = (run.clone(), progress.clone());
    cx.set_interval(TICK, move |cx| {
        let mut r = r.borrow_mut();
        if let Some(since) = r.finishing {
            if r.all_closed() || since.elapsed() > CLOSE_GRACE {
                cx.stop();
            }
            return;
        }
        if Instant::now() >= deadline {
            let why = format!(
                "timed out after {} s ({} of {} round trips done)",
                timeout.as_secs_f64(),
                r.echoed,
                r.total
            );
            r.fail(why);
            if r.all_closed() {
                cx.stop();
            }
            return;
        }
        let line = if r.connected < r.slots.len() {
            format!("{NAME}: connected {} of {}", r.connected, r.slots.len())
        } else {
            format!(
                "{NAME}: {} of {} round trips ({:.0}%)",
                r.echoed,
                r.total,
                r.echoed as f64 * 100.0 / r.total as f64
            )
        };
        p.borrow_mut().show(&line);
    });
    let looped = cx.run();
    progress.borrow_mut().clear();
    let mut r = run.borrow_mut();
    if let Err(e) = looped {
        r.errors.push(format!("event loop: {e}"));
    }
    // Whatever is still in flight now never came back.
    for i in 0..r.slots.len() {
        r.closed(i);
    }
    Ok(report(c, &r))
}

/// Prints the results (human-readable and RESULT line, or JSON).
fn report(c: &Config, r: &Run) -> bool {
    let ok = r.errors.is_empty() && r.mismatches == 0 && r.lost == 0 && r.timed == c.count;
    let secs = match (r.timed_from, r.last_echo) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
        _ => 0.0,
    };
    let rate = if secs > 0.0 {
        r.timed as f64 / secs
    } else {
        0.0
    };
    let h = &r.hist;
    let q = |quantile: f64| {
        if h.is_empty() {
            0
        } else {
            h.value_at_quantile(quantile)
        }
    };
    let (p50, p90, p99, p999, max) = (q(0.5), q(0.9), q(0.99), q(0.999), h.max());
    let mean_ns = if h.is_empty() { 0.0 } else { h.mean() };
    let kind = if c.text { "text" } else { "binary" };
    for e in &r.errors {
        eprintln!("{NAME}: {e}");
    }
    if let Some(m) = &r.first_mismatch {
        eprintln!(
            "{NAME}: {} echo(es) differed from what was sent; the first: {m}",
            r.mismatches
        );
    }
    if c.json {
        println!(
            "{{\"name\":{},\"mode\":\"rtt\",\"url\":{},\"kind\":\"{kind}\",\"size\":{},\"connections\":{},\"warmup\":{},\"count\":{},\"mean_us\":{:.1},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{},\"msgs_per_s\":{:.0},\"mismatches\":{},\"lost\":{},\"errors\":{},\"status\":\"{}\"}}",
            bench::json_str(&c.name),
            bench::json_str(&c.url),
            c.size,
            c.connections,
            c.warmup,
            r.timed,
            mean_ns / 1e3,
            bench::us(p50),
            bench::us(p90),
            bench::us(p99),
            bench::us(p999),
            bench::us(max),
            rate,
            r.mismatches,
            r.lost,
            bench::json_list(&r.errors),
            if ok { "ok" } else { "fail" },
        );
    } else {
        println!(
            "{NAME}: {} {kind}, {}-byte messages, {} connection(s): {} of {} round trips timed (+{} warm-up)",
            c.url, c.size, c.connections, r.timed, c.count, c.warmup
        );
        println!(
            "  p50 {} us   p90 {} us   p99 {} us   p99.9 {} us   max {} us",
            bench::us(p50),
            bench::us(p90),
            bench::us(p99),
            bench::us(p999),
            bench::us(max)
        );
        println!(
            "  {rate:.0} msg/s; {} mismatches, {} lost: {}",
            r.mismatches,
            r.lost,
            if ok { "OK" } else { "FAILED" }
        );
        println!(
            "RESULT name={} mode=rtt kind={kind} size={} conns={} n={} mean_us={:.1} p50_us={} p90_us={} p99_us={} p999_us={} max_us={} msgs_per_s={rate:.0} mismatches={} lost={} status={}",
            bench::result_value(&c.name),
            c.size,
            c.connections,
            r.timed,
            mean_ns / 1e3,
            bench::us(p50),
            bench::us(p90),
            bench::us(p99),
            bench::us(p999),
            bench::us(max),
            r.mismatches,
            r.lost,
            if ok { "ok" } else { "FAIL" },
        );
    }
    ok
}
