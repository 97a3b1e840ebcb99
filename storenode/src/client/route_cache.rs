//! The client's copy of the routes: PD's latest route snapshot plus leader
//! hints learned from `NotLeader` answers, which are fresher than PD's.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use pd::catalog::keys;
use proto::{metapb, pdpb};

#[derive(Default)]
pub struct RouteCache {
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
        true
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

    pub fn set_leader(&mut self, region_id: u64, store_id: u64) {
        self.leader_hints.insert(region_id, store_id);
    }

    pub fn forget_leader(&mut self, region_id: u64) {
        self.leader_hints.remove(&region_id);
    }
}
