//! Other file descriptors on the same loop ([`Context::watch_readable`],
//! [`Context::watch_writable`], [`Context::unwatch`]), as
//! Net::WebSocket::Server's `watch_readable` / `watch_writable`.
//!
//! Watchers are level-triggered, like libev's io watchers: a readable
//! watcher is called again on the next turn for as long as the fd stays
//! readable (mio's edge-triggered events are turned into that with a
//! zero-timeout `poll()` after each call), so a callback may read as much
//! or as little as it likes. A writable watcher is called on every turn
//! while the fd can take data: unwatch it when there is nothing to write.

use crate::{Context, Error, Result};
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::RawFd;
use std::rc::Rc;

type Callback = Rc<RefCell<dyn FnMut(&Context, RawFd)>>;

const READ: u8 = 1;
const WRITE: u8 = 2;

struct Watch {
    readable: Option<Callback>,
    writable: Option<Callback>,
    /// Directions an event said are ready and not yet seen drained.
    ready: u8,
    queued: bool,
}

/// The watched fds of one context.
pub(crate) struct Watches {
    registry: Registry,
    token_base: usize,
    entries: HashMap<RawFd, Watch>,
    /// Fds with a ready direction someone watches.
    ready: Vec<RawFd>,
}

impl Watches {
    pub(crate) fn new(registry: Registry, token_base: usize) -> Self {
        Watches {
            registry,
            token_base,
            entries: HashMap::new(),
            ready: Vec::new(),
        }
    }

    /// Forgets every watcher (the context is going away); returns them so
    /// the caller drops them outside the borrow.
    pub(crate) fn clear(&mut self) -> Vec<(Option<Callback>, Option<Callback>)> {
        self.ready.clear();
        self.entries
            .drain()
            .map(|(fd, w)| {
                let _ = self.registry.deregister(&mut SourceFd(&fd));
                (w.readable, w.writable)
            })
            .collect()
    }

    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    pub(crate) fn owns(&self, fd: RawFd) -> bool {
        self.entries.contains_key(&fd)
    }

    fn add(&mut self, fd: RawFd, dir: u8, f: Callback) -> Result<()> {
        if fd < 0 {
            return Err(Error::InvalidOption(format!("cannot watch fd {fd}")));
        }
        if let Some(w) = self.entries.get_mut(&fd) {
            if dir == READ {
                w.readable = Some(f);
            } else {
                w.writable = Some(f);
            }
            // The new direction may have been ready (or not) for a while:
            // no edge tells, so ask now.
            w.ready = readiness(fd);
            self.enqueue(fd);
            return Ok(());
        }
        let token = Token(self.token_base + fd as usize);
        self.registry.register(
            &mut SourceFd(&fd),
            token,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let (readable, writable) = if dir == READ {
            (Some(f), None)
        } else {
            (None, Some(f))
        };
        self.entries.insert(
            fd,
            Watch {
                readable,
                writable,
                // Ready as it is now (registered first, so a change from
                // here on gives an edge): a watcher is not called on an fd
                // that is not ready.
                ready: readiness(fd),
                queued: false,
            },
        );
        self.enqueue(fd);
        Ok(())
    }

    /// Stops watching `fd` in the directions in `dir`; true if it was.
    fn remove(&mut self, fd: RawFd, dir: u8) -> bool {
        let Some(w) = self.entries.get_mut(&fd) else {
            return false;
        };
        if dir & READ != 0 {
            w.readable = None;
        }
        if dir & WRITE != 0 {
            w.writable = None;
        }
        if w.readable.is_none() && w.writable.is_none() {
            self.entries.remove(&fd);
            // The fd may be closed already; the kernel then forgot it.
            let _ = self.registry.deregister(&mut SourceFd(&fd));
        }
        true
    }

    fn enqueue(&mut self, fd: RawFd) {
        let Some(w) = self.entries.get_mut(&fd) else {
            return;
        };
        let wanted = (if w.readable.is_some() { READ } else { 0 })
            | (if w.writable.is_some() { WRITE } else { 0 });
        if w.ready & wanted != 0 && !w.queued {
            w.queued = true;
            self.ready.push(fd);
        }
    }

    /// Records a mio event for a watched fd.
    pub(crate) fn on_event(&mut self, fd: RawFd, event: &mio::event::Event) {
        let Some(w) = self.entries.get_mut(&fd) else {
            return;
        };
        let closed = event.is_read_closed() || event.is_write_closed() || event.is_error();
        if event.is_readable() || closed {
            w.ready |= READ;
        }
        if event.is_writable() || closed {
            w.ready |= WRITE;
        }
        self.enqueue(fd);
    }

    fn take_ready(&mut self) -> Vec<RawFd> {
        let list = std::mem::take(&mut self.ready);
        for fd in &list {
            if let Some(w) = self.entries.get_mut(fd) {
                w.queued = false;
            }
        }
        list
    }

    /// The callbacks to run for `fd` now.
    fn due(&self, fd: RawFd) -> (Option<Callback>, Option<Callback>) {
        match self.entries.get(&fd) {
            Some(w) => (
                w.readable.clone().filter(|_| w.ready & READ != 0),
                w.writable.clone().filter(|_| w.ready & WRITE != 0),
            ),
            None => (None, None),
        }
    }

    /// After the callbacks ran: keep only the directions still ready.
    fn recheck(&mut self, fd: RawFd) {
        let Some(w) = self.entries.get_mut(&fd) else {
            return;
        };
        w.ready = readiness(fd);
        self.enqueue(fd);
    }
}

/// What a zero-timeout poll() says of `fd` now.
fn readiness(fd: RawFd) -> u8 {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN | libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    if unsafe { libc::poll(&mut pfd, 1, 0) } != 1 {
        return 0;
    }
    let hup = pfd.revents & (libc::POLLHUP | libc::POLLERR) != 0;
    (if pfd.revents & libc::POLLIN != 0 || hup {
        READ
    } else {
        0
    }) | (if pfd.revents & libc::POLLOUT != 0 || hup {
        WRITE
    } else {
        0
    })
}

impl Context {
    /// Calls `f` on the loop thread whenever `fd` is readable (a pipe, a
    /// socket of another protocol, a timerfd, ...), until
    /// [`Context::unwatch`]. Level-triggered: `f` is called again on the
    /// next turn while data remains. The fd stays yours: unwatch it before
    /// closing it. Replaces an earlier readable watcher of the same fd.
    ///
    /// # Errors
    /// [`Error::Io`] if the fd cannot be registered (not open, already
    /// registered elsewhere in this loop, or a regular file);
    /// [`Error::InvalidOption`] for a negative fd.
    ///
    /// # Examples
    ///
    /// Net::WebSocket::Server's `watch_readable`, on a socket pair:
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::os::fd::AsRawFd;
    /// use std::{cell::RefCell, rc::Rc, time::Duration};
    /// let cx = lws::Context::new(lws::ContextOptions::default())?;
    /// let (mut rx, mut tx) = std::os::unix::net::UnixStream::pair()?;
    /// rx.set_nonblocking(true)?;
    /// let fd = rx.as_raw_fd();
    /// let got = Rc::new(RefCell::new(Vec::new()));
    /// let seen = got.clone();
    /// cx.watch_readable(fd, move |cx, _fd| {
    ///     let mut buf = [0u8; 512];
    ///     if let Ok(n) = rx.read(&mut buf) {
    ///         seen.borrow_mut().extend_from_slice(&buf[..n]);
    ///         cx.stop();
    ///     }
    /// })?;
    /// tx.write_all(b"wake up")?;
    /// cx.set_timeout(Duration::from_secs(10), |cx| cx.stop()); // a bound on the run
    /// cx.run()?;
    /// assert_eq!(&got.borrow()[..], b"wake up");
    /// assert!(cx.unwatch(fd)); // drops the closure, and with it `rx`
    /// # Ok::<(), lws::Error>(())
    /// ```
    pub fn watch_readable(
        &self,
        fd: RawFd,
        f: impl FnMut(&Context, RawFd) + 'static,
    ) -> Result<()> {
        self.shared()
            .watches
            .borrow_mut()
            .add(fd, READ, Rc::new(RefCell::new(f)))
    }

    /// Calls `f` on the loop thread on every turn while `fd` can be written
    /// to, until [`Context::unwatch`]: watch only while there is something
    /// to write. Replaces an earlier writable watcher of the same fd.
    ///
    /// # Errors
    /// As [`Context::watch_readable`].
    pub fn watch_writable(
        &self,
        fd: RawFd,
        f: impl FnMut(&Context, RawFd) + 'static,
    ) -> Result<()> {
        self.shared()
            .watches
            .borrow_mut()
            .add(fd, WRITE, Rc::new(RefCell::new(f)))
    }

    /// Stops watching `fd` (both directions); true if it was watched.
    pub fn unwatch(&self, fd: RawFd) -> bool {
        self.shared().watches.borrow_mut().remove(fd, READ | WRITE)
    }

    /// Stops watching `fd` for reading only; true if it was watched.
    pub fn unwatch_readable(&self, fd: RawFd) -> bool {
        self.shared().watches.borrow_mut().remove(fd, READ)
    }

    /// Stops watching `fd` for writing only; true if it was watched.
    pub fn unwatch_writable(&self, fd: RawFd) -> bool {
        self.shared().watches.borrow_mut().remove(fd, WRITE)
    }

    /// Runs the watchers whose fds are ready.
    pub(crate) fn run_watches(&self) {
        let list = self.shared().watches.borrow_mut().take_ready();
        for fd in list {
            let (readable, writable) = self.shared().watches.borrow().due(fd);
            for f in [readable, writable].into_iter().flatten() {
                // Busy only if this watcher's own callback re-entered the
                // loop, which cannot happen: no blocking call runs one.
                if let Ok(mut f) = f.try_borrow_mut() {
                    crate::panic::guard("a fd watcher", (), || f(self, fd));
                }
            }
            self.shared().watches.borrow_mut().recheck(fd);
        }
    }
}
