//! Pipelined echo throughput against any ws:// or wss:// echo server.
//!
//! Run me with: `cargo run --release --example throughput -- ws://127.0.0.1:9001/ [--size BYTES] [--connections C] [--window W] [--secs T] [--warmup-secs S] [--text] [--insecure] [--json] [--name NAME] [--timeout SECS]`
//!
//! Defaults: 64-byte binary messages, 1 connection, window 1, 5 s timed
//! after 1 s of warm-up. Once all C connections (on one [`Context`]) are
//! up, each keeps W messages in flight, sending the next one on each echo;
//! echoes that arrive during the T timed seconds are counted. Then sending
//! stops and the echoes still in flight are waited for (at most 10 s);
//! those that never come are lost.
//!
//! Every echo is checked byte for byte against what its connection sent,
//! in order: each connection keeps a FIFO of the sequence numbers in
//! flight, and the payload is derived from the number. `--text` sends
//! ASCII text messages instead of binary; `--insecure` accepts any server
//! certificate on wss://. Connections go direct, never through a proxy.
//!
//! Prints msg/s and MB/s (payload bytes echoed per second, MB = 10^6),
//! mismatches and lost echoes, then the shared benchmark harness's
//! `RESULT key=value ...` line; `--json` prints one JSON object instead.
//! Exit code 0 when all went well, 1 on a mismatch, a lost echo, a
//! connection error or close, or the overall timeout (default: warm-up +
//! timed seconds + 60 s); 2 for bad arguments.

mod bench;
mod common;

use lws::{Callbacks, CloseCode, Connection, Context, ContextOptions, Message};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

const NAME: &str = "throughput";
const USAGE: &str = "URL [--size BYTES] [--connections C] [--window W] [--secs T] [--warmup-secs S] [--text] [--insecure] [--json] [--name NAME] [--timeout SECS]";

/// How often the progress line, the drain and the timeout are looked at.
const TICK: Duration = Duration::from_millis(250);
/// Longest wait for the echoes in flight once sending stops.
const DRAIN: Duration = Duration::from_secs(10);
/// How long closing the connections may take once the run is over.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Most connections accepted (each is a socket).
const MAX_CONNECTIONS: usize = 100_000;
/// Most payload bytes in flight over all connections (each is held in a
/// send queue until written).
const MAX_IN_FLIGHT_BYTES: u128 = 1 << 30;

struct Config {
    url: String,
    size: usize,
    connections: usize,
    window: usize,
    secs: Duration,
    warmup: Duration,
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
        connections: 1,
        window: 1,
        secs: Duration::from_secs(5),
        warmup: Duration::from_secs(1),
        text: false,
        insecure: false,
        json: false,
        name: "lws-rs".into(),
        timeout: Duration::ZERO,
    };
    let mut url = None;
    let mut timeout = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--text" => c.text = true,
            "--insecure" => c.insecure = true,
            "--json" => c.json = true,
            "--size" => c.size = bench::value(&arg, args.next())?,
            "--connections" => c.connections = bench::value(&arg, args.next())?,
            "--window" => c.window = bench::value(&arg, args.next())?,
            "--secs" => c.secs = bench::seconds(&arg, bench::value(&arg, args.next())?)?,
            "--warmup-secs" => c.warmup = bench::seconds(&arg, bench::value(&arg, args.next())?)?,
            "--name" => c.name = bench::value(&arg, args.next())?,
            "--timeout" => timeout = Some(bench::seconds(&arg, bench::value(&arg, args.next())?)?),
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
    if c.connections == 0 || c.connections > MAX_CONNECTIONS {
        return Err(format!("--connections must be 1 to {MAX_CONNECTIONS}"));
    }
    if c.window == 0 {
        return Err("--window must be at least 1".into());
    }
    let in_flight = c.connections as u128 * c.window as u128 * c.size.max(1) as u128;
    if in_flight > MAX_IN_FLIGHT_BYTES {
        return Err(format!(
            "--connections x --window x --size must be at most {MAX_IN_FLIGHT_BYTES} bytes in flight"
        ));
    }
    if c.secs.is_zero() {
        return Err("--secs must be more than 0".into());
    }
    c.timeout = timeout.unwrap_or(c.warmup + c.secs + Duration::from_secs(60));
    if c.timeout.is_zero() {
        return Err("--timeout must be more than 0".into());
    }
    if c.name.is_empty() {
        return Err("--name must not be empty".into());
    }
    Ok(Parsed::Run(c))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for every connection's handshake.
    Connecting,
    /// Sending, echoes not counted.
    Warmup,
    /// Sending, echoes counted.
    Timed,
    /// No more sending: waiting for the echoes in flight.
    Drain,
}

/// One connection's part.
#[derive(Default)]
struct Slot {
    conn: Option<Connection>,
    next_seq: u64,
    /// Sequence numbers sent and not echoed yet, oldest first.
    in_flight: VecDeque<u64>,
    /// Handshake done and not closed yet.
    open: bool,
    /// Connect not resolved yet (neither on_connect nor on_error).
    connecting: bool,
    echoes: u64,
}

/// The whole run, shared by every connection's callbacks and the timers.
struct Run {
    size: usize,
    text: bool,
    window: usize,
    phase: Phase,
    slots: Vec<Slot>,
    connected: usize,
    /// Messages in flight over all connections.
    in_flight: u64,
    /// Echoes received in all (intact or not).
    echoed: u64,
    /// Echoes received during the timed phase, and their payload bytes.
    timed: u64,
    timed_bytes: u64,
    timed_from: Option<Instant>,
    timed_until: Option<Instant>,
    drain_until: Option<Instant>,
    drain_expired: bool,
    mismatches: u64,
    first_mismatch: Option<String>,
    lost: u64,
    errors: Vec<String>,
    /// When the run was wound up (done, failed or timed out): the
    /// connections are closing.
    finishing: Option<Instant>,
    send_buf: Vec<u8>,
    scratch: Vec<u8>,
}

type Shared = Rc<RefCell<Run>>;

impl Run {
    /// Sends connection `i`'s next message.
    fn send_next(&mut self, i: usize) {
        if !matches!(self.phase, Phase::Warmup | Phase::Timed) || self.finishing.is_some() {
            return;
        }
        let Some(conn) = self.slots[i].conn.clone() else {
            return;
        };
        let seq = self.slots[i].next_seq;
        self.slots[i].next_seq += 1;
        bench::fill(&mut self.send_buf, i, seq, self.size, self.text);
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
        match sent {
            Ok(()) => {
                self.slots[i].in_flight.push_back(seq);
                self.in_flight += 1;
            }
            Err(e) => {
                self.lost += 1;
                self.fail(format!("connection {i}: send failed: {e}"));
            }
        }
    }

    /// An echo arrived on connection `i`.
    fn echo(&mut self, i: usize, msg: &Message) {
        let Some(seq) = self.slots[i].in_flight.pop_front() else {
            self.mismatch(format!(
                "connection {i}: a {}-byte message arrived with none in flight",
                msg.len()
            ));
            return;
        };
        self.in_flight -= 1;
        self.echoed += 1;
        self.slots[i].echoes += 1;
        let kind_ok = msg.is_binary() != self.text;
        let intact = kind_ok
            && bench::matches(
                &mut self.scratch,
                msg.as_bytes(),
                i,
                seq,
                self.size,
                self.text,
            );
        if !intact {
            let why = if !kind_ok {
                if self.text {
                    "binary instead of text".to_string()
                } else {
                    "text instead of binary".to_string()
                }
            } else if msg.len() != self.size {
                format!("{} bytes back instead of {}", msg.len(), self.size)
            } else {
                "bytes differ".to_string()
            };
            self.mismatch(format!(
                "connection {i}: echo of message {seq} differs: {why}"
            ));
        }
        if self.phase == Phase::Timed {
            self.timed += 1;
            self.timed_bytes += msg.len() as u64;
        }
        match self.phase {
            Phase::Warmup | Phase::Timed => self.send_next(i),
            Phase::Drain if self.in_flight == 0 => self.finish(),
            _ => {}
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
        let now = Instant::now();
        self.finishing = Some(now);
        if self.phase == Phase::Timed {
            self.timed_until = Some(now);
        }
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

    /// What was still in flight on `i` when it closed is lost.
    fn closed(&mut self, i: usize) {
        self.slots[i].open = false;
        let n = self.slots[i].in_flight.len() as u64;
        self.slots[i].in_flight.clear();
        self.in_flight -= n;
        self.lost += n;
    }
}

/// Every connection is up: fill the windows, and time the phases.
fn start(run: &Shared, cx: &Context, warmup: Duration, secs: Duration) {
    {
        let mut r = run.borrow_mut();
        r.phase = Phase::Warmup;
        for i in 0..r.slots.len() {
            for _ in 0..r.window {
                r.send_next(i);
            }
        }
    }
    let r = run.clone();
    cx.set_timeout(warmup, move |cx| {
        {
            let mut run = r.borrow_mut();
            if run.finishing.is_some() {
                return;
            }
            run.phase = Phase::Timed;
            run.timed_from = Some(Instant::now());
        }
        cx.set_timeout(secs, move |_| {
            let mut run = r.borrow_mut();
            if run.finishing.is_some() {
                return;
            }
            let now = Instant::now();
            run.phase = Phase::Drain;
            run.timed_until = Some(now);
            run.drain_until = Some(now + DRAIN);
            if run.in_flight == 0 {
                run.finish();
            }
        });
    });
}

fn callbacks(run: &Shared, i: usize, warmup: Duration, secs: Duration) -> Callbacks {
    let (r1, r2, r3, r4) = (run.clone(), run.clone(), run.clone(), run.clone());
    Callbacks::new()
        .on_connect(move |conn, _| {
            let all_up = {
                let mut r = r1.borrow_mut();
                let slot = &mut r.slots[i];
                slot.connecting = false;
                slot.open = true;
                slot.conn = Some(conn.clone());
                r.connected += 1;
                if r.finishing.is_some() {
                    conn.close(CloseCode::NORMAL, "done");
                    false
                } else {
                    r.connected == r.slots.len()
                }
            };
            if all_up {
                start(&r1, &conn.context(), warmup, secs);
            }
        })
        .on_message(move |conn, msg| {
            let mut r = r2.borrow_mut();
            r.echo(i, &msg);
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
    let run: Shared = Rc::new(RefCell::new(Run {
        size: c.size,
        text: c.text,
        window: c.window,
        phase: Phase::Connecting,
        slots: (0..c.connections)
            .map(|_| Slot {
                connecting: true,
                ..Slot::default()
            })
            .collect(),
        connected: 0,
        in_flight: 0,
        echoed: 0,
        timed: 0,
        timed_bytes: 0,
        timed_from: None,
        timed_until: None,
        drain_until: None,
        drain_expired: false,
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
        cx.connect(options, callbacks(&run, i, c.warmup, c.secs))
            .map_err(|e| format!("{}: {e}", c.url))?;
    }

    let deadline = Instant::now() + c.timeout;
    let timeout = c.timeout;
    let started = Instant::now();
    let progress = Rc::new(RefCell::new(bench::Progress::new()));
    let (r, p) = (run.clone(), progress.clone());
    cx.set_interval(TICK, move |cx| {
        let mut r = r.borrow_mut();
        let now = Instant::now();
        if let Some(since) = r.finishing {
            if r.all_closed() || since.elapsed() > CLOSE_GRACE {
                cx.stop();
            }
            return;
        }
        if now >= deadline {
            let why = format!(
                "timed out after {} s ({:?} phase)",
                timeout.as_secs_f64(),
                r.phase
            );
            r.fail(why);
            return;
        }
        if r.drain_until.is_some_and(|t| now >= t) {
            r.drain_expired = true;
            r.finish();
            return;
        }
        let line = match r.phase {
            Phase::Connecting => {
                format!("{NAME}: connected {} of {}", r.connected, r.slots.len())
            }
            Phase::Warmup => format!(
                "{NAME}: warming up, {:.1} s",
                now.duration_since(started).as_secs_f64()
            ),
            Phase::Timed => {
                let secs = r
                    .timed_from
                    .map_or(0.0, |t| now.duration_since(t).as_secs_f64());
                format!(
                    "{NAME}: {secs:.1} s timed, {} echoes, {:.0} msg/s",
                    r.timed,
                    r.timed as f64 / secs.max(1e-9)
                )
            }
            Phase::Drain => format!("{NAME}: draining, {} in flight", r.in_flight),
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
    let ok = r.errors.is_empty() && r.mismatches == 0 && r.lost == 0 && r.timed > 0;
    let secs = match (r.timed_from, r.timed_until) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
        _ => 0.0,
    };
    let (rate, mb) = if secs > 0.0 {
        (r.timed as f64 / secs, r.timed_bytes as f64 / secs / 1e6)
    } else {
        (0.0, 0.0)
    };
    let kind = if c.text { "text" } else { "binary" };
    for e in &r.errors {
        eprintln!("{NAME}: {e}");
    }
    if r.drain_expired {
        eprintln!(
            "{NAME}: echoes still missing {} s after sending stopped",
            DRAIN.as_secs()
        );
    }
    if let Some(m) = &r.first_mismatch {
        eprintln!(
            "{NAME}: {} echo(es) differed from what was sent; the first: {m}",
            r.mismatches
        );
    }
    if r.timed == 0 && r.errors.is_empty() {
        eprintln!("{NAME}: no echo arrived during the timed phase");
    }
    let conn_errors = r.errors.len();
    if c.json {
        println!(
            "{{\"name\":{},\"mode\":\"tp\",\"url\":{},\"kind\":\"{kind}\",\"size\":{},\"connections\":{},\"window\":{},\"warmup_secs\":{:.2},\"secs\":{secs:.2},\"count\":{},\"echoed\":{},\"msgs_per_s\":{rate:.0},\"mb_per_s\":{mb:.2},\"mismatches\":{},\"lost\":{},\"conn_errors\":{conn_errors},\"errors\":{},\"status\":\"{}\"}}",
            bench::json_str(&c.name),
            bench::json_str(&c.url),
            c.size,
            c.connections,
            c.window,
            c.warmup.as_secs_f64(),
            r.timed,
            r.echoed,
            r.mismatches,
            r.lost,
            bench::json_list(&r.errors),
            if ok { "ok" } else { "fail" },
        );
    } else {
        println!(
            "{NAME}: {} {kind}, {}-byte messages, {} connection(s) x {} in flight: {secs:.2} s timed (+{:.2} s warm-up)",
            c.url,
            c.size,
            c.connections,
            c.window,
            c.warmup.as_secs_f64()
        );
        println!(
            "  {rate:.0} msg/s, {mb:.2} MB/s echoed; {} echoes timed, {} in all; {} mismatches, {} lost: {}",
            r.timed,
            r.echoed,
            r.mismatches,
            r.lost,
            if ok { "OK" } else { "FAILED" }
        );
        println!(
            "RESULT name={} mode=tp kind={kind} size={} conns={} window={} secs={secs:.2} msgs_per_s={rate:.0} mb_per_s={mb:.2} echoed={} mismatches={} lost={} conn_errors={conn_errors} status={}",
            bench::result_value(&c.name),
            c.size,
            c.connections,
            c.window,
            r.echoed,
            r.mismatches,
            r.lost,
            if ok { "ok" } else { "FAIL" },
        );
    }
    ok
}
