//! The newest entries of a region's raft log, in memory.
//!
//! openraft wants `append` to return as soon as the entries are readable and
//! to hear separately when they are on disk: the leader then sends entries
//! to its followers while its own fsync runs, so the two fsyncs of a
//! replicated write overlap instead of following each other. Entries queued
//! for the group-commit writer are not in redb until their batch commits,
//! so they are read from here meanwhile.
//!
//! The cache is a contiguous run of entries ending at the log's last entry.
//! Only entries already durable are evicted (from the front, past
//! [`MAX_ENTRIES`] or [`MAX_BYTES`]), so an entry is always either here or
//! in redb: a reader that takes what it needs from the cache first and then
//! opens its redb read finds every entry in one or the other. The entries
//! kept after their flush also serve a follower a little behind from
//! memory, as TiKV's entry cache does.

use std::collections::VecDeque;

use openraft::entry::RaftEntry;

use super::{Entry, LogId};

/// Entries kept at most once durable.
pub const MAX_ENTRIES: usize = 512;
/// Encoded bytes kept at most once durable.
pub const MAX_BYTES: usize = 4 << 20;

#[derive(Default)]
pub struct LogCache {
    /// Contiguous by index, each with its encoded size.
    entries: VecDeque<(Entry, usize)>,
    bytes: usize,
    /// The last index known durable in redb (entries at or below it may be
    /// evicted).
    durable: Option<u64>,
}

impl LogCache {
    /// Adds entries just queued for writing. They follow the last cached
    /// entry (openraft truncates before it overwrites), otherwise the cache
    /// restarts at them.
    pub fn append(&mut self, entries: impl IntoIterator<Item = (Entry, usize)>) {
        for (e, size) in entries {
            let index = e.index();
            if self.last_index().is_some_and(|last| last + 1 != index) {
                self.truncate_from(index);
                if self.last_index().is_some_and(|last| last + 1 != index) {
                    self.clear();
                }
            }
            self.bytes += size;
            self.entries.push_back((e, size));
        }
        self.evict();
    }

    /// The entries up to `log_id` are durable: they may be evicted.
    pub fn flushed(&mut self, log_id: &LogId) {
        let index = log_id.index();
        // A flush of entries since truncated and replaced says nothing of
        // their replacements.
        if self.entry(index).is_some_and(|e| e.log_id() == *log_id) {
            self.durable = Some(self.durable.map_or(index, |d| d.max(index)));
        }
        self.evict();
    }

    /// Drops entries after `last` (a conflicting suffix being replaced).
    pub fn truncate_after(&mut self, last: Option<u64>) {
        self.truncate_from(last.map_or(0, |l| l + 1));
    }

    /// Drops entries at or below `index` (purged from the log).
    pub fn purge(&mut self, index: u64) {
        while self.entries.front().is_some_and(|(e, _)| e.index() <= index) {
            self.pop_front();
        }
    }

    /// The cached entries of `[start, end)` and the first index this answer
    /// covers: entries below it must come from redb.
    pub fn read(&self, start: u64, end: u64) -> (Vec<Entry>, u64) {
        let Some(first) = self.first_index() else { return (Vec::new(), end) };
        let from = start.max(first);
        let out = self
            .entries
            .iter()
            .skip((from - first) as usize)
            .take_while(|(e, _)| e.index() < end)
            .map(|(e, _)| e.clone())
            .collect();
        (out, from.min(end))
    }

    pub fn last_log_id(&self) -> Option<LogId> {
        self.entries.back().map(|(e, _)| e.log_id())
    }

    fn entry(&self, index: u64) -> Option<&Entry> {
        let first = self.first_index()?;
        self.entries.get(index.checked_sub(first)? as usize).map(|(e, _)| e)
    }

    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|(e, _)| e.index())
    }

    fn last_index(&self) -> Option<u64> {
        self.entries.back().map(|(e, _)| e.index())
    }

    fn truncate_from(&mut self, index: u64) {
        while self.entries.back().is_some_and(|(e, _)| e.index() >= index) {
            let (_, size) = self.entries.pop_back().expect("checked non-empty");
            self.bytes -= size;
        }
        if self.durable.is_some_and(|d| d >= index) {
            self.durable = index.checked_sub(1);
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    fn pop_front(&mut self) {
        if let Some((_, size)) = self.entries.pop_front() {
            self.bytes -= size;
        }
    }

    fn evict(&mut self) {
        while (self.entries.len() > MAX_ENTRIES || self.bytes > MAX_BYTES)
            && self.first_index().is_some_and(|i| self.durable.is_some_and(|d| i <= d))
        {
            self.pop_front();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use openraft::entry::RaftEntry;
    use openraft::vote::RaftLeaderId;

    use super::*;
    use crate::raft::TypeConfig;

    fn entry(term: u64, index: u64) -> (Entry, usize) {
        let leader = openraft::type_config::alias::LeaderIdOf::<TypeConfig>::new(term, 1).to_committed();
        let log_id = LogId::new(leader, index);
        (Entry::new_blank(log_id), 100)
    }

    fn indexes(v: &[Entry]) -> Vec<(u64, u64)> {
        v.iter().map(|e| (e.log_id().committed_leader_id().term, e.index())).collect()
    }

    #[test]
    fn reads_cover_the_cached_tail_and_say_where_redb_takes_over() {
        let mut c = LogCache::default();
        c.append((5..10).map(|i| entry(1, i)));
        let (got, from) = c.read(3, 8);
        assert_eq!(from, 5);
        assert_eq!(indexes(&got), vec![(1, 5), (1, 6), (1, 7)]);
        let (got, from) = c.read(7, 100);
        assert_eq!((from, indexes(&got)), (7, vec![(1, 7), (1, 8), (1, 9)]));
        assert_eq!(c.read(0, 3), (Vec::new(), 3));
        assert_eq!(LogCache::default().read(2, 9).1, 9, "an empty cache leaves everything to redb");
    }

    #[test]
    fn entries_not_yet_durable_are_never_evicted() {
        let mut c = LogCache::default();
        c.append((1..=(MAX_ENTRIES as u64 + 100)).map(|i| entry(1, i)));
        assert_eq!(c.len(), MAX_ENTRIES + 100, "nothing durable: everything stays");
        c.flushed(&entry(1, 50).0.log_id());
        assert_eq!(c.len(), MAX_ENTRIES + 50, "evicts only up to the durable index");
        c.flushed(&entry(1, MAX_ENTRIES as u64 + 100).0.log_id());
        assert_eq!(c.len(), MAX_ENTRIES);
        assert_eq!(c.last_log_id().map(|l| l.index()), Some(MAX_ENTRIES as u64 + 100));
    }

    #[test]
    fn truncation_replaces_a_suffix_and_forgets_its_durability() {
        let mut c = LogCache::default();
        c.append((1..=10).map(|i| entry(1, i)));
        c.flushed(&entry(1, 10).0.log_id());
        c.truncate_after(Some(6));
        c.append((7..=8).map(|i| entry(2, i)));
        // A late flush of the replaced entry 8 says nothing of the new one.
        c.flushed(&entry(1, 8).0.log_id());
        assert_eq!(c.durable, Some(6));
        assert_eq!(indexes(&c.read(5, 20).0), vec![(1, 5), (1, 6), (2, 7), (2, 8)]);
    }

    #[test]
    fn a_gap_restarts_the_cache_and_purge_drops_the_front() {
        let mut c = LogCache::default();
        c.append((1..=4).map(|i| entry(1, i)));
        c.append([entry(1, 9)]);
        assert_eq!(indexes(&c.read(0, 20).0), vec![(1, 9)]);
        c.append((10..=12).map(|i| entry(1, i)));
        c.purge(10);
        assert_eq!(c.read(0, 20).1, 11);
        assert_eq!(c.bytes, 200);
    }
}
