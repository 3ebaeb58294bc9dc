//! lws's event loop, implemented on mio: the `lws_event_loop_ops` that lws
//! calls (through `event_lib_custom`) to start and stop watching its sockets,
//! and the bookkeeping that turns mio's edge-triggered readiness into the
//! level-triggered service lws expects.
//!
//! Each socket is registered once with mio for both directions and stays so
//! until lws closes it: lws's frequent interest changes (POLLOUT on and off
//! per message) only flip bits here and cost no epoll_ctl. A socket is
//! serviced when a direction is both wanted by lws and known ready. Ready
//! means: an edge said so and we have not seen the direction drained since.
//! Reads are drained when FIONREAD says the kernel holds nothing more (or
//! the fd is no stream socket); writes are blocked when lws had to buffer
//! (`lws_partial_buffered`), and the next writable edge frees them.

use crate::context::Shared;
use lws_sys as sys;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use std::os::raw::{c_int, c_uint};
use std::os::unix::io::RawFd;

const READ: u8 = 1;
const WRITE: u8 = 2;
const HUP: u8 = 4;
const ERR: u8 = 8;
/// The peer shut down its writing side (EPOLLRDHUP): what it sent before is
/// still to be read, then read() returns 0. Sticky, so READ stays ready
/// until lws reads that 0 (the kernel sends no new edge for it).
const PEER_DONE: u8 = 16;

#[derive(Clone, Copy)]
struct FdSlot {
    wsi: *mut sys::lws,
    /// Bumped on every (de)registration, so a slot reused for a new socket
    /// during a service call is recognised.
    generation: u32,
    registered: bool,
    /// What lws wants (READ | WRITE).
    want: u8,
    /// What mio said and we have not seen consumed (READ | WRITE | HUP | ERR
    /// | PEER_DONE).
    ready: u8,
    /// Already in the ready list.
    queued: bool,
    /// The POLLIN being offered had nothing behind it but the peer's EOF
    /// (PEER_DONE, no bytes in the kernel): see `after_service`.
    eof_only: bool,
}

impl Default for FdSlot {
    fn default() -> Self {
        FdSlot {
            wsi: std::ptr::null_mut(),
            generation: 0,
            registered: false,
            want: 0,
            ready: 0,
            queued: false,
            eof_only: false,
        }
    }
}

/// Per-context loop state; lives in [`Shared`].
pub(crate) struct Reactor {
    registry: Registry,
    token_base: usize,
    fds: Vec<FdSlot>,
    /// Fds that may need service this round.
    ready: Vec<RawFd>,
    /// The previous round's list, emptied: servicing a round usually
    /// re-queues an fd (more to read, a write wanted), so two lists trade
    /// places instead of a fresh allocation per round.
    spare: Vec<RawFd>,
    /// Half-closed fds whose EOF is held back (see `after_service`).
    parked: Vec<RawFd>,
}

impl Reactor {
    pub(crate) fn new(registry: Registry, token_base: usize) -> Self {
        Reactor {
            registry,
            token_base,
            fds: Vec::new(),
            ready: Vec::new(),
            spare: Vec::new(),
            parked: Vec::new(),
        }
    }

    /// The fd a token stands for, if it is one of ours.
    pub(crate) fn fd_of(&self, token: Token) -> Option<RawFd> {
        let offset = token.0.checked_sub(self.token_base)?;
        (offset < (1 << 31)).then_some(offset as RawFd)
    }

    /// True when something is waiting to be serviced (so do not block).
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    fn slot(&mut self, fd: RawFd) -> &mut FdSlot {
        let i = fd as usize;
        if i >= self.fds.len() {
            self.fds.resize(i + 1, FdSlot::default());
        }
        &mut self.fds[i]
    }

    fn register(&mut self, wsi: *mut sys::lws, fd: RawFd) -> c_int {
        let token = Token(self.token_base + fd as usize);
        let stale = self.slot(fd).registered;
        let interest = Interest::READABLE | Interest::WRITABLE;
        let mut source = SourceFd(&fd);
        let mut result = self.registry.register(&mut source, token, interest);
        if stale || result.is_err() {
            // lws closed and reopened this fd number without telling us
            // (e.g. a client retrying another address): re-arm it.
            result = self.registry.reregister(&mut source, token, interest);
        }
        if let Err(e) = result {
            log::error!("cannot watch fd {fd}: {e}");
            return 1;
        }
        let slot = self.slot(fd);
        *slot = FdSlot {
            wsi,
            generation: slot.generation.wrapping_add(1),
            registered: true,
            want: READ,
            ready: 0,
            queued: false,
            eof_only: false,
        };
        0
    }

    /// Watches `fd` again after its file was swapped under the same number
    /// (dup2 onto a listening socket): epoll forgot the old file.
    pub(crate) fn rearm(&mut self, fd: RawFd) {
        let slot = *self.slot(fd);
        if slot.registered {
            self.register(slot.wsi, fd);
        }
    }

    /// Stops servicing `fd` (its file was swapped for one that does not
    /// listen) without forgetting it: lws still owns the number.
    pub(crate) fn quiesce(&mut self, fd: RawFd) {
        let slot = self.slot(fd);
        slot.ready = 0;
    }

    fn deregister(&mut self, fd: RawFd) {
        let slot = self.slot(fd);
        if !slot.registered {
            return;
        }
        slot.registered = false;
        slot.generation = slot.generation.wrapping_add(1);
        slot.want = 0;
        slot.ready = 0;
        slot.wsi = std::ptr::null_mut();
        // The fd may already be closed; the kernel then dropped it itself.
        let _ = self.registry.deregister(&mut SourceFd(&fd));
    }

    /// Forgets the fds still registered for `wsi`, which lws is freeing
    /// after closing its socket itself (a client connect that failed): the
    /// kernel dropped them from epoll when they closed, and their numbers
    /// may already be someone else's, so nothing is asked of epoll.
    fn forget_closed(&mut self, wsi: *mut sys::lws) {
        for slot in self.fds.iter_mut().filter(|s| s.registered && s.wsi == wsi) {
            *slot = FdSlot {
                generation: slot.generation.wrapping_add(1),
                ..FdSlot::default()
            };
        }
    }

    fn set_interest(&mut self, fd: RawFd, flags: c_uint) {
        let bits = (if flags & sys::LWS_EV_READ != 0 {
            READ
        } else {
            0
        }) | (if flags & sys::LWS_EV_WRITE != 0 {
            WRITE
        } else {
            0
        });
        let slot = self.slot(fd);
        if !slot.registered {
            return;
        }
        if flags & sys::LWS_EV_START != 0 {
            slot.want |= bits;
            if bits & READ != 0 && slot.ready & PEER_DONE != 0 {
                // Reading again (a resume): the parked EOF is worth offering.
                slot.ready |= READ;
            }
        } else if flags & sys::LWS_EV_STOP != 0 {
            slot.want &= !bits;
        }
        self.enqueue_if_serviceable(fd);
    }

    fn enqueue_if_serviceable(&mut self, fd: RawFd) {
        let slot = self.slot(fd);
        let serviceable = slot.want & slot.ready != 0 || slot.ready & (HUP | ERR) != 0;
        if slot.registered && serviceable && !slot.queued {
            slot.queued = true;
            self.ready.push(fd);
        }
    }

    /// Records a mio event for one of our fds.
    pub(crate) fn on_event(&mut self, fd: RawFd, event: &mio::event::Event) {
        let slot = self.slot(fd);
        if !slot.registered {
            return;
        }
        if event.is_readable() {
            slot.ready |= READ;
        }
        if event.is_writable() {
            slot.ready |= WRITE;
        }
        // poll(2)'s meaning, which lws expects: a peer's half-close is
        // POLLIN (its data, then EOF), POLLHUP only when both directions are
        // gone. Passing POLLHUP for a half-close made lws close at once
        // without reading what was sent before the FIN (a request and
        // shutdown(SHUT_WR) in one go got no answer; found by fuzz/).
        if event.is_read_closed() && event.is_write_closed() {
            slot.ready |= HUP;
        } else if event.is_read_closed() {
            slot.ready |= READ | PEER_DONE;
        } else if event.is_write_closed() {
            slot.ready |= HUP;
        }
        if event.is_error() {
            slot.ready |= ERR;
        }
        if slot.ready & PEER_DONE != 0 {
            // Any news on the socket (room to write, mostly) may be what
            // lws waited for before it ends the connection: offer the EOF
            // again.
            slot.ready |= READ;
        }
        self.enqueue_if_serviceable(fd);
    }

    /// Offers again every EOF held back: lws just served input it had
    /// buffered, and may have used a POLLIN on that rather than on the
    /// socket.
    pub(crate) fn unpark(&mut self) {
        for fd in std::mem::take(&mut self.parked) {
            let slot = self.slot(fd);
            if slot.registered && slot.ready & PEER_DONE != 0 {
                slot.ready |= READ;
                self.enqueue_if_serviceable(fd);
            }
        }
    }

    /// Takes this round's ready list.
    pub(crate) fn take_ready(&mut self) -> Vec<RawFd> {
        let spare = std::mem::take(&mut self.spare);
        let list = std::mem::replace(&mut self.ready, spare);
        for &fd in &list {
            self.slot(fd).queued = false;
        }
        list
    }

    /// Gives back the list [`take_ready`](Self::take_ready) handed out, so
    /// its allocation is reused.
    pub(crate) fn return_buffer(&mut self, mut list: Vec<RawFd>) {
        list.clear();
        if list.capacity() > self.spare.capacity() {
            self.spare = list;
        }
    }

    /// The poll revents to service `fd` with now, and its generation; None
    /// when there is nothing to do.
    pub(crate) fn service_plan(&mut self, fd: RawFd) -> Option<(i16, u32)> {
        let slot = self.slot(fd);
        if !slot.registered {
            return None;
        }
        let mut revents = 0i16;
        slot.eof_only = false;
        if slot.want & slot.ready & READ != 0 {
            revents |= libc::POLLIN;
            slot.eof_only = slot.ready & (PEER_DONE | HUP) == PEER_DONE && !kernel_has_bytes(fd);
        }
        let slot = *slot;
        if slot.want & slot.ready & WRITE != 0 {
            revents |= libc::POLLOUT;
        }
        if slot.ready & HUP != 0 {
            // A peer hang-up must be seen even if lws paused reading.
            revents |= libc::POLLHUP | libc::POLLIN;
        }
        if slot.ready & ERR != 0 {
            revents |= libc::POLLERR;
        }
        (revents != 0).then_some((revents, slot.generation))
    }

    /// After servicing `fd` with `revents`: decide what is still ready.
    pub(crate) fn after_service(&mut self, fd: RawFd, generation: u32, revents: i16) {
        let slot = *self.slot(fd);
        if !slot.registered || slot.generation != generation {
            return; // closed (and maybe reused) during service
        }
        let mut ready = slot.ready;
        if revents & libc::POLLIN != 0 && ready & (HUP | PEER_DONE) == 0 && !kernel_has_bytes(fd) {
            ready &= !READ;
        }
        // SAFETY: the slot is registered with the same generation, so its wsi
        // is the live one lws gave us for this fd.
        if revents & libc::POLLIN != 0
            && revents & libc::POLLOUT == 0
            && slot.eof_only
            && unsafe { sys::lws_partial_buffered(slot.wsi) } != 0
        {
            // lws was offered only the EOF while it still holds output, and
            // the connection lives on: it lingers to flush that to a peer
            // that is not reading (up to its own 5 s timeout). Offering the
            // EOF again every turn only spins the loop; the next event on
            // the socket, a POLLOUT service, lws asking to read again or
            // lws's own buffered-rx service re-offers it. (Without output
            // held the EOF stays offered: lws may have spent the POLLIN
            // on input it had buffered, and reads the socket next time.)
            ready &= !READ;
            if !self.parked.contains(&fd) {
                self.parked.push(fd);
            }
        }
        if revents & libc::POLLOUT != 0 && ready & PEER_DONE != 0 {
            ready |= READ;
        }
        // SAFETY: the slot is registered with the same generation, so its wsi
        // is the live one lws gave us for this fd.
        if revents & libc::POLLOUT != 0
            && unsafe { sys::lws_partial_buffered(slot.wsi) } != 0
            && !socket_writable(fd)
        {
            // lws holds unsent data and the kernel is full: wait for the
            // next writable edge. (lws also buffers by choice, sending at
            // most tx_packet_size per call, so we must ask the kernel.)
            ready &= !WRITE;
        }
        self.slot(fd).ready = ready;
        self.enqueue_if_serviceable(fd);
    }
}

/// A zero-timeout poll() for POLLOUT: only asked after lws buffered data.
fn socket_writable(fd: RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n == 1 && pfd.revents & libc::POLLOUT != 0
}

/// FIONREAD > 0. False too for fds that do not support it (listeners,
/// eventfds): lws drains those itself on every service.
fn kernel_has_bytes(fd: RawFd) -> bool {
    let mut n: c_int = 0;
    // SAFETY: FIONREAD writes one int; fd is an open descriptor we watch.
    let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    r == 0 && n > 0
}

// ---- the lws_event_loop_ops lws calls ------------------------------------

/// The Shared of the context a wsi belongs to, from the per-thread slot
/// lws keeps for its event lib (filled by `op_init_pt`; the context's user
/// pointer is not set yet when lws creates its first sockets).
///
/// # Safety
/// `wsi` must be live and belong to a context created by [`crate::Context`].
unsafe fn shared_of_wsi<'a>(wsi: *mut sys::lws) -> Option<&'a Shared> {
    // SAFETY: the caller's contract; the evlib pt area holds one pointer
    // (evlib_size_pt), written by op_init_pt before any socket exists.
    unsafe {
        let slot = sys::lws_evlib_wsi_to_evlib_pt(wsi) as *const *const Shared;
        if slot.is_null() {
            return None;
        }
        (*slot).as_ref()
    }
}

unsafe extern "C" fn op_sock_accept(wsi: *mut sys::lws) -> c_int {
    crate::panic::guard("sock_accept", 1, || {
        // SAFETY: lws calls this with a live wsi of our context.
        let Some(shared) = (unsafe { shared_of_wsi(wsi) }) else {
            return 1;
        };
        // SAFETY: wsi is live.
        let fd = unsafe { sys::lws_get_socket_fd(wsi) };
        if fd < 0 {
            return 1;
        }
        shared.reactor.borrow_mut().register(wsi, fd)
    })
}

/// A vhost's listening socket: watched like any other, and recorded so
/// the listener can find its fd (for backlog, stop and start).
unsafe extern "C" fn op_init_listen(wsi: *mut sys::lws) -> c_int {
    crate::panic::guard("init_vhost_listen_wsi", 1, || {
        // SAFETY: lws calls this with a live listening wsi of our context.
        let Some(shared) = (unsafe { shared_of_wsi(wsi) }) else {
            return 1;
        };
        // SAFETY: wsi is live.
        let (fd, vhost) = unsafe { (sys::lws_get_socket_fd(wsi), sys::lws_get_vhost(wsi)) };
        if fd < 0 {
            return 1;
        }
        shared.listen_fds.borrow_mut().push((vhost, fd, wsi));
        shared.reactor.borrow_mut().register(wsi, fd)
    })
}

unsafe extern "C" fn op_io(wsi: *mut sys::lws, flags: c_uint) {
    crate::panic::guard("io", (), || {
        // SAFETY: lws calls this with a live wsi of our context.
        let Some(shared) = (unsafe { shared_of_wsi(wsi) }) else {
            return;
        };
        // SAFETY: wsi is live.
        let fd = unsafe { sys::lws_get_socket_fd(wsi) };
        if fd >= 0 {
            shared.reactor.borrow_mut().set_interest(fd, flags);
        }
    })
}

unsafe extern "C" fn op_wsi_logical_close(wsi: *mut sys::lws) -> c_int {
    crate::panic::guard("wsi_logical_close", 0, || {
        // SAFETY: lws calls this with a live wsi of our context.
        let Some(shared) = (unsafe { shared_of_wsi(wsi) }) else {
            return 0;
        };
        // SAFETY: wsi is live.
        let fd = unsafe { sys::lws_get_socket_fd(wsi) };
        if fd >= 0 {
            shared.reactor.borrow_mut().deregister(fd);
        }
        0
    })
}

unsafe extern "C" fn op_destroy_wsi(wsi: *mut sys::lws) {
    crate::panic::guard("destroy_wsi", (), || {
        // SAFETY: lws calls this just before freeing a live wsi.
        let Some(shared) = (unsafe { shared_of_wsi(wsi) }) else {
            return;
        };
        // SAFETY: wsi is still live.
        let fd = unsafe { sys::lws_get_socket_fd(wsi) };
        let mut reactor = shared.reactor.borrow_mut();
        if fd >= 0 && reactor.slot(fd).wsi == wsi {
            reactor.deregister(fd);
        } else if fd < 0 {
            // lws closed the socket without telling us (a failed client
            // connect): its slot would still point at this wsi, and
            // after_service would read it once freed.
            reactor.forget_closed(wsi);
        }
    })
}

/// lws passes `foreign_loops[tsi]`, which [`crate::Context`] sets to its
/// Shared; keep it in the pt's evlib area for the other ops.
unsafe extern "C" fn op_init_pt(
    cx: *mut sys::lws_context,
    shared: *mut libc::c_void,
    tsi: c_int,
) -> c_int {
    if shared.is_null() {
        return 1;
    }
    // SAFETY: lws allocated evlib_size_pt (one pointer) for this pt.
    unsafe {
        let slot = sys::lws_evlib_tsi_to_evlib_pt(cx, tsi) as *mut *const Shared;
        if slot.is_null() {
            return 1;
        }
        *slot = shared as *const Shared;
    }
    0
}

/// `Sync` wrapper for the static tables of raw pointers lws reads.
struct Static<T>(T);
// SAFETY: the wrapped tables are immutable and only hold pointers to static
// strings and functions.
unsafe impl<T> Sync for Static<T> {}

static OPS: Static<sys::lws_event_loop_ops> = Static(sys::lws_event_loop_ops {
    name: c"lws-rs mio".as_ptr(),
    init_context: None,
    destroy_context1: None,
    destroy_context2: None,
    init_vhost_listen_wsi: Some(op_init_listen),
    init_pt: Some(op_init_pt),
    wsi_logical_close: Some(op_wsi_logical_close),
    check_client_connect_ok: None,
    close_handle_manually: None,
    sock_accept: Some(op_sock_accept),
    io: Some(op_io),
    run_pt: None,
    destroy_pt: None,
    destroy_wsi: Some(op_destroy_wsi),
    foreign_thread: None,
    flags: 0,
    evlib_size_ctx: 0,
    evlib_size_pt: std::mem::size_of::<*const Shared>() as u16,
    evlib_size_vh: 0,
    evlib_size_wsi: 0,
});

static EVLIB: Static<sys::lws_plugin_evlib> = Static(sys::lws_plugin_evlib {
    hdr: sys::lws_plugin_header {
        name: c"lws-rs mio event loop".as_ptr(),
        _class: c"lws_evlib_plugin".as_ptr(),
        lws_build_hash: c"lws-rs".as_ptr(),
        api_magic: sys::LWS_PLUGIN_API_MAGIC,
    },
    ops: &OPS.0,
});

/// The `event_lib_custom` value for lws_context_creation_info.
pub(crate) fn evlib() -> *const sys::lws_plugin_evlib {
    &EVLIB.0
}
