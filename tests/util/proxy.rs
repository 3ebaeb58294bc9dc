//! A tiny HTTP CONNECT proxy on 127.0.0.1 for tests of proxied client
//! connections. It tunnels only to loopback targets and records what each
//! CONNECT asked for.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Upper bound on a request head, so a client that never sends the blank
/// line cannot make the proxy buffer without limit.
const MAX_HEAD: usize = 16 * 1024;
/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// One CONNECT request as received.
struct Seen {
    target: String,
    proxy_authorization: Option<String>,
}

/// An HTTP CONNECT proxy listening on 127.0.0.1 with its own accept thread.
/// Each client gets its own thread; tunnels outlive the proxy's drop and end
/// when their peers close. Stopped (no longer accepting) on drop.
pub struct ConnectProxy {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    accept_thread: Option<JoinHandle<()>>,
}

impl ConnectProxy {
    /// Binds 127.0.0.1 on a free port and starts accepting.
    pub fn start() -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let accept_thread = {
            let seen = Arc::clone(&seen);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || accept_loop(listener, &seen, &stop))
        };
        ConnectProxy {
            port,
            seen,
            stop,
            accept_thread: Some(accept_thread),
        }
    }

    /// The port the proxy listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The proxy's address as `"127.0.0.1:PORT"`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The target of every well-formed CONNECT seen so far (as written in
    /// the request line, e.g. `"127.0.0.1:4567"`), in arrival order,
    /// including ones then refused. A CONNECT is recorded before its answer
    /// is sent, so once a client has read the answer it is listed here.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.seen).iter().map(|s| s.target.clone()).collect()
    }

    /// The `Proxy-Authorization` header value of each entry of
    /// [`requests`](Self::requests) (e.g. `"Basic dXNlcjpwYXNz"`), `None`
    /// where the header was absent.
    pub fn basic_auth(&self) -> Vec<Option<String>> {
        lock(&self.seen)
            .iter()
            .map(|s| s.proxy_authorization.clone())
            .collect()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // accept() has no timeout: a connection of our own wakes it up to
        // see the flag. If even that fails, leave the thread rather than
        // hang the test in join().
        let woke = TcpStream::connect(("127.0.0.1", self.port)).is_ok();
        if let Some(thread) = self.accept_thread.take() {
            if woke {
                let _ = thread.join();
            }
        }
    }
}

/// Tolerates poisoning: a panicked client thread must not hide what was
/// recorded from the test.
fn lock(seen: &Mutex<Vec<Seen>>) -> MutexGuard<'_, Vec<Seen>> {
    seen.lock().unwrap_or_else(PoisonError::into_inner)
}

fn accept_loop(listener: TcpListener, seen: &Arc<Mutex<Vec<Seen>>>, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        match conn {
            Ok(client) => {
                let seen = Arc::clone(seen);
                std::thread::spawn(move || serve(client, &seen));
            }
            // E.g. out of descriptors: back off instead of spinning.
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Handles one client: reads its CONNECT, answers, then tunnels.
fn serve(mut client: TcpStream, seen: &Mutex<Vec<Seen>>) {
    let _ = client.set_read_timeout(Some(HEAD_TIMEOUT));
    let Some((head, rest)) = read_head(&mut client) else {
        // Oversized head: answered. Timeout or early EOF: nobody to answer.
        return;
    };
    let head = String::from_utf8_lossy(&head);
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    if method != Some("CONNECT") {
        return refuse(client, "405 Method Not Allowed");
    }
    let well_formed = parts.next().is_none()
        && version.is_some_and(|v| v.starts_with("HTTP/1."))
        && target.is_some_and(|t| split_target(t).is_some());
    let (Some(target), true) = (target, well_formed) else {
        return refuse(client, "400 Bad Request");
    };
    let proxy_authorization = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("proxy-authorization")
            .then(|| value.trim().to_string())
    });
    lock(seen).push(Seen {
        target: target.to_string(),
        proxy_authorization,
    });

    let Some(addrs) = loopback_addrs(target) else {
        return refuse(client, "403 Forbidden");
    };
    let Ok(mut upstream) = TcpStream::connect(&addrs[..]) else {
        return refuse(client, "502 Bad Gateway");
    };
    // Tunnels carry interactive traffic; don't let Nagle add latency.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    // An open tunnel may idle for as long as the test likes.
    let _ = client.set_read_timeout(None);
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .is_err()
        || upstream.write_all(&rest).is_err()
    {
        return;
    }
    tunnel(client, upstream);
}

/// Reads up to and including the blank line ending the request head.
/// Returns the head without the blank line and any bytes read past it.
/// `None` on timeout, error, EOF, or an oversized head (answered with 400).
fn read_head(client: &mut TcpStream) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match client.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        };
        // Resume the search a little before the new bytes: the terminator
        // may straddle two reads.
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            let end = from + i;
            if end > MAX_HEAD {
                break;
            }
            let rest = buf.split_off(end + 4);
            buf.truncate(end);
            return Some((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            break;
        }
    }
    refuse(client.try_clone().ok()?, "400 Bad Request");
    None
}

/// Splits `host:port` (IPv6 hosts in brackets) into host and port.
fn split_target(target: &str) -> Option<(&str, u16)> {
    let (host, port) = match target.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed.split_once(']')?;
            (host, after.strip_prefix(':')?)
        }
        None => {
            let (host, port) = target.rsplit_once(':')?;
            // An unbracketed IPv6 address is ambiguous: refuse it.
            if host.contains(':') {
                return None;
            }
            (host, port)
        }
    };
    let port = port.parse().ok().filter(|&p| p != 0)?;
    (!host.is_empty()).then_some((host, port))
}

/// The addresses to try for `target`, or `None` unless its host is
/// `127.0.0.1`, `::1` or `localhost`: tests must never reach past loopback.
fn loopback_addrs(target: &str) -> Option<Vec<SocketAddr>> {
    let (host, port) = split_target(target)?;
    if !matches!(host, "127.0.0.1" | "::1") && !host.eq_ignore_ascii_case("localhost") {
        return None;
    }
    // "localhost" is resolved by the system; keep only loopback answers.
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .ok()?
        .filter(|a| a.ip().is_loopback())
        .collect();
    (!addrs.is_empty()).then_some(addrs)
}

/// Answers with an empty response of `status` and closes.
fn refuse(mut client: TcpStream, status: &str) {
    let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
    if client.write_all(answer.as_bytes()).is_ok() {
        let _ = client.shutdown(Shutdown::Write);
        // Closing with unread input would send a reset, which can destroy
        // the answer before the client reads it: drain a little first.
        let _ = client.set_read_timeout(Some(Duration::from_secs(1)));
        let _ = io::copy(&mut (&client).take(64 * 1024), &mut io::sink());
    }
}

/// Copies both ways until both directions are done. A clean EOF is passed
/// on as a half-close; an error closes both sockets fully so the other
/// direction's thread ends too.
fn tunnel(client: TcpStream, upstream: TcpStream) {
    let (Ok(client2), Ok(upstream2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || pump(client2, upstream2));
    pump(upstream, client);
    let _ = up.join();
}

/// Copies `from` to `to` until EOF or error.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    match io::copy(&mut from, &mut to) {
        Ok(_) => {
            let _ = to.shutdown(Shutdown::Write);
        }
        Err(_) => {
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        }
    }
}
