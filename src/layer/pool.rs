//! Recycled member buffers for one layer build.
//!
//! Every member is a few megabytes in and out; a fresh allocation per member is returned to
//! the system when freed and faulted back in (zeroed by the kernel) for the next one, which
//! cost ~5 % of a cold build's CPU. The pool keeps as many buffers as can be in flight.

use std::sync::Mutex;

/// A bounded stack of spare buffers.
pub(super) struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
    keep: usize,
}

impl BufferPool {
    /// A pool that keeps at most `keep` spare buffers.
    pub(super) fn new(keep: usize) -> Self {
        BufferPool {
            free: Mutex::new(Vec::with_capacity(keep)),
            keep,
        }
    }

    /// A spare buffer (its length and contents are whatever its last user left), or a new
    /// empty one.
    pub(super) fn take(&self) -> Vec<u8> {
        self.free
            .lock()
            .ok()
            .and_then(|mut f| f.pop())
            .unwrap_or_default()
    }

    /// Returns a buffer for reuse; beyond `keep` spares it is freed.
    pub(super) fn give(&self, buf: Vec<u8>) {
        if let Ok(mut f) = self.free.lock()
            && f.len() < self.keep
        {
            f.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_its_bound() {
        let pool = BufferPool::new(2);
        assert!(pool.take().is_empty());
        for n in [10, 20, 30] {
            pool.give(vec![0; n]);
        }
        let mut lens = vec![pool.take().len(), pool.take().len(), pool.take().len()];
        lens.sort_unstable();
        assert_eq!(lens, vec![0, 10, 20], "the third buffer was not kept");
    }
}
