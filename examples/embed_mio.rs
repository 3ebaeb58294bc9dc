//! lws sharing a mio `Poll` you own: one loop serves a WebSocket echo
//! server (lws), your own plain TCP line-echo listener, and a timer.
//!
//! Run me with: `cargo run --example embed_mio -- [--ws-port 9001] [--tcp-port 9002]`
//! Prints `listening on ws://127.0.0.1:WS/ and tcp://127.0.0.1:TCP` first.

use lws::{Callbacks, Context, ContextOptions, ListenOptions};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

/// Our own tokens stay below ContextOptions::token_base (1 << 32).
const LISTENER: Token = Token(0);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut ws_port, mut tcp_port) = (9001u16, 9002u16);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value: u16 = args.next().ok_or("missing value")?.parse()?;
        match arg.as_str() {
            "--ws-port" => ws_port = value,
            "--tcp-port" => tcp_port = value,
            _ => return Err(format!("unknown argument {arg}").into()),
        }
    }

    let mut poll = Poll::new()?;
    let cx = Context::embedded(poll.registry(), ContextOptions::default())?;
    let echo = Callbacks::new().on_message(|conn, msg| {
        let _ = conn.send(msg);
    });
    let ws_port = cx.listen(ListenOptions::new(ws_port), echo)?.port();

    let mut listener = TcpListener::bind(([127, 0, 0, 1], tcp_port).into())?;
    let tcp_port = listener.local_addr()?.port();
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("listening on ws://127.0.0.1:{ws_port}/ and tcp://127.0.0.1:{tcp_port}");

    let mut clients: HashMap<Token, TcpStream> = HashMap::new();
    let mut next_token = 1usize;
    let tick = Duration::from_secs(5);
    let mut next_tick = Instant::now() + tick;
    let mut events = Events::with_capacity(256);
    loop {
        // Wait no longer than lws or our timer allow.
        let until_tick = next_tick.saturating_duration_since(Instant::now());
        let timeout = cx.poll_timeout().map_or(until_tick, |t| t.min(until_tick));
        poll.poll(&mut events, Some(timeout))?;
        cx.handle_events(&events); // lws's tokens; the rest are ours

        for event in events.iter() {
            match event.token() {
                LISTENER => loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let token = Token(next_token);
                            next_token += 1;
                            poll.registry()
                                .register(&mut stream, token, Interest::READABLE)?;
                            clients.insert(token, stream);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e.into()),
                    }
                },
                token if !cx.owns(token) => {
                    if let Some(stream) = clients.get_mut(&token) {
                        if !echo_available(stream) {
                            clients.remove(&token);
                        }
                    }
                }
                _ => {}
            }
        }
        if Instant::now() >= next_tick {
            next_tick += tick;
            println!(
                "tick: {} websocket and {} tcp clients",
                cx.connections().len(),
                clients.len()
            );
        }
    }
}

/// Echoes what the stream has (edge-triggered: read until WouldBlock);
/// false once the peer is gone.
fn echo_available(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    return false;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
}
