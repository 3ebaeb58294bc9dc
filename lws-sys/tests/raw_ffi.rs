//! The raw bindings drive a real libwebsockets: version, a listening vhost on
//! an OS-chosen port, and one WebSocket text message round-tripped between a
//! raw-FFI client and server on 127.0.0.1, served by lws's own poll loop.
//! CI also runs this file under valgrind memcheck (context destruction must
//! leave no leaks).

use lws_sys::*;
use std::ffi::{c_void, CStr};
use std::os::raw::{c_char, c_int};
use std::ptr;
use std::time::{Duration, Instant};

const PROTOCOL: &CStr = c"lws-sys-test";
const MESSAGE: &[u8] = b"hello from the raw bindings";

/// Test state reachable from the callback through lws_context_user().
#[derive(Default)]
struct State {
    /// What the server received and will echo.
    pending_echo: Option<Vec<u8>>,
    /// What the client got back.
    client_received: Option<Vec<u8>>,
    client_sent: bool,
    client_error: Option<String>,
    events: Vec<&'static str>,
}

fn state_of(wsi: *mut lws) -> &'static mut State {
    // SAFETY: every context in this file is created with user = &mut State,
    // which outlives the context; lws calls back on the test's thread only.
    unsafe { &mut *(lws_context_user(lws_get_context(wsi)) as *mut State) }
}

/// Writes `payload` as one WebSocket message, with the LWS_PRE headroom.
fn write_text(wsi: *mut lws, payload: &[u8]) -> bool {
    let mut buf = vec![0u8; LWS_PRE + payload.len()];
    buf[LWS_PRE..].copy_from_slice(payload);
    // SAFETY: buf has LWS_PRE writable bytes before the payload, as lws_write
    // requires; wsi is the live connection this callback was called for.
    let n = unsafe {
        lws_write(
            wsi,
            buf.as_mut_ptr().add(LWS_PRE),
            payload.len(),
            LWS_WRITE_TEXT,
        )
    };
    n as usize >= payload.len()
}

unsafe extern "C" fn callback(
    wsi: *mut lws,
    reason: lws_callback_reasons,
    _user: *mut c_void,
    input: *mut c_void,
    len: usize,
) -> c_int {
    // Nothing may unwind into C: a panic here becomes an error return.
    std::panic::catch_unwind(|| handle(wsi, reason, input, len)).unwrap_or(-1)
}

fn handle(wsi: *mut lws, reason: lws_callback_reasons, input: *mut c_void, len: usize) -> c_int {
    let bytes = || -> Vec<u8> {
        if input.is_null() {
            return Vec::new();
        }
        // SAFETY: for RECEIVE reasons lws passes `len` valid bytes at `input`.
        unsafe { std::slice::from_raw_parts(input as *const u8, len) }.to_vec()
    };
    match reason {
        LWS_CALLBACK_ESTABLISHED => state_of(wsi).events.push("server established"),
        LWS_CALLBACK_RECEIVE => {
            state_of(wsi).pending_echo = Some(bytes());
            // SAFETY: wsi is live for the duration of this callback.
            unsafe { lws_callback_on_writable(wsi) };
        }
        LWS_CALLBACK_SERVER_WRITEABLE => {
            if let Some(echo) = state_of(wsi).pending_echo.take() {
                if !write_text(wsi, &echo) {
                    return -1;
                }
            }
        }
        LWS_CALLBACK_CLIENT_ESTABLISHED => {
            state_of(wsi).events.push("client established");
            // SAFETY: as above.
            unsafe { lws_callback_on_writable(wsi) };
        }
        LWS_CALLBACK_CLIENT_WRITEABLE => {
            let state = state_of(wsi);
            if !state.client_sent {
                state.client_sent = true;
                if !write_text(wsi, MESSAGE) {
                    return -1;
                }
            }
        }
        LWS_CALLBACK_CLIENT_RECEIVE => {
            let state = state_of(wsi);
            state.client_received = Some(bytes());
            // SAFETY: wsi is live; the status and reason are copied by lws.
            unsafe {
                lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, ptr::null_mut(), 0);
            }
            return -1; // close the client after the echo
        }
        LWS_CALLBACK_CLIENT_CONNECTION_ERROR => {
            let why = if input.is_null() {
                "unknown".to_string()
            } else {
                // SAFETY: lws passes a NUL-terminated error string here.
                unsafe { CStr::from_ptr(input as *const c_char) }
                    .to_string_lossy()
                    .into_owned()
            };
            state_of(wsi).client_error = Some(why);
        }
        LWS_CALLBACK_CLIENT_CLOSED => state_of(wsi).events.push("client closed"),
        LWS_CALLBACK_CLOSED => state_of(wsi).events.push("server closed"),
        _ => {}
    }
    0
}

/// A server context on 127.0.0.1 and an OS-chosen port, with our protocol.
struct TestContext {
    raw: *mut lws_context,
    state: Box<State>,
    _protocols: Box<[lws_protocols; 2]>,
}

impl TestContext {
    fn new() -> Self {
        let mut state = Box::<State>::default();
        let protocols = Box::new([
            lws_protocols {
                name: PROTOCOL.as_ptr(),
                callback: Some(callback),
                rx_buffer_size: 4096,
                ..Default::default()
            },
            lws_protocols::default(), // terminator
        ]);
        let mut info = lws_context_creation_info {
            port: 0, // the OS picks; lws reports it
            iface: c"127.0.0.1".as_ptr(),
            protocols: protocols.as_ptr(),
            user: &mut *state as *mut State as *mut c_void,
            ..Default::default()
        };
        info.options = LWS_SERVER_OPTION_DISABLE_IPV6 as u64;
        // SAFETY: info and everything it points to outlive this call; lws
        // copies what it keeps except protocols and user, which we own.
        let raw = unsafe { lws_create_context(&info) };
        assert!(!raw.is_null(), "lws_create_context failed");
        TestContext {
            raw,
            state,
            _protocols: protocols,
        }
    }

    fn port(&self) -> c_int {
        // SAFETY: raw is a live context; its default vhost exists.
        unsafe { lws_get_vhost_listen_port(lws_get_vhost_by_name(self.raw, c"default".as_ptr())) }
    }

    fn service_until(&mut self, deadline: Duration, mut done: impl FnMut(&State) -> bool) {
        let start = Instant::now();
        while !done(&self.state) {
            assert!(
                start.elapsed() < deadline,
                "timed out; events so far: {:?}",
                self.state.events
            );
            // SAFETY: raw is a live context, serviced from its own thread.
            unsafe { lws_service(self.raw, 0) };
        }
    }
}

impl Drop for TestContext {
    fn drop(&mut self) {
        // SAFETY: raw came from lws_create_context and is destroyed once.
        unsafe { lws_context_destroy(self.raw) };
    }
}

fn quiet_logs() {
    // SAFETY: sets a global log mask; no callback pointer involved.
    unsafe { lws_set_log_level((LLL_ERR | LLL_WARN) as c_int, None) };
}

#[test]
fn library_version_is_4_3_5() {
    // SAFETY: returns a pointer to a static NUL-terminated string.
    let version = unsafe { CStr::from_ptr(lws_get_library_version()) };
    let version = version.to_str().expect("version is UTF-8");
    assert!(version.starts_with("4.3.5"), "got {version:?}");
}

#[test]
fn vhost_on_port_zero_reports_its_real_port() {
    quiet_logs();
    let cx = TestContext::new();
    let port = cx.port();
    assert!(port > 0, "listen port {port}");
    // The port is really ours: connecting to it succeeds.
    std::net::TcpStream::connect(("127.0.0.1", port as u16)).expect("connect to the vhost");
}

#[test]
fn text_message_round_trips_between_raw_client_and_server() {
    quiet_logs();
    let mut cx = TestContext::new();
    let port = cx.port();

    let mut client = ptr::null_mut();
    let info = lws_client_connect_info {
        context: cx.raw,
        address: c"127.0.0.1".as_ptr(),
        port,
        path: c"/".as_ptr(),
        host: c"127.0.0.1".as_ptr(),
        origin: c"127.0.0.1".as_ptr(),
        protocol: PROTOCOL.as_ptr(),
        ietf_version_or_minus_one: -1,
        pwsi: &mut client,
        ..Default::default()
    };
    // SAFETY: info and the strings it points to outlive the call.
    let wsi = unsafe { lws_client_connect_via_info(&info) };
    assert!(!wsi.is_null(), "lws_client_connect_via_info failed");

    cx.service_until(Duration::from_secs(10), |s| {
        s.client_error.is_some() || s.events.contains(&"client closed")
    });
    assert_eq!(cx.state.client_error, None);
    assert_eq!(cx.state.client_received.as_deref(), Some(MESSAGE));
    assert!(cx.state.events.contains(&"server established"));
    // The server side sees the close too.
    cx.service_until(Duration::from_secs(5), |s| {
        s.events.contains(&"server closed")
    });
}
