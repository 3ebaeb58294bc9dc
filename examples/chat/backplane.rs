//! The chat's optional Redis backplane: several chat processes (behind a
//! reverse proxy) share one conversation through a Redis pub/sub channel.
//!
//! Each process publishes every line its own clients cause (joins, leaves,
//! messages) and broadcasts to its clients every line the channel delivers,
//! its own included, so all processes show the lines in Redis's one order.
//!
//! The loop never blocks on Redis: a publisher thread owns one connection
//! and takes lines from a channel; a subscriber thread blocks on a second,
//! subscribed connection and hands each line to the loop through the
//! context's cross-thread [`lws::Handle`].

use lws::{CloseCode, Handle, Message};
use std::sync::mpsc;
use std::time::Duration;

/// How long a connect to Redis may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between reconnect attempts after Redis went away.
const RETRY: Duration = Duration::from_secs(1);

/// The loop's end of the backplane: [`Backplane::publish`] only queues.
pub struct Backplane {
    lines: mpsc::Sender<String>,
}

impl Backplane {
    /// Connects to Redis at `url` (`redis://127.0.0.1:6379/`), subscribes to
    /// `channel` and starts both threads. Returns once the subscription is
    /// active, so a line published after this is never missed.
    pub fn start(url: &str, channel: &str, loop_handle: Handle) -> Result<Backplane, String> {
        let client = redis::Client::open(url).map_err(|e| format!("redis url {url:?}: {e}"))?;
        let connect = {
            let client = client.clone();
            move || client.get_connection_with_timeout(CONNECT_TIMEOUT)
        };
        let publisher = connect().map_err(|e| format!("redis {url}: {e}"))?;
        let subscriber = connect().map_err(|e| format!("redis {url}: {e}"))?;

        let (ready_tx, ready_rx) = mpsc::channel();
        let sub_channel = channel.to_owned();
        let reconnect = connect.clone();
        std::thread::Builder::new()
            .name("redis-subscriber".into())
            .spawn(move || {
                block_signals();
                subscribe_loop(subscriber, reconnect, &sub_channel, &loop_handle, ready_tx)
            })
            .map_err(|e| e.to_string())?;
        match ready_rx.recv_timeout(CONNECT_TIMEOUT) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("redis subscribe: {e}")),
            Err(_) => return Err("redis subscribe: no answer".into()),
        }

        let (lines, rx) = mpsc::channel::<String>();
        let pub_channel = channel.to_owned();
        std::thread::Builder::new()
            .name("redis-publisher".into())
            .spawn(move || {
                block_signals();
                publish_loop(publisher, connect, &pub_channel, rx)
            })
            .map_err(|e| e.to_string())?;
        Ok(Backplane { lines })
    }

    /// Queues `line` for every process (this one included).
    pub fn publish(&self, line: String) {
        if self.lines.send(line).is_err() {
            eprintln!("chat: redis publisher is gone; line dropped");
        }
    }
}

/// SIGINT / SIGTERM belong to the signal thread (which shuts the context
/// down); a backplane thread taking one would kill the process instead.
fn block_signals() {
    if let Err(e) = crate::common::Signals::block() {
        eprintln!("chat: blocking signals in a redis thread: {e}");
    }
}

fn publish_loop(
    mut conn: redis::Connection,
    reconnect: impl Fn() -> redis::RedisResult<redis::Connection>,
    channel: &str,
    lines: mpsc::Receiver<String>,
) {
    // Ends when the Backplane (and so the loop) is dropped.
    for line in lines {
        let sent = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(&line)
            .query::<i64>(&mut conn);
        if let Err(e) = sent {
            // One fresh connection per failed line: pub/sub has no replay,
            // so a line Redis never took is lost either way.
            eprintln!("chat: redis publish failed ({e}); reconnecting");
            match reconnect() {
                Ok(fresh) => {
                    conn = fresh;
                    let _ = redis::cmd("PUBLISH")
                        .arg(channel)
                        .arg(&line)
                        .query::<i64>(&mut conn);
                }
                Err(e) => eprintln!("chat: redis reconnect failed ({e}); line dropped"),
            }
        }
    }
}

fn subscribe_loop(
    mut conn: redis::Connection,
    reconnect: impl Fn() -> redis::RedisResult<redis::Connection>,
    channel: &str,
    loop_handle: &Handle,
    ready: mpsc::Sender<redis::RedisResult<()>>,
) {
    let mut ready = Some(ready);
    loop {
        let mut pubsub = conn.as_pubsub();
        let subscribed = pubsub.subscribe(channel);
        if let Some(tx) = ready.take() {
            let failed = subscribed.is_err();
            let _ = tx.send(subscribed.map(|_| ()));
            if failed {
                return;
            }
        } else if let Err(e) = subscribed {
            eprintln!("chat: redis subscribe failed: {e}");
        }
        loop {
            let msg = match pubsub.get_message() {
                Ok(msg) => msg,
                Err(e) => {
                    eprintln!("chat: redis subscription lost: {e}");
                    break;
                }
            };
            let Ok(line) = msg.get_payload::<String>() else {
                continue; // not UTF-8: not one of ours
            };
            let delivered = loop_handle.run_on_loop(move |cx| {
                let report = cx.broadcast(&Message::Text(line));
                for slow in report.full {
                    slow.close(CloseCode::POLICY, "not reading");
                }
            });
            if delivered.is_err() {
                return; // the context is gone: the process is ending
            }
        }
        drop(pubsub);
        conn = loop {
            std::thread::sleep(RETRY);
            match reconnect() {
                Ok(c) => break c,
                Err(e) => eprintln!("chat: redis reconnect failed: {e}"),
            }
        };
    }
}
