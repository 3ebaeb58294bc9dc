//! A hostile WebSocket server for testing our client: a std TcpListener
//! thread that takes one connection, answers its upgrade as scripted (with
//! the right Sec-WebSocket-Accept or a wrong one), writes scripted bytes,
//! and then records everything the client sends until it closes.

use super::raw_ws;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

/// How the hostile server answers the upgrade.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A proper 101 with the Sec-WebSocket-Accept the client's key asks for.
    Accept,
    /// A 101 whose Sec-WebSocket-Accept is the right value for another key.
    WrongAccept,
}

/// What the server saw of the client, once the client closed.
#[derive(Debug)]
pub struct Saw {
    /// Every byte the client sent after its upgrade request.
    pub bytes: Vec<u8>,
    /// The client ended the TCP connection (EOF or reset) rather than
    /// leaving it open until the read timeout.
    pub closed: bool,
}

impl Saw {
    /// The client's frames (Err if they end inside one).
    pub fn frames(&self) -> io::Result<Vec<raw_ws::Frame>> {
        raw_ws::parse_frames(&self.bytes)
    }
}

/// One scripted server on 127.0.0.1, serving one connection.
pub struct Hostile {
    pub port: u16,
    thread: Option<JoinHandle<io::Result<Saw>>>,
}

impl Hostile {
    /// Listens; the thread answers the first connection with `answer`,
    /// then writes `script` (unless the upgrade was refused by the client
    /// meanwhile) and reads what the client sends for up to 10 s.
    pub fn start(answer: Answer, script: Vec<u8>) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind hostile server");
        let port = listener.local_addr().expect("local addr").port();
        let thread = std::thread::spawn(move || serve(listener, answer, &script));
        Hostile {
            port,
            thread: Some(thread),
        }
    }

    /// ws:// URL of the server.
    pub fn url(&self) -> String {
        super::url(self.port)
    }

    /// Waits for the server thread: what it saw of the client.
    pub fn join(mut self) -> io::Result<Saw> {
        self.thread
            .take()
            .expect("joined once")
            .join()
            .expect("hostile server thread panicked")
    }
}

fn serve(listener: TcpListener, answer: Answer, script: &[u8]) -> io::Result<Saw> {
    let (mut stream, _) = listener.accept()?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let head = raw_ws::read_head(&mut stream)?;
    let key =
        raw_ws::read_key(&head).ok_or_else(|| io::Error::other(format!("no key in {head:?}")))?;
    let accept = match answer {
        Answer::Accept => tungstenite::handshake::derive_accept_key(key.as_bytes()),
        Answer::WrongAccept => {
            tungstenite::handshake::derive_accept_key(format!("{key}x").as_bytes())
        }
    };
    raw_ws::switching(&mut stream, &accept)?;
    // A client that already hung up makes this fail; what it sent still counts.
    let _ = stream.write_all(script);
    read_all(&mut stream)
}

/// Reads until EOF / reset (closed) or the read timeout (not closed),
/// answering the client's close frame with one of the same payload (so
/// the client need not wait for its close timeout).
fn read_all(stream: &mut TcpStream) -> io::Result<Saw> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let mut answered = false;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => {
                return Ok(Saw {
                    bytes,
                    closed: true,
                })
            }
            Ok(n) => {
                bytes.extend_from_slice(&buf[..n]);
                if !answered {
                    let frames = raw_ws::parse_frames(&bytes).unwrap_or_default();
                    if let Some(close) = frames.iter().find(|f| f.opcode == raw_ws::CLOSE) {
                        answered = true;
                        let reply = raw_ws::frame(true, 0, raw_ws::CLOSE, None, &close.payload);
                        let _ = stream.write_all(&reply);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if raw_ws::is_reset(&e) => {
                return Ok(Saw {
                    bytes,
                    closed: true,
                })
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(Saw {
                    bytes,
                    closed: false,
                })
            }
            Err(e) => return Err(e),
        }
    }
}
