//! Echo client for the Autobahn TestSuite's `wstest -m fuzzingserver`
//! (autobahn/run.sh drives it). It asks the fuzzing server how many cases
//! there are (`/getCaseCount`), runs each case as an echo client
//! (`/runCase?case=N&agent=NAME`), one at a time, then has the server write
//! its reports (`/updateReports?agent=NAME`). Everything runs on one
//! [`Context`] driven by a small state machine: each connection's callbacks
//! only record what happened; the loop starts the next step.
//!
//! Run me with: `cargo run --release --example autobahn_client -- ws://127.0.0.1:9001 [--agent NAME]`
//!
//! Exits non-zero when the cases could not be run: the case count could not
//! be read, a case could not connect or timed out, or the reports could not
//! be updated. How each case went is for the fuzzing server to judge.

use lws::{Callbacks, CloseCode, ConnectOptions, Connection, Context, ContextOptions, Proxy};
use mio::{Events, Poll};
use std::cell::RefCell;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: autobahn_client ws://HOST:PORT [--agent NAME]";

/// Largest message accepted; Autobahn's biggest is 16 MiB (9.1.6, 9.2.6).
const MAX_MESSAGE_SIZE: usize = 64 << 20;
/// Longest any one step may take; the slowest case (9.x with 16 MiB
/// messages, or the 6.4.x timing cases) takes seconds.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest one wait for events, so the step deadline is checked.
const TICK: Duration = Duration::from_millis(200);

/// What the client is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Reading the number of cases from /getCaseCount.
    Count,
    /// Running case N (1-based) of the total.
    Case(u32, u32),
    /// Asking the server to write its reports.
    Reports,
}

/// What the current step's connection reported (its callbacks write here).
#[derive(Default)]
struct Outcome {
    /// The connection has ended (closed or failed).
    done: bool,
    /// `on_error`: it never connected.
    error: Option<String>,
    /// The text that /getCaseCount sent.
    text: Option<String>,
}

type Shared = Rc<RefCell<Outcome>>;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(base) = args.next().filter(|a| !a.starts_with('-')) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let base = base.trim_end_matches('/').to_string();
    let mut agent = String::from("lws-rs");
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--agent", Some(v)) if !v.is_empty() => agent = v,
            _ => {
                eprintln!("autobahn_client: bad argument {arg:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    match run(&base, &agent) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("autobahn_client: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(base: &str, agent: &str) -> Result<(), String> {
    let mut poll = Poll::new().map_err(|e| format!("mio: {e}"))?;
    let cx = Context::embedded(poll.registry(), ContextOptions::default())
        .map_err(|e| format!("context: {e}"))?;
    let agent_q = query_escape(agent);
    let started = Instant::now();
    let mut problems: Vec<String> = Vec::new();
    let mut events = Events::with_capacity(256);

    let mut step = Step::Count;
    let (mut outcome, mut conn) = start(&cx, &format!("{base}/getCaseCount"), step)?;
    let mut deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let wait = cx.poll_timeout().map_or(TICK, |t| t.min(TICK));
        if let Err(e) = poll.poll(&mut events, Some(wait)) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("poll: {e}"));
            }
        }
        cx.handle_events(&events);

        let finished = outcome.borrow().done;
        if !finished {
            if Instant::now() < deadline {
                continue;
            }
            // A hung step: give up on it (lws's close timeout ends the
            // connection) and go on, so the reports still get written.
            let why = format!("{step:?} timed out after {} s", STEP_TIMEOUT.as_secs());
            eprintln!("autobahn_client: {why}");
            conn.close(CloseCode::AWAY, "timeout");
            if step == Step::Count || step == Step::Reports {
                return Err(why);
            }
            problems.push(why);
        }
        let result = std::mem::take(&mut *outcome.borrow_mut());

        step = match step {
            Step::Count => {
                if let Some(e) = result.error {
                    return Err(format!("{base}/getCaseCount: {e}"));
                }
                let text = result.text.unwrap_or_default();
                let total: u32 = text.trim().parse().map_err(|_| {
                    format!("{base}/getCaseCount sent {text:?}, not a number of cases")
                })?;
                println!("autobahn_client: {total} cases, agent {agent}");
                if total == 0 {
                    Step::Reports
                } else {
                    Step::Case(1, total)
                }
            }
            Step::Case(n, total) => {
                if let Some(e) = result.error {
                    let why = format!("case {n}: {e}");
                    eprintln!("autobahn_client: {why}");
                    problems.push(why);
                }
                if n % 50 == 0 {
                    println!(
                        "autobahn_client: {n} of {total} cases in {:.1} s",
                        started.elapsed().as_secs_f64()
                    );
                }
                if n < total {
                    Step::Case(n + 1, total)
                } else {
                    Step::Reports
                }
            }
            Step::Reports => {
                if let Some(e) = result.error {
                    return Err(format!("{base}/updateReports: {e}"));
                }
                break;
            }
        };
        let url = match step {
            Step::Case(n, _) => format!("{base}/runCase?case={n}&agent={agent_q}"),
            _ => format!("{base}/updateReports?agent={agent_q}"),
        };
        (outcome, conn) = start(&cx, &url, step)?;
        deadline = Instant::now() + STEP_TIMEOUT;
    }
    println!(
        "autobahn_client: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} case(s) could not be run: {}",
            problems.len(),
            problems.join("; ")
        ))
    }
}

/// Connects to `url` for `step`; its callbacks fill the returned outcome.
fn start(cx: &Context, url: &str, step: Step) -> Result<(Shared, Connection), String> {
    let outcome: Shared = Rc::default();
    let (o1, o2, o3) = (outcome.clone(), outcome.clone(), outcome.clone());
    let callbacks = Callbacks::new()
        .on_message(move |conn, msg| match step {
            // The test cases: echo everything, as received.
            Step::Case(..) => {
                let _ = conn.send(msg);
            }
            Step::Count => {
                o1.borrow_mut().text = Some(String::from_utf8_lossy(msg.as_bytes()).into());
            }
            Step::Reports => {}
        })
        .on_close(move |_, _, _| o2.borrow_mut().done = true)
        .on_error(move |_, e| {
            let mut o = o3.borrow_mut();
            o.error = Some(e.to_string());
            o.done = true;
        });
    let mut options = ConnectOptions::new(url);
    options.max_message_size = MAX_MESSAGE_SIZE;
    options.connect_timeout = Some(Duration::from_secs(10));
    // The fuzzing server is on this machine: never through a proxy.
    options.proxy = Proxy::None;
    // No pings of our own: wstest compares the exact events of each case.
    options.keepalive = None;
    // deflate: offered on every case; wstest's fuzzing server accepts it
    // only in 12.* and 13.* (the others run uncompressed, as without it).
    options.deflate = Some(lws::Deflate::default());
    let conn = cx
        .connect(options, callbacks)
        .map_err(|e| format!("{url}: {e}"))?;
    Ok((outcome, conn))
}

/// `s` escaped for a URL query value.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
