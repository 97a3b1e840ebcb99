//! `pdctl region list --top-write N | --top-read N`: the regions with the
//! most written or read bytes per second over their leaders' last report
//! interval, hottest first.

use proto::pdpb;
use serde_json::{Value, json};

use crate::{Failure, route_row, table};
use pd::view;

/// Which flow ranks the regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Write,
    Read,
}

/// The ranking the flags ask for; `None` for a plain list.
///
/// # Errors
///
/// `Usage` when both flags are given or N is 0.
pub fn ranking(top_write: Option<usize>, top_read: Option<usize>) -> Result<Option<(Flow, usize)>, Failure> {
    let chosen = match (top_write, top_read) {
        (Some(_), Some(_)) => return Err(Failure::Usage("give one of --top-write and --top-read, not both".into())),
        (Some(n), None) => (Flow::Write, n, "--top-write"),
        (None, Some(n)) => (Flow::Read, n, "--top-read"),
        (None, None) => return Ok(None),
    };
    if chosen.1 == 0 {
        return Err(Failure::Usage(format!("{} needs a number of regions of at least 1", chosen.2)));
    }
    Ok(Some((chosen.0, chosen.1)))
}

/// `count` per second over the report's interval; 0 when the report names
/// no interval (its leader's first, or a store that does not say).
pub fn per_second(count: u64, interval_ms: u64) -> u64 {
    if interval_ms == 0 {
        return 0;
    }
    u64::try_from(u128::from(count) * 1000 / u128::from(interval_ms)).unwrap_or(u64::MAX)
}

/// Bytes per second of `flow`.
fn rate(s: &pdpb::RegionStats, flow: Flow) -> u64 {
    match flow {
        Flow::Write => per_second(s.bytes_written, s.interval_ms),
        Flow::Read => per_second(s.bytes_read, s.interval_ms),
    }
}

/// The `n` regions with the highest rate of `flow`, hottest first (ties by
/// region id, so the order is stable).
pub fn top(
    mut regions: Vec<(pdpb::RegionRoute, pdpb::RegionStats)>,
    flow: Flow,
    n: usize,
) -> Vec<(pdpb::RegionRoute, pdpb::RegionStats)> {
    let id = |r: &pdpb::RegionRoute| r.region.as_ref().map_or(0, |r| r.id);
    regions.sort_by(|a, b| rate(&b.1, flow).cmp(&rate(&a.1, flow)).then(id(&a.0).cmp(&id(&b.0))));
    regions.truncate(n);
    regions
}

pub fn json(regions: &[(pdpb::RegionRoute, pdpb::RegionStats)]) -> Value {
    let list: Vec<Value> = regions
        .iter()
        .map(|(route, s)| {
            let mut v = view::region(route, Some(s));
            v["written_bytes_per_sec"] = json!(rate(s, Flow::Write));
            v["read_bytes_per_sec"] = json!(rate(s, Flow::Read));
            v["written_keys_per_sec"] = json!(per_second(s.keys_written, s.interval_ms));
            v["read_keys_per_sec"] = json!(per_second(s.keys_read, s.interval_ms));
            v
        })
        .collect();
    json!({"count": list.len(), "regions": list})
}

pub fn table_text(regions: &[(pdpb::RegionRoute, pdpb::RegionStats)]) -> String {
    let rows: Vec<Vec<String>> = regions
        .iter()
        .map(|(route, s)| {
            let mut row = route_row(route);
            row.push(format!("{}/s", view::human_size(rate(s, Flow::Write))));
            row.push(format!("{}/s", view::human_size(rate(s, Flow::Read))));
            row.push(per_second(s.keys_written, s.interval_ms).to_string());
            row.push(per_second(s.keys_read, s.interval_ms).to_string());
            row
        })
        .collect();
    table(
        &[
            "ID",
            "START",
            "END",
            "CONF_VER/VERSION",
            "PEERS(id@store)",
            "LEADER",
            "WRITE_BYTES",
            "READ_BYTES",
            "WRITE_KEYS/s",
            "READ_KEYS/s",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use proto::metapb;

    use super::*;

    fn region(id: u64, written: u64, read: u64, interval_ms: u64) -> (pdpb::RegionRoute, pdpb::RegionStats) {
        let route =
            pdpb::RegionRoute { region: Some(metapb::Region { id, ..Default::default() }), ..Default::default() };
        (route, pdpb::RegionStats { bytes_written: written, bytes_read: read, interval_ms, ..Default::default() })
    }

    fn ids(r: &[(pdpb::RegionRoute, pdpb::RegionStats)]) -> Vec<u64> {
        r.iter().map(|(route, _)| route.region.as_ref().unwrap().id).collect()
    }

    #[test]
    fn the_hottest_by_rate_come_first() {
        // Region 2 wrote less but over a shorter interval: the higher rate.
        let regions = vec![region(1, 10_000, 0, 10_000), region(2, 5_000, 50, 1_000), region(3, 0, 900, 1_000)];
        assert_eq!(ids(&top(regions.clone(), Flow::Write, 2)), [2, 1]);
        assert_eq!(ids(&top(regions.clone(), Flow::Read, 1)), [3]);
        assert_eq!(ids(&top(regions, Flow::Read, 10)), [3, 2, 1]);
    }

    #[test]
    fn a_report_without_an_interval_has_no_rate() {
        assert_eq!(per_second(5_000, 0), 0);
        assert_eq!(per_second(5_000, 2_000), 2_500);
        assert_eq!(per_second(u64::MAX, 1), u64::MAX);
    }

    #[test]
    fn both_flags_or_zero_are_usage_errors() {
        assert!(matches!(ranking(Some(1), Some(1)), Err(Failure::Usage(m)) if m.contains("not both")));
        assert!(matches!(ranking(Some(0), None), Err(Failure::Usage(m)) if m.contains("--top-write")));
        assert!(matches!(ranking(None, Some(0)), Err(Failure::Usage(m)) if m.contains("--top-read")));
        assert_eq!(ranking(None, Some(3)).unwrap(), Some((Flow::Read, 3)));
        assert_eq!(ranking(None, None).unwrap(), None);
    }
}
