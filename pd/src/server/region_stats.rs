//! The leader's memory of what each region's leader last reported about its
//! size: approximate bytes and keys, and the bytes and keys written and
//! read since its previous report with the interval they cover (which
//! `pdctl region list --top-write | --top-read` turns into rates).
//!
//! Stats are only meaningful for the range they were measured over, so each
//! entry keeps the region epoch it came with. A newer report replaces an
//! entry; an older one (a deposed leader's late heartbeat) never does. When
//! the catalog's epoch for a region moves past the entry's (a split shrank
//! it and nobody reported its new size), the entry is stale: readers treat
//! it as absent and [`RegionStatsMap::prune`] drops it. That keeps the split
//! checker from splitting a region again on its pre-split size.
//!
//! Like store stats, these live only in the leader's memory; a new leader
//! learns them from the next heartbeats.

use std::collections::HashMap;
use std::sync::Mutex;

use proto::{metapb, pdpb};

use crate::catalog::RouteCatalog;
use crate::catalog::region_report::epoch_is_stale;

/// Stats as reported, with the epoch of the range they describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportedStats {
    pub stats: pdpb::RegionStats,
    pub epoch: metapb::RegionEpoch,
}

#[derive(Debug, Default)]
pub struct RegionStatsMap {
    inner: Mutex<HashMap<u64, ReportedStats>>,
}

impl RegionStatsMap {
    /// Records a report unless the entry holds stats of a newer epoch.
    pub fn record(&self, region_id: u64, epoch: metapb::RegionEpoch, stats: pdpb::RegionStats) {
        let mut map = self.inner.lock().unwrap();
        if map.get(&region_id).is_some_and(|old| epoch_is_stale(&epoch, &old.epoch)) {
            return;
        }
        map.insert(region_id, ReportedStats { stats, epoch });
    }

    /// The stats of a region whose catalog epoch is `current`, unless they
    /// describe an older epoch.
    pub fn get(&self, region_id: u64, current: &metapb::RegionEpoch) -> Option<pdpb::RegionStats> {
        self.reported(region_id).filter(|r| !epoch_is_stale(&r.epoch, current)).map(|r| r.stats)
    }

    /// The entry as recorded, whatever its epoch.
    pub fn reported(&self, region_id: u64) -> Option<ReportedStats> {
        self.inner.lock().unwrap().get(&region_id).copied()
    }

    /// Every entry as recorded.
    pub fn all(&self) -> HashMap<u64, ReportedStats> {
        self.inner.lock().unwrap().clone()
    }

    /// Drops entries of regions the catalog no longer has and entries older
    /// than the catalog's epoch.
    pub fn prune(&self, catalog: &RouteCatalog) {
        self.inner
            .lock()
            .unwrap()
            .retain(|id, r| catalog.region(*id).is_some_and(|rec| !epoch_is_stale(&r.epoch, &rec.epoch())));
    }

    /// [`RegionStatsMap::prune`] for just the regions in `ids`.
    pub fn prune_regions(&self, catalog: &RouteCatalog, ids: &std::collections::BTreeSet<u64>) {
        let mut map = self.inner.lock().unwrap();
        for id in ids {
            let stale = map
                .get(id)
                .is_some_and(|r| catalog.region(*id).is_none_or(|rec| epoch_is_stale(&r.epoch, &rec.epoch())));
            if stale {
                map.remove(id);
            }
        }
    }

    pub fn clear(&self) {
        self.inner.lock().unwrap().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(conf_ver: u64, version: u64) -> metapb::RegionEpoch {
        metapb::RegionEpoch { conf_ver, version }
    }

    fn size(n: u64) -> pdpb::RegionStats {
        pdpb::RegionStats { approximate_size: n, approximate_keys: n / 10, ..Default::default() }
    }

    #[test]
    fn older_reports_never_replace_newer_ones() {
        let m = RegionStatsMap::default();
        m.record(2, epoch(1, 2), size(100));
        m.record(2, epoch(1, 1), size(900));
        assert_eq!(m.get(2, &epoch(1, 2)), Some(size(100)));
        m.record(2, epoch(1, 2), size(120));
        assert_eq!(m.get(2, &epoch(1, 2)), Some(size(120)));
    }

    #[test]
    fn stats_of_an_older_epoch_read_as_absent() {
        let m = RegionStatsMap::default();
        m.record(2, epoch(1, 1), size(100));
        assert_eq!(m.get(2, &epoch(1, 2)), None, "the region split since");
        assert_eq!(m.get(2, &epoch(1, 1)), Some(size(100)));
        // Reported ahead of the catalog (the report is still being applied).
        m.record(3, epoch(1, 5), size(7));
        assert_eq!(m.get(3, &epoch(1, 4)), Some(size(7)));
        assert_eq!(m.get(4, &epoch(1, 1)), None);
    }
}
