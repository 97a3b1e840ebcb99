//! The split checker: which regions to split now, from their reported sizes.
//!
//! A region is **due** when its approximate size reaches
//! `region-split-size` or its approximate key count `region-split-keys`,
//! and **overdue** past `region-max-size` / `region-max-keys`. Each due
//! region gets a split with an empty key: its leader splits it at the
//! middle by size. Overdue regions go first, then the fullest (the larger of
//! size / split-size and keys / split-keys), then lower ids; at most
//! `max-splits-per-check` per check, so a burst of big regions is split
//! over several checks instead of all at once.
//!
//! Skipped: regions under a running operator (one per region), regions with
//! no stats or stats older than their current epoch (a split shrank them and
//! the new size is not known yet, so the old one would split them again),
//! regions with no leader (no one could carry the split out), and regions
//! where a split the checker started at the same epoch failed or timed out
//! (it would fail again the same way; a new epoch, or PD forgetting the
//! failed operator after ten minutes, lets the checker try again).

use proto::{metapb, pdpb};

use crate::catalog::region_report::epoch_is_stale;
use crate::config::ScheduleConfig;
use crate::view::human_size;

/// One region as the checker sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RegionView {
    pub id: u64,
    pub epoch: metapb::RegionEpoch,
    pub has_leader: bool,
    /// The last reported stats and the epoch of the range they measured.
    pub stats: Option<(pdpb::RegionStats, metapb::RegionEpoch)>,
    /// A running operator holds the region.
    pub busy: bool,
    /// A split the checker started at this epoch failed or timed out.
    pub failed_at_epoch: bool,
}

/// A split to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitDecision {
    pub region_id: u64,
    /// The epoch the decision saw; the operator is refused if it moved.
    pub epoch: metapb::RegionEpoch,
    pub overdue: bool,
    /// Which threshold it passed, for logs and people.
    pub reason: String,
}

/// The splits to start now, in order.
pub fn check(regions: &[RegionView], cfg: &ScheduleConfig) -> Vec<SplitDecision> {
    let mut candidates: Vec<(bool, f64, SplitDecision)> = regions.iter().filter_map(|r| consider(r, cfg)).collect();
    candidates.sort_by(|a, b| {
        b.0.cmp(&a.0).then_with(|| b.1.total_cmp(&a.1)).then_with(|| a.2.region_id.cmp(&b.2.region_id))
    });
    candidates.into_iter().take(cfg.max_splits_per_check as usize).map(|(_, _, d)| d).collect()
}

/// (overdue, fullness, decision) for a region that should split now.
fn consider(r: &RegionView, cfg: &ScheduleConfig) -> Option<(bool, f64, SplitDecision)> {
    if r.busy || !r.has_leader || r.failed_at_epoch {
        return None;
    }
    let (stats, measured_at) = r.stats.as_ref()?;
    if epoch_is_stale(measured_at, &r.epoch) {
        return None;
    }
    let (size, keys) = (stats.approximate_size, stats.approximate_keys);
    let (split_size, max_size) = (cfg.region_split_size.bytes(), cfg.region_max_size.bytes());
    let overdue = size >= max_size || keys >= cfg.region_max_keys;
    let due = size >= split_size || keys >= cfg.region_split_keys;
    if !due {
        return None;
    }
    let fullness = (size as f64 / split_size as f64).max(keys as f64 / cfg.region_split_keys as f64);
    let reason = if overdue {
        passed(size, keys, max_size, cfg.region_max_keys, "max")
    } else {
        passed(size, keys, split_size, cfg.region_split_keys, "split")
    };
    Some((overdue, fullness, SplitDecision { region_id: r.id, epoch: r.epoch, overdue, reason }))
}

/// "size 200.0MiB >= max 144.0MiB", "keys 10 >= split 5", or both.
fn passed(size: u64, keys: u64, size_limit: u64, keys_limit: u64, which: &str) -> String {
    let mut parts = Vec::new();
    if size >= size_limit {
        parts.push(format!("size {} >= {which} {}", human_size(size), human_size(size_limit)));
    }
    if keys >= keys_limit {
        parts.push(format!("keys {keys} >= {which} {keys_limit}"));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::byte_size::ByteSize;

    fn epoch(version: u64) -> metapb::RegionEpoch {
        metapb::RegionEpoch { conf_ver: 1, version }
    }

    fn region(id: u64, size: u64, keys: u64) -> RegionView {
        RegionView {
            id,
            epoch: epoch(1),
            has_leader: true,
            stats: Some((
                pdpb::RegionStats { approximate_size: size, approximate_keys: keys, ..Default::default() },
                epoch(1),
            )),
            ..Default::default()
        }
    }

    fn small() -> ScheduleConfig {
        ScheduleConfig {
            region_split_size: ByteSize(100),
            region_split_keys: 10,
            region_max_size: ByteSize(150),
            region_max_keys: 15,
            max_splits_per_check: 2,
            ..ScheduleConfig::default()
        }
    }

    fn ids(d: &[SplitDecision]) -> Vec<u64> {
        d.iter().map(|d| d.region_id).collect()
    }

    #[test]
    fn either_threshold_makes_a_region_due() {
        let cfg = small();
        assert_eq!(ids(&check(&[region(1, 99, 9)], &cfg)), Vec::<u64>::new());
        assert_eq!(ids(&check(&[region(1, 100, 0)], &cfg)), vec![1]);
        assert_eq!(ids(&check(&[region(1, 0, 10)], &cfg)), vec![1]);
        let d = &check(&[region(1, 100, 12)], &cfg)[0];
        assert!(!d.overdue);
        assert_eq!(d.reason, "size 100B >= split 100B, keys 12 >= split 10");
        assert_eq!(d.epoch, epoch(1));
    }

    #[test]
    fn overdue_regions_go_first_and_the_count_is_capped() {
        let cfg = small();
        let regions = [region(1, 140, 0), region(2, 120, 0), region(3, 0, 15), region(4, 150, 0)];
        let d = check(&regions, &cfg);
        assert_eq!(ids(&d), vec![3, 4], "overdue first (a tie goes to the lower id), at most two");
        assert!(d[0].overdue && d[1].overdue);
        assert_eq!(d[0].reason, "keys 15 >= max 15");
    }

    #[test]
    fn regions_that_cannot_or_should_not_split_now_are_skipped() {
        let cfg = small();
        let mut busy = region(1, 500, 0);
        busy.busy = true;
        let mut leaderless = region(2, 500, 0);
        leaderless.has_leader = false;
        let mut split_since = region(3, 500, 0);
        split_since.epoch = epoch(2);
        let mut no_stats = region(4, 500, 0);
        no_stats.stats = None;
        let mut failed = region(5, 500, 0);
        failed.failed_at_epoch = true;
        let mut measured_ahead = region(6, 120, 0);
        measured_ahead.stats.as_mut().unwrap().1 = epoch(2);
        let d = check(&[busy, leaderless, split_since, no_stats, failed, measured_ahead], &cfg);
        assert_eq!(ids(&d), vec![6], "stats of a newer epoch than the catalog's are current enough");
    }
}
