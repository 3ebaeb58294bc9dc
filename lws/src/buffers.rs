//! One spare large buffer per context, passed between the receive and send
//! paths.
//!
//! An echo of 1 MiB messages allocates a 1 MiB receive buffer and a 1 MiB
//! frame per message. glibc gives such blocks back to the kernel when they
//! are freed at the top of the heap, so every message faulted its pages in
//! anew: about 480 minor faults per 1 MiB echo, where the C reference has
//! none, and twice its round-trip time. Keeping the last large buffer we
//! freed and taking it for the next large allocation removes most of them.
//! Small buffers are left to the allocator, which recycles those well.

use std::cell::Cell;

/// Buffers below this size are not kept.
pub(crate) const KEEP_MIN: usize = 64 * 1024;
/// Nor above this, so an idle context holds at most this much.
pub(crate) const KEEP_MAX: usize = 16 * 1024 * 1024;

/// The spare buffer (empty Vec when there is none).
#[derive(Default)]
pub(crate) struct Spare(Cell<Vec<u8>>);

impl Spare {
    /// An empty Vec with room for at least `cap` bytes: the spare when
    /// `cap` is large and the spare has room, else a new allocation.
    pub(crate) fn take(&self, cap: usize) -> Vec<u8> {
        if cap >= KEEP_MIN {
            let mut spare = self.0.take();
            if spare.capacity() >= cap {
                spare.clear();
                return spare;
            }
            self.0.set(spare);
        }
        Vec::with_capacity(cap)
    }

    /// Keeps `buf` as the spare when it is large and larger than the one
    /// kept; otherwise frees it.
    pub(crate) fn give(&self, buf: Vec<u8>) {
        let cap = buf.capacity();
        if (KEEP_MIN..=KEEP_MAX).contains(&cap) {
            let spare = self.0.take();
            self.0
                .set(if cap >= spare.capacity() { buf } else { spare });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_buffers_come_back() {
        let spare = Spare::default();
        let buf = spare.take(KEEP_MIN);
        let ptr = buf.as_ptr();
        spare.give(buf);
        let again = spare.take(KEEP_MIN);
        assert_eq!(again.as_ptr(), ptr, "the kept buffer is handed out again");
        assert!(again.is_empty());
        // Handed over: nothing is kept until it comes back.
        assert_eq!(spare.0.take().capacity(), 0);
    }

    #[test]
    fn small_and_huge_buffers_are_not_kept() {
        let spare = Spare::default();
        spare.give(Vec::with_capacity(KEEP_MIN - 1));
        spare.give(Vec::with_capacity(KEEP_MAX + 1));
        assert_eq!(spare.0.take().capacity(), 0);
    }

    #[test]
    fn the_larger_buffer_is_kept_and_must_fit() {
        let spare = Spare::default();
        spare.give(Vec::with_capacity(2 * KEEP_MIN));
        spare.give(Vec::with_capacity(KEEP_MIN));
        // A request the spare cannot hold allocates and leaves it kept.
        assert!(spare.take(3 * KEEP_MIN).capacity() >= 3 * KEEP_MIN);
        let fit = spare.take(2 * KEEP_MIN);
        assert_eq!(fit.capacity(), 2 * KEEP_MIN, "the larger one was kept");
    }
}
