//! Commands that change the catalog: the payload of PD's raft log entries.

use proto::{metapb, pdpb};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CatalogCommand {
    /// Hand out `count` consecutive ids.
    AllocIds { count: u32 },
    /// Register a store or update its addresses and labels.
    PutStore { store: metapb::Store },
    /// Create the first regions: one per range between `split_keys`, each with
    /// one voter on every store in `store_ids`. Ids come from the allocator at
    /// apply time, so every member creates identical regions.
    Bootstrap { store_ids: Vec<u64>, split_keys: Vec<Vec<u8>> },
    /// A region leader's report: one region from a heartbeat, or every region
    /// a split produced. Applied atomically, only if no epoch in it is stale
    /// and the regions it replaces cover exactly the same keys.
    ///
    /// `leader` is the reporting peer and `term` its raft term: they name
    /// the leader of the one region that peer belongs to. Every region is
    /// its own raft group, so a term says nothing about another region.
    /// `leaderships`, empty or one per region, names each region's own
    /// leader and term where the reporting store knows it (a split report
    /// from a store that leads the new region too); a region with neither
    /// keeps the leader the catalog has, or starts without one.
    ReportRegions {
        regions: Vec<metapb::Region>,
        leader: Option<metapb::Peer>,
        term: u64,
        /// Absent from entries written before it existed: those name only
        /// the reporting peer's region's leader.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        leaderships: Vec<pdpb::RegionLeadership>,
    },
    /// Move a store along its life cycle (`store_state.rs`): Up -> Offline
    /// (refused if fewer than `min_up_stores` Up stores would remain),
    /// Offline -> Up, Offline -> Tombstone (only once no region has a peer
    /// on it). Setting the state it has already is accepted and changes
    /// nothing.
    SetStoreState { store_id: u64, state: metapb::StoreState, min_up_stores: u32 },
    /// Test builds only: edits made with no validation at all. Every other
    /// command's validation already refuses what would break an invariant,
    /// so this stands in for a command whose validation has a bug, to drive
    /// the invariant check behind it, directly and through a raft group.
    #[cfg(test)]
    Unvalidated { edits: Vec<RawEdit> },
}

/// One unvalidated change to the catalog (test builds only).
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RawEdit {
    PutStore(metapb::Store),
    /// Inserts or replaces the region with this id, leaderless.
    PutRegion(metapb::Region),
    RemoveRegion(u64),
    SetVersion(u64),
    SetNextId(u64),
    SetBootstrapped(bool),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CommandOutcome {
    Ids {
        first: u64,
        count: u32,
    },
    StorePut {
        version: u64,
    },
    Bootstrapped {
        regions: Vec<metapb::Region>,
        version: u64,
    },
    /// The store's state after the command.
    StoreState {
        state: i32,
        version: u64,
    },
    /// `changed` is false when the report matched the catalog already.
    Regions {
        changed: bool,
        version: u64,
    },
}

#[cfg(test)]
impl super::RouteCatalog {
    /// Makes the edits through the same mutators as every command, so the
    /// journal records them.
    pub(super) fn apply_unvalidated(&mut self, edits: &[RawEdit]) -> CommandOutcome {
        for edit in edits {
            match edit {
                RawEdit::PutStore(s) => self.put_store_row(s.clone()),
                RawEdit::PutRegion(r) => {
                    self.insert_region(super::RegionRecord { region: r.clone(), leader: None, term: 0 })
                }
                RawEdit::RemoveRegion(id) => self.remove_region(*id),
                RawEdit::SetVersion(v) => self.version = *v,
                RawEdit::SetNextId(n) => self.next_id = *n,
                RawEdit::SetBootstrapped(b) => self.bootstrapped = *b,
            }
        }
        self.dirty.meta = true;
        CommandOutcome::Regions { changed: true, version: self.version }
    }
}
