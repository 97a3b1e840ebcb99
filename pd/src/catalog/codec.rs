//! The persisted form of the catalog: protobuf rows and snapshots.
//!
//! PD's state machine stores one row per store and per region plus a meta
//! row, so applying a command rewrites only what it changed; a raft snapshot
//! is the whole catalog in one [`pdraftpb::CatalogSnapshot`].

use std::collections::BTreeMap;

use proto::{metapb, pdraftpb};

use super::{Dirty, RegionRecord, RouteCatalog};
use crate::error::{PdError, Result};

impl RegionRecord {
    pub fn to_pb(&self) -> pdraftpb::RegionRecord {
        pdraftpb::RegionRecord {
            region: Some(self.region.clone()),
            leader: self.leader,
            term: self.term,
            term_is_own: true,
        }
    }

    /// # Errors
    ///
    /// `Storage` when the row has no region.
    pub fn from_pb(pb: pdraftpb::RegionRecord) -> Result<Self> {
        let region = pb.region.ok_or_else(|| PdError::Storage("region row without a region".into()))?;
        // A term from a row written before terms were kept per region may
        // be another group's (a split stamped its parent's on every region
        // it produced): unknown, so the region's leader is taken at the
        // term it reports, rather than refused until its group passes it.
        let term = if pb.term_is_own { pb.term } else { 0 };
        Ok(RegionRecord { region, leader: pb.leader, term })
    }
}

impl RouteCatalog {
    pub fn meta_pb(&self) -> pdraftpb::CatalogMeta {
        pdraftpb::CatalogMeta { version: self.version, next_id: self.next_id, bootstrapped: self.bootstrapped }
    }

    /// The whole catalog, in id order.
    pub fn to_snapshot(&self) -> pdraftpb::CatalogSnapshot {
        pdraftpb::CatalogSnapshot {
            meta: Some(self.meta_pb()),
            stores: self.stores.values().cloned().collect(),
            regions: self.regions.values().map(RegionRecord::to_pb).collect(),
        }
    }

    /// Rebuilds a catalog from its rows and checks every invariant.
    ///
    /// # Errors
    ///
    /// `Storage` when the rows are inconsistent: a corrupt or foreign file
    /// must not be served as routes.
    pub fn from_parts(
        meta: pdraftpb::CatalogMeta,
        stores: impl IntoIterator<Item = metapb::Store>,
        regions: impl IntoIterator<Item = RegionRecord>,
    ) -> Result<Self> {
        let mut c = RouteCatalog {
            version: meta.version,
            next_id: meta.next_id.max(1),
            bootstrapped: meta.bootstrapped,
            stores: stores.into_iter().map(|s| (s.id, s)).collect(),
            regions: BTreeMap::new(),
            by_start: BTreeMap::new(),
            dirty: Dirty::default(),
            journal: Default::default(),
            route_changes: Vec::new(),
        };
        for rec in regions {
            if c.by_start.insert(rec.region.start_key.clone(), rec.region.id).is_some() {
                return Err(PdError::Storage(format!("two regions start at region {}'s start key", rec.region.id)));
            }
            c.regions.insert(rec.region.id, rec);
        }
        c.check_invariants().map_err(|e| PdError::Storage(format!("persisted catalog is inconsistent: {e}")))?;
        Ok(c)
    }

    /// # Errors
    ///
    /// As [`RouteCatalog::from_parts`].
    pub fn from_snapshot(s: pdraftpb::CatalogSnapshot) -> Result<Self> {
        let regions: Result<Vec<RegionRecord>> = s.regions.into_iter().map(RegionRecord::from_pb).collect();
        Self::from_parts(s.meta.unwrap_or_default(), s.stores, regions?)
    }
}
