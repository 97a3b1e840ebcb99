//! The key ranges of the initialized regions this store hosts.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound::{Excluded, Included, Unbounded};

use pd::catalog::keys;
use proto::metapb;

/// The key ranges of the initialized regions this store hosts, by start
/// key.
///
/// **Invariant: at most one initialized local region owns any key.** The
/// ranges in the index never overlap, and every region id appears once.
/// Every region's data lives in the store's one shared data table, so two
/// local regions owning one key would read and overwrite each other's data,
/// and a snapshot of one would wipe the other's keys.
///
/// Only initialized regions are indexed: a peer created on demand for raft
/// traffic of a region it has no data for owns no range until its first
/// snapshot or log entries arrive (see [`crate::node`] for how a peer
/// becomes initialized).
///
/// Every change is refused rather than made when it would break the
/// invariant, and debug builds check the whole index after every change.
#[derive(Debug, Default)]
pub struct RangeIndex {
    by_start: BTreeMap<Vec<u8>, IndexedRange>,
    /// Region id to its start key, so a region is found without a scan.
    start_of: HashMap<u64, Vec<u8>>,
}

/// One initialized region's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedRange {
    pub region_id: u64,
    pub start_key: Vec<u8>,
    /// Empty: unbounded.
    pub end_key: Vec<u8>,
    pub epoch: metapb::RegionEpoch,
}

impl IndexedRange {
    fn of(region: &metapb::Region) -> Self {
        IndexedRange {
            region_id: region.id,
            start_key: region.start_key.clone(),
            end_key: region.end_key.clone(),
            epoch: region.region_epoch.unwrap_or_default(),
        }
    }
}

/// Why the index refused a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeConflict {
    #[error(
        "region {region_id} would overlap local region {existing_region} [{}, {})",
        keys::display(.existing_start),
        keys::display(.existing_end)
    )]
    Overlaps { region_id: u64, existing_region: u64, existing_start: Vec<u8>, existing_end: Vec<u8> },
    #[error("region {region_id}: epoch {} is older than the indexed {}", fmt_epoch(.epoch), fmt_epoch(.indexed))]
    StaleEpoch { region_id: u64, indexed: metapb::RegionEpoch, epoch: metapb::RegionEpoch },
    #[error("region {region_id}: [{}, {}) is not a key range", keys::display(.start_key), keys::display(.end_key))]
    InvalidRange { region_id: u64, start_key: Vec<u8>, end_key: Vec<u8> },
    /// A change to a region's entry (a split shrinking it) found no entry:
    /// the region is not initialized here, or a destroy already took it
    /// out, and putting it back would claim keys nothing serves.
    #[error("region {region_id} is not indexed here")]
    NotIndexed { region_id: u64 },
}

impl RangeConflict {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            RangeConflict::Overlaps { .. } => "overlaps",
            RangeConflict::StaleEpoch { .. } => "stale_epoch",
            RangeConflict::InvalidRange { .. } => "invalid_range",
            RangeConflict::NotIndexed { .. } => "not_indexed",
        }
    }
}

/// Whether either part of epoch `a` is behind `b`'s: `a` comes from a state
/// of the region `b` has already moved past.
pub fn is_older(a: &metapb::RegionEpoch, b: &metapb::RegionEpoch) -> bool {
    a.version < b.version || a.conf_ver < b.conf_ver
}

/// `conf_ver/version`, the form logs use for an epoch.
pub fn fmt_epoch(e: &metapb::RegionEpoch) -> String {
    format!("{}/{}", e.conf_ver, e.version)
}

impl RangeIndex {
    pub fn new() -> Self {
        RangeIndex::default()
    }

    /// The indexed region that owns `key`.
    pub fn lookup(&self, key: &[u8]) -> Option<u64> {
        // The only candidate is the last range starting at or before the key:
        // ranges do not overlap, so an earlier one ends before this one starts.
        let (_, r) = self.by_start.range::<[u8], _>((Unbounded, Included(key))).next_back()?;
        keys::contains(&r.start_key, &r.end_key, key).then_some(r.region_id)
    }

    pub fn contains_region(&self, region_id: u64) -> bool {
        self.start_of.contains_key(&region_id)
    }

    /// The region's entry, if it is indexed.
    pub fn get(&self, region_id: u64) -> Option<&IndexedRange> {
        self.by_start.get(self.start_of.get(&region_id)?)
    }

    pub fn len(&self) -> usize {
        self.by_start.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_start.is_empty()
    }

    /// The indexed regions sharing a key with `[start, end)` (empty end:
    /// unbounded), in key order.
    pub fn overlapping<'a>(&'a self, start: &'a [u8], end: &'a [u8]) -> impl Iterator<Item = &'a IndexedRange> + 'a {
        // The range starting at or before `start` may reach into it; after
        // that, exactly the ranges starting inside `[start, end)` overlap.
        let before = self.by_start.range::<[u8], _>((Unbounded, Included(start))).next_back().map(|(_, r)| r);
        let after = self.by_start.range::<[u8], _>((Excluded(start), Unbounded));
        before
            .into_iter()
            .chain(after.map(|(_, r)| r).take_while(move |r| end.is_empty() || r.start_key.as_slice() < end))
            .filter(move |r| keys::overlaps(&r.start_key, &r.end_key, start, end))
    }

    /// Whether `region` could take its range now: a valid range that no
    /// other indexed region shares a key with. Changes nothing.
    ///
    /// # Errors
    ///
    /// `InvalidRange`, or `Overlaps` naming the first region in the way.
    pub fn check(&self, region: &metapb::Region) -> Result<(), RangeConflict> {
        if !keys::is_valid_range(&region.start_key, &region.end_key) {
            return Err(RangeConflict::InvalidRange {
                region_id: region.id,
                start_key: region.start_key.clone(),
                end_key: region.end_key.clone(),
            });
        }
        match self.overlapping(&region.start_key, &region.end_key).find(|r| r.region_id != region.id) {
            Some(r) => Err(RangeConflict::Overlaps {
                region_id: region.id,
                existing_region: r.region_id,
                existing_start: r.start_key.clone(),
                existing_end: r.end_key.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Indexes a region that has become initialized. A region already
    /// indexed has its entry replaced: it only ever conflicts with other
    /// regions.
    ///
    /// # Errors
    ///
    /// `InvalidRange`, or `Overlaps` when another region owns any of its
    /// keys; the index is then unchanged.
    pub fn insert(&mut self, region: &metapb::Region) -> Result<(), RangeConflict> {
        self.check(region)?;
        self.put(IndexedRange::of(region));
        self.checked();
        Ok(())
    }

    /// Moves an indexed region to its new range and epoch (a snapshot
    /// installed; later a split), or indexes it if it was not (a snapshot
    /// initializing a peer).
    ///
    /// # Errors
    ///
    /// As [`RangeIndex::check_update`]; the index is then unchanged.
    pub fn update(&mut self, region: &metapb::Region) -> Result<(), RangeConflict> {
        self.check_update(region)?;
        self.put(IndexedRange::of(region));
        self.checked();
        Ok(())
    }

    /// Whether [`RangeIndex::update`] would accept `region`. Changes
    /// nothing.
    ///
    /// # Errors
    ///
    /// `StaleEpoch` when the epoch is older than the indexed one (neither
    /// part may go back), `InvalidRange`, or `Overlaps` when another region
    /// owns any of the keys.
    pub fn check_update(&self, region: &metapb::Region) -> Result<(), RangeConflict> {
        let epoch = region.region_epoch.unwrap_or_default();
        if let Some(indexed) = self.get(region.id).filter(|i| is_older(&epoch, &i.epoch)) {
            return Err(RangeConflict::StaleEpoch { region_id: region.id, indexed: indexed.epoch, epoch });
        }
        self.check(region)
    }

    /// A split applied: `parent`'s entry shrinks to its new range and `new`
    /// takes the keys it gave up, both under their new epochs, in one step
    /// so nothing can claim those keys in between. Without `new` (this store
    /// does not host the new region) only the parent shrinks.
    ///
    /// # Errors
    ///
    /// `NotIndexed` when the parent has no entry (a destroy took it out: a
    /// split applied after it must not bring back a range no peer serves);
    /// as [`RangeIndex::check_update`] for the parent; and `Overlaps` when
    /// a region other than the parent owns any of `new`'s keys. The index
    /// is then unchanged.
    pub fn split(&mut self, parent: &metapb::Region, new: Option<&metapb::Region>) -> Result<(), RangeConflict> {
        if !self.contains_region(parent.id) {
            return Err(RangeConflict::NotIndexed { region_id: parent.id });
        }
        self.check_update(parent)?;
        if let Some(new) = new {
            if !keys::is_valid_range(&new.start_key, &new.end_key) {
                return Err(RangeConflict::InvalidRange {
                    region_id: new.id,
                    start_key: new.start_key.clone(),
                    end_key: new.end_key.clone(),
                });
            }
            let in_the_way = self
                .overlapping(&new.start_key, &new.end_key)
                .find(|r| r.region_id != new.id && r.region_id != parent.id);
            if let Some(r) = in_the_way {
                return Err(RangeConflict::Overlaps {
                    region_id: new.id,
                    existing_region: r.region_id,
                    existing_start: r.start_key.clone(),
                    existing_end: r.end_key.clone(),
                });
            }
            if keys::overlaps(&parent.start_key, &parent.end_key, &new.start_key, &new.end_key) {
                return Err(RangeConflict::Overlaps {
                    region_id: new.id,
                    existing_region: parent.id,
                    existing_start: parent.start_key.clone(),
                    existing_end: parent.end_key.clone(),
                });
            }
        }
        self.put(IndexedRange::of(parent));
        if let Some(new) = new {
            self.put(IndexedRange::of(new));
        }
        self.checked();
        Ok(())
    }

    /// Drops a region's entry (its peer failed to start; later, destroyed).
    pub fn remove(&mut self, region_id: u64) -> Option<IndexedRange> {
        let start = self.start_of.remove(&region_id)?;
        let removed = self.by_start.remove(&start);
        self.checked();
        removed
    }

    /// Replaces the region's entry; the caller has checked for overlaps.
    fn put(&mut self, entry: IndexedRange) {
        if let Some(old_start) = self.start_of.remove(&entry.region_id) {
            self.by_start.remove(&old_start);
        }
        self.start_of.insert(entry.region_id, entry.start_key.clone());
        self.by_start.insert(entry.start_key.clone(), entry);
    }

    /// Debug builds verify the whole index after every change: a broken
    /// invariant is a bug to stop at, not to serve data through.
    fn checked(&self) {
        if cfg!(debug_assertions)
            && let Err(e) = self.check_invariants()
        {
            panic!("range index invariant broken: {e}\n{self:?}");
        }
    }

    /// Verifies the invariant: every range is valid and filed under its own
    /// start key, consecutive ranges do not overlap, and the region-id map
    /// names exactly the indexed regions.
    ///
    /// # Errors
    ///
    /// What is wrong, for the panic message.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut prev: Option<&IndexedRange> = None;
        for (start, r) in &self.by_start {
            if *start != r.start_key {
                return Err(format!("region {} filed under start {}", r.region_id, keys::display(start)));
            }
            if !keys::is_valid_range(&r.start_key, &r.end_key) {
                return Err(format!("region {} has an empty range", r.region_id));
            }
            if let Some(p) = prev.filter(|p| keys::overlaps(&p.start_key, &p.end_key, &r.start_key, &r.end_key)) {
                return Err(format!("regions {} and {} overlap", p.region_id, r.region_id));
            }
            if self.start_of.get(&r.region_id) != Some(start) {
                return Err(format!("region {} missing from the id map", r.region_id));
            }
            prev = Some(r);
        }
        if self.start_of.len() != self.by_start.len() {
            return Err(format!("{} ids for {} ranges", self.start_of.len(), self.by_start.len()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(id: u64, start: &str, end: &str, version: u64) -> metapb::Region {
        metapb::Region {
            id,
            start_key: start.as_bytes().to_vec(),
            end_key: end.as_bytes().to_vec(),
            region_epoch: Some(metapb::RegionEpoch { conf_ver: 1, version }),
            ..Default::default()
        }
    }

    /// Regions 1 [b, d) and 2 [f, h).
    fn two() -> RangeIndex {
        let mut idx = RangeIndex::new();
        idx.insert(&region(1, "b", "d", 1)).unwrap();
        idx.insert(&region(2, "f", "h", 1)).unwrap();
        idx
    }

    fn overlap_with(r: Result<(), RangeConflict>) -> Option<u64> {
        match r {
            Err(RangeConflict::Overlaps { existing_region, .. }) => Some(existing_region),
            _ => None,
        }
    }

    #[test]
    fn lookup_finds_the_owner_and_nothing_in_gaps() {
        let idx = two();
        assert_eq!(idx.lookup(b"a"), None);
        assert_eq!(idx.lookup(b"b"), Some(1), "start key is inclusive");
        assert_eq!(idx.lookup(b"c\xff"), Some(1));
        assert_eq!(idx.lookup(b"d"), None, "end key is exclusive");
        assert_eq!(idx.lookup(b"e"), None);
        assert_eq!(idx.lookup(b"g"), Some(2));
        assert_eq!(idx.lookup(b"h"), None);
        assert_eq!(idx.lookup(b"zzz"), None);
        assert_eq!(idx.lookup(b""), None);
        assert_eq!(RangeIndex::new().lookup(b"a"), None, "empty index");
    }

    #[test]
    fn lookup_with_unbounded_ends() {
        let mut idx = RangeIndex::new();
        idx.insert(&region(1, "", "m", 1)).unwrap();
        idx.insert(&region(2, "m", "", 1)).unwrap();
        assert_eq!(idx.lookup(b""), Some(1), "the empty key is the smallest");
        assert_eq!(idx.lookup(b"\x00"), Some(1));
        assert_eq!(idx.lookup(b"l\xff\xff"), Some(1));
        assert_eq!(idx.lookup(b"m"), Some(2));
        assert_eq!(idx.lookup(b"\xff\xff\xff\xff"), Some(2));

        let mut whole = RangeIndex::new();
        whole.insert(&region(9, "", "", 1)).unwrap();
        for k in [&b""[..], b"a", b"\xff"] {
            assert_eq!(whole.lookup(k), Some(9));
        }
    }

    #[test]
    fn insert_refuses_left_overlap() {
        let mut idx = two();
        assert_eq!(overlap_with(idx.insert(&region(3, "a", "c", 1))), Some(1));
        assert_eq!(overlap_with(idx.insert(&region(3, "e", "f\x00", 1))), Some(2));
    }

    #[test]
    fn insert_refuses_right_overlap() {
        let mut idx = two();
        assert_eq!(overlap_with(idx.insert(&region(3, "c", "e", 1))), Some(1));
        assert_eq!(overlap_with(idx.insert(&region(3, "g", "z", 1))), Some(2));
    }

    #[test]
    fn insert_refuses_containment_both_ways() {
        let mut idx = two();
        assert_eq!(overlap_with(idx.insert(&region(3, "b", "d", 1))), Some(1), "same range, other region");
        assert_eq!(overlap_with(idx.insert(&region(3, "bb", "c", 1))), Some(1), "inside");
        assert_eq!(overlap_with(idx.insert(&region(3, "a", "z", 1))), Some(1), "around both");
        assert_eq!(overlap_with(idx.insert(&region(3, "e", "i", 1))), Some(2), "around one");
    }

    #[test]
    fn insert_refuses_unbounded_ends() {
        let mut idx = two();
        assert_eq!(overlap_with(idx.insert(&region(3, "", "c", 1))), Some(1), "unbounded start");
        assert_eq!(overlap_with(idx.insert(&region(3, "g", "", 1))), Some(2), "unbounded end");
        assert_eq!(overlap_with(idx.insert(&region(3, "", "", 1))), Some(1), "everything");

        let mut tail = RangeIndex::new();
        tail.insert(&region(1, "m", "", 1)).unwrap();
        assert_eq!(overlap_with(tail.insert(&region(2, "z", "zz", 1))), Some(1), "inside an unbounded end");
        assert_eq!(overlap_with(tail.insert(&region(2, "a", "", 1))), Some(1));
        tail.insert(&region(2, "", "m", 1)).unwrap();
        assert_eq!(tail.len(), 2);
    }

    #[test]
    fn refused_changes_leave_the_index_as_it_was() {
        let mut idx = two();
        let _ = idx.insert(&region(3, "a", "z", 1));
        let _ = idx.update(&region(1, "b", "g", 2));
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.get(1), Some(&IndexedRange::of(&region(1, "b", "d", 1))));
        assert!(!idx.contains_region(3));
        idx.check_invariants().unwrap();
    }

    #[test]
    fn adjacent_ranges_and_gaps_are_accepted() {
        let mut idx = two();
        idx.insert(&region(3, "d", "f", 1)).unwrap();
        idx.insert(&region(4, "", "b", 1)).unwrap();
        idx.insert(&region(5, "h", "", 1)).unwrap();
        assert_eq!(idx.len(), 5);
        assert_eq!(idx.lookup(b"e"), Some(3));
        assert_eq!(idx.lookup(b"a"), Some(4));
        assert_eq!(idx.lookup(b"h"), Some(5));
    }

    #[test]
    fn invalid_ranges_are_refused() {
        let mut idx = RangeIndex::new();
        assert!(matches!(idx.insert(&region(1, "b", "b", 1)), Err(RangeConflict::InvalidRange { .. })));
        assert!(matches!(idx.insert(&region(1, "c", "b", 1)), Err(RangeConflict::InvalidRange { .. })));
        assert!(idx.is_empty());
    }

    #[test]
    fn inserting_an_indexed_region_again_replaces_its_range() {
        let mut idx = two();
        idx.insert(&region(1, "a", "e", 2)).unwrap();
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.lookup(b"a"), Some(1));
        assert_eq!(idx.lookup(b"b"), Some(1));
    }

    #[test]
    fn update_moves_a_range_and_frees_the_old_keys() {
        let mut idx = two();
        // Region 1 shrinks to [c, d) under a newer version (what a split will do).
        idx.update(&region(1, "c", "d", 2)).unwrap();
        assert_eq!(idx.lookup(b"b"), None);
        assert_eq!(idx.lookup(b"c"), Some(1));
        assert_eq!(idx.get(1).unwrap().epoch.version, 2);
        idx.insert(&region(3, "b", "c", 2)).unwrap();
        assert_eq!(idx.lookup(b"b"), Some(3));
    }

    #[test]
    fn update_refuses_an_older_epoch() {
        let mut idx = RangeIndex::new();
        let mut r = region(1, "b", "d", 5);
        r.region_epoch = Some(metapb::RegionEpoch { conf_ver: 3, version: 5 });
        idx.insert(&r).unwrap();
        for (conf_ver, version) in [(3, 4), (2, 5), (2, 4)] {
            r.region_epoch = Some(metapb::RegionEpoch { conf_ver, version });
            assert!(
                matches!(idx.update(&r), Err(RangeConflict::StaleEpoch { region_id: 1, .. })),
                "{conf_ver}/{version}"
            );
        }
        r.region_epoch = Some(metapb::RegionEpoch { conf_ver: 3, version: 5 });
        idx.update(&r).unwrap();
        r.region_epoch = Some(metapb::RegionEpoch { conf_ver: 4, version: 5 });
        idx.update(&r).unwrap();
        assert_eq!(idx.get(1).unwrap().epoch.conf_ver, 4);
    }

    #[test]
    fn update_refuses_growing_into_another_region() {
        let mut idx = two();
        assert_eq!(overlap_with(idx.update(&region(1, "b", "g", 2))), Some(2));
        assert_eq!(overlap_with(idx.update(&region(1, "b", "", 2))), Some(2));
        idx.update(&region(1, "a", "f", 2)).unwrap();
    }

    #[test]
    fn update_indexes_a_region_not_yet_indexed() {
        let mut idx = two();
        idx.update(&region(3, "d", "e", 1)).unwrap();
        assert_eq!(idx.lookup(b"d"), Some(3));
        assert_eq!(overlap_with(idx.update(&region(4, "c", "e", 9))), Some(1), "a newer epoch does not win a range");
    }

    #[test]
    fn remove_frees_the_range() {
        let mut idx = two();
        assert_eq!(idx.remove(1).map(|r| r.region_id), Some(1));
        assert_eq!(idx.remove(1), None);
        assert_eq!(idx.lookup(b"c"), None);
        assert!(!idx.contains_region(1));
        idx.insert(&region(3, "a", "e", 1)).unwrap();
        assert_eq!(idx.lookup(b"c"), Some(3));
    }

    #[test]
    fn overlapping_lists_every_region_in_a_range() {
        let mut idx = two();
        idx.insert(&region(3, "h", "", 1)).unwrap();
        let ids = |start: &str, end: &str| {
            idx.overlapping(start.as_bytes(), end.as_bytes()).map(|r| r.region_id).collect::<Vec<_>>()
        };
        assert_eq!(ids("", ""), vec![1, 2, 3]);
        assert_eq!(ids("c", "g"), vec![1, 2]);
        assert_eq!(ids("d", "f"), Vec::<u64>::new(), "the gap between them");
        assert_eq!(ids("a", "b"), Vec::<u64>::new(), "ends where region 1 starts");
        assert_eq!(ids("g", "i"), vec![2, 3]);
        assert_eq!(ids("zz", ""), vec![3]);
    }

    #[test]
    fn check_invariants_catches_a_broken_index() {
        let mut idx = two();
        idx.check_invariants().unwrap();
        // Bypass the checks the public methods make.
        idx.put(IndexedRange::of(&region(3, "c", "e", 1)));
        assert!(idx.check_invariants().unwrap_err().contains("overlap"));

        let mut idx = two();
        idx.start_of.remove(&2);
        assert!(idx.check_invariants().is_err());

        let mut idx = two();
        idx.by_start.insert(b"x".to_vec(), IndexedRange::of(&region(7, "y", "z", 1)));
        assert!(idx.check_invariants().unwrap_err().contains("filed under"));
    }

    #[test]
    fn split_moves_the_left_part_to_the_new_region_at_once() {
        let mut idx = two();
        // Region 1 [b, d) splits at c: 3 takes [b, c), 1 keeps [c, d).
        idx.split(&region(1, "c", "d", 2), Some(&region(3, "b", "c", 2))).unwrap();
        assert_eq!(idx.lookup(b"b"), Some(3));
        assert_eq!(idx.lookup(b"c"), Some(1));
        assert_eq!(idx.len(), 3);
        // Replaying it changes nothing.
        idx.split(&region(1, "c", "d", 2), Some(&region(3, "b", "c", 2))).unwrap();
        assert_eq!(idx.len(), 3);
        // A parent going back in epoch is refused.
        assert!(matches!(idx.split(&region(1, "c", "d", 1), None), Err(RangeConflict::StaleEpoch { .. })));
        // A new region reaching into another region is refused, unchanged.
        let before = format!("{idx:?}");
        assert_eq!(overlap_with(idx.split(&region(2, "g", "h", 2), Some(&region(4, "c", "g", 2)))), Some(1));
        assert_eq!(format!("{idx:?}"), before);
        // So is one overlapping the shrunk parent itself.
        assert_eq!(overlap_with(idx.split(&region(2, "g", "h", 2), Some(&region(4, "f", "h", 2)))), Some(2));
        // Without a new region only the parent shrinks.
        idx.split(&region(2, "g", "h", 2), None).unwrap();
        assert_eq!(idx.lookup(b"f"), None);
        assert_eq!(idx.lookup(b"g"), Some(2));
    }

    #[test]
    fn split_refuses_a_parent_it_does_not_hold() {
        let mut idx = two();
        // A destroy took region 1 out; its split applies afterwards.
        idx.remove(1);
        let before = format!("{idx:?}");
        let r = idx.split(&region(1, "c", "d", 2), Some(&region(3, "b", "c", 2)));
        assert_eq!(r, Err(RangeConflict::NotIndexed { region_id: 1 }));
        assert_eq!(format!("{idx:?}"), before, "no ghost range, no new region");
        assert_eq!((idx.lookup(b"b"), idx.lookup(b"c")), (None, None));
        assert_eq!(idx.split(&region(9, "x", "y", 2), None), Err(RangeConflict::NotIndexed { region_id: 9 }));
    }
}
