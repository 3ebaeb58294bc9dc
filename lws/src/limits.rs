//! Limits a server operator sets: concurrent connections per listener
//! ([`ListenOptions::max_connections`]), the time a client has to send its
//! request ([`ListenOptions::handshake_timeout`]), the size of request
//! headers ([`ContextOptions::max_header_size`]), and the default message
//! and frame size limits ([`DEFAULT_MAX_MESSAGE_SIZE`],
//! [`DEFAULT_MAX_FRAME_SIZE`]).
//!
//! The handshake timeout is ours: a timer on the loop from the moment lws
//! accepts a connection (`LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED`) to
//! the end of its request headers (`LWS_CALLBACK_HTTP_CONFIRM_UPGRADE` for
//! an upgrade, `LWS_CALLBACK_FILTER_HTTP_CONNECTION` for plain HTTP),
//! counted whatever the client sends meanwhile, so one byte a second does
//! not keep a connection alive. lws's own timeouts (whole seconds, and reset
//! when the first bytes arrive) are set just behind it as a backstop.
//!
//! [`ListenOptions::max_connections`]: crate::ListenOptions::max_connections
//! [`ListenOptions::handshake_timeout`]: crate::ListenOptions::handshake_timeout
//! [`ContextOptions::max_header_size`]: crate::ContextOptions::max_header_size

use crate::context::{Context, Shared};
use crate::server::ListenerState;
use crate::{Handshake, TimerId};
use lws_sys as sys;
use std::cell::Cell;
use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::os::raw::c_int;
use std::rc::Rc;
use std::time::Duration;

/// Default largest reassembled message a connection accepts (64 MiB), for
/// listeners, clients and adopted sockets; bigger ones close it with 1009.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 << 20;

/// Default largest single frame a connection accepts (16 MiB), and the
/// largest frame it sends (longer messages go out fragmented).
pub const DEFAULT_MAX_FRAME_SIZE: usize = 16 << 20;

/// Default time a client has from TCP accept to the end of its request
/// headers (10 s).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default most bytes of request headers lws keeps per request (8192).
pub const DEFAULT_MAX_HEADER_SIZE: usize = 8192;

/// The values [`ContextOptions::max_header_size`](crate::ContextOptions::max_header_size)
/// may take: lws needs at least 256 bytes and counts in 16 bits.
pub const MAX_HEADER_SIZE_RANGE: RangeInclusive<usize> = 256..=65535;

/// The `max_http_header_data` lws gets for a `max_header_size`, or why
/// the value is refused.
pub(crate) fn header_size(max_header_size: usize) -> crate::Result<u16> {
    if !MAX_HEADER_SIZE_RANGE.contains(&max_header_size) {
        return Err(crate::Error::InvalidOption(format!(
            "max_header_size {max_header_size}: must be within {}..={}",
            MAX_HEADER_SIZE_RANGE.start(),
            MAX_HEADER_SIZE_RANGE.end()
        )));
    }
    Ok(max_header_size as u16)
}

/// The longest backstop lws gets (about 34 years): lws keeps the value in
/// an `int` and adds to it, so larger ones would wrap to a negative
/// timeout, which fires at once.
const LWS_GUARD_MAX_SECS: u32 = 1 << 30;

/// lws's own header-phase timeout for a listener (`timeout_secs_ah_idle`,
/// whole seconds): one second behind ours, so ours acts first. 0 (lws's
/// default of 10 s) without a handshake timeout.
pub(crate) fn lws_guard_secs(timeout: Option<Duration>) -> u32 {
    match timeout {
        Some(t) => {
            let secs = t.as_secs().saturating_add(u64::from(t.subsec_nanos() > 0));
            let secs = secs.saturating_add(1).min(u64::from(LWS_GUARD_MAX_SECS));
            secs as u32
        }
        None => 0,
    }
}

/// The number of a listener's connections between handshake accept and
/// close, shared by the listener and the [`Admission`]s of its connections.
pub(crate) type LiveCount = Rc<Cell<usize>>;

/// A connection counted against its listener's `max_connections`: counted
/// when made, uncounted when dropped (with the connection's slot, when lws
/// frees the connection or the context goes).
pub(crate) struct Admission(LiveCount);

impl Admission {
    fn new(count: &LiveCount) -> Self {
        count.set(count.get() + 1);
        Admission(count.clone())
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// The 503 a listener at its `max_connections` answers new upgrades with.
pub(crate) fn over_capacity() -> Handshake {
    Handshake::reject_with(
        503,
        vec![("Retry-After".into(), "1".into())],
        "503 Service Unavailable: too many connections\n",
    )
}

/// Whether `listener` is at its `max_connections` (0 = unlimited).
pub(crate) fn is_full(listener: &ListenerState) -> bool {
    let max = listener.config.borrow().options.max_connections;
    max > 0 && listener.live.get() >= max
}

/// Counts a connection of `listener` whose handshake was accepted.
pub(crate) fn admit(listener: &ListenerState) -> Admission {
    Admission::new(&listener.live)
}

/// Server connections still reading their request, each with its deadline
/// timer. Keyed by wsi: an entry is removed when the headers are complete or
/// lws frees the wsi (`LWS_CALLBACK_WSI_DESTROY`), so an entry's wsi is live.
#[derive(Default)]
pub(crate) struct Handshakes {
    next: u64,
    pending: HashMap<usize, (u64, TimerId)>,
}

/// A listener accepted `wsi`: its handshake must end within the
/// listener's `handshake_timeout`.
pub(crate) fn accepted(shared: &Rc<Shared>, wsi: *mut sys::lws, listener: &ListenerState) {
    let (timeout, tls) = {
        let config = listener.config.borrow();
        (
            config.options.handshake_timeout,
            config.options.tls.is_some(),
        )
    };
    let Some(timeout) = timeout else {
        return;
    };
    // lws's own backstop for the time before the first bytes (it set its
    // 15 s default just before calling us; the header phase gets the
    // vhost's timeout_secs_ah_idle).
    let guard = lws_guard_secs(Some(timeout)) as c_int; // at most 2^30
    let reason = if tls {
        sys::PENDING_TIMEOUT_SSL_ACCEPT
    } else {
        sys::PENDING_TIMEOUT_ESTABLISH_WITH_SERVER
    };
    // SAFETY: wsi is live (we are in its NEW_CLIENT_INSTANTIATED callback).
    unsafe { sys::lws_set_timeout(wsi, reason, guard) };
    let serial = {
        let mut hs = shared.handshakes.borrow_mut();
        hs.next += 1;
        hs.next
    };
    let key = wsi as usize;
    // Capped as lws's is, so the deadline never overflows an Instant.
    let timeout = timeout.min(Duration::from_secs(LWS_GUARD_MAX_SECS.into()));
    let timer = Context::view(shared).set_timeout(timeout, move |cx| expired(cx, key, serial));
    let old = shared
        .handshakes
        .borrow_mut()
        .pending
        .insert(key, (serial, timer));
    if let Some((_, stale)) = old {
        // Cannot happen (WSI_DESTROY removes entries), but never let a
        // stale timer outlive its entry.
        Context::view(shared).cancel_timer(stale);
    }
}

/// `wsi`'s request headers are complete, or lws is freeing it: its
/// handshake deadline no longer applies.
pub(crate) fn settled(shared: &Rc<Shared>, wsi: *mut sys::lws) {
    let entry = shared
        .handshakes
        .borrow_mut()
        .pending
        .remove(&(wsi as usize));
    if let Some((_, timer)) = entry {
        Context::view(shared).cancel_timer(timer);
    }
}

/// The deadline of the connection `key` passed: lws drops it (no answer:
/// a client this slow is not worth one).
fn expired(cx: &Context, key: usize, serial: u64) {
    let live = {
        let mut hs = cx.shared().handshakes.borrow_mut();
        match hs.pending.get(&key) {
            Some(&(s, _)) if s == serial => hs.pending.remove(&key).is_some(),
            _ => false,
        }
    };
    if !live {
        return;
    }
    let wsi = key as *mut sys::lws;
    log::debug!("a client sent no complete request within its handshake timeout: dropped");
    // SAFETY: the entry was still there, so lws has not freed the wsi (its
    // WSI_DESTROY removes it); timers run outside lws's callbacks, and the
    // async kill closes it on lws's next service.
    unsafe { sys::lws_set_timeout(wsi, sys::PENDING_TIMEOUT_USER_OK, sys::LWS_TO_KILL_ASYNC) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_sizes_outside_lws_range_are_refused() {
        assert!(header_size(255).is_err());
        assert!(header_size(65536).is_err());
        assert_eq!(header_size(256).unwrap(), 256);
        assert_eq!(header_size(65535).unwrap(), 65535);
        assert_eq!(header_size(DEFAULT_MAX_HEADER_SIZE).unwrap(), 8192);
    }

    #[test]
    fn lws_guard_rounds_up_and_trails_by_a_second() {
        assert_eq!(lws_guard_secs(None), 0);
        assert_eq!(lws_guard_secs(Some(Duration::from_secs(10))), 11);
        assert_eq!(lws_guard_secs(Some(Duration::from_millis(1500))), 3);
        assert_eq!(lws_guard_secs(Some(Duration::from_millis(1))), 2);
        assert_eq!(lws_guard_secs(Some(Duration::MAX)), 1 << 30);
        assert_eq!(lws_guard_secs(Some(Duration::from_secs(u64::MAX))), 1 << 30);
    }

    #[test]
    fn admissions_count_until_dropped() {
        let count = LiveCount::default();
        let a = Admission::new(&count);
        let b = Admission::new(&count);
        assert_eq!(count.get(), 2);
        drop(a);
        assert_eq!(count.get(), 1);
        drop(b);
        assert_eq!(count.get(), 0);
    }
}
