//! One context serves several listeners at once (TCP and unix-domain), each
//! with its own handler, and lists them with the addresses `listen`
//! returned (the real port for port 0); `stop_listening` refuses new
//! connects while open connections go on, and `start_listening` accepts on
//! the same address again (which no other listener of the context may
//! take meanwhile); `remove_listener` refuses for good, unlists it and
//! removes its socket file, and its address can be listened on again; no
//! child process keeps a listening socket open; `backlog` (also changed by
//! `configure_listener`) is the kernel's; with `reuse_port` two contexts
//! share one port, without it the second fails.

mod util;

use util::on_loop;

use lws::{Callbacks, Error, ListenAddr, ListenOptions, Listener, ListenerId};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tungstenite::{Message as TMessage, WebSocket};
use util::ServerThread;

/// A directory of its own under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lws-rs-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        // A leftover from an earlier process that had the same pid.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Held while a test spawns a process (`ss`), and by the tests that check
/// a stopped or removed listener refuses connects: a child forked while a
/// listening socket is open holds it until it execs, and the kernel goes
/// on accepting on it meanwhile, even once the listener let go of it.
static FORKS: Mutex<()> = Mutex::new(());

fn no_forks() -> MutexGuard<'static, ()> {
    FORKS.lock().unwrap_or_else(|e| e.into_inner())
}

/// An echo handler that prefixes each echo with `tag` and a colon.
fn tagged(tag: &'static str) -> Callbacks {
    Callbacks::new().on_message(move |conn, msg| {
        let text = String::from_utf8_lossy(msg.as_bytes()).into_owned();
        conn.send_text(&format!("{tag}:{text}")).expect("echo send");
    })
}

fn tcp_addr(port: u16) -> ListenAddr {
    ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// A tungstenite client on 127.0.0.1:`port`; reads time out after 10 s.
fn tcp_client(port: u16) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    tungstenite::client(util::url(port), stream)
        .expect("handshake")
        .0
}

/// A tungstenite client on the unix socket at `path`.
fn unix_client(path: &Path) -> WebSocket<UnixStream> {
    let stream = UnixStream::connect(path).expect("connect to the unix socket");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    tungstenite::client("ws://localhost/", stream)
        .expect("handshake")
        .0
}

/// Sends `text` and returns the text that comes back.
fn echo<S: Read + Write>(ws: &mut WebSocket<S>, text: &str) -> String {
    ws.send(TMessage::text(text)).expect("send");
    loop {
        match ws.read().expect("read the echo") {
            TMessage::Text(t) => return t.to_string(),
            TMessage::Ping(_) | TMessage::Pong(_) => continue,
            other => panic!("expected a text echo of {text:?}, got {other:?}"),
        }
    }
}

/// A TCP connect to `port` must be refused.
fn assert_tcp_refused(port: u16, when: &str) {
    match TcpStream::connect(("127.0.0.1", port)) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{when}: {e}"),
        Ok(_) => panic!("{when}: a connect to port {port} was accepted"),
    }
}

fn assert_unix_refused(path: &Path, kind: ErrorKind, when: &str) {
    match UnixStream::connect(path) {
        Err(e) => assert_eq!(e.kind(), kind, "{when}: {e}"),
        Ok(_) => panic!("{when}: a connect to {} was accepted", path.display()),
    }
}

#[test]
fn three_listeners_serve_at_once_each_with_its_own_handler() {
    let _wd = util::watchdog("three_listeners", 30);
    let dir = TempDir::new("three-listeners");
    let sock = dir.join("ws.sock");
    let s = sock.clone();
    let (server, (returned, listed)) = ServerThread::start(move |cx| {
        let a = cx
            .listen(ListenOptions::new(0), tagged("alpha"))
            .expect("alpha");
        let b = cx
            .listen(ListenOptions::new(0), tagged("beta"))
            .expect("beta");
        let u = cx
            .listen(ListenOptions::unix(&s), tagged("unix"))
            .expect("unix");
        (vec![a, b, u], cx.listeners())
    });
    let [a, b, u] = &returned[..] else {
        unreachable!()
    };
    // Port 0: each reports the port the OS picked.
    assert_ne!(a.port(), 0);
    assert_ne!(b.port(), 0);
    assert_ne!(a.port(), b.port());
    assert_eq!(a.local_addr(), &tcp_addr(a.port()));
    assert_eq!(b.local_addr(), &tcp_addr(b.port()));
    assert_eq!(u.local_addr(), &ListenAddr::Unix(sock.clone()));
    assert_eq!(u.port(), 0);
    let ids: Vec<ListenerId> = returned.iter().map(Listener::id).collect();
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );
    assert_eq!(listed, returned);
    // All three open at once, each answered by its own handler.
    let mut ca = tcp_client(a.port());
    let mut cb = tcp_client(b.port());
    let mut cu = unix_client(&sock);
    for round in 0..3 {
        assert_eq!(
            echo(&mut cu, &format!("u{round}")),
            format!("unix:u{round}")
        );
        assert_eq!(
            echo(&mut cb, &format!("b{round}")),
            format!("beta:b{round}")
        );
        assert_eq!(
            echo(&mut ca, &format!("a{round}")),
            format!("alpha:a{round}")
        );
    }
    // The list is what the loop sees while they serve, too.
    assert_eq!(on_loop(&server, |cx| cx.listeners()), returned);
}

#[test]
fn stop_listening_refuses_new_connects_and_start_listening_accepts_again() {
    let _wd = util::watchdog("stop_start", 30);
    let _no_forks = no_forks();
    let dir = TempDir::new("stop-start");
    let sock = dir.join("ws.sock");
    let s = sock.clone();
    let (server, (tcp, unix)) = ServerThread::start(move |cx| {
        let t = cx
            .listen(ListenOptions::new(0), tagged("tcp"))
            .expect("tcp");
        let u = cx
            .listen(ListenOptions::unix(&s), tagged("unix"))
            .expect("unix");
        (t, u)
    });
    let port = tcp.port();
    let (tid, uid) = (tcp.id(), unix.id());
    let mut before = tcp_client(port);
    let mut before_unix = unix_client(&sock);
    assert_eq!(echo(&mut before, "1"), "tcp:1");
    assert_eq!(echo(&mut before_unix, "1"), "unix:1");

    // Stop the TCP listener: twice, the second is a no-op.
    let (first, listening, second, unix_listening, listed) = on_loop(&server, move |cx| {
        (
            cx.stop_listening(tid),
            cx.is_listening(tid),
            cx.stop_listening(tid),
            cx.is_listening(uid),
            cx.listeners(),
        )
    });
    assert!(first, "stop_listening on a listening listener");
    assert!(!listening, "is_listening after stop_listening");
    assert!(!second, "stop_listening twice must return false");
    assert!(unix_listening, "stopping one listener stopped another");
    assert_eq!(
        listed,
        vec![tcp.clone(), unix.clone()],
        "stopped ones stay listed"
    );
    assert_tcp_refused(port, "after stop_listening");
    assert_tcp_refused(port, "after stop_listening, again");
    // The address stays the stopped listener's: another listener of the
    // context cannot take it.
    let taken = on_loop(&server, move |cx| {
        cx.listen(ListenOptions::new(port), tagged("intruder"))
            .map(|l| l.local_addr().clone())
    });
    assert!(
        matches!(taken, Err(Error::Lws(_))),
        "listening on a stopped listener's port: {taken:?}"
    );
    // The connection made before goes on; the other listener too.
    assert_eq!(echo(&mut before, "2"), "tcp:2");
    assert_eq!(echo(&mut unix_client(&sock), "x"), "unix:x");

    // Start it again: the same port accepts and echoes.
    let (started, listening, again) = on_loop(&server, move |cx| {
        let started = cx.start_listening(tid).map_err(|e| e.to_string());
        let listening = cx.is_listening(tid);
        let again = cx.start_listening(tid).map_err(|e| e.to_string());
        (started, listening, again)
    });
    assert_eq!(started, Ok(true));
    assert!(listening, "is_listening after start_listening");
    assert_eq!(again, Ok(false), "start_listening on a listening listener");
    let mut after = tcp_client(port);
    assert_eq!(echo(&mut after, "3"), "tcp:3");
    assert_eq!(echo(&mut before, "4"), "tcp:4");

    // Same for the unix listener.
    let (first, listening, second) = on_loop(&server, move |cx| {
        (
            cx.stop_listening(uid),
            cx.is_listening(uid),
            cx.stop_listening(uid),
        )
    });
    assert!(
        first && !listening && !second,
        "{first} {listening} {second}"
    );
    assert_unix_refused(
        &sock,
        ErrorKind::ConnectionRefused,
        "unix, after stop_listening",
    );
    assert_eq!(echo(&mut before_unix, "2"), "unix:2");
    assert_eq!(echo(&mut after, "5"), "tcp:5");
    let (started, listening) = on_loop(&server, move |cx| {
        (
            cx.start_listening(uid).map_err(|e| e.to_string()),
            cx.is_listening(uid),
        )
    });
    assert_eq!(started, Ok(true));
    assert!(listening);
    assert_eq!(echo(&mut unix_client(&sock), "y"), "unix:y");
    assert_eq!(echo(&mut before_unix, "3"), "unix:3");

    // Stop and start once more: the listener keeps working through cycles.
    assert!(on_loop(&server, move |cx| cx.stop_listening(tid)));
    assert_tcp_refused(port, "after the second stop_listening");
    let started = on_loop(&server, move |cx| {
        cx.start_listening(tid).map_err(|e| e.to_string())
    });
    assert_eq!(started, Ok(true));
    assert_eq!(echo(&mut tcp_client(port), "6"), "tcp:6");
    assert_eq!(echo(&mut before, "7"), "tcp:7");
}

#[test]
fn remove_listener_refuses_for_good_and_keeps_open_connections() {
    let _wd = util::watchdog("remove_listener", 30);
    let _no_forks = no_forks();
    let dir = TempDir::new("remove-listener");
    let sock = dir.join("ws.sock");
    let s = sock.clone();
    let (server, (tcp, unix, other)) = ServerThread::start(move |cx| {
        let t = cx
            .listen(ListenOptions::new(0), tagged("tcp"))
            .expect("tcp");
        let u = cx
            .listen(ListenOptions::unix(&s), tagged("unix"))
            .expect("unix");
        let o = cx
            .listen(ListenOptions::new(0), tagged("other"))
            .expect("other");
        (t, u, o)
    });
    let port = tcp.port();
    let (tid, uid) = (tcp.id(), unix.id());
    let mut before = tcp_client(port);
    let mut before_unix = unix_client(&sock);
    assert_eq!(echo(&mut before, "1"), "tcp:1");
    assert_eq!(echo(&mut before_unix, "1"), "unix:1");

    #[derive(Debug)]
    struct Seen {
        removed: bool,
        again: bool,
        listening: bool,
        stop: bool,
        start: Result<bool, String>,
        configure: Result<(), String>,
        listed: Vec<Listener>,
    }
    let seen = on_loop(&server, move |cx| Seen {
        removed: cx.remove_listener(tid),
        again: cx.remove_listener(tid),
        listening: cx.is_listening(tid),
        stop: cx.stop_listening(tid),
        start: cx.start_listening(tid).map_err(|e| e.to_string()),
        configure: cx
            .configure_listener(tid, |o| o.max_message_size = 10)
            .map_err(|e| e.to_string()),
        listed: cx.listeners(),
    });
    assert!(seen.removed, "{seen:?}");
    assert!(!seen.again, "removing twice must return false: {seen:?}");
    assert!(!seen.listening, "{seen:?}");
    assert!(!seen.stop, "stop_listening on a removed listener: {seen:?}");
    assert!(
        seen.start.is_err(),
        "start_listening on a removed listener: {seen:?}"
    );
    assert!(
        seen.configure.is_err(),
        "configure_listener on a removed listener: {seen:?}"
    );
    assert_eq!(seen.listed, vec![unix.clone(), other.clone()]);
    assert_tcp_refused(port, "after remove_listener");
    assert_eq!(echo(&mut before, "2"), "tcp:2");
    assert_eq!(echo(&mut tcp_client(other.port()), "o"), "other:o");

    // A unix listener: its socket file goes with it.
    let (removed, listed) = on_loop(&server, move |cx| (cx.remove_listener(uid), cx.listeners()));
    assert!(removed);
    assert_eq!(listed, vec![other.clone()]);
    assert!(
        !sock.exists(),
        "the socket file {} outlived its listener",
        sock.display()
    );
    assert_unix_refused(&sock, ErrorKind::NotFound, "unix, after remove_listener");
    assert_eq!(echo(&mut before_unix, "2"), "unix:2");

    // The address is free again: a new listener of the same context on
    // the same port and path serves with its own handler.
    let s = sock.clone();
    let relisten = on_loop(&server, move |cx| {
        let t = cx
            .listen(ListenOptions::new(port), tagged("new-tcp"))
            .map_err(|e| e.to_string());
        let u = cx
            .listen(ListenOptions::unix(&s), tagged("new-unix"))
            .map_err(|e| e.to_string());
        (t, u)
    });
    let (new_tcp, new_unix) = (relisten.0.expect("listen again on the port"), {
        relisten.1.expect("listen again on the path")
    });
    assert_eq!(new_tcp.local_addr(), &tcp_addr(port));
    assert_ne!(new_tcp.id(), tid, "ids are never reused");
    assert_ne!(new_unix.id(), uid, "ids are never reused");
    assert_eq!(echo(&mut tcp_client(port), "n"), "new-tcp:n");
    assert_eq!(echo(&mut unix_client(&sock), "n"), "new-unix:n");
    assert_eq!(echo(&mut before, "3"), "tcp:3");
    assert_eq!(echo(&mut before_unix, "3"), "unix:3");
}

/// A child process that sleeps until killed (and is killed on drop).
struct Sleeper(std::process::Child);

impl Sleeper {
    /// Returns once the child runs its program: only then has it closed
    /// the close-on-exec descriptors it had from the fork (`spawn` returns
    /// a little earlier, when exec has replaced the child's memory).
    fn spawn() -> Sleeper {
        let mut child = Command::new("sh")
            .args(["-c", "echo ready && exec sleep 60"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let mut ready = [0u8; 6];
        child
            .stdout
            .take()
            .expect("the child's stdout")
            .read_exact(&mut ready)
            .expect("the child says it runs");
        assert_eq!(&ready, b"ready\n");
        Sleeper(child)
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn child_processes_do_not_inherit_listening_sockets() {
    let _wd = util::watchdog("no_inherit", 30);
    let _no_forks = no_forks();
    let (server, listener) = ServerThread::start(|cx| {
        cx.listen(ListenOptions::new(0), tagged("t"))
            .expect("listen")
    });
    let (port, id) = (listener.port(), listener.id());
    // lws's own socket, then the one start_listening made: a child spawned
    // while each listens must not keep it listening after stop_listening.
    for round in 0..2 {
        let _child = Sleeper::spawn();
        assert!(on_loop(&server, move |cx| cx.stop_listening(id)));
        assert_tcp_refused(port, &format!("round {round}, with a child alive"));
        let started = on_loop(&server, move |cx| {
            cx.start_listening(id).map_err(|e| e.to_string())
        });
        assert_eq!(started, Ok(true));
        assert_eq!(echo(&mut tcp_client(port), "x"), "t:x");
    }
}

/// The backlog of the socket listening on 127.0.0.1:`port` as the kernel
/// reports it (`ss`: the Send-Q of a listening socket), or None if nothing
/// listens there.
fn kernel_backlog(port: u16) -> Option<u32> {
    let _forking = no_forks();
    let out = Command::new("ss")
        .args(["-ltnH", "sport", "=", &format!(":{port}")])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `ss` to read the listen backlog ({e}): this test needs iproute2 installed"
            )
        });
    assert!(
        out.status.success(),
        "ss failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| !f.is_empty())
        .collect();
    match &rows[..] {
        [] => None,
        [fields] => {
            // State Recv-Q Send-Q Local Peer
            let at = fields
                .iter()
                .position(|f| *f == "LISTEN")
                .unwrap_or_else(|| panic!("no LISTEN state in {text:?}"));
            let send_q = fields
                .get(at + 2)
                .unwrap_or_else(|| panic!("no Send-Q in {text:?}"));
            Some(
                send_q
                    .parse()
                    .unwrap_or_else(|_| panic!("Send-Q {send_q:?} in {text:?}")),
            )
        }
        _ => panic!("more than one socket listens on port {port}: {text:?}"),
    }
}

#[test]
fn backlog_is_the_kernel_listen_queue_and_configure_listener_changes_it() {
    let _wd = util::watchdog("backlog", 30);
    let (server, listener) = ServerThread::start(|cx| {
        let mut options = ListenOptions::new(0);
        options.backlog = 7;
        cx.listen(options, tagged("b")).expect("listen")
    });
    let (port, id) = (listener.port(), listener.id());
    assert_eq!(kernel_backlog(port), Some(7));
    let configured = on_loop(&server, move |cx| {
        cx.configure_listener(id, |o| o.backlog = 9)
            .map_err(|e| e.to_string())
    });
    assert_eq!(configured, Ok(()));
    assert_eq!(kernel_backlog(port), Some(9));
    // A backlog below 1 is refused and changes nothing.
    let refused = on_loop(&server, move |cx| {
        cx.configure_listener(id, |o| o.backlog = 0)
            .map_err(|e| e.to_string())
    });
    assert!(refused.is_err(), "backlog 0 was accepted");
    assert_eq!(kernel_backlog(port), Some(9));
    // Stopped: nothing listens; restarted: with the configured backlog.
    assert!(on_loop(&server, move |cx| cx.stop_listening(id)));
    assert_eq!(kernel_backlog(port), None);
    let started = on_loop(&server, move |cx| {
        cx.start_listening(id).map_err(|e| e.to_string())
    });
    assert_eq!(started, Ok(true));
    assert_eq!(kernel_backlog(port), Some(9));
    assert_eq!(echo(&mut tcp_client(port), "x"), "b:x");
    // A backlog below 1 is refused by listen too.
    let refused = on_loop(&server, |cx| {
        let mut options = ListenOptions::new(0);
        options.backlog = 0;
        cx.listen(options, Callbacks::new()).map(|l| l.port())
    });
    assert!(
        matches!(refused, Err(Error::InvalidOption(_))),
        "{refused:?}"
    );
}

/// A context on its own thread listening with `options`, its echoes
/// tagged `tag`; Err if the listen failed.
fn listen_on_thread(
    options: ListenOptions,
    tag: &'static str,
) -> (ServerThread, Result<Listener, Error>) {
    ServerThread::start(move |cx| cx.listen(options, tagged(tag)))
}

fn with_reuse(port: u16, reuse_port: bool) -> ListenOptions {
    let mut options = ListenOptions::new(port);
    options.reuse_port = reuse_port;
    options
}

#[test]
fn reuse_port_lets_two_contexts_share_a_port_and_without_it_the_second_fails() {
    let _wd = util::watchdog("reuse_port", 30);
    let (_first, a) = listen_on_thread(with_reuse(0, true), "first");
    let port = a.expect("first listen with reuse_port").port();
    let (_second, b) = listen_on_thread(with_reuse(port, true), "second");
    let b = b.expect("a second context with reuse_port on the same port");
    assert_eq!(b.local_addr(), &tcp_addr(port));
    // The kernel spreads connections over both sockets (by a hash of the
    // peer's address): within 64 connects both must have answered.
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..64 {
        let got = echo(&mut tcp_client(port), &i.to_string());
        let (tag, text) = got.split_once(':').expect("a tagged echo");
        assert_eq!(text, i.to_string());
        seen.insert(tag.to_string());
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        vec!["first".to_string(), "second".to_string()],
        "64 connects to a shared port all went to one context"
    );

    // Without reuse_port the port is taken.
    let (_third, c) = listen_on_thread(with_reuse(0, false), "third");
    let port = c.expect("listen without reuse_port").port();
    let (_fourth, d) = listen_on_thread(with_reuse(port, false), "fourth");
    match d {
        Err(Error::Lws(e)) => assert!(e.contains(&port.to_string()), "{e}"),
        other => panic!("a second listen on port {port} without reuse_port: {other:?}"),
    }
    // Nor may only the second ask for it.
    let (_fifth, e) = listen_on_thread(with_reuse(port, true), "fifth");
    assert!(
        matches!(e, Err(Error::Lws(_))),
        "reuse_port on a port taken without it: {e:?}"
    );
    assert_eq!(echo(&mut tcp_client(port), "still"), "third:still");
}
