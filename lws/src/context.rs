//! [`Context`]: one lws context on a mio loop, its listeners and clients.

use crate::connection::{ConnSlot, Connection, State};
use crate::event_loop::{self, Reactor};
use crate::handler::Handler;
use crate::remote::{Command, Remote};
use crate::timers::Timers;
use crate::watch::Watches;
use crate::{client, server, Error, Handle, Result};
use lws_sys as sys;
use mio::event::Events;
use mio::{Poll, Registry, Token};
use slab::Slab;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::ffi::{c_void, CString};
use std::os::raw::c_int;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// An event to hand to a handler later (the handler was busy: a callback
/// re-entered the API, or the event arose inside `connect()`).
pub(crate) type Deferred = (
    Rc<RefCell<dyn Handler>>,
    Connection,
    Box<dyn FnOnce(&mut dyn Handler, &Connection)>,
);

/// Everything the C callbacks reach through `lws_context_user()`. Owned by
/// the [`Context`] (and kept alive by [`Connection`] handles).
pub(crate) struct Shared {
    pub(crate) raw: Cell<*mut sys::lws_context>,
    pub(crate) reactor: RefCell<Reactor>,
    pub(crate) conns: RefCell<Slab<ConnSlot>>,
    pub(crate) ids: RefCell<HashMap<u64, usize>>,
    next_id: Cell<u64>,
    pub(crate) deferred: RefCell<VecDeque<Deferred>>,
    /// Set while lws_client_connect_via_info runs: its callbacks are deferred.
    pub(crate) in_connect: Cell<bool>,
    #[allow(clippy::vec_box)] // boxed: lws keeps pointers into each listener
    pub(crate) listeners: RefCell<Vec<Box<server::ListenerState>>>,
    /// Listening sockets lws made, by vhost, with their listen wsi
    /// (filled as lws creates them).
    pub(crate) listen_fds: RefCell<Vec<(*mut sys::lws_vhost, std::os::fd::RawFd, *mut sys::lws)>>,
    /// Client vhosts by TLS files and proxy, made on first use.
    pub(crate) client_vhosts: RefCell<HashMap<client::VhostKey, *mut sys::lws_vhost>>,
    /// The vhost adopted sockets join, made on first use.
    pub(crate) adopt_vhost: Cell<*mut sys::lws_vhost>,
    /// The slot of the socket `adopt()` is handing to lws right now.
    pub(crate) adopting: Cell<Option<usize>>,
    /// lws initialised OpenSSL for this context: TLS is available.
    pub(crate) ssl_init: bool,
    /// C strings lws keeps pointers to (vhost names, extension offers).
    kept: RefCell<Vec<CString>>,
    /// Plain HTTP requests waiting for their bodies.
    pub(crate) http_pending: RefCell<Vec<crate::http::Pending>>,
    /// Client vhosts' extension tables, which lws keeps pointers to.
    #[allow(clippy::vec_box)] // boxed: lws keeps pointers into each table
    kept_extensions: RefCell<Vec<Box<crate::deflate::Extensions>>>,
    pub(crate) remote: Arc<Remote>,
    stop: Cell<bool>,
    /// One-shot and periodic timers (connect deadlines too).
    pub(crate) timers: RefCell<Timers>,
    /// Other fds on the loop (users').
    pub(crate) watches: RefCell<Watches>,
    /// The keepalive sweep timer and its period, once a connection needs it.
    pub(crate) keepalive_sweep: Cell<Option<(crate::TimerId, Duration)>>,
    /// When the current loop turn started: what receiving stamps on a
    /// connection as the last time its peer was heard.
    pub(crate) turn_started: Cell<std::time::Instant>,
    /// The buffer small frames are batched in (crate::batch), kept
    /// between writes.
    pub(crate) tx_batch: Cell<Vec<u8>>,
    /// The last large buffer freed, for the next large message or frame.
    pub(crate) spare: crate::buffers::Spare,
    /// Masking keys for our client frames.
    pub(crate) mask_keys: crate::batch::MaskKeys,
    /// Server connections still reading their request, with deadlines
    /// (crate::limits).
    pub(crate) handshakes: RefCell<crate::limits::Handshakes>,
    /// The lws context is a C service's, not ours (crate::embed): no loop
    /// of ours drives it, so listen/connect/adopt are refused.
    pub(crate) embedded: bool,
}

impl Shared {
    /// The Shared behind an lws context created by us.
    ///
    /// # Safety
    /// `cx` must be null or a live context created by [`Context`].
    pub(crate) unsafe fn from_raw_context<'a>(cx: *mut sys::lws_context) -> Option<&'a Shared> {
        if cx.is_null() {
            return None;
        }
        // SAFETY: our contexts carry a pointer to their Shared, which lives
        // (in an Rc held by the Context) until after lws_context_destroy.
        let user = unsafe { sys::lws_context_user(cx) } as *const Shared;
        // SAFETY: as above; null only for contexts not created by us.
        unsafe { user.as_ref() }
    }

    /// Fresh state for one lws context (ours, or a C service's when
    /// `embedded`).
    pub(crate) fn new(
        registry: Registry,
        token_base: usize,
        ssl_init: bool,
        embedded: bool,
    ) -> Result<Rc<Shared>> {
        Ok(Rc::new(Shared {
            raw: Cell::new(std::ptr::null_mut()),
            watches: RefCell::new(Watches::new(registry.try_clone()?, token_base)),
            reactor: RefCell::new(Reactor::new(registry, token_base)),
            conns: RefCell::new(Slab::new()),
            ids: RefCell::new(HashMap::new()),
            next_id: Cell::new(0),
            deferred: RefCell::new(VecDeque::new()),
            in_connect: Cell::new(false),
            listeners: RefCell::new(Vec::new()),
            listen_fds: RefCell::new(Vec::new()),
            client_vhosts: RefCell::new(HashMap::new()),
            adopt_vhost: Cell::new(std::ptr::null_mut()),
            adopting: Cell::new(None),
            ssl_init,
            kept: RefCell::new(Vec::new()),
            kept_extensions: RefCell::new(Vec::new()),
            http_pending: RefCell::new(Vec::new()),
            remote: Arc::new(Remote::new()),
            stop: Cell::new(false),
            timers: RefCell::new(Timers::default()),
            keepalive_sweep: Cell::new(None),
            turn_started: Cell::new(std::time::Instant::now()),
            tx_batch: Cell::new(Vec::new()),
            spare: Default::default(),
            mask_keys: Default::default(),
            handshakes: RefCell::new(crate::limits::Handshakes::default()),
            embedded,
        }))
    }

    /// Keeps `s` alive as long as the context (lws holds a pointer to it).
    pub(crate) fn keep_cstring(&self, s: CString) {
        self.kept.borrow_mut().push(s);
    }

    /// Keeps an extension table alive as long as the context.
    pub(crate) fn keep_extensions(&self, table: Box<crate::deflate::Extensions>) {
        self.kept_extensions.borrow_mut().push(table);
    }

    pub(crate) fn new_id(&self) -> u64 {
        let id = self.next_id.get() + 1;
        self.next_id.set(id);
        id
    }

    /// Adds a connection slot; returns its handle.
    pub(crate) fn insert(self: &Rc<Self>, slot: ConnSlot) -> Connection {
        let id = slot.id;
        let key = self.conns.borrow_mut().insert(slot);
        self.ids.borrow_mut().insert(id, key);
        Connection {
            shared: self.clone(),
            key,
            id,
        }
    }

    /// Forgets a connection (lws freed it).
    pub(crate) fn remove(&self, key: usize) {
        let slot = {
            let mut conns = self.conns.borrow_mut();
            conns.try_remove(key)
        };
        if let Some(slot) = slot {
            self.ids.borrow_mut().remove(&slot.id);
        } // dropped here, outside the borrow (its handler may hold handles)
    }

    /// The handle of a live connection by id.
    pub(crate) fn connection(self: &Rc<Self>, id: u64) -> Option<Connection> {
        let key = *self.ids.borrow().get(&id)?;
        Some(Connection {
            shared: self.clone(),
            key,
            id,
        })
    }

    /// Calls `f` on the handler now, or later if it is busy (re-entered) or
    /// we are inside `connect()`. A panic in `f` is caught and logged.
    pub(crate) fn call(
        &self,
        handler: &Rc<RefCell<dyn Handler>>,
        conn: &Connection,
        f: impl FnOnce(&mut dyn Handler, &Connection) + 'static,
    ) {
        if !self.in_connect.get() {
            if let Ok(mut h) = handler.try_borrow_mut() {
                crate::panic::guard("a connection callback", (), || f(&mut *h, conn));
                return;
            }
        }
        self.deferred
            .borrow_mut()
            .push_back((handler.clone(), conn.clone(), Box::new(f)));
    }

    pub(crate) fn run_deferred(&self) {
        loop {
            let next = self.deferred.borrow_mut().pop_front();
            let Some((handler, conn, f)) = next else {
                break;
            };
            let busy = handler.try_borrow_mut().is_err();
            if busy {
                // Still busy: only possible from inside a callback; keep order.
                self.deferred.borrow_mut().push_front((handler, conn, f));
                break;
            }
            let mut h = handler.borrow_mut();
            crate::panic::guard("a connection callback", (), || f(&mut *h, &conn));
        }
    }
}

/// Options for a [`Context`] (the parts of lws's
/// `lws_context_creation_info` that are ours to choose).
///
/// # Examples
///
/// ```
/// let options = lws::ContextOptions {
///     ssl_init: false, // another library owns OpenSSL's global state
///     ..Default::default()
/// };
/// let cx = lws::Context::new(options)?;
/// // Without lws's TLS initialisation there is no wss://.
/// let tls = lws::ConnectOptions::new("wss://127.0.0.1:1/");
/// assert!(matches!(cx.connect(tls, lws::Callbacks::new()), Err(lws::Error::InvalidOption(_))));
/// # Ok::<(), lws::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ContextOptions {
    /// mio tokens used are `token_base + fd` (and nothing below
    /// `token_base`), so an embedding application keeps tokens under it for
    /// its own sources. Default: 1 << 32.
    pub token_base: usize,
    /// Validate UTF-8 of received text messages (invalid ones close the
    /// connection with 1007). Default: true.
    pub validate_utf8: bool,
    /// Let lws run its OpenSSL initialisation (EV::Websockets' `ssl_init`).
    /// Default: true. With `false`, lws leaves OpenSSL's global state
    /// alone, for processes where another library owns it; lws then
    /// offers no TLS in this context (wss:// listeners and clients are
    /// refused with [`Error::InvalidOption`]). With OpenSSL 1.1 and later
    /// the initialisation is idempotent and safe to share.
    pub ssl_init: bool,
    /// Most bytes of request headers lws keeps for one request (lws's
    /// `max_http_header_data`; our default
    /// [`DEFAULT_MAX_HEADER_SIZE`](crate::DEFAULT_MAX_HEADER_SIZE), 8192,
    /// where lws's own is 4096). Valid:
    /// [`MAX_HEADER_SIZE_RANGE`](crate::MAX_HEADER_SIZE_RANGE), 256 to
    /// 65535. What counts is what lws stores: the request line's URI, and
    /// the values of all headers plus the names of those lws does not know.
    /// A request whose headers do not fit is answered
    /// `431 Request Header Fields Too Large` and the connection closed
    /// (lws itself hangs up without a word: the vendored build carries our
    /// patch for the 431; a system or external lws closes silently). The
    /// buffer is lws's per-request header table, held only until the
    /// handshake or the request is done. It also bounds the response
    /// headers this context's clients accept. [`Context::new`] refuses a
    /// value outside the range with [`Error::InvalidOption`].
    pub max_header_size: usize,
}

impl Default for ContextOptions {
    fn default() -> Self {
        ContextOptions {
            token_base: 1 << 32,
            validate_utf8: true,
            ssl_init: true,
            max_header_size: crate::limits::DEFAULT_MAX_HEADER_SIZE,
        }
    }
}

/// An lws context running on a mio event loop: servers ([`Context::listen`])
/// and clients ([`Context::connect`]) on one thread.
///
/// Drive it with [`Context::run`] (it owns a `mio::Poll`), or embed it into
/// your own Poll with [`Context::embedded`], [`Context::poll_timeout`] and
/// [`Context::handle_events`]. Other threads use a [`Handle`].
///
/// # Examples
///
/// A server and a client of it on one context; the client's `on_close`
/// ends the run.
///
/// ```
/// use lws::{Callbacks, CloseCode, ConnectOptions, Context, ContextOptions, ListenOptions};
/// use std::{cell::Cell, rc::Rc, time::Duration};
///
/// let cx = Context::new(ContextOptions::default())?;
/// let port = cx.listen(ListenOptions::new(0), Callbacks::new().on_message(|conn, msg| {
///     let _ = conn.send(msg);
/// }))?.port();
///
/// let echoes = Rc::new(Cell::new(0));
/// let counted = echoes.clone();
/// let client = Callbacks::new()
///     .on_connect(|conn, _| {
///         let _ = conn.send_text("ping");
///     })
///     .on_message(move |conn, _msg| {
///         counted.set(counted.get() + 1);
///         conn.close(CloseCode::NORMAL, "bye");
///     })
///     .on_close(|conn, _, _| conn.context().stop());
/// cx.connect(ConnectOptions::new(format!("ws://127.0.0.1:{port}/")), client)?;
/// cx.set_timeout(Duration::from_secs(10), |cx| cx.stop()); // a bound on the run
/// cx.run()?;
/// assert_eq!(echoes.get(), 1);
/// # Ok::<(), lws::Error>(())
/// ```
pub struct Context {
    pub(crate) shared: Rc<Shared>,
    poll: Option<RefCell<Poll>>,
    /// False for a view ([`Connection::context`]): dropping it leaves the
    /// lws context alone.
    owner: bool,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("connections", &self.shared.conns.borrow().len())
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// Longest wait between turns, so lws's own timers are never starved.
const MAX_WAIT_MS: c_int = 1000;

/// At most this many service rounds per `handle_events` before polling
/// again.
const SERVICE_ROUNDS: usize = 8;

impl Context {
    /// A context with its own `mio::Poll`, driven by [`Context::run`]
    /// (lws's `lws_create_context`, with our loop as its custom event lib).
    ///
    /// # Errors
    /// [`Error::Io`] if the Poll cannot be created, [`Error::Lws`] if lws
    /// refuses to create the context, [`Error::InvalidOption`] for a
    /// `max_header_size` outside
    /// [`MAX_HEADER_SIZE_RANGE`](crate::MAX_HEADER_SIZE_RANGE).
    ///
    /// # Examples
    ///
    /// ```
    /// use lws::{Context, ContextOptions};
    /// let cx = Context::new(ContextOptions {
    ///     max_header_size: 16 * 1024, // bigger cookies than lws's 4 KiB allows
    ///     ..ContextOptions::default()
    /// })?;
    /// assert!(cx.connections().is_empty());
    /// assert!(Context::new(ContextOptions { max_header_size: 1, ..Default::default() }).is_err());
    /// # Ok::<(), lws::Error>(())
    /// ```
    pub fn new(options: ContextOptions) -> Result<Context> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let mut cx = Self::create(registry, &options)?;
        cx.poll = Some(RefCell::new(poll));
        Ok(cx)
    }

    /// A context that registers its sockets in a Poll you own. Call
    /// [`Context::poll_timeout`] for the wait bound before each `poll()` and
    /// [`Context::handle_events`] after it. Its tokens are
    /// [`ContextOptions::token_base`] and above; [`Context::owns`] tells
    /// them from yours. `examples/embed_mio.rs` shows it next to other
    /// sources.
    ///
    /// # Errors
    /// As [`Context::new`].
    ///
    /// # Examples
    ///
    /// Driving the context from your own loop until a client has its echo:
    ///
    /// ```
    /// use lws::{Callbacks, ConnectOptions, Context, ContextOptions, ListenOptions};
    /// use mio::{Events, Poll};
    /// use std::{cell::Cell, rc::Rc, time::{Duration, Instant}};
    ///
    /// let mut poll = Poll::new()?;
    /// let cx = Context::embedded(poll.registry(), ContextOptions::default())?;
    /// let port = cx.listen(ListenOptions::new(0), Callbacks::new().on_message(|conn, msg| {
    ///     let _ = conn.send(msg);
    /// }))?.port();
    /// let echoed = Rc::new(Cell::new(false));
    /// let seen = echoed.clone();
    /// let client = Callbacks::new()
    ///     .on_connect(|conn, _| {
    ///         let _ = conn.send_text("hi");
    ///     })
    ///     .on_message(move |_conn, _msg| seen.set(true));
    /// cx.connect(ConnectOptions::new(format!("ws://127.0.0.1:{port}/")), client)?;
    ///
    /// let mut events = Events::with_capacity(256);
    /// let give_up = Instant::now() + Duration::from_secs(10); // a bound on the loop
    /// while !echoed.get() && Instant::now() < give_up {
    ///     poll.poll(&mut events, cx.poll_timeout())?;
    ///     // Your own sources' events would be handled here too.
    ///     cx.handle_events(&events);
    /// }
    /// assert!(echoed.get());
    /// # Ok::<(), lws::Error>(())
    /// ```
    pub fn embedded(registry: &Registry, options: ContextOptions) -> Result<Context> {
        Self::create(registry.try_clone()?, &options)
    }

    fn create(registry: Registry, options: &ContextOptions) -> Result<Context> {
        let max_header_size = crate::limits::header_size(options.max_header_size)?;
        let shared = Shared::new(registry, options.token_base, options.ssl_init, false)?;
        crate::logging::init();
        let mut opts = sys::LWS_SERVER_OPTION_EXPLICIT_VHOSTS as u64;
        if options.ssl_init {
            opts |= sys::LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT as u64;
        }
        if options.validate_utf8 {
            opts |= sys::LWS_SERVER_OPTION_VALIDATE_UTF8 as u64;
        }
        // The event-loop ops find the Shared through lws's "foreign loop".
        let mut foreign_loops = [Rc::as_ptr(&shared) as *mut c_void];
        let info = sys::lws_context_creation_info {
            port: sys::CONTEXT_PORT_NO_LISTEN,
            options: opts,
            user: Rc::as_ptr(&shared) as *mut c_void,
            event_lib_custom: event_loop::evlib(),
            foreign_loops: foreign_loops.as_mut_ptr(),
            count_threads: 1,
            max_http_header_data: max_header_size,
            ..Default::default()
        };
        // SAFETY: info is fully initialised; user points to the Shared this
        // Context keeps alive until after lws_context_destroy.
        let raw = unsafe { sys::lws_create_context(&info) };
        if raw.is_null() {
            return Err(Error::Lws("lws_create_context failed".into()));
        }
        shared.raw.set(raw);
        shared.remote.set_context(raw);
        Ok(Context {
            shared,
            poll: None,
            owner: true,
        })
    }

    /// A view of the context behind `shared`, for code that has only a
    /// connection: it does everything but [`Context::run`], and dropping it
    /// leaves the context alone.
    pub(crate) fn view(shared: &Rc<Shared>) -> Context {
        Context {
            shared: shared.clone(),
            poll: None,
            owner: false,
        }
    }

    /// True for the Context that owns the lws context (not a view).
    pub fn is_owner(&self) -> bool {
        self.owner
    }

    pub(crate) fn shared(&self) -> &Rc<Shared> {
        &self.shared
    }

    pub(crate) fn raw(&self) -> *mut sys::lws_context {
        self.shared.raw.get()
    }

    /// A handle for other threads (see [`Handle`] for an example).
    pub fn handle(&self) -> Handle {
        Handle::new(self.shared.remote.clone())
    }

    /// Connections whose handshake completed and that still exist (state
    /// connected or closing), e.g. to broadcast (EV::Websockets'
    /// `connections`; see also [`Context::broadcast`]).
    pub fn connections(&self) -> Vec<Connection> {
        let conns = self.shared.conns.borrow();
        conns
            .iter()
            .filter(|(_, s)| matches!(s.state, State::Connected | State::Closing))
            .map(|(key, s)| Connection {
                shared: self.shared.clone(),
                key,
                id: s.id,
            })
            .collect()
    }

    /// The connection with this id, if it still exists.
    pub fn connection(&self, id: u64) -> Option<Connection> {
        self.shared.connection(id)
    }

    /// Runs the loop until [`Context::stop`] or [`Handle::stop`]: waits on
    /// the Poll for at most [`Context::poll_timeout`], then
    /// [`Context::handle_events`], in turn. lws's `lws_service` loop, on
    /// mio. Every callback, timer and watcher runs inside it, on this
    /// thread.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for an embedded context (drive it from your
    /// Poll instead); [`Error::Io`] if polling fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let cx = lws::Context::new(lws::ContextOptions::default())?;
    /// cx.set_timeout(Duration::from_millis(10), |cx| cx.stop());
    /// cx.run()?; // returns after the timer stopped it
    /// # Ok::<(), lws::Error>(())
    /// ```
    pub fn run(&self) -> Result<()> {
        let Some(poll) = &self.poll else {
            return Err(Error::InvalidOption(if self.owner {
                "run() needs a context made by Context::new; an embedded one is driven by its Poll's owner".into()
            } else {
                "run() is for the Context that owns the loop, not a view from Connection::context"
                    .into()
            }));
        };
        let mut events = Events::with_capacity(1024);
        self.shared.stop.set(false);
        while !self.shared.stop.get() {
            let timeout = self.poll_timeout();
            if let Err(e) = poll.borrow_mut().poll(&mut events, timeout) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e.into());
                }
            }
            self.handle_events(&events);
        }
        Ok(())
    }

    /// Makes [`Context::run`] return after its current turn. Connections
    /// stay open (see [`Context::shutdown`] to close them first); `run`
    /// may be called again.
    pub fn stop(&self) {
        self.shared.stop.set(true);
    }

    /// True if `token` is one this context registered.
    pub fn owns(&self, token: Token) -> bool {
        self.shared.reactor.borrow().fd_of(token).is_some()
    }

    /// The lws context, or ContextGone once the owner dropped it.
    pub(crate) fn live_raw(&self) -> Result<*mut sys::lws_context> {
        if self.shared.embedded {
            return Err(Error::InvalidOption(
                "a C-owned lws context (lws::embed) takes no listeners, clients or adopted sockets from Rust".into(),
            ));
        }
        let raw = self.raw();
        if raw.is_null() {
            Err(Error::ContextGone)
        } else {
            Ok(raw)
        }
    }

    /// How long the next `poll()` may wait: runs lws's due timers and any
    /// service lws needs without I/O first. `Some(ZERO)` when work is waiting.
    pub fn poll_timeout(&self) -> Option<Duration> {
        let raw = self.raw();
        if raw.is_null() {
            return None; // a view of a dropped context: nothing to wait for
        }
        // SAFETY: raw is our live context; called on its loop thread.
        let mut ms = unsafe { sys::lws_service_adjust_timeout(raw, MAX_WAIT_MS, 0) };
        if ms == 0 {
            // lws holds buffered data (TLS, rx flow, extensions): serve it
            // without polling, as lws's own event libs do.
            self.shared.turn_started.set(std::time::Instant::now());
            // SAFETY: as above.
            unsafe { sys::_lws_plat_service_forced_tsi(raw, 0) };
            self.shared.reactor.borrow_mut().unpark();
            self.after_service();
            // SAFETY: as above.
            ms = unsafe { sys::lws_service_adjust_timeout(raw, MAX_WAIT_MS, 0) };
        }
        let busy = self.shared.reactor.borrow().has_ready()
            || self.shared.watches.borrow().has_ready()
            || !self.shared.deferred.borrow().is_empty()
            || self.shared.remote.has_pending();
        let mut wait = if busy {
            Duration::ZERO
        } else {
            Duration::from_millis(ms.max(0) as u64)
        };
        if let Some(next) = self.shared.timers.borrow().next_due() {
            wait = wait.min(next.saturating_duration_since(std::time::Instant::now()));
        }
        Some(wait)
    }

    /// Handles the events of one `poll()` (those with this context's
    /// tokens; others are ignored), then services everything that is ready.
    pub fn handle_events(&self, events: &Events) {
        if self.raw().is_null() {
            return;
        }
        self.shared.turn_started.set(std::time::Instant::now());
        {
            let mut reactor = self.shared.reactor.borrow_mut();
            let mut watches = self.shared.watches.borrow_mut();
            for event in events.iter() {
                if let Some(fd) = reactor.fd_of(event.token()) {
                    if watches.owns(fd) {
                        watches.on_event(fd, event);
                    } else {
                        reactor.on_event(fd, event);
                    }
                }
            }
        }
        // What one service makes ready (the write an echo queues, the
        // next chunk of a large message still in the kernel) is served
        // at once, not after another poll; a bound keeps new events from
        // waiting behind a busy connection.
        for _ in 0..SERVICE_ROUNDS {
            self.service_ready();
            self.run_watches();
            self.after_service();
            if !self.shared.reactor.borrow().has_ready() {
                break;
            }
        }
    }

    /// One round over the fds that are ready and wanted.
    fn service_ready(&self) {
        let raw = self.raw();
        let list = self.shared.reactor.borrow_mut().take_ready();
        for &fd in &list {
            let plan = self.shared.reactor.borrow_mut().service_plan(fd);
            let Some((revents, generation)) = plan else {
                continue;
            };
            let mut pfd = sys::pollfd {
                fd,
                events: revents,
                revents,
            };
            // SAFETY: raw is live; fd is a socket lws gave us and still owns
            // (registered, same generation); no RefCell borrow is held.
            unsafe { sys::lws_service_fd(raw, &mut pfd) };
            self.shared
                .reactor
                .borrow_mut()
                .after_service(fd, generation, revents);
        }
        self.shared.reactor.borrow_mut().return_buffer(list);
    }

    /// Work queued for after lws's callbacks: deferred events, commands
    /// from other threads, timers.
    fn after_service(&self) {
        self.shared.run_deferred();
        for command in self.shared.remote.take() {
            self.run_command(command);
        }
        self.run_timers();
        self.shared.run_deferred();
    }

    pub(crate) fn run_command(&self, command: Command) {
        match command {
            Command::Send(id, message) => {
                if let Some(conn) = self.connection(id) {
                    if let Err(e) = conn.send(message) {
                        log::debug!("send from another thread to connection {id} dropped: {e}");
                    }
                }
            }
            Command::Close(id, code, reason) => {
                if let Some(conn) = self.connection(id) {
                    conn.close(code, &reason);
                }
            }
            Command::Stop => self.stop(),
            Command::Call(f) => crate::panic::guard("a closure run on the loop", (), || f(self)),
        }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        if !self.owner {
            return;
        }
        let raw = self.shared.raw.get();
        // Other threads can no longer wake it (waits for a wake in progress).
        self.shared.remote.set_context(std::ptr::null_mut());
        if !raw.is_null() {
            // SAFETY: raw came from lws_create_context and is destroyed once;
            // the Shared it points to is still alive (we hold an Rc).
            unsafe { sys::lws_context_destroy(raw) };
        }
        self.shared.raw.set(std::ptr::null_mut());
        // Break cycles between handlers and the Connection handles they
        // hold, so nothing leaks after the context is gone.
        self.shared.deferred.borrow_mut().clear();
        let slots: Vec<ConnSlot> = self.shared.conns.borrow_mut().drain().collect();
        self.shared.ids.borrow_mut().clear();
        drop(slots);
        let listeners = std::mem::take(&mut *self.shared.listeners.borrow_mut());
        drop(listeners);
        // Timers and watchers may hold handles too.
        let timers = std::mem::take(&mut *self.shared.timers.borrow_mut());
        drop(timers);
        let watched = self.shared.watches.borrow_mut().clear();
        drop(watched);
    }
}

/// A C string from user input, or a clear error naming the option.
pub(crate) fn cstring(what: &str, value: &str) -> Result<CString> {
    CString::new(value).map_err(|_| Error::InvalidOption(format!("{what} contains a NUL byte")))
}
