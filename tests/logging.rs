//! lws's own log lines reach the `log` crate (target `lws`), without lws's
//! timestamp, a line about one of our connections names it by id, and
//! `set_lws_log_level` switches lws's verbosity at run time. One test: the
//! logger and lws's switch are per process.

mod util;

use lws::{Callbacks, Context, ContextOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Mutex;

static LINES: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        if record.target() == "lws" {
            let line = record.args().to_string();
            LINES.lock().unwrap().push((record.level(), line));
        }
    }
    fn flush(&self) {}
}

fn take_lines() -> Vec<(log::Level, String)> {
    std::mem::take(&mut *LINES.lock().unwrap())
}

/// A server that answers one upgrade with a wrong Sec-WebSocket-Accept.
fn wrong_accept_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
            line.clear();
        }
        let _ = reader.get_mut().write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
              Connection: Upgrade\r\nSec-WebSocket-Accept: bm90IHRoZSByaWdodCBvbmU=\r\n\r\n",
        );
        // Held open until the client gives up.
        let _ = std::io::Read::read(reader.get_mut(), &mut [0u8; 64]);
    });
    port
}

/// Connects our client to a wrong-accept server; returns its connection id
/// once the connect has failed.
fn failed_connect() -> u64 {
    let port = wrong_accept_server();
    let cx = Context::new(ContextOptions::default()).unwrap();
    let stop = cx.handle();
    let stop2 = cx.handle();
    let callbacks = Callbacks::new()
        .on_error(move |_, _| stop.stop().unwrap())
        .on_close(move |_, _, _| stop2.stop().unwrap());
    let conn = cx
        .connect(util::connect_options(util::url(port)), callbacks)
        .unwrap();
    cx.run().unwrap();
    conn.id()
}

#[test]
fn lws_lines_go_through_log_named_by_connection_and_switchable() {
    let _wd = util::watchdog("logging", 60);
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Trace);

    // Default: warnings and errors only, so no notice from context creation.
    drop(Context::new(ContextOptions::default()).unwrap());
    let lines = take_lines();
    assert!(
        !lines.iter().any(|(_, l)| l.contains("lws_create_context")),
        "notices at the default level: {lines:?}"
    );

    // lws warns about the wrong accept, naming its wsi; we name the
    // connection. No lws timestamp or level letter in front.
    let id = failed_connect();
    let lines = take_lines();
    let warning = lines
        .iter()
        .find(|(level, l)| *level == log::Level::Warn && l.contains("accept"))
        .unwrap_or_else(|| panic!("no warning about the accept key in {lines:?}"));
    assert!(
        warning.1.starts_with(&format!("conn {id}: [wsicli|")),
        "{warning:?} should name connection {id}"
    );

    // Info: notices are produced, as info lines.
    lws::set_lws_log_level(log::LevelFilter::Info);
    drop(Context::new(ContextOptions::default()).unwrap());
    let lines = take_lines();
    let notice = lines
        .iter()
        .find(|(_, l)| l.starts_with("lws_create_context: LWS: 4.3.5"))
        .unwrap_or_else(|| panic!("no creation notice in {lines:?}"));
    assert_eq!(notice.0, log::Level::Info);

    // Off: lws says nothing, even about the wrong accept.
    lws::set_lws_log_level(log::LevelFilter::Off);
    failed_connect();
    let lines = take_lines();
    assert!(lines.is_empty(), "lws lines while off: {lines:?}");
    lws::set_lws_log_level(log::LevelFilter::Warn);
}
