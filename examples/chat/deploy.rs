//! A scale-out deployment on loopback, for tests/scale_out.rs and
//! examples/scale_out.rs: one Redis server, several chat processes with
//! the Redis backplane, and nginx proxying WebSocket upgrades to them
//! round robin. Every process is a child of ours, on 127.0.0.1, with its
//! files in one temp dir; all are killed by PID when the [`Deployment`] is
//! dropped. The programs come from Debian's redis-server and nginx
//! packages (scripts/setup-scale.sh installs them).
#![allow(dead_code)] // the test and the example use different parts

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The nginx configuration, with `@...@` fields filled in by [`Deployment::start`].
const NGINX_CONF: &str = include_str!("../../scripts/scale/nginx.conf.in");

/// Where redis-server and nginx are, when both are installed.
pub struct Programs {
    /// The redis-server binary.
    pub redis: PathBuf,
    /// The nginx binary.
    pub nginx: PathBuf,
}

impl Programs {
    /// Looks in PATH and in /usr/sbin and /usr/bin (nginx lives in sbin,
    /// which a non-root PATH may lack). Err names what is missing.
    pub fn find() -> Result<Programs, String> {
        let find = |name: &str| {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path)
                .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        };
        match (find("redis-server"), find("nginx")) {
            (Some(redis), Some(nginx)) => Ok(Programs { redis, nginx }),
            (r, n) => Err(format!(
                "missing {}: run scripts/setup-scale.sh (Debian's redis-server and nginx)",
                [("redis-server", r.is_none()), ("nginx", n.is_none())]
                    .iter()
                    .filter(|(_, m)| *m)
                    .map(|(p, _)| *p)
                    .collect::<Vec<_>>()
                    .join(" and ")
            )),
        }
    }
}

/// One chat process behind nginx.
pub struct ChatProcess {
    /// Its `--name` (s1, s2, ...).
    pub name: String,
    /// The port it listens on directly (nginx proxies to it).
    pub port: u16,
    child: Child,
}

/// Redis, the chat processes and nginx, all running.
pub struct Deployment {
    /// The chat processes, in upstream order.
    pub chats: Vec<ChatProcess>,
    /// nginx's port on 127.0.0.1: clients connect to ws://127.0.0.1:PORT/ws.
    pub nginx_port: u16,
    /// Redis's port on 127.0.0.1.
    pub redis_port: u16,
    redis: Option<Child>,
    nginx: Option<Child>,
    dir: PathBuf,
}

/// A port that was free a moment ago (for programs that cannot report
/// the port they picked). Never the same one twice in this process, so
/// deployments of tests running side by side cannot pick each other's;
/// another process taking it first is caught by [`wait_ready`].
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local addr").port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Waits (at most `limit`) until `child` wrote `pidfile` (redis-server and
/// nginx both write it after binding their port, so it shows the port is
/// theirs, not another program's) and accepts on 127.0.0.1:`port`. Err
/// if it exits first (e.g. the port was taken) or takes too long.
fn wait_ready(
    child: &mut Child,
    pidfile: &Path,
    port: u16,
    limit: Duration,
    what: &str,
) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{what} exited at start ({status})"));
        }
        if pidfile.exists() && TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("{what} not listening on {port} after {limit:?}"))
}

/// `cmd` with SIGINT and SIGTERM unblocked in the child: a parent that
/// blocked them for its signal thread (examples/scale_out) passes its mask
/// on through exec, and redis-server would then ignore our SIGTERM.
fn signals_unblocked(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only
    // calls async-signal-safe functions (sigemptyset, sigaddset,
    // sigprocmask) on a local set; it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            if libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Sends SIGTERM to `child` and waits up to `limit` for it, then SIGKILL.
fn stop(child: &mut Child, limit: Duration) {
    // SAFETY: kill(2) on a child we started, by its PID; it is not reaped
    // yet (we still hold the Child), so the PID is still ours.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Deployment {
    /// Starts Redis, `n` chat processes (`chat_exe`, named s1..sn) and
    /// nginx in front of them, each waited for within `limit`.
    pub fn start(
        programs: &Programs,
        chat_exe: &Path,
        n: usize,
        limit: Duration,
    ) -> Result<Deployment, String> {
        let dir = std::env::temp_dir().join(format!(
            "lws-scale-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |t| t.as_nanos())
        ));
        std::fs::create_dir_all(dir.join("tmp")).map_err(|e| format!("{dir:?}: {e}"))?;
        let mut d = Deployment {
            chats: Vec::new(),
            nginx_port: 0,
            redis_port: 0,
            redis: None,
            nginx: None,
            dir,
        };
        // A few tries: a port another program took meanwhile makes the
        // child exit, and the next free port is tried.
        let mut tries = 0;
        loop {
            tries += 1;
            d.redis_port = free_port();
            let pidfile = d.dir.join("redis.pid");
            let mut redis = signals_unblocked(&mut Command::new(&programs.redis))
                .args(["--bind", "127.0.0.1", "--port"])
                .arg(d.redis_port.to_string())
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .args(["--loglevel", "warning", "--pidfile"])
                .arg(&pidfile)
                .arg("--dir")
                .arg(&d.dir)
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| format!("start {:?}: {e}", programs.redis))?;
            let ready = wait_ready(&mut redis, &pidfile, d.redis_port, limit, "redis-server");
            d.redis = Some(redis);
            match ready {
                Ok(()) => break,
                Err(e) if tries >= 3 => return Err(e),
                Err(_) => stop(d.redis.as_mut().expect("just set"), limit),
            }
        }

        let url = format!("redis://127.0.0.1:{}/", d.redis_port);
        for i in 1..=n {
            let name = format!("s{i}");
            let mut child = signals_unblocked(&mut Command::new(chat_exe))
                .args(["--port", "0", "--redis", &url, "--name", &name])
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| format!("start {chat_exe:?}: {e}"))?;
            let stdout = child.stdout.take().expect("piped stdout");
            // Pushed before reading, so Drop stops it if it never answers.
            d.chats.push(ChatProcess {
                name: name.clone(),
                port: 0,
                child,
            });
            let port = read_port(stdout, limit).map_err(|e| format!("chat {name}: {e}"))?;
            d.chats.last_mut().expect("just pushed").port = port;
        }

        let upstreams: String = d
            .chats
            .iter()
            .map(|c| format!("        server 127.0.0.1:{};\n", c.port))
            .collect();
        // As root, nginx's workers would switch to a user that may not exist
        // or may not write our temp dir; stay root (loopback only).
        // SAFETY: geteuid has no preconditions.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root;"
        } else {
            ""
        };
        let prefix = d.dir.to_str().ok_or("temp dir is not UTF-8")?.to_owned();
        let mut tries = 0;
        loop {
            tries += 1;
            d.nginx_port = free_port();
            let conf = NGINX_CONF
                .replace("@USER@", user)
                .replace("@PREFIX@", &prefix)
                .replace("@LISTEN@", &format!("127.0.0.1:{}", d.nginx_port))
                .replace("@UPSTREAMS@", upstreams.trim_end());
            let conf_path = d.dir.join("nginx.conf");
            std::fs::write(&conf_path, conf).map_err(|e| format!("{conf_path:?}: {e}"))?;
            let pidfile = d.dir.join("nginx.pid");
            let _ = std::fs::remove_file(&pidfile);
            let mut nginx = signals_unblocked(&mut Command::new(&programs.nginx))
                .arg("-p")
                .arg(&d.dir)
                .arg("-e")
                .arg(d.dir.join("error.log"))
                .arg("-c")
                .arg(&conf_path)
                .args(["-g", "daemon off;"])
                .spawn()
                .map_err(|e| format!("start {:?}: {e}", programs.nginx))?;
            let ready = wait_ready(&mut nginx, &pidfile, d.nginx_port, limit, "nginx");
            d.nginx = Some(nginx);
            match ready {
                Ok(()) => break,
                Err(e) if tries >= 3 => {
                    let log = std::fs::read_to_string(d.dir.join("error.log")).unwrap_or_default();
                    return Err(format!("{e}; nginx error.log:\n{log}"));
                }
                Err(_) => stop(d.nginx.as_mut().expect("just set"), limit),
            }
        }
        Ok(d)
    }

    /// nginx's WebSocket URL.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.nginx_port)
    }

    /// Sends SIGTERM to chat process `name` (its clients get close 1001,
    /// then it exits once they answer, or after 5 s) and takes it out of
    /// the deployment; [`Stopping::wait`] reaps it.
    pub fn terminate_chat(&mut self, name: &str) -> Result<Stopping, String> {
        let i = self
            .chats
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| format!("no chat {name}"))?;
        let chat = self.chats.remove(i);
        // SAFETY: kill(2) on a child we started and have not reaped.
        unsafe { libc::kill(chat.child.id() as libc::pid_t, libc::SIGTERM) };
        Ok(Stopping(Some(chat)))
    }
}

/// A chat process told to stop; killed on drop if not waited for.
pub struct Stopping(Option<ChatProcess>);

impl Stopping {
    /// Waits up to `limit` for the process to exit; Ok with its status.
    pub fn wait(mut self, limit: Duration) -> Result<std::process::ExitStatus, String> {
        let mut chat = self.0.take().expect("not waited yet");
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = chat.child.try_wait() {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        stop(&mut chat.child, Duration::ZERO);
        Err(format!(
            "chat {} still running {limit:?} after SIGTERM",
            chat.name
        ))
    }
}

impl Drop for Stopping {
    fn drop(&mut self) {
        if let Some(chat) = &mut self.0 {
            stop(&mut chat.child, Duration::from_secs(10));
        }
    }
}

/// Reads the chat's `listening on http://127.0.0.1:PORT/` line (within
/// `limit`, on a thread so a silent child cannot hang us); the rest of its
/// stdout is drained there.
fn read_port(stdout: std::process::ChildStdout, limit: Duration) -> Result<u16, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut first = String::new();
        let _ = r.read_line(&mut first);
        let _ = tx.send(first);
        let _ = std::io::copy(&mut r, &mut std::io::sink());
    });
    let first = rx
        .recv_timeout(limit)
        .map_err(|_| format!("no listening line after {limit:?}"))?;
    first
        .trim()
        .strip_prefix("listening on http://127.0.0.1:")
        .and_then(|r| r.strip_suffix('/'))
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("first line {first:?}"))
}

impl Drop for Deployment {
    fn drop(&mut self) {
        // Clients' servers first, then the proxy, then the broker.
        for chat in &mut self.chats {
            stop(&mut chat.child, Duration::from_secs(10));
        }
        if let Some(mut n) = self.nginx.take() {
            stop(&mut n, Duration::from_secs(10));
        }
        if let Some(mut r) = self.redis.take() {
            stop(&mut r, Duration::from_secs(10));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A plain HTTP GET through `port`, answer as text (for checks by hand).
pub fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
