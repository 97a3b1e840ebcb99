//! What one [`RouteCatalog::apply`] changed: the before-image of every row
//! it touched, so a refused command is undone exactly, and the invariant
//! check over just those rows.
//!
//! Why not apply to a clone and keep it only if it holds: a catalog of many
//! thousand regions would be copied for every heartbeat. Why not check the
//! whole catalog after each command: the same cost, paid on every write. A
//! command touches a handful of rows and the catalog held every invariant
//! before it, so a broken invariant can only show next to a touched row:
//! recording, checking and undoing those rows costs about what the command
//! itself costs. The whole-catalog check ([`RouteCatalog::check_invariants`])
//! stays for loading, where nothing is known about the rows.

use std::collections::BTreeMap;
use std::ops::Bound;

use proto::metapb;

use super::region_report::epoch_is_stale;
use super::{RegionRecord, RouteCatalog, keys};

/// The catalog's scalars before a command, put back as they were on refusal.
#[derive(Debug, Clone, Copy)]
pub(super) struct Marks {
    version: u64,
    next_id: u64,
    bootstrapped: bool,
    dirty_meta: bool,
}

/// Before-images of the rows the current command touched; empty between
/// commands.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Journal {
    /// Each touched row as it was before the command; `None`: it did not exist.
    stores: BTreeMap<u64, Option<metapb::Store>>,
    regions: BTreeMap<u64, Option<RegionRecord>>,
    by_start: BTreeMap<Vec<u8>, Option<u64>>,
    /// Ids this command added to the dirty sets. Only these are taken out on
    /// undo: earlier commands of the same apply batch dirtied the others, and
    /// their rows must still be persisted.
    dirty_stores: Vec<u64>,
    dirty_regions: Vec<u64>,
}

impl RouteCatalog {
    pub(super) fn marks(&self) -> Marks {
        Marks {
            version: self.version,
            next_id: self.next_id,
            bootstrapped: self.bootstrapped,
            dirty_meta: self.dirty.meta,
        }
    }

    // Every change to the store, region and start-key maps goes through the
    // mutators below, so the journal misses none.

    /// Inserts or replaces a store row.
    pub(super) fn put_store_row(&mut self, store: metapb::Store) {
        let id = store.id;
        self.journal.stores.entry(id).or_insert_with(|| self.stores.get(&id).cloned());
        self.stores.insert(id, store);
        if self.dirty.stores.insert(id) {
            self.journal.dirty_stores.push(id);
        }
    }

    /// Inserts or replaces a region, moving its start-key entry if its start
    /// key changed.
    pub(super) fn insert_region(&mut self, rec: RegionRecord) {
        let id = rec.region.id;
        self.remove_region(id);
        self.set_start(rec.region.start_key.clone(), Some(id));
        self.journal.regions.entry(id).or_insert_with(|| self.regions.get(&id).cloned());
        self.regions.insert(id, rec);
        self.mark_region_dirty(id);
    }

    pub(super) fn remove_region(&mut self, id: u64) {
        self.journal.regions.entry(id).or_insert_with(|| self.regions.get(&id).cloned());
        if let Some(old) = self.regions.remove(&id) {
            self.set_start(old.region.start_key, None);
            self.mark_region_dirty(id);
        }
    }

    fn set_start(&mut self, key: Vec<u8>, id: Option<u64>) {
        self.journal.by_start.entry(key.clone()).or_insert_with(|| self.by_start.get(&key).copied());
        match id {
            Some(id) => self.by_start.insert(key, id),
            None => self.by_start.remove(&key),
        };
    }

    fn mark_region_dirty(&mut self, id: u64) {
        if self.dirty.regions.insert(id) {
            self.journal.dirty_regions.push(id);
        }
    }

    /// Forgets the journal of an accepted command, first noting what it
    /// touched if it moved the version (the journal's keys are exactly the
    /// rows it touched).
    pub(super) fn keep_changes(&mut self, before: Marks) {
        let journal = std::mem::take(&mut self.journal);
        if self.version != before.version {
            self.route_changes.push(super::RouteChange {
                version: self.version,
                regions: journal.regions.into_keys().collect(),
                stores: journal.stores.into_keys().collect(),
            });
        }
    }

    /// Puts back every row, scalar and dirty mark the current command
    /// changed.
    pub(super) fn undo(&mut self, marks: Marks) {
        let journal = std::mem::take(&mut self.journal);
        for (id, before) in journal.stores {
            match before {
                Some(s) => self.stores.insert(id, s),
                None => self.stores.remove(&id),
            };
        }
        for (id, before) in journal.regions {
            match before {
                Some(r) => self.regions.insert(id, r),
                None => self.regions.remove(&id),
            };
        }
        // Start-key entries are restored by key, not derived from the
        // regions: a faulty change may have pointed a key at the wrong region.
        for (key, before) in journal.by_start {
            match before {
                Some(id) => self.by_start.insert(key, id),
                None => self.by_start.remove(&key),
            };
        }
        for id in journal.dirty_stores {
            self.dirty.stores.remove(&id);
        }
        for id in journal.dirty_regions {
            self.dirty.regions.remove(&id);
        }
        let Marks { version, next_id, bootstrapped, dirty_meta } = marks;
        self.version = version;
        self.next_id = next_id;
        self.bootstrapped = bootstrapped;
        self.dirty.meta = dirty_meta;
    }

    /// Checks every invariant the current command could have broken, given
    /// that the catalog held them all at `before`.
    ///
    /// # Errors
    ///
    /// A description of the first violation found.
    pub(super) fn check_change(&self, before: Marks) -> Result<(), String> {
        // Invariant 3: the version grows by at most one per command.
        if self.version < before.version {
            return Err(format!("catalog version went backwards from {} to {}", before.version, self.version));
        }
        if self.version - before.version > 1 {
            return Err(format!("catalog version jumped from {} to {}", before.version, self.version));
        }
        // Invariant 4 holds for untouched rows only if the allocator never
        // goes back.
        if self.next_id < before.next_id {
            return Err(format!("id allocator went backwards from {} to {}", before.next_id, self.next_id));
        }
        if before.bootstrapped && !self.bootstrapped {
            return Err("a bootstrapped catalog became unbootstrapped".into());
        }
        if self.by_start.len() != self.regions.len() {
            return Err(format!("{} regions but {} start keys", self.regions.len(), self.by_start.len()));
        }
        match (self.bootstrapped, self.regions.is_empty()) {
            (false, false) => return Err("regions before bootstrap".into()),
            (true, true) => return Err("bootstrapped catalog has no regions".into()),
            _ => {}
        }
        for id in self.journal.stores.keys() {
            if self.stores.contains_key(id) && (*id == 0 || *id >= self.next_id) {
                return Err(format!("store id {id} outside allocated ids (next {})", self.next_id));
            }
            // Invariant 5, for a store that changed.
            if self.is_tombstone(*id) && self.regions_on_store(*id) > 0 {
                return Err(format!("tombstoned store {id} still holds peers"));
            }
        }
        for (id, old) in &self.journal.regions {
            let Some(rec) = self.regions.get(id) else {
                continue;
            };
            let r = &rec.region;
            if r.id != *id {
                return Err(format!("the record of region {id} holds region {}", r.id));
            }
            if self.by_start.get(&r.start_key) != Some(id) {
                return Err(format!("region {id} is missing from the start-key index"));
            }
            if !keys::is_valid_range(&r.start_key, &r.end_key) {
                return Err(format!("region {id} has an empty range"));
            }
            self.check_region_ids(r)?;
            // Invariant 5, for a region that changed.
            if let Some(p) = r.peers.iter().find(|p| self.is_tombstone(p.store_id)) {
                return Err(format!("region {id} has peer {} on tombstoned store {}", p.id, p.store_id));
            }
            // Invariant 2.
            if let Some(old) = old
                && epoch_is_stale(&rec.epoch(), &old.epoch())
            {
                return Err(format!("region {id}'s epoch went backwards from {:?} to {:?}", old.epoch(), rec.epoch()));
            }
        }
        // Invariant 1. The start keys the command set or cleared include the
        // old and new start of every region it touched. Any new gap or
        // overlap is between two regions next to each other in key order, of
        // which one was touched or which became neighbours because a region
        // between them was removed; either way the pair sits around one of
        // those keys.
        for key in self.journal.by_start.keys() {
            if let Some(id) = self.by_start.get(key)
                && self.regions.get(id).is_none_or(|rec| rec.region.start_key != *key)
            {
                return Err(format!(
                    "start key {:?} names region {id}, which does not start there",
                    keys::display(key)
                ));
            }
            if self.bootstrapped {
                self.check_around(key)?;
            }
        }
        Ok(())
    }

    /// Checks that the regions on both sides of `key`, and the one after
    /// that, follow each other without a gap or an overlap.
    fn check_around(&self, key: &[u8]) -> Result<(), String> {
        let below = self.by_start.range::<[u8], _>((Bound::Unbounded, Bound::Excluded(key))).next_back();
        let mut from = self.by_start.range::<[u8], _>((Bound::Included(key), Bound::Unbounded));
        let (at, next) = (from.next(), from.next());
        let id = |e: Option<(&Vec<u8>, &u64)>| e.map(|(_, id)| *id);
        self.check_adjacent(id(below), id(at))?;
        if at.is_some() {
            self.check_adjacent(id(at), id(next))?;
        }
        Ok(())
    }

    /// Checks that region `b` starts where region `a` ends; `None` stands for
    /// the edge of the key space.
    fn check_adjacent(&self, a: Option<u64>, b: Option<u64>) -> Result<(), String> {
        let region = |id: u64| {
            self.regions.get(&id).map(|rec| &rec.region).ok_or_else(|| format!("start key names unknown region {id}"))
        };
        match (a, b) {
            (None, None) => Err("bootstrapped catalog has no regions".into()),
            (None, Some(b)) => {
                let b = region(b)?;
                if b.start_key.is_empty() {
                    Ok(())
                } else {
                    Err(format!("key space starts at {:?} (region {}), not -inf", keys::display(&b.start_key), b.id))
                }
            }
            (Some(a), None) => {
                let a = region(a)?;
                if a.end_key.is_empty() {
                    Ok(())
                } else {
                    Err(format!("key space ends at {:?} (region {}), not +inf", keys::display(&a.end_key), a.id))
                }
            }
            (Some(a), Some(b)) => {
                let (a, b) = (region(a)?, region(b)?);
                if !a.end_key.is_empty() && a.end_key == b.start_key {
                    Ok(())
                } else {
                    Err(format!(
                        "region {} starts at {:?} but region {} ends at {:?} (gap or overlap)",
                        b.id,
                        keys::display(&b.start_key),
                        a.id,
                        if a.end_key.is_empty() { "+inf".to_string() } else { keys::display(&a.end_key) }
                    ))
                }
            }
        }
    }
}
