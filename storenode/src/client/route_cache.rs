//! The client's copy of the routes: PD's latest route snapshot plus leader
//! hints learned from `NotLeader` answers, which are fresher than PD's, and
//! regions learned from `EpochNotMatch` answers until PD's routes catch up.
//! Deltas from PD's watch apply to PD's routes as PD sent them, not to
//! those additions: the routes in use after a delta are PD's at its
//! `to_version`, as after a full snapshot.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use pd::catalog::keys;
use pd::routes::{DeltaRefusal, apply_delta};
use proto::{metapb, pdpb};

#[derive(Default)]
pub struct RouteCache {
    /// PD's routes as last received: what deltas apply to.
    from_pd: Arc<pdpb::RouteSnapshot>,
    /// PD's routes with regions learned from epoch errors: what requests
    /// are routed by.
    snapshot: Arc<pdpb::RouteSnapshot>,
    by_start: BTreeMap<Vec<u8>, usize>,
    stores: HashMap<u64, String>,
    /// region id -> store id believed to lead it.
    leader_hints: HashMap<u64, u64>,
}

/// Where to send a request for a key.
#[derive(Debug, Clone)]
pub struct Target {
    pub region: metapb::Region,
    pub store_id: u64,
    pub address: String,
}

impl RouteCache {
    pub fn version(&self) -> u64 {
        self.snapshot.version
    }

    /// Installs a newer snapshot; hints for regions whose epoch changed are
    /// dropped.
    pub fn update(&mut self, snapshot: pdpb::RouteSnapshot) -> bool {
        if snapshot.version <= self.snapshot.version {
            return false;
        }
        self.by_start = snapshot
            .regions
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.region.as_ref().map(|r| (r.start_key.clone(), i)))
            .collect();
        self.stores = snapshot.stores.iter().map(|s| (s.id, s.address.clone())).collect();
        self.snapshot = Arc::new(snapshot);
        self.from_pd = self.snapshot.clone();
        true
    }

    /// Applies a delta of PD's routes on top of the ones PD last sent.
    ///
    /// # Errors
    ///
    /// As [`pd::routes::apply_delta`]: `Stale` changes nothing; `Gap` and
    /// `Malformed` mean the watch must start over from a full snapshot.
    pub fn apply_delta(&mut self, delta: &pdpb::RouteDelta) -> Result<(), DeltaRefusal> {
        let routes = apply_delta(&self.from_pd, delta)?;
        self.update(routes);
        Ok(())
    }

    pub fn region_for(&self, key: &[u8]) -> Option<&pdpb::RegionRoute> {
        let (_, i) = self.by_start.range::<[u8], _>((Bound::Unbounded, Bound::Included(key))).next_back()?;
        let route = &self.snapshot.regions[*i];
        let r = route.region.as_ref()?;
        keys::contains(&r.start_key, &r.end_key, key).then_some(route)
    }

    /// The store to try for `key`: the hinted leader, else PD's leader,
    /// else the `attempt`-th peer (so repeated failures rotate through the
    /// replicas, any of which forwards to the leader).
    pub fn target(&self, key: &[u8], attempt: usize) -> Option<Target> {
        let route = self.region_for(key)?;
        let region = route.region.clone()?;
        let preferred = self.leader_hints.get(&region.id).copied().or(route.leader.map(|l| l.store_id));
        let store_id = match preferred {
            Some(s) if attempt == 0 => s,
            _ if region.peers.is_empty() => return None,
            _ => region.peers[attempt % region.peers.len()].store_id,
        };
        let address = self.stores.get(&store_id)?.clone();
        Some(Target { region, store_id, address })
    }

    /// Takes in regions a store answered `EpochNotMatch` with (a split it
    /// applied before PD's routes say so): each replaces the cached regions
    /// it overlaps whose version is older, so the retry goes to the right
    /// region at once. `answered_by` is hinted as their leader: the store
    /// that led the parent campaigns first for the new region. The
    /// snapshot's version stays, so PD's next routes replace all of it.
    /// Returns whether anything changed.
    pub fn apply_regions(&mut self, regions: &[metapb::Region], answered_by: u64) -> bool {
        let mut routes = self.snapshot.regions.clone();
        let mut changed = false;
        for new in regions {
            let version = new.region_epoch.unwrap_or_default().version;
            let stale = |r: &metapb::Region| {
                keys::overlaps(&r.start_key, &r.end_key, &new.start_key, &new.end_key)
                    && r.region_epoch.unwrap_or_default().version < version
            };
            let before = routes.len();
            routes.retain(|route| !route.region.as_ref().is_some_and(stale));
            let covered = routes.iter().any(|route| {
                route
                    .region
                    .as_ref()
                    .is_some_and(|r| keys::overlaps(&r.start_key, &r.end_key, &new.start_key, &new.end_key))
            });
            if routes.len() != before || !covered {
                if !covered {
                    routes.push(pdpb::RegionRoute { region: Some(new.clone()), leader: None });
                    self.leader_hints.insert(new.id, answered_by);
                }
                changed = true;
            }
        }
        if !changed {
            return false;
        }
        routes.sort_by(|a, b| {
            let key = |r: &pdpb::RegionRoute| r.region.as_ref().map(|r| r.start_key.clone()).unwrap_or_default();
            key(a).cmp(&key(b))
        });
        self.by_start = routes
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.region.as_ref().map(|r| (r.start_key.clone(), i)))
            .collect();
        self.snapshot = Arc::new(pdpb::RouteSnapshot { regions: routes, ..(*self.snapshot).clone() });
        true
    }

    pub fn set_leader(&mut self, region_id: u64, store_id: u64) {
        self.leader_hints.insert(region_id, store_id);
    }

    pub fn forget_leader(&mut self, region_id: u64) {
        self.leader_hints.remove(&region_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(id: u64, start: &str, end: &str, version: u64) -> metapb::Region {
        metapb::Region {
            id,
            start_key: start.into(),
            end_key: end.into(),
            region_epoch: Some(metapb::RegionEpoch { conf_ver: 1, version }),
            peers: vec![metapb::Peer { id: id * 10, store_id: 1, role: 0 }],
        }
    }

    fn cache() -> RouteCache {
        let mut c = RouteCache::default();
        c.update(pdpb::RouteSnapshot {
            version: 7,
            stores: vec![metapb::Store { id: 1, address: "a:1".into(), ..Default::default() }],
            regions: vec![
                pdpb::RegionRoute { region: Some(region(2, "", "m", 1)), leader: None },
                pdpb::RegionRoute { region: Some(region(3, "m", "", 1)), leader: None },
            ],
        });
        c
    }

    #[test]
    fn regions_from_an_epoch_error_replace_older_ones() {
        let mut c = cache();
        // Region 2 [, m) split at g: 4 takes [, g), 2 keeps [g, m).
        assert!(c.apply_regions(&[region(4, "", "g", 2), region(2, "g", "m", 2)], 1));
        assert_eq!(c.region_for(b"a").unwrap().region.as_ref().unwrap().id, 4);
        assert_eq!(c.region_for(b"h").unwrap().region.as_ref().unwrap().id, 2);
        assert_eq!(c.region_for(b"z").unwrap().region.as_ref().unwrap().id, 3);
        assert_eq!(c.target(b"a", 0).unwrap().store_id, 1);
        assert_eq!(c.version(), 7);
        // Older news changes nothing.
        assert!(!c.apply_regions(&[region(2, "", "m", 1)], 1));
        assert_eq!(c.region_for(b"a").unwrap().region.as_ref().unwrap().id, 4);
        // PD's next routes replace it all.
        assert!(c.update(pdpb::RouteSnapshot { version: 8, ..Default::default() }));
        assert!(c.region_for(b"a").is_none());
    }

    #[test]
    fn a_delta_applies_to_pd_routes_and_replaces_what_epoch_errors_taught() {
        let mut c = cache();
        assert!(c.apply_regions(&[region(4, "", "g", 2), region(2, "g", "m", 2)], 1));
        // PD's delta 7 -> 8 moved region 3 only; it has not heard of the split.
        let led = pdpb::RegionRoute {
            region: Some(region(3, "m", "", 1)),
            leader: Some(metapb::Peer { id: 30, store_id: 1, role: 0 }),
        };
        let delta = pdpb::RouteDelta { from_version: 7, to_version: 8, upserted: vec![led], ..Default::default() };
        c.apply_delta(&delta).unwrap();
        assert_eq!(c.version(), 8);
        assert_eq!(c.region_for(b"a").unwrap().region.as_ref().unwrap().id, 2, "PD's routes at 8");
        assert!(c.region_for(b"z").unwrap().leader.is_some());
        assert_eq!(c.apply_delta(&delta), Err(DeltaRefusal::Stale { have: 8, to: 8 }));
        let later = pdpb::RouteDelta { from_version: 9, to_version: 10, ..Default::default() };
        assert_eq!(c.apply_delta(&later), Err(DeltaRefusal::Gap { have: 8, from: 9 }));
    }
}
