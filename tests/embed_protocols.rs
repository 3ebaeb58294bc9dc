//! Rust protocols on an lws context made the way a C service makes one
//! (plain `lws_create_context` with its own protocol list, lws's own poll
//! loop via `lws_service`), in this process so valgrind sees our side:
//! the safe API's EmbeddedProtocol (echo, close, a Handle from another
//! thread, refusals of what needs our loop) and the low-level layer's
//! echo written like an lws C callback.

mod util;

use lws::embed::{EmbedOptions, EmbeddedProtocol};
use lws::raw::{Action, RawProtocol, Reason, WriteError, WriteKind};
use lws::sys;
use lws::{Callbacks, CloseCode, ListenOptions};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

/// What the service thread reports.
enum Report {
    Port(u16),
    Handle(lws::Handle),
    Connected(u64, bool),
    Closed(u16, String),
    RawClosed { established: bool },
    WriteOutsideWriteable(WriteError),
}

/// The low-level echo, as its C callback's switch reads.
#[derive(Default)]
struct Session {
    rx: Vec<u8>,
    queue: std::collections::VecDeque<(Vec<u8>, bool)>,
}

fn raw_echo(tx: mpsc::Sender<Report>) -> RawProtocol {
    RawProtocol::with_session::<Session>("raw-echo", 0, move |wsi, reason, args| {
        match reason {
            // case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
            Reason::FilterProtocolConnection => {
                let asked = args.text().map(|t| t.to_string_lossy().into_owned());
                if asked.is_some_and(|t| t.contains("refuse-me")) {
                    return Action::Value(1); // lws hangs up
                }
            }
            // case LWS_CALLBACK_RECEIVE:
            Reason::Receive => {
                let binary = wsi.frame_is_binary();
                let end = wsi.is_message_end();
                if let Err(e) = wsi.write(b"nope", WriteKind::Text) {
                    let _ = tx.send(Report::WriteOutsideWriteable(e));
                }
                let s = wsi
                    .session::<Session>()
                    .expect("a session after ESTABLISHED");
                s.rx.extend_from_slice(args.data());
                if end {
                    let message = std::mem::take(&mut s.rx);
                    if message.starts_with(b"close") {
                        return wsi.close(4100, b"raw close");
                    }
                    s.queue.push_back((message, binary));
                    wsi.callback_on_writable();
                }
            }
            // case LWS_CALLBACK_SERVER_WRITEABLE:
            Reason::ServerWriteable => {
                let s = wsi.session::<Session>().expect("a session");
                let Some((message, binary)) = s.queue.pop_front() else {
                    return Action::Continue;
                };
                let more = !s.queue.is_empty();
                let kind = if binary {
                    WriteKind::Binary
                } else {
                    WriteKind::Text
                };
                if wsi.write(&message, kind).is_err() {
                    return Action::Close;
                }
                if more {
                    wsi.callback_on_writable();
                }
            }
            // case LWS_CALLBACK_CLOSED:
            Reason::Closed => {
                let established = wsi.session::<Session>().is_some();
                let _ = tx.send(Report::RawClosed { established });
            }
            _ => {}
        }
        Action::Continue
    })
    .expect("raw protocol")
}

fn safe_echo(tx: mpsc::Sender<Report>) -> EmbeddedProtocol {
    let on_connect = tx.clone();
    let callbacks = Callbacks::new()
        .on_origin(|origin| origin != Some("https://refused.example"))
        .on_connect(move |conn, _| {
            // What needs our own loop is refused on a C-owned context.
            let refused = conn
                .context()
                .listen(ListenOptions::new(0), Callbacks::new())
                .is_err();
            let _ = on_connect.send(Report::Connected(conn.id(), refused));
        })
        .on_message(|conn, msg| {
            if let lws::Message::Text(t) = &msg {
                if t == "close" {
                    conn.close(CloseCode(4000), "asked to");
                    return;
                }
                if t == "panic" {
                    panic!("on_message panics on purpose");
                }
            }
            let _ = conn.send(msg);
        })
        .on_close(move |_, code, reason| {
            let _ = tx.send(Report::Closed(code.0, reason.to_owned()));
        });
    EmbeddedProtocol::new("safe-echo", EmbedOptions::default(), callbacks).expect("protocol")
}

/// The "C service": its own context, its own list with a C-style first
/// protocol, lws's own loop; until `stop`.
fn service(tx: mpsc::Sender<Report>, stop: Arc<AtomicBool>, cx_out: Arc<Mutex<usize>>) {
    let raw = raw_echo(tx.clone());
    let safe = safe_echo(tx.clone());
    tx.send(Report::Handle(safe.handle())).unwrap();
    let first = sys::lws_protocols {
        name: c"http".as_ptr(),
        callback: Some(sys::lws_callback_http_dummy),
        per_session_data_size: 0,
        rx_buffer_size: 0,
        id: 0,
        user: std::ptr::null_mut(),
        tx_packet_size: 0,
    };
    let end = sys::lws_protocols {
        name: std::ptr::null(),
        callback: None,
        ..first
    };
    let protocols = [first, safe.entry(), raw.entry(), end];
    // SAFETY: sets lws's global log mask, as a C service's main would.
    unsafe { sys::lws_set_log_level(sys::LLL_ERR as i32, None) };
    let info = sys::lws_context_creation_info {
        port: 0,
        iface: c"127.0.0.1".as_ptr(),
        protocols: protocols.as_ptr(),
        options: sys::LWS_SERVER_OPTION_VALIDATE_UTF8 as u64,
        ..Default::default()
    };
    // SAFETY: info and the protocol list (and the entries' owners) outlive
    // the context, destroyed below before they are dropped.
    let cx = unsafe { sys::lws_create_context(&info) };
    assert!(!cx.is_null(), "lws_create_context");
    *cx_out.lock().unwrap() = cx as usize;
    // SAFETY: cx is live; "default" is the vhost lws made from info.
    let port = unsafe {
        let vh = sys::lws_get_vhost_by_name(cx, c"default".as_ptr());
        sys::lws_get_vhost_listen_port(vh)
    };
    tx.send(Report::Port(port as u16)).unwrap();
    while !stop.load(Ordering::SeqCst) {
        // SAFETY: cx is live; this thread is its service thread.
        if unsafe { sys::lws_service(cx, 0) } < 0 {
            break;
        }
    }
    // Other threads stop waking it first (they wake it under this lock).
    *cx_out.lock().unwrap() = 0;
    // SAFETY: destroyed once, on its thread; the entries are still alive.
    unsafe { sys::lws_context_destroy(cx) };
    drop((raw, safe));
}

struct Service {
    stop: Arc<AtomicBool>,
    cx: Arc<Mutex<usize>>,
    thread: Option<std::thread::JoinHandle<()>>,
    reports: mpsc::Receiver<Report>,
    handle: lws::Handle,
    port: u16,
}

impl Service {
    fn start() -> Service {
        let (tx, reports) = mpsc::channel();
        let cx = Arc::new(Mutex::new(0));
        let cx_out = cx.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || service(tx, flag, cx_out));
        let Ok(Report::Handle(handle)) = reports.recv() else {
            panic!("no handle")
        };
        let Ok(Report::Port(port)) = reports.recv() else {
            panic!("no port")
        };
        Service {
            stop,
            cx,
            thread: Some(thread),
            reports,
            handle,
            port,
        }
    }

    fn next(&self) -> Report {
        let wait = if util::under_valgrind() { 200 } else { 20 };
        self.reports
            .recv_timeout(Duration::from_secs(wait))
            .expect("a report from the service")
    }

    fn client(&self, protocol: &str) -> WebSocket<TcpStream> {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let wait = if util::under_valgrind() { 200 } else { 20 };
        stream
            .set_read_timeout(Some(Duration::from_secs(wait)))
            .unwrap();
        let mut request = util::url(self.port).into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
        let (ws, response) = tungstenite::client(request, stream).expect("handshake");
        assert_eq!(
            response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some(protocol)
        );
        ws
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let cx = self.cx.lock().unwrap_or_else(|e| e.into_inner());
        if *cx != 0 {
            // SAFETY: non-zero under the lock: the service thread has not
            // started destroying the context (it zeroes it first, under
            // the lock); lws_cancel_service is safe from any thread.
            unsafe { sys::lws_cancel_service(*cx as *mut sys::lws_context) };
        }
        drop(cx);
        if let Some(t) = self.thread.take() {
            let r = t.join();
            if !std::thread::panicking() {
                r.expect("service thread");
            }
        }
    }
}

fn echo(ws: &mut WebSocket<TcpStream>, m: Message) {
    ws.send(m.clone()).unwrap();
    assert_eq!(ws.read().unwrap(), m);
}

#[test]
fn the_safe_api_serves_on_a_c_owned_context() {
    let _wd = util::watchdog("the_safe_api_serves_on_a_c_owned_context", 60);
    let service = Service::start();
    let mut ws = service.client("safe-echo");
    let Report::Connected(id, refused) = service.next() else {
        panic!("expected on_connect")
    };
    assert!(refused, "listen() on a C-owned context must be refused");
    // Fragmented on the wire, whole in on_message.
    for size in [0, 1, 125, 126, 65536, 300_000] {
        echo(&mut ws, Message::binary(util::payload(size, size)));
    }
    echo(&mut ws, Message::text("héllo"));
    // A panicking callback: caught, the connection goes on.
    ws.send(Message::text("panic")).unwrap();
    echo(&mut ws, Message::text("after the panic"));
    // Another thread sends through the Handle: lws_cancel_service wakes
    // the C loop and our EVENT_WAIT_CANCELLED runs the send.
    service
        .handle
        .send(id, lws::Message::Text("pushed".into()))
        .unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("pushed"));
    // Our close: code and reason reach the client and on_close.
    ws.send(Message::text("close")).unwrap();
    match ws.read().unwrap() {
        Message::Close(Some(f)) => {
            assert_eq!(u16::from(f.code), 4000);
            assert_eq!(f.reason.as_str(), "asked to");
        }
        other => panic!("expected close, got {other:?}"),
    }
    let _ = ws.read(); // the close handshake ends
    let Report::Closed(code, reason) = service.next() else {
        panic!("expected on_close")
    };
    assert_eq!((code, reason.as_str()), (4000, "asked to"));
}

#[test]
fn the_low_level_layer_echoes_like_a_c_callback() {
    let _wd = util::watchdog("the_low_level_layer_echoes_like_a_c_callback", 60);
    let service = Service::start();
    let mut ws = service.client("raw-echo");
    for i in 0..40 {
        let size = (i * 997) % 70_000;
        echo(&mut ws, Message::binary(util::payload(i, size)));
        echo(&mut ws, Message::text("x".repeat(i)));
    }
    // The write rule: a write outside WRITEABLE was refused.
    let Report::WriteOutsideWriteable(e) = service.next() else {
        panic!("expected the refused write")
    };
    assert_eq!(e, WriteError::NotWriteable);
    // Close reason then -1, in one call.
    ws.send(Message::text("close")).unwrap();
    // (A refused write that went out anyway would arrive here as "nope".)
    match ws.read() {
        Ok(Message::Close(Some(f))) => {
            assert_eq!(u16::from(f.code), 4100);
            assert_eq!(f.reason.as_str(), "raw close");
        }
        other => panic!("expected close, got {other:?}"),
    }
    let _ = ws.read();
    loop {
        match service.next() {
            Report::RawClosed { established } => {
                assert!(established);
                break;
            }
            Report::WriteOutsideWriteable(_) => continue,
            _ => panic!("unexpected report"),
        }
    }
}

#[test]
fn closed_arrives_without_a_session_when_the_handshake_never_completed() {
    let _wd = util::watchdog(
        "closed_arrives_without_a_session_when_the_handshake_never_completed",
        60,
    );
    let service = Service::start();
    let stream = TcpStream::connect(("127.0.0.1", service.port)).unwrap();
    let mut request = util::url(service.port).into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "raw-echo, refuse-me".parse().unwrap(),
    );
    assert!(
        tungstenite::client(request, stream).is_err(),
        "FILTER refused: no handshake"
    );
    // lws marks the connection established before FILTER, so CLOSED comes;
    // the closure sees no session there (ESTABLISHED never ran).
    let Report::RawClosed { established } = service.next() else {
        panic!("expected CLOSED")
    };
    assert!(
        !established,
        "a session for a handshake that never completed"
    );
}

#[test]
fn a_refused_handshake_hangs_up_and_reaches_no_callback() {
    let _wd = util::watchdog("a_refused_handshake_hangs_up_and_reaches_no_callback", 60);
    let service = Service::start();
    let stream = TcpStream::connect(("127.0.0.1", service.port)).unwrap();
    let mut request = util::url(service.port).into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("Sec-WebSocket-Protocol", "safe-echo".parse().unwrap());
    headers.insert("Origin", "https://refused.example".parse().unwrap());
    assert!(
        tungstenite::client(request, stream).is_err(),
        "on_origin refused it: lws hangs up at FILTER_PROTOCOL_CONNECTION"
    );
    // The next connection is served, and the refused one reached neither
    // on_connect nor on_close: the first report is the new one's.
    let mut ws = service.client("safe-echo");
    match service.next() {
        Report::Connected(..) => {}
        Report::Closed(code, reason) => panic!("on_close for a refused handshake: {code} {reason}"),
        _ => panic!("unexpected report"),
    }
    echo(&mut ws, Message::text("served"));
}
