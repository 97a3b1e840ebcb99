//! The split checker: a pure function of the cluster view that says which
//! regions to split. A region whose approximate size or key count (as its
//! leader last reported) reaches the split threshold is split at its middle
//! by size; regions past the max thresholds are overdue and go first, then
//! the largest. Regions under an operator, and regions no leader has
//! reported sizes for, are left alone. At most `max_splits_per_check` per
//! call.

use proto::pdpb;

use crate::config::ScheduleConfig;

/// One region as the checker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionView {
    pub region_id: u64,
    pub stats: Option<pdpb::RegionStats>,
    /// Under a running operator.
    pub busy: bool,
}

/// The regions to split now, most urgent first.
pub fn check(regions: &[RegionView], cfg: &ScheduleConfig) -> Vec<u64> {
    let mut due: Vec<(bool, u64, u64)> = regions
        .iter()
        .filter(|r| !r.busy)
        .filter_map(|r| {
            let s = r.stats?;
            let (size, keys) = (s.approximate_size, s.approximate_keys);
            let split = size >= cfg.region_split_size.bytes() || keys >= cfg.region_split_keys;
            let overdue = size >= cfg.region_max_size.bytes() || keys >= cfg.region_max_keys;
            split.then_some((overdue, size, r.region_id))
        })
        .collect();
    // Overdue first, then by size, largest first; ids break ties.
    due.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    due.into_iter().take(cfg.max_splits_per_check as usize).map(|(_, _, id)| id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::byte_size::ByteSize;

    fn cfg() -> ScheduleConfig {
        ScheduleConfig {
            region_split_size: ByteSize::kib(96),
            region_split_keys: 960,
            region_max_size: ByteSize::kib(144),
            region_max_keys: 1440,
            max_splits_per_check: 3,
            ..ScheduleConfig::default()
        }
    }

    fn view(id: u64, kib: u64, keys: u64) -> RegionView {
        let stats = pdpb::RegionStats { approximate_size: kib * 1024, approximate_keys: keys, ..Default::default() };
        RegionView { region_id: id, stats: Some(stats), busy: false }
    }

    /// Golden cases: a view, written as `id:KiB/keys` (`*` busy, `?` no
    /// stats), and the decision.
    const GOLDEN: &[(&str, &[u64])] = &[
        ("", &[]),
        ("1:95/959", &[]),
        ("1:96/0", &[1]),
        ("1:1/960", &[1]),
        ("1:200/10 2:100/10", &[1, 2]),
        ("1:100/10 2:150/10", &[2, 1]),
        // Overdue by keys beats a larger region that is only due.
        ("1:140/10 2:1/1500", &[2, 1]),
        ("1:200/10* 2:100/10", &[2]),
        ("1:? 2:100/10", &[2]),
        // At most three per check, the largest first.
        ("1:100/1 2:101/1 3:102/1 4:103/1", &[4, 3, 2]),
        ("5:100/1 4:100/1", &[4, 5]),
    ];

    fn parse(view_text: &str) -> Vec<RegionView> {
        view_text
            .split_whitespace()
            .map(|r| {
                let (id, rest) = r.split_once(':').unwrap();
                let id = id.parse().unwrap();
                if rest == "?" {
                    return RegionView { region_id: id, stats: None, busy: false };
                }
                let busy = rest.ends_with('*');
                let (kib, keys) = rest.trim_end_matches('*').split_once('/').unwrap();
                RegionView { busy, ..view(id, kib.parse().unwrap(), keys.parse().unwrap()) }
            })
            .collect()
    }

    #[test]
    fn golden_decisions() {
        for (view_text, want) in GOLDEN {
            assert_eq!(check(&parse(view_text), &cfg()), want.to_vec(), "view {view_text:?}");
        }
    }

    #[test]
    fn defaults_are_tikvs() {
        let d = ScheduleConfig::default();
        assert!(check(&[view(1, 95 * 1024, 100)], &d).is_empty());
        assert_eq!(check(&[view(1, 96 * 1024, 100)], &d), vec![1]);
        assert_eq!(check(&[view(1, 1, 960_000)], &d), vec![1]);
    }
}
