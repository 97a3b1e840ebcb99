//! The cluster as the replica checkers see it: stores with their state and
//! liveness, regions with their peers' stores and roles, which regions are
//! under an operator, and the replica count wanted. Built by the server
//! from the catalog and the leader's heartbeat bookkeeping; written by hand
//! in tests.

use std::collections::{BTreeMap, BTreeSet};

use proto::metapb::{PeerRole, StoreState};

/// One store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreView {
    pub id: u64,
    pub state: StoreState,
    /// Silent for longer than max-store-down-time.
    pub down: bool,
}

impl StoreView {
    /// Up and not Down: may receive replicas.
    pub fn is_healthy(&self) -> bool {
        self.state == StoreState::Up && !self.down
    }
}

/// One peer: where it is and what it votes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerView {
    pub store_id: u64,
    pub role: PeerRole,
}

/// One region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionView {
    pub id: u64,
    pub peers: Vec<PeerView>,
}

impl RegionView {
    pub fn voters(&self) -> usize {
        self.peers.iter().filter(|p| p.role == PeerRole::Voter).count()
    }

    /// Whether a configuration change is half done.
    pub fn in_joint_state(&self) -> bool {
        self.peers.iter().any(|p| matches!(p.role, PeerRole::IncomingVoter | PeerRole::DemotingVoter))
    }

    pub fn has_peer_on(&self, store_id: u64) -> bool {
        self.peers.iter().any(|p| p.store_id == store_id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterView {
    /// By id.
    pub stores: BTreeMap<u64, StoreView>,
    /// By id.
    pub regions: BTreeMap<u64, RegionView>,
    /// Regions under a running operator: no checker plans for them.
    pub busy: BTreeSet<u64>,
    /// Voters each region should have.
    pub max_replicas: usize,
}

impl ClusterView {
    fn store_is(&self, store_id: u64, f: impl Fn(&StoreView) -> bool) -> bool {
        self.stores.get(&store_id).is_some_and(f)
    }

    /// Whether the store is Down. A store the view does not know counts as
    /// Down: nothing can be asked of it.
    pub fn is_down(&self, store_id: u64) -> bool {
        !self.stores.contains_key(&store_id) || self.store_is(store_id, |s| s.down)
    }

    /// Whether a majority of the region's voters are on stores that are not
    /// Down, so a membership change can commit.
    pub fn has_quorum(&self, r: &RegionView) -> bool {
        let voters: Vec<&PeerView> = r.peers.iter().filter(|p| p.role == PeerRole::Voter).collect();
        let alive = voters.iter().filter(|p| !self.is_down(p.store_id)).count();
        alive > voters.len() / 2
    }

    /// Regions with a peer on each store.
    pub fn region_counts(&self) -> BTreeMap<u64, usize> {
        let mut counts: BTreeMap<u64, usize> = self.stores.keys().map(|id| (*id, 0)).collect();
        for r in self.regions.values() {
            for p in &r.peers {
                *counts.entry(p.store_id).or_default() += 1;
            }
        }
        counts
    }

    /// The healthy Up store with no peer of `r` that holds the fewest
    /// regions (`load`, which the caller raises as it plans), lowest id on
    /// a tie.
    pub fn pick_target(&self, r: &RegionView, load: &BTreeMap<u64, usize>) -> Option<u64> {
        self.stores
            .values()
            .filter(|s| s.is_healthy() && !r.has_peer_on(s.id))
            .min_by_key(|s| (load.get(&s.id).copied().unwrap_or(0), s.id))
            .map(|s| s.id)
    }

    /// Whether a checker may plan for the region: no operator holds it and
    /// no configuration change is half done (the joint checker's job).
    pub fn is_free(&self, r: &RegionView) -> bool {
        !self.busy.contains(&r.id) && !r.in_joint_state()
    }
}
