//! The route catalog: PD's replicated state machine.
//!
//! The catalog holds the stores, the regions (key ranges with epochs, peers
//! and a leader), a **catalog version** and an id allocator. It changes only by
//! applying a [`CatalogCommand`] that went through PD's raft log, so every PD
//! member holds the same catalog at the same log index. Applying is pure and
//! deterministic: no clock, no randomness, no I/O.
//!
//! # Invariants
//!
//! Stated here once. Each command's own validation refuses changes that
//! would break them; on top of that, [`RouteCatalog::apply`] checks the rows
//! every command touched (`journal.rs`) and refuses the command, putting the
//! catalog back exactly as it was, if a change that passed validation would
//! break one anyway. Such a refusal ([`PdError::InvariantViolation`]) is a
//! bug, but applying is deterministic, so every member refuses the same log
//! entry alike: the group stays consistent and keeps serving, where a panic
//! would stop every member and stop it again whenever the entry is replayed.
//! The whole catalog is checked ([`RouteCatalog::check_invariants`]) when it
//! is loaded from storage or a snapshot.
//!
//! 1. Before bootstrap there are no regions. After it, regions **never
//!    overlap** and together they **cover the whole key space**: the first
//!    starts at the empty key, each starts where the previous one ends, the
//!    last ends at the empty key.
//! 2. A region's **epoch never goes backwards**: a report older than the
//!    catalog's record is refused as stale.
//! 3. The **catalog version only grows**, by one for every accepted change to
//!    routes (stores or regions).
//! 4. Every id in use is below the allocator's next id, so an allocated id is
//!    never handed out twice.
//! 5. No region has a peer on a **Tombstone** store.
//!
//! Snapshots ([`RouteCatalog::route_snapshot`]) list regions by start key and
//! stores by id, so equal catalogs produce equal bytes.
//!
//! Stores move Up -> Offline -> Tombstone (`store_state.rs`); a Tombstone
//! store's id is never used again and no region may name a peer on it.
//!
//! Not done yet: region merge, placement labels.

mod alloc;
mod bootstrap;
mod codec;
mod command;
mod journal;
pub mod keys;
mod put_store;
pub mod region_report;
mod route_change;
mod store_state;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use proto::{metapb, pdpb};

pub use bootstrap::even_split_keys;
#[cfg(test)]
pub use command::RawEdit;
pub use command::{CatalogCommand, CommandOutcome};
pub use put_store::validate_address;
pub use route_change::RouteChange;
pub use store_state::state_name;

use crate::error::{PdError, Result};

/// Most ids one allocation may take: keeps a single request from exhausting
/// the id space or bloating one log entry's effect.
pub const MAX_ALLOC_BATCH: u32 = 10_000;

/// One region as the catalog knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionRecord {
    pub region: metapb::Region,
    /// The last reported leader; `None` until a leader reports.
    pub leader: Option<metapb::Peer>,
    /// Raft term of the leader report: with equal epochs, a lower term is a
    /// stale report from a deposed leader.
    pub term: u64,
}

impl RegionRecord {
    pub fn epoch(&self) -> metapb::RegionEpoch {
        self.region.region_epoch.unwrap_or_default()
    }

    pub fn route(&self) -> pdpb::RegionRoute {
        pdpb::RegionRoute { region: Some(self.region.clone()), leader: self.leader }
    }
}

/// What changed since the last [`RouteCatalog::take_dirty`]: the storage layer
/// persists exactly these rows.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dirty {
    pub meta: bool,
    pub stores: BTreeSet<u64>,
    /// Region ids upserted or removed: a dirty id absent from the catalog was
    /// removed.
    pub regions: BTreeSet<u64>,
}

impl Dirty {
    pub fn is_empty(&self) -> bool {
        !self.meta && self.stores.is_empty() && self.regions.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteCatalog {
    version: u64,
    next_id: u64,
    bootstrapped: bool,
    stores: BTreeMap<u64, metapb::Store>,
    regions: BTreeMap<u64, RegionRecord>,
    /// start key -> region id: routing by key is a range lookup here.
    by_start: BTreeMap<Vec<u8>, u64>,
    dirty: Dirty,
    /// Before-images of what the command being applied changed; empty
    /// between commands.
    journal: journal::Journal,
    /// What each version since the last [`RouteCatalog::take_route_changes`]
    /// touched, oldest first.
    route_changes: Vec<RouteChange>,
}

impl Default for RouteCatalog {
    fn default() -> Self {
        Self::new()
    }
}

impl RouteCatalog {
    /// An empty, unbootstrapped catalog at version 0.
    pub fn new() -> Self {
        RouteCatalog {
            version: 0,
            next_id: 1,
            bootstrapped: false,
            stores: BTreeMap::new(),
            regions: BTreeMap::new(),
            by_start: BTreeMap::new(),
            dirty: Dirty::default(),
            journal: journal::Journal::default(),
            route_changes: Vec::new(),
        }
    }

    /// Applies one committed command. On any error the catalog is exactly as
    /// it was: same rows, version, allocator and dirty set.
    ///
    /// # Errors
    ///
    /// The command's own refusal (`InvalidArgument`, `StaleEpoch`,
    /// `RouteConflict`, ...), or `InvariantViolation` when a change that
    /// passed validation would break an invariant.
    pub fn apply(&mut self, cmd: &CatalogCommand) -> Result<CommandOutcome> {
        let marks = self.marks();
        let res = match cmd {
            CatalogCommand::AllocIds { count } => self.alloc_ids(*count),
            CatalogCommand::PutStore { store } => self.put_store(store),
            CatalogCommand::Bootstrap { store_ids, split_keys } => self.bootstrap(store_ids, split_keys),
            CatalogCommand::ReportRegions { regions, leader, term, leaderships } => {
                self.report_regions(regions, leader.as_ref(), *term, leaderships)
            }
            CatalogCommand::SetStoreState { store_id, state, min_up_stores } => {
                self.set_store_state(*store_id, *state, *min_up_stores)
            }
            #[cfg(test)]
            CatalogCommand::Unvalidated { edits } => Ok(self.apply_unvalidated(edits)),
        }
        .and_then(|out| {
            self.check_change(marks)
                .map(|()| out)
                .map_err(|e| PdError::InvariantViolation(format!("{e} (applying {cmd})")))
        });
        // Commands validate before they change anything, so on their own
        // refusals there is usually nothing to undo; undoing anyway makes
        // "unchanged on error" hold by construction.
        if res.is_err() {
            self.undo(marks);
        } else {
            self.keep_changes(marks);
        }
        res
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    pub fn is_bootstrapped(&self) -> bool {
        self.bootstrapped
    }

    pub fn store(&self, id: u64) -> Option<&metapb::Store> {
        self.stores.get(&id)
    }

    /// Stores in id order.
    pub fn stores(&self) -> impl Iterator<Item = &metapb::Store> {
        self.stores.values()
    }

    pub fn region(&self, id: u64) -> Option<&RegionRecord> {
        self.regions.get(&id)
    }

    pub fn region_count(&self) -> usize {
        self.regions.len()
    }

    /// Regions in key order.
    pub fn regions(&self) -> impl Iterator<Item = &RegionRecord> {
        self.by_start.values().map(|id| &self.regions[id])
    }

    /// The region whose range contains `key`.
    pub fn region_by_key(&self, key: &[u8]) -> Option<&RegionRecord> {
        let (_, id) = self.by_start.range::<[u8], _>((Bound::Unbounded, Bound::Included(key))).next_back()?;
        let rec = &self.regions[id];
        keys::contains(&rec.region.start_key, &rec.region.end_key, key).then_some(rec)
    }

    /// Regions overlapping `[start, end)` in key order, at most `limit` of
    /// them (0 = no limit).
    pub fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Vec<&RegionRecord> {
        let first = self.region_by_key(start).map(|r| r.region.start_key.clone()).unwrap_or_else(|| start.to_vec());
        let limit = if limit == 0 { usize::MAX } else { limit };
        self.by_start
            .range(first..)
            .map(|(_, id)| &self.regions[id])
            .take_while(|r| end.is_empty() || r.region.start_key.as_slice() < end)
            .take(limit)
            .collect()
    }

    /// Every store and region at the current version, in deterministic order.
    pub fn route_snapshot(&self) -> pdpb::RouteSnapshot {
        pdpb::RouteSnapshot {
            version: self.version,
            stores: self.stores.values().cloned().collect(),
            regions: self.regions().map(RegionRecord::route).collect(),
        }
    }

    /// Regions with a peer on each store, and regions led from each store.
    pub fn counts_by_store(&self) -> BTreeMap<u64, (u64, u64)> {
        let mut counts: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        for rec in self.regions.values() {
            for p in &rec.region.peers {
                counts.entry(p.store_id).or_default().0 += 1;
            }
            if let Some(l) = &rec.leader {
                counts.entry(l.store_id).or_default().1 += 1;
            }
        }
        counts
    }

    /// What changed since the last call; the caller persists it.
    pub fn take_dirty(&mut self) -> Dirty {
        std::mem::take(&mut self.dirty)
    }

    /// What each version since the last call touched, oldest first; the
    /// caller keeps them for route deltas.
    pub fn take_route_changes(&mut self) -> Vec<RouteChange> {
        std::mem::take(&mut self.route_changes)
    }

    /// Checks invariants 1, 4 and 5 over the whole catalog (2 and 3 compare
    /// before and after, so they are checked where a change is made). For a
    /// catalog of unknown origin: [`RouteCatalog::apply`] checks only what
    /// each command touched.
    ///
    /// # Errors
    ///
    /// A description of the first violation found.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.by_start.len() != self.regions.len() {
            return Err(format!("{} regions but {} start keys", self.regions.len(), self.by_start.len()));
        }
        for id in self.stores.keys() {
            if *id == 0 || *id >= self.next_id {
                return Err(format!("store id {id} outside allocated ids (next {})", self.next_id));
            }
        }
        if !self.bootstrapped {
            return if self.regions.is_empty() { Ok(()) } else { Err("regions before bootstrap".into()) };
        }
        let mut expected_start: &[u8] = b"";
        let mut last_end: Option<&[u8]> = None;
        for (start, id) in &self.by_start {
            let rec = self.regions.get(id).ok_or_else(|| format!("start key maps to unknown region {id}"))?;
            let r = &rec.region;
            if r.id != *id || r.start_key != *start {
                return Err(format!("index entry for region {id} does not match its record"));
            }
            if last_end == Some(b"") {
                return Err(format!("region {id} starts after a region that ends at +inf"));
            }
            if r.start_key.as_slice() != expected_start {
                return Err(format!(
                    "region {id} starts at {:?}, expected {:?} (gap or overlap)",
                    keys::display(&r.start_key),
                    keys::display(expected_start)
                ));
            }
            if !keys::is_valid_range(&r.start_key, &r.end_key) {
                return Err(format!("region {id} has an empty range"));
            }
            self.check_region_ids(r)?;
            if let Some(p) = r.peers.iter().find(|p| self.is_tombstone(p.store_id)) {
                return Err(format!("region {id} has peer {} on tombstoned store {}", p.id, p.store_id));
            }
            expected_start = &r.end_key;
            last_end = Some(&r.end_key);
        }
        match last_end {
            Some(b"") => Ok(()),
            Some(end) => Err(format!("key space ends at {:?}, not +inf", keys::display(end))),
            None => Err("bootstrapped catalog has no regions".into()),
        }
    }

    fn check_region_ids(&self, r: &metapb::Region) -> Result<(), String> {
        if r.id == 0 || r.id >= self.next_id {
            return Err(format!("region id {} outside allocated ids", r.id));
        }
        for p in &r.peers {
            if p.id == 0 || p.id >= self.next_id {
                return Err(format!("peer id {} of region {} outside allocated ids", p.id, r.id));
            }
        }
        Ok(())
    }

    fn bump_version(&mut self) {
        // Wrapping rather than overflow-checked: a catalog loaded at the
        // largest version would otherwise panic here (debug builds) on every
        // member; wrapped, it fails apply's "version went backwards" check
        // and the command is refused instead.
        self.version = self.version.wrapping_add(1);
        self.dirty.meta = true;
    }

    /// The ids of regions overlapping `[start, end)`.
    fn overlapping(&self, start: &[u8], end: &[u8]) -> Vec<u64> {
        self.scan(start, end, 0).into_iter().map(|r| r.region.id).collect()
    }

    fn is_tombstone(&self, store_id: u64) -> bool {
        self.stores.get(&store_id).is_some_and(|s| s.state == metapb::StoreState::Tombstone as i32)
    }

    /// The store must exist and not be tombstoned.
    fn live_store(&self, id: u64) -> Result<&metapb::Store> {
        match self.stores.get(&id) {
            None => Err(PdError::StoreNotFound(id)),
            Some(s) if s.state == metapb::StoreState::Tombstone as i32 => {
                Err(PdError::StoreConflict(format!("store {id} is tombstoned")))
            }
            Some(s) => Ok(s),
        }
    }
}

#[cfg(test)]
mod tests;
