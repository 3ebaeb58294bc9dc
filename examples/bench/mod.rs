//! Pieces the benchmark clients (examples/latency.rs, examples/throughput.rs)
//! share: command-line values, checkable payloads, output formatting and a
//! progress line.
#![allow(dead_code)] // each example uses a part

use lws::{ConnectOptions, Proxy};
use std::io::{IsTerminal, Write};
use std::str::FromStr;
use std::time::Duration;

/// Largest `--size` accepted: every message in flight is held (queued by
/// the sender, reassembled by the receiver), so bigger ones only exhaust
/// memory.
pub const MAX_SIZE: usize = 64 << 20;

/// The value after `flag`, parsed; `Err` says what is wrong with it.
pub fn value<T: FromStr>(flag: &str, value: Option<String>) -> Result<T, String> {
    let Some(v) = value else {
        return Err(format!("{flag} needs a value"));
    };
    v.parse().map_err(|_| format!("bad value {v:?} for {flag}"))
}

/// A number of seconds from the command line, as a Duration: finite, not
/// negative, at most a day (so `Duration::from_secs_f64` cannot panic).
pub fn seconds(flag: &str, v: f64) -> Result<Duration, String> {
    if v.is_finite() && (0.0..=86_400.0).contains(&v) {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(format!("{flag} must be between 0 and 86400 seconds"))
    }
}

/// `url` is a ws:// or wss:// URL with something after the scheme (lws's
/// own parser says the rest when connecting).
pub fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"));
    match rest {
        Some(r) if !r.is_empty() => Ok(()),
        _ => Err(format!("{url:?} is not a ws:// or wss:// URL")),
    }
}

/// Connect options a benchmark wants: direct (never through a proxy from
/// the environment), no keepalive pings mixed into the traffic, a bounded
/// connect, `--insecure` turning off certificate checks, and echoes bigger
/// than twice what was sent refused (a broken server cannot eat memory).
pub fn connect_options(url: &str, size: usize, insecure: bool) -> ConnectOptions {
    let mut options = ConnectOptions::new(url);
    options.proxy = Proxy::None;
    options.keepalive = None;
    options.connect_timeout = Some(Duration::from_secs(10));
    options.tls.verify = !insecure;
    options.max_message_size = size.saturating_mul(2).max(4096);
    options
}

/// Message `seq` of connection `conn`, `size` bytes, into `buf`.
///
/// Binary: the first 8 bytes are `seq` (little-endian), the rest a pattern
/// of `(conn, seq, position)`. Text (ASCII, so valid UTF-8): `seq` as 16
/// hex digits, then letters from the same pattern. A shorter message holds
/// the start of that. An echo that comes back from another message or
/// another connection, or with any byte changed, differs from it.
pub fn fill(buf: &mut Vec<u8>, conn: usize, seq: u64, size: usize, text: bool) {
    buf.clear();
    buf.reserve(size);
    let head: [u8; 16] = if text {
        let mut h = [0u8; 16];
        for (i, b) in h.iter_mut().enumerate() {
            *b = b"0123456789abcdef"[((seq >> (60 - 4 * i)) & 0xf) as usize];
        }
        h
    } else {
        let mut h = [0u8; 16];
        h[..8].copy_from_slice(&seq.to_le_bytes());
        h
    };
    let head_len = if text { 16 } else { 8 };
    let n = size.min(head_len);
    buf.extend_from_slice(&head[..n]);
    let base = (seq as usize)
        .wrapping_mul(131)
        .wrapping_add(conn.wrapping_mul(8191));
    for j in n..size {
        let p = base.wrapping_add(j.wrapping_mul(7)) % 251;
        buf.push(if text { b'a' + (p % 26) as u8 } else { p as u8 });
    }
}

/// `got` is exactly message `seq` of `conn` (built into `scratch`).
pub fn matches(
    scratch: &mut Vec<u8>,
    got: &[u8],
    conn: usize,
    seq: u64,
    size: usize,
    text: bool,
) -> bool {
    if got.len() != size {
        return false;
    }
    fill(scratch, conn, seq, size, text);
    got == scratch.as_slice()
}

/// Nanoseconds as microseconds, one decimal.
pub fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1e3)
}

/// `s` as a JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON array of strings.
pub fn json_list(items: &[String]) -> String {
    let parts: Vec<String> = items.iter().map(|s| json_str(s)).collect();
    format!("[{}]", parts.join(","))
}

/// A value for a `RESULT key=value` line: no spaces (the harness splits
/// on them).
pub fn result_value(s: &str) -> String {
    let v: String = s
        .chars()
        .map(|c| {
            if c.is_whitespace() || c == '=' {
                '_'
            } else {
                c
            }
        })
        .collect();
    if v.is_empty() {
        "-".into()
    } else {
        v
    }
}

/// One line on stderr, rewritten in place (`\r`), only when stderr is a
/// terminal; callers update it a few times a second (from a timer).
pub struct Progress {
    enabled: bool,
    shown: bool,
}

impl Progress {
    pub fn new() -> Self {
        Progress {
            enabled: std::io::stderr().is_terminal(),
            shown: false,
        }
    }

    pub fn show(&mut self, line: &str) {
        if self.enabled {
            let mut err = std::io::stderr().lock();
            // \x1b[K clears what a longer earlier line left.
            let _ = write!(err, "\r{line}\x1b[K");
            let _ = err.flush();
            self.shown = true;
        }
    }

    /// Removes the line, before the results are printed.
    pub fn clear(&mut self) {
        if self.shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
            self.shown = false;
        }
    }
}
