//! What each region's leader last reported about its peers' health: the
//! peers its log is far ahead of (catching up, or waiting for a snapshot)
//! and the peers that have not answered it for a while.
//!
//! Membership operators read it to tell when a new learner has caught up,
//! and validation reads it to count healthy voters. Like region stats it
//! lives in the PD leader's memory only, and each entry keeps the epoch it
//! came with: a report of an older epoch than the catalog's record says
//! nothing about peers added since, so readers treat it as unknown.

use std::collections::HashMap;

use proto::metapb;

use crate::catalog::RouteCatalog;
use crate::catalog::region_report::epoch_is_stale;

/// One region's last peer report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerStatus {
    /// The region epoch the leader reported with.
    pub epoch: metapb::RegionEpoch,
    pub pending: Vec<metapb::Peer>,
    pub down: Vec<metapb::Peer>,
}

impl PeerStatus {
    pub fn is_pending(&self, peer_id: u64) -> bool {
        self.pending.iter().any(|p| p.id == peer_id)
    }

    pub fn is_down(&self, peer_id: u64) -> bool {
        self.down.iter().any(|p| p.id == peer_id)
    }
}

/// Region id -> the last peer report of its leader.
#[derive(Debug, Default, Clone)]
pub struct PeerReports {
    inner: HashMap<u64, PeerStatus>,
}

impl PeerReports {
    /// Records a report unless the entry holds one of a newer epoch (a
    /// deposed leader's late heartbeat never replaces its successor's).
    pub fn record(&mut self, region_id: u64, status: PeerStatus) {
        if self.inner.get(&region_id).is_some_and(|old| epoch_is_stale(&status.epoch, &old.epoch)) {
            return;
        }
        self.inner.insert(region_id, status);
    }

    /// The last report, whatever its epoch.
    pub fn get(&self, region_id: u64) -> Option<&PeerStatus> {
        self.inner.get(&region_id)
    }

    /// The last report, unless it is older than `current` (the catalog's
    /// epoch of the region): then it cannot speak for the peers the region
    /// has now.
    pub fn current(&self, region_id: u64, current: &metapb::RegionEpoch) -> Option<&PeerStatus> {
        self.get(region_id).filter(|s| !epoch_is_stale(&s.epoch, current))
    }

    /// Drops reports of regions the catalog no longer has and reports older
    /// than the catalog's epoch.
    pub fn prune(&mut self, catalog: &RouteCatalog) {
        self.inner.retain(|id, s| catalog.region(*id).is_some_and(|rec| !epoch_is_stale(&s.epoch, &rec.epoch())));
    }

    /// [`PeerReports::prune`] for just the regions in `ids`.
    pub fn prune_regions(&mut self, catalog: &RouteCatalog, ids: &std::collections::BTreeSet<u64>) {
        for id in ids {
            let stale = self
                .inner
                .get(id)
                .is_some_and(|s| catalog.region(*id).is_none_or(|rec| epoch_is_stale(&s.epoch, &rec.epoch())));
            if stale {
                self.inner.remove(id);
            }
        }
    }

    pub fn clear(&mut self) {
        self.inner.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(conf_ver: u64, pending: &[u64]) -> PeerStatus {
        PeerStatus {
            epoch: metapb::RegionEpoch { conf_ver, version: 1 },
            pending: pending.iter().map(|id| metapb::Peer { id: *id, store_id: *id, role: 1 }).collect(),
            down: Vec::new(),
        }
    }

    #[test]
    fn older_reports_never_replace_newer_ones_and_read_as_unknown() {
        let mut r = PeerReports::default();
        r.record(2, status(3, &[7]));
        r.record(2, status(2, &[]));
        assert!(r.get(2).unwrap().is_pending(7), "the older report was ignored");
        r.record(2, status(3, &[]));
        assert!(!r.get(2).unwrap().is_pending(7), "an equal epoch replaces");
        let newer = metapb::RegionEpoch { conf_ver: 4, version: 1 };
        assert_eq!(r.current(2, &newer), None, "a report older than the catalog says nothing");
        assert!(r.current(2, &metapb::RegionEpoch { conf_ver: 3, version: 1 }).is_some());
        r.clear();
        assert_eq!(r.get(2), None);
    }
}
