//! The bounded history of recent catalog versions: for each, the regions
//! and stores its change touched.

use std::collections::{BTreeSet, VecDeque};

use crate::catalog::RouteChange;

/// What changed over a span of versions, each id once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Changes {
    pub regions: BTreeSet<u64>,
    pub stores: BTreeSet<u64>,
}

/// The changes of the last `capacity` versions.
///
/// Invariant: `entries` holds the changes to versions `base + 1 ..=
/// base + entries.len()`, consecutive and in order, so a delta can start at
/// any version from `base` to the newest. A change that does not follow
/// the newest (a raft snapshot installed, a restart) resets the history to
/// start there: PD cannot say what changed before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteHistory {
    capacity: usize,
    base: u64,
    entries: VecDeque<RouteChange>,
}

impl RouteHistory {
    /// An empty history at `version`, keeping up to `capacity` versions
    /// (0: none, so every push is a full snapshot).
    pub fn new(capacity: usize, version: u64) -> Self {
        RouteHistory { capacity, base: version, entries: VecDeque::new() }
    }

    /// Forgets everything: deltas start at `version` from now on.
    pub fn reset(&mut self, version: u64) {
        self.base = version;
        self.entries.clear();
    }

    /// The oldest version a delta can start from.
    pub fn oldest(&self) -> u64 {
        self.base
    }

    /// The newest version recorded (`oldest` when none is).
    pub fn newest(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    /// Versions held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records the change to the version after the newest, evicting the
    /// oldest past the capacity. Any other version resets the history to
    /// start at it.
    pub fn record(&mut self, change: RouteChange) {
        if change.version != self.newest() + 1 {
            self.reset(change.version);
            return;
        }
        if self.capacity == 0 {
            self.base = change.version;
            return;
        }
        self.entries.push_back(change);
        while self.entries.len() > self.capacity {
            self.entries.pop_front();
            self.base += 1;
        }
    }

    /// Everything that changed after `from` up to and including `to`;
    /// `None` when the history does not cover that span (`from` evicted,
    /// `to` not reached yet, or `from` above `to`).
    pub fn changes_between(&self, from: u64, to: u64) -> Option<Changes> {
        if from < self.base || to > self.newest() || from > to {
            return None;
        }
        let mut out = Changes::default();
        let skip = (from - self.base) as usize;
        let take = (to - from) as usize;
        for change in self.entries.iter().skip(skip).take(take) {
            out.regions.extend(&change.regions);
            out.stores.extend(&change.stores);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(version: u64, regions: &[u64]) -> RouteChange {
        RouteChange { version, regions: regions.to_vec(), stores: Vec::new() }
    }

    fn ids(c: &Changes) -> Vec<u64> {
        c.regions.iter().copied().collect()
    }

    #[test]
    fn a_span_unions_its_versions_and_names_each_region_once() {
        let mut h = RouteHistory::new(8, 10);
        h.record(change(11, &[2]));
        h.record(RouteChange { version: 12, regions: vec![2, 5], stores: vec![1] });
        h.record(change(13, &[2]));
        h.record(change(14, &[7]));
        assert_eq!((h.oldest(), h.newest(), h.len()), (10, 14, 4));
        // Region 2 changed three times: it is in the span once.
        let all = h.changes_between(10, 14).unwrap();
        assert_eq!(ids(&all), vec![2, 5, 7]);
        assert_eq!(all.stores.iter().copied().collect::<Vec<_>>(), vec![1]);
        // A span is exactly its versions: 12 and 13, not 11 or 14.
        let mid = h.changes_between(11, 13).unwrap();
        assert_eq!(ids(&mid), vec![2, 5]);
        assert_eq!(ids(&h.changes_between(13, 14).unwrap()), vec![7]);
        // Nothing changed between a version and itself.
        assert_eq!(h.changes_between(14, 14).unwrap(), Changes::default());
    }

    #[test]
    fn spans_outside_the_history_have_no_answer() {
        let mut h = RouteHistory::new(8, 10);
        h.record(change(11, &[2]));
        assert!(h.changes_between(9, 11).is_none(), "before the history began");
        assert!(h.changes_between(10, 12).is_none(), "not reached yet");
        assert!(h.changes_between(11, 10).is_none(), "backwards");
    }

    #[test]
    fn the_oldest_versions_are_evicted_past_the_capacity() {
        let mut h = RouteHistory::new(3, 0);
        for v in 1..=5 {
            h.record(change(v, &[v * 10]));
        }
        assert_eq!((h.oldest(), h.newest(), h.len()), (2, 5, 3));
        assert!(h.changes_between(1, 5).is_none(), "version 2's change was evicted");
        assert_eq!(ids(&h.changes_between(2, 5).unwrap()), vec![30, 40, 50]);
    }

    #[test]
    fn a_change_that_does_not_follow_the_newest_resets_the_history() {
        let mut h = RouteHistory::new(8, 0);
        h.record(change(1, &[2]));
        h.record(change(5, &[3]));
        assert_eq!((h.oldest(), h.newest()), (5, 5));
        assert!(h.changes_between(1, 5).is_none());
        h.record(change(6, &[4]));
        assert_eq!(ids(&h.changes_between(5, 6).unwrap()), vec![4]);
        h.reset(9);
        assert!(h.is_empty());
        assert!(h.changes_between(5, 6).is_none());
    }

    #[test]
    fn capacity_zero_keeps_nothing_but_follows_the_version() {
        let mut h = RouteHistory::new(0, 0);
        h.record(change(1, &[2]));
        h.record(change(2, &[2]));
        assert_eq!((h.oldest(), h.newest(), h.len()), (2, 2, 0));
        assert!(h.changes_between(1, 2).is_none());
        assert_eq!(h.changes_between(2, 2), Some(Changes::default()));
    }
}
