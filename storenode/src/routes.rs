//! The store's copy of PD's route table: the newest route snapshot it has
//! seen, indexed by start key. A snapshot older than (or as old as) the one
//! held is ignored, so a delayed push never moves routes backwards. A delta
//! applies only on top of the version it starts from
//! ([`pd::routes::apply_delta`]).
//!
//! Like the client's route cache (`crate::client::route_cache`), it also
//! keeps leader hints: the store a `NotLeader` answer named as a region's
//! leader, fresher than PD's routes when PD has not heard of the new leader
//! yet. A hint is used instead of PD's leader until PD's routes for that
//! region change (PD learned something newer) or the hinted store cannot be
//! reached.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, RwLock};

use pd::catalog::keys;
use pd::routes::{DeltaRefusal, apply_delta};
use proto::{metapb, pdpb};

use crate::metrics;

#[derive(Default)]
struct Indexed {
    snapshot: Arc<pdpb::RouteSnapshot>,
    /// start key -> index into `snapshot.regions`.
    by_start: BTreeMap<Vec<u8>, usize>,
    stores: BTreeMap<u64, metapb::Store>,
}

pub struct RouteTable {
    inner: RwLock<Indexed>,
    /// region id -> store id a `NotLeader` answer named as its leader.
    leader_hints: std::sync::Mutex<HashMap<u64, u64>>,
    /// The version held, for tasks that wait for routes to arrive.
    version_tx: tokio::sync::watch::Sender<u64>,
}

impl Default for RouteTable {
    fn default() -> Self {
        RouteTable {
            inner: RwLock::default(),
            leader_hints: std::sync::Mutex::default(),
            version_tx: tokio::sync::watch::channel(0).0,
        }
    }
}

impl RouteTable {
    /// Resolves once any route snapshot has been applied.
    pub async fn wait_for_routes(&self) {
        let mut rx = self.version_tx.subscribe();
        let _ = rx.wait_for(|v| *v > 0).await.is_ok();
    }

    pub fn version(&self) -> u64 {
        self.inner.read().unwrap().snapshot.version
    }

    pub fn snapshot(&self) -> Arc<pdpb::RouteSnapshot> {
        self.inner.read().unwrap().snapshot.clone()
    }

    /// Installs `snapshot` if it is newer than the current one.
    pub fn apply_if_newer(&self, snapshot: pdpb::RouteSnapshot) -> bool {
        let inner = self.inner.write().unwrap();
        if snapshot.version <= inner.snapshot.version {
            return false;
        }
        self.install(inner, snapshot);
        true
    }

    /// Applies `delta` on top of the routes held.
    ///
    /// # Errors
    ///
    /// As [`pd::routes::apply_delta`]: `Stale` when the routes held are as
    /// new already (nothing changes), `Gap` or `Malformed` when a full
    /// snapshot is needed.
    pub fn apply_delta(&self, delta: &pdpb::RouteDelta) -> Result<(), DeltaRefusal> {
        let inner = self.inner.write().unwrap();
        let snapshot = apply_delta(&inner.snapshot, delta)?;
        self.install(inner, snapshot);
        Ok(())
    }

    fn install(&self, mut inner: std::sync::RwLockWriteGuard<'_, Indexed>, snapshot: pdpb::RouteSnapshot) {
        let by_start = snapshot
            .regions
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.region.as_ref().map(|r| (r.start_key.clone(), i)))
            .collect();
        let stores = snapshot.stores.iter().map(|s| (s.id, s.clone())).collect();
        metrics::ROUTE_VERSION.set(snapshot.version as i64);
        self.drop_superseded_hints(&inner.snapshot, &snapshot);
        let version = snapshot.version;
        *inner = Indexed { snapshot: Arc::new(snapshot), by_start, stores };
        drop(inner);
        self.version_tx.send_replace(version);
    }

    /// Keeps the hints for regions whose route PD left as it was: PD has
    /// not heard of their new leader yet. (Called under the routes' write
    /// lock, so no lookup sees the new routes with a superseded hint.)
    fn drop_superseded_hints(&self, old: &pdpb::RouteSnapshot, new: &pdpb::RouteSnapshot) {
        let mut hints = self.leader_hints.lock().unwrap();
        if hints.is_empty() {
            return;
        }
        let id = |r: &pdpb::RegionRoute| r.region.as_ref().map_or(0, |r| r.id);
        let before: HashMap<u64, &pdpb::RegionRoute> = old.regions.iter().map(|r| (id(r), r)).collect();
        let unchanged: std::collections::HashSet<u64> =
            new.regions.iter().filter(|r| before.get(&id(r)) == Some(r)).map(id).collect();
        hints.retain(|region_id, _| unchanged.contains(region_id));
    }

    /// The store believed to lead the region of `route`: the hinted one, else
    /// PD's leader. A hint naming a store PD's route lists no peer on is
    /// not followed: it came from a follower that had not yet applied that
    /// peer's removal, and nothing else would clear it while PD's route for
    /// the region stays as it is.
    pub fn leader_store(&self, route: &pdpb::RegionRoute) -> Option<u64> {
        let region = route.region.as_ref();
        let region_id = region.map_or(0, |r| r.id);
        let hinted = self.leader_hints.lock().unwrap().get(&region_id).copied();
        let holds = |store: &u64| region.is_some_and(|r| r.peers.iter().any(|p| p.store_id == *store));
        hinted.filter(holds).or(route.leader.map(|l| l.store_id))
    }

    /// Records that a store answered `NotLeader` for `region_id` naming
    /// the peer on `store_id` as leader.
    pub fn set_leader_hint(&self, region_id: u64, store_id: u64) {
        self.leader_hints.lock().unwrap().insert(region_id, store_id);
    }

    /// Forgets the hint for `region_id` if it names `store_id` (which could
    /// not be reached): PD's leader is tried again.
    pub fn forget_leader_hint(&self, region_id: u64, store_id: u64) {
        let mut hints = self.leader_hints.lock().unwrap();
        if hints.get(&region_id) == Some(&store_id) {
            hints.remove(&region_id);
        }
    }

    pub fn store(&self, store_id: u64) -> Option<metapb::Store> {
        self.inner.read().unwrap().stores.get(&store_id).cloned()
    }

    /// The route of the region containing `key`.
    pub fn region_by_key(&self, key: &[u8]) -> Option<pdpb::RegionRoute> {
        let inner = self.inner.read().unwrap();
        let (_, i) = inner.by_start.range::<[u8], _>((Bound::Unbounded, Bound::Included(key))).next_back()?;
        let route = &inner.snapshot.regions[*i];
        let r = route.region.as_ref()?;
        keys::contains(&r.start_key, &r.end_key, key).then(|| route.clone())
    }

    pub fn region(&self, region_id: u64) -> Option<pdpb::RegionRoute> {
        let inner = self.inner.read().unwrap();
        inner.snapshot.regions.iter().find(|r| r.region.as_ref().is_some_and(|r| r.id == region_id)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(version: u64, split: &[u8]) -> pdpb::RouteSnapshot {
        let peers =
            |id: u64| (1..=3).map(move |s| metapb::Peer { id: 100 * id + s, store_id: s, ..Default::default() });
        let region = |id, start: &[u8], end: &[u8]| pdpb::RegionRoute {
            region: Some(metapb::Region {
                id,
                start_key: start.to_vec(),
                end_key: end.to_vec(),
                peers: peers(id).collect(),
                ..Default::default()
            }),
            leader: None,
        };
        pdpb::RouteSnapshot {
            version,
            stores: vec![metapb::Store { id: 1, address: "a:1".into(), ..Default::default() }],
            regions: vec![region(2, b"", split), region(3, split, b"")],
        }
    }

    #[test]
    fn older_snapshots_are_ignored() {
        let t = RouteTable::default();
        assert!(t.apply_if_newer(snap(5, b"m")));
        assert!(!t.apply_if_newer(snap(4, b"x")));
        assert!(!t.apply_if_newer(snap(5, b"x")));
        assert_eq!(t.version(), 5);
        assert_eq!(t.region_by_key(b"n").unwrap().region.unwrap().id, 3);
        assert_eq!(t.region_by_key(b"").unwrap().region.unwrap().id, 2);
        assert!(t.apply_if_newer(snap(6, b"x")));
        assert_eq!(t.region_by_key(b"n").unwrap().region.unwrap().id, 2);
        assert_eq!(t.store(1).unwrap().address, "a:1");
    }

    fn led(mut s: pdpb::RouteSnapshot, region_id: u64, store_id: u64) -> pdpb::RouteSnapshot {
        for r in &mut s.regions {
            if r.region.as_ref().is_some_and(|r| r.id == region_id) {
                r.leader = Some(metapb::Peer { id: 100 + store_id, store_id, ..Default::default() });
            }
        }
        s
    }

    #[test]
    fn a_leader_hint_holds_until_pds_route_for_the_region_changes() {
        let t = RouteTable::default();
        assert!(t.apply_if_newer(led(led(snap(5, b"m"), 2, 1), 3, 1)));
        let route = |key: &[u8]| t.region_by_key(key).unwrap();
        assert_eq!(t.leader_store(&route(b"a")), Some(1), "PD's leader");
        t.set_leader_hint(2, 2);
        t.set_leader_hint(3, 3);
        assert_eq!(t.leader_store(&route(b"a")), Some(2), "a NotLeader answer's leader beats PD's");
        assert_eq!(t.leader_store(&route(b"n")), Some(3));

        // PD's next routes leave region 2 as it was: its hint stays. They
        // name a new leader of region 3: PD knows better now.
        assert!(t.apply_if_newer(led(led(snap(6, b"m"), 2, 1), 3, 2)));
        assert_eq!(t.leader_store(&route(b"a")), Some(2));
        assert_eq!(t.leader_store(&route(b"n")), Some(2), "PD's newer leader");
        t.set_leader_hint(3, 3);

        // An unreachable hinted store is forgotten; a hint naming another
        // store is not forgotten for it.
        t.forget_leader_hint(2, 3);
        assert_eq!(t.leader_store(&route(b"a")), Some(2));
        t.forget_leader_hint(2, 2);
        assert_eq!(t.leader_store(&route(b"a")), Some(1));

        // A delta that moves region 3 drops its hint too.
        let delta = pdpb::RouteDelta {
            from_version: 6,
            to_version: 7,
            upserted: led(snap(7, b"m"), 3, 1)
                .regions
                .into_iter()
                .filter(|r| r.region.as_ref().unwrap().id == 3)
                .collect(),
            ..Default::default()
        };
        t.apply_delta(&delta).unwrap();
        assert_eq!(t.leader_store(&route(b"n")), Some(1));
    }

    /// A `NotLeader` from a lagging follower can name a leader whose peer
    /// PD has already removed, and arrive after the routes that removed
    /// it: followed, that hint would send every request for the region to
    /// a store that answers `RegionNotFound`, until PD's route for the
    /// region changes again, which a stable region may never do.
    #[test]
    fn a_leader_hint_naming_a_store_without_a_peer_of_the_region_is_not_followed() {
        let t = RouteTable::default();
        assert!(t.apply_if_newer(led(snap(5, b"m"), 2, 1)));
        let route = |key: &[u8]| t.region_by_key(key).unwrap();
        t.set_leader_hint(2, 9);
        assert_eq!(t.leader_store(&route(b"a")), Some(1), "PD's leader, not a store outside the region");
        t.set_leader_hint(2, 3);
        assert_eq!(t.leader_store(&route(b"a")), Some(3));
    }

    #[test]
    fn a_delta_applies_only_on_its_from_version() {
        let t = RouteTable::default();
        assert!(t.apply_if_newer(snap(5, b"m")));
        let moved = snap(6, b"x").regions;
        let delta = |from, to| pdpb::RouteDelta {
            from_version: from,
            to_version: to,
            upserted: moved.clone(),
            ..Default::default()
        };
        assert_eq!(t.apply_delta(&delta(4, 6)), Err(DeltaRefusal::Gap { have: 5, from: 4 }));
        assert_eq!(t.apply_delta(&delta(3, 5)), Err(DeltaRefusal::Stale { have: 5, to: 5 }));
        assert_eq!(t.version(), 5);
        t.apply_delta(&delta(5, 6)).unwrap();
        assert_eq!(t.version(), 6);
        assert_eq!(t.region_by_key(b"n").unwrap().region.unwrap().id, 2);
        assert_eq!(*t.snapshot(), snap(6, b"x"));
    }
}
