//! Keepalive: ping connections the peer has been silent on, hang up those
//! that stay silent ([`Keepalive`]). Ours rather than lws's
//! `retry_and_idle_policy`, which counts only pongs as signs of life, is
//! fixed per vhost, and cannot change for new connections; lws's own is
//! switched off on every vhost we make ([`DISABLED`]).
//!
//! One periodic timer per context sweeps the connections that have a
//! keepalive; receiving only stamps the slot with the time the loop turn
//! started (no clock read per message).

use crate::connection::State;
use crate::context::Shared;
use crate::{Context, Keepalive};
use lws_sys as sys;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// `Sync` wrapper for the static policy lws reads.
pub(crate) struct Policy(sys::lws_retry_bo_t);
// SAFETY: immutable plain data (the table pointer is null).
unsafe impl Sync for Policy {}

impl Policy {
    pub(crate) fn as_ptr(&self) -> *const sys::lws_retry_bo_t {
        &self.0
    }
}

/// lws's validity pings off (a zero hang-up time disables them).
pub(crate) static DISABLED: Policy = Policy(sys::lws_retry_bo_t {
    retry_ms_table: std::ptr::null(),
    retry_ms_table_count: 0,
    conceal_count: 0,
    secs_since_valid_ping: 0,
    secs_since_valid_hangup: 0,
    jitter_percent: 0,
});

/// The payload of our keepalive pings.
const PING: &[u8] = b"lws-rs keepalive";

/// How often to sweep for `keepalive`: a quarter of its ping time, kept
/// between 50 ms and 1 s.
fn sweep_period(keepalive: &Keepalive) -> Duration {
    (keepalive.ping_after / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

/// A connection with `keepalive` now exists: make sure the sweep runs
/// often enough for it.
pub(crate) fn watch(shared: &Rc<Shared>, keepalive: &Keepalive) {
    let period = sweep_period(keepalive);
    let current = shared.keepalive_sweep.get();
    if current.is_some_and(|(_, p)| p <= period) {
        return;
    }
    let cx = Context::view(shared);
    if let Some((id, _)) = current {
        cx.cancel_timer(id);
    }
    let id = cx.set_interval(period, sweep);
    shared.keepalive_sweep.set(Some((id, period)));
}

/// Pings the silent, hangs up the dead.
fn sweep(cx: &Context) {
    let shared = cx.shared();
    let now = Instant::now();
    let mut ping = Vec::new();
    let mut kill = Vec::new();
    {
        let mut conns = shared.conns.borrow_mut();
        for (_, slot) in conns.iter_mut() {
            let Some(k) = slot.keepalive else { continue };
            if !matches!(slot.state, State::Connected | State::Closing) {
                continue;
            }
            let mut silent = now.saturating_duration_since(slot.last_heard);
            if silent >= k.ping_after / 2 && taking_our_backlog(slot) {
                // The peer is taking data we have queued or in flight
                // (where any ping of ours waits too): as good as hearing
                // from it.
                slot.last_heard = now;
                slot.pinged = false;
                silent = Duration::ZERO;
            }
            if silent >= k.hangup_after.max(k.ping_after) {
                kill.push((slot.id, slot.wsi));
            } else if silent >= k.ping_after && !slot.pinged {
                slot.pinged = true;
                ping.push(slot.id);
            }
        }
    }
    for id in ping {
        if let Some(conn) = shared.connection(id) {
            let _ = conn.ping(PING);
        }
    }
    for (id, wsi) in kill {
        log::debug!("connection {id}: silent past its keepalive; hanging up");
        if !wsi.is_null() {
            // SAFETY: the slot still holds the wsi, so lws has not freed it;
            // LWS_TO_KILL_ASYNC closes it at lws's next service, and CLOSED
            // follows as for any lost connection.
            unsafe {
                sys::lws_set_timeout(wsi, sys::PENDING_TIMEOUT_USER_OK, sys::LWS_TO_KILL_ASYNC)
            };
        }
    }
}

/// True when we have data for the peer that it cannot have had yet (in
/// our queue, in lws's buffer or in our kernel's send queue: a long
/// message to a slow reader, where a ping waits too, as it cannot cut
/// into a frame) and its TCP has acknowledged more of our data since the
/// last sweep that looked. New data only: the answers to zero-window
/// probes do not count, so a peer that stopped reading is still hung up,
/// and so is a host that has gone. Looked at only for connections silent
/// for half their ping time, so idle ones that answer cost nothing.
fn taking_our_backlog(slot: &mut crate::connection::ConnSlot) -> bool {
    if slot.wsi.is_null() {
        return false;
    }
    // SAFETY: the slot holds the wsi, so lws has not freed it; these only
    // read lws's send buffer state and the socket's fd.
    let (buffered, fd) = unsafe {
        (
            sys::lws_partial_buffered(slot.wsi) != 0,
            sys::lws_get_socket_fd(slot.wsi),
        )
    };
    if slot.queue.is_empty() && !buffered && unsent_or_unacked(fd) == 0 {
        slot.acked_mark = None;
        return false;
    }
    let Some(acked) = bytes_acked(fd) else {
        return false;
    };
    let before = slot.acked_mark.replace(acked);
    before.is_some_and(|b| acked > b)
}

/// Bytes in the socket's send queue not yet acknowledged (SIOCOUTQ); 0
/// when that cannot be told.
fn unsent_or_unacked(fd: libc::c_int) -> usize {
    if fd < 0 {
        return 0;
    }
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ on a socket) writes one int.
    let r = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) };
    if r == 0 {
        n.max(0) as usize
    } else {
        0
    }
}

/// How many bytes of ours the peer's TCP has acknowledged (TCP_INFO's
/// tcpi_bytes_acked); None for a socket that is not TCP.
fn bytes_acked(fd: libc::c_int) -> Option<u64> {
    if fd < 0 {
        return None;
    }
    // SAFETY: tcp_info is plain integers, valid when zeroed.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: fd is an open socket; info and len describe a buffer of len
    // bytes, which the kernel fills up to its own struct's size.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    let end = std::mem::offset_of!(libc::tcp_info, tcpi_bytes_acked) + 8;
    (r == 0 && len as usize >= end).then_some(info.tcpi_bytes_acked)
}
