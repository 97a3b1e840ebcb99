//! Regions whose peer on this store stopped on a fatal error (a storage
//! error, a panic in its raft core) while still registered here: it can
//! neither lead nor answer, yet the store does.
//!
//! Hibernated followers on other stores probe their leader's store, not
//! each region ([`super::hibernation_loop`]), so a store that answers
//! keeps every follower sleeping under it asleep. The answer therefore
//! names these regions, and the followers of those wake and campaign.
//! The set changes only when a peer fails or starts, so an answer costs
//! as much for ten thousand healthy regions as for none.

use std::collections::BTreeSet;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct FailedPeers {
    regions: Mutex<BTreeSet<u64>>,
}

impl FailedPeers {
    /// The peer of `region_id` here stopped for good.
    pub fn failed(&self, region_id: u64) {
        self.regions.lock().unwrap().insert(region_id);
    }

    /// A peer of `region_id` started here again.
    pub fn started(&self, region_id: u64) {
        self.regions.lock().unwrap().remove(&region_id);
    }

    pub fn regions(&self) -> Vec<u64> {
        self.regions.lock().unwrap().iter().copied().collect()
    }
}
