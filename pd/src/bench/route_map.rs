//! A simulated store's routes, kept so a delta costs what it changes: a
//! store with 100,000 regions must not copy them all for each one.

use std::collections::{BTreeMap, HashMap};

use proto::{metapb, pdpb};

use crate::routes::DeltaRefusal;

/// Routes by region id with a start-key index. Deltas apply only at their
/// `from_version`, as [`crate::routes::apply_delta`] does; unlike it, this
/// does not check that the result tiles the key space (the bench compares
/// the result with PD's routes instead).
#[derive(Debug, Default)]
pub struct RouteMap {
    version: u64,
    by_id: HashMap<u64, pdpb::RegionRoute>,
    by_start: BTreeMap<Vec<u8>, u64>,
    stores: BTreeMap<u64, metapb::Store>,
}

impl RouteMap {
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Replaces everything with `snapshot` if it is newer.
    pub fn apply_full(&mut self, snapshot: pdpb::RouteSnapshot) {
        if snapshot.version <= self.version {
            return;
        }
        *self = RouteMap { version: snapshot.version, ..RouteMap::default() };
        for s in snapshot.stores {
            self.stores.insert(s.id, s);
        }
        for route in snapshot.regions {
            self.upsert(route);
        }
    }

    /// # Errors
    ///
    /// `Stale` (nothing changes), `Gap` or `Malformed`, as
    /// [`crate::routes::apply_delta`].
    pub fn apply_delta(&mut self, delta: pdpb::RouteDelta) -> Result<(), DeltaRefusal> {
        if delta.to_version <= delta.from_version {
            return Err(DeltaRefusal::Malformed("to version not above from version".into()));
        }
        if self.version >= delta.to_version {
            return Err(DeltaRefusal::Stale { have: self.version, to: delta.to_version });
        }
        if self.version != delta.from_version {
            return Err(DeltaRefusal::Gap { have: self.version, from: delta.from_version });
        }
        if delta.upserted.iter().any(|r| r.region.is_none()) {
            return Err(DeltaRefusal::Malformed("an upserted route has no region".into()));
        }
        for id in delta.removed {
            self.remove(id);
        }
        for route in delta.upserted {
            self.upsert(route);
        }
        for s in delta.stores {
            self.stores.insert(s.id, s);
        }
        self.version = delta.to_version;
        Ok(())
    }

    fn remove(&mut self, id: u64) {
        if let Some(old) = self.by_id.remove(&id)
            && let Some(r) = old.region
            && self.by_start.get(&r.start_key) == Some(&id)
        {
            self.by_start.remove(&r.start_key);
        }
    }

    fn upsert(&mut self, route: pdpb::RegionRoute) {
        let Some(r) = &route.region else { return };
        let (id, start) = (r.id, r.start_key.clone());
        self.remove(id);
        self.by_start.insert(start, id);
        self.by_id.insert(id, route);
    }

    /// The routes in the order of a full snapshot, to compare with PD's.
    pub fn to_snapshot(&self) -> pdpb::RouteSnapshot {
        pdpb::RouteSnapshot {
            version: self.version,
            stores: self.stores.values().cloned().collect(),
            regions: self.by_start.values().filter_map(|id| self.by_id.get(id).cloned()).collect(),
        }
    }
}
