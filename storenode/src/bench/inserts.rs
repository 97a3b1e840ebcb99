//! Record numbers for inserts, shared by the clients: each insert takes the
//! next number, and reads choose only among records whose insert has
//! finished (YCSB's acknowledged counter), so a read does not race the
//! insert of its own key. Only inserts touch the lock here; the other
//! operations read one atomic.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug)]
pub struct Inserts {
    next: AtomicU64,
    /// Records [0, existing) are all written.
    existing: AtomicU64,
    /// Finished inserts above `existing` (one below them is in flight).
    finished: Mutex<BTreeSet<u64>>,
}

impl Inserts {
    /// `records`: how many exist before the run (numbers 0..records).
    pub fn new(records: u64) -> Self {
        Inserts { next: AtomicU64::new(records), existing: AtomicU64::new(records), finished: Mutex::default() }
    }

    /// The number for a new record.
    pub fn allocate(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Record `i`'s insert is over (done, or failed and not retried: it is
    /// not held back, or every later insert would stay invisible).
    pub fn finish(&self, i: u64) {
        let mut finished = self.finished.lock().unwrap();
        let mut existing = self.existing.load(Ordering::Acquire);
        if i != existing {
            finished.insert(i);
            return;
        }
        existing += 1;
        while finished.remove(&existing) {
            existing += 1;
        }
        self.existing.store(existing, Ordering::Release);
    }

    /// How many records a read may choose from: [0, existing()).
    pub fn existing(&self) -> u64 {
        self.existing.load(Ordering::Acquire)
    }

    /// Inserts begun so far.
    pub fn allocated(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_counts_only_a_finished_prefix() {
        let s = Inserts::new(10);
        assert_eq!(s.existing(), 10);
        let (a, b, c) = (s.allocate(), s.allocate(), s.allocate());
        assert_eq!((a, b, c), (10, 11, 12));
        s.finish(c);
        s.finish(b);
        // 10 still in flight: 11 and 12 are not readable yet.
        assert_eq!(s.existing(), 10);
        s.finish(a);
        assert_eq!(s.existing(), 13);
        assert_eq!(s.allocated(), 13);
    }

    #[test]
    fn concurrent_inserts_all_become_visible() {
        let s = std::sync::Arc::new(Inserts::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        let i = s.allocate();
                        assert!(s.existing() <= i);
                        s.finish(i);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(s.existing(), 4000);
    }
}
