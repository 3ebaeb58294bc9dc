//! Timers on the loop: one-shot and periodic, cancellable
//! ([`Context::set_timeout`], [`Context::set_interval`],
//! [`Context::cancel_timer`]). They run on the loop thread between
//! services, and [`Context::poll_timeout`] never waits past the next one.

use crate::Context;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Names a timer made by [`Context::set_timeout`] or
/// [`Context::set_interval`], for [`Context::cancel_timer`]. Unique within
/// its context, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(pub(crate) u64);

type Once = Box<dyn FnOnce(&Context)>;
type Every = Rc<RefCell<dyn FnMut(&Context)>>;

enum Kind {
    Once(Once),
    Every(Duration, Every),
}

/// The timers of one context, ordered by when they are due.
#[derive(Default)]
pub(crate) struct Timers {
    next_id: u64,
    due: BTreeMap<(Instant, u64), Kind>,
    /// When each live timer is due, to find it by id.
    by_id: HashMap<u64, Instant>,
}

impl Timers {
    fn insert(&mut self, at: Instant, kind: Kind) -> TimerId {
        self.next_id += 1;
        let id = self.next_id;
        self.due.insert((at, id), kind);
        self.by_id.insert(id, at);
        TimerId(id)
    }

    /// When the next timer is due, if any.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.due.keys().next().map(|k| k.0)
    }

    fn cancel(&mut self, id: TimerId) -> bool {
        match self.by_id.remove(&id.0) {
            Some(at) => self.due.remove(&(at, id.0)).is_some(),
            None => false,
        }
    }

    /// Takes the first timer due by `now`; a periodic one is put back for
    /// its next turn first, so its callback may cancel it.
    fn pop_due(&mut self, now: Instant) -> Option<Kind> {
        let (&(at, id), _) = self.due.iter().next().filter(|(k, _)| k.0 <= now)?;
        let kind = self.due.remove(&(at, id))?;
        self.by_id.remove(&id);
        if let Kind::Every(period, f) = &kind {
            // Skip turns missed while the loop was busy rather than firing
            // them in a burst.
            let mut next = at + *period;
            if next <= now {
                next = now + *period;
            }
            self.due.insert((next, id), Kind::Every(*period, f.clone()));
            self.by_id.insert(id, next);
        }
        Some(kind)
    }
}

impl Context {
    /// Runs `f` once on the loop thread after `delay`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc, time::Duration};
    /// let cx = lws::Context::new(lws::ContextOptions::default())?;
    /// let fired = Rc::new(Cell::new(false));
    /// let f = fired.clone();
    /// cx.set_timeout(Duration::from_millis(10), move |cx| {
    ///     f.set(true);
    ///     cx.stop();
    /// });
    /// let never = cx.set_timeout(Duration::from_secs(3600), |_| unreachable!());
    /// cx.run()?;
    /// assert!(fired.get());
    /// assert!(cx.cancel_timer(never));
    /// # Ok::<(), lws::Error>(())
    /// ```
    pub fn set_timeout(&self, delay: Duration, f: impl FnOnce(&Context) + 'static) -> TimerId {
        let at = Instant::now() + delay;
        self.shared()
            .timers
            .borrow_mut()
            .insert(at, Kind::Once(Box::new(f)))
    }

    /// Runs `f` on the loop thread every `period` (the first time one
    /// `period` from now) until [`Context::cancel_timer`]; Net::WebSocket::Server's
    /// `tick_period` / `on_tick`. Turns missed while the loop was busy are
    /// skipped, not made up. A zero period is taken as 1 ms.
    ///
    /// # Examples
    ///
    /// Net::WebSocket::Server's clock example: the time to every client
    /// every second.
    ///
    /// ```no_run
    /// use std::time::{Duration, SystemTime, UNIX_EPOCH};
    /// let cx = lws::Context::new(lws::ContextOptions::default())?;
    /// cx.listen(lws::ListenOptions::new(8080), lws::Callbacks::new())?;
    /// cx.set_interval(Duration::from_secs(1), |cx| {
    ///     let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    ///     cx.broadcast(&lws::Message::Text(now.to_string()));
    /// });
    /// cx.run()?;
    /// # Ok::<(), lws::Error>(())
    /// ```
    ///
    /// Three ticks, then the timer cancels itself:
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc, time::Duration};
    /// let cx = lws::Context::new(lws::ContextOptions::default())?;
    /// let ticks = Rc::new(Cell::new(0));
    /// let (counted, id) = (ticks.clone(), Rc::new(Cell::new(None)));
    /// let me = id.clone();
    /// id.set(Some(cx.set_interval(Duration::from_millis(5), move |cx| {
    ///     counted.set(counted.get() + 1);
    ///     if counted.get() == 3 {
    ///         cx.cancel_timer(me.get().unwrap());
    ///         cx.stop();
    ///     }
    /// })));
    /// cx.set_timeout(Duration::from_secs(10), |cx| cx.stop()); // a bound on the run
    /// cx.run()?;
    /// assert_eq!(ticks.get(), 3);
    /// # Ok::<(), lws::Error>(())
    /// ```
    pub fn set_interval(&self, period: Duration, f: impl FnMut(&Context) + 'static) -> TimerId {
        let period = period.max(Duration::from_millis(1));
        let at = Instant::now() + period;
        self.shared()
            .timers
            .borrow_mut()
            .insert(at, Kind::Every(period, Rc::new(RefCell::new(f))))
    }

    /// Cancels a timer; true if it was still pending (a one-shot timer that
    /// already ran, or a cancelled one, gives false).
    pub fn cancel_timer(&self, id: TimerId) -> bool {
        self.shared().timers.borrow_mut().cancel(id)
    }

    /// Runs the timers that are due. Callbacks may add and cancel timers.
    pub(crate) fn run_timers(&self) {
        let now = Instant::now();
        loop {
            let next = self.shared().timers.borrow_mut().pop_due(now);
            let Some(kind) = next else { break };
            match kind {
                Kind::Once(f) => crate::panic::guard("a timer", (), || f(self)),
                Kind::Every(_, f) => {
                    // A periodic timer whose callback is running (it ran
                    // this loop long enough to be due again) is skipped.
                    if let Ok(mut f) = f.try_borrow_mut() {
                        crate::panic::guard("a timer", (), || f(self));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_come_due_in_order_and_cancel_by_id() {
        let mut t = Timers::default();
        let now = Instant::now();
        let a = t.insert(
            now + Duration::from_millis(20),
            Kind::Once(Box::new(|_| {})),
        );
        let b = t.insert(
            now + Duration::from_millis(10),
            Kind::Once(Box::new(|_| {})),
        );
        assert_eq!(t.next_due(), Some(now + Duration::from_millis(10)));
        assert!(t.pop_due(now).is_none(), "nothing is due yet");
        assert!(t.cancel(b));
        assert!(!t.cancel(b), "cancelling twice");
        assert_eq!(t.next_due(), Some(now + Duration::from_millis(20)));
        assert!(t.pop_due(now + Duration::from_millis(30)).is_some());
        assert!(!t.cancel(a), "a one-shot timer that ran is gone");
        assert_eq!(t.next_due(), None);
    }

    #[test]
    fn a_periodic_timer_is_rescheduled_before_it_runs() {
        let mut t = Timers::default();
        let now = Instant::now();
        let period = Duration::from_millis(10);
        let id = t.insert(
            now + period,
            Kind::Every(period, Rc::new(RefCell::new(|_: &Context| {}))),
        );
        // Due long ago: the next turn is a period from now, not a burst.
        let late = now + Duration::from_millis(55);
        assert!(matches!(t.pop_due(late), Some(Kind::Every(..))));
        assert_eq!(t.next_due(), Some(late + period));
        assert!(t.cancel(id));
        assert_eq!(t.next_due(), None);
    }
}
