//! Building a route delta from the catalog (PD) and applying one to the
//! routes a receiver holds (stores, clients).

use std::collections::{BTreeMap, HashSet};

use proto::pdpb;

use super::Changes;
use crate::catalog::{RegionRecord, RouteCatalog, keys};

/// Why a receiver did not apply a delta.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaRefusal {
    /// It holds `to_version` or newer already: nothing to do.
    #[error("delta to version {to} is not newer than the held version {have}")]
    Stale { have: u64, to: u64 },
    /// It holds another version than the delta starts from: it needs a full
    /// snapshot.
    #[error("delta starts at version {from}, but version {have} is held")]
    Gap { have: u64, from: u64 },
    /// The delta contradicts itself or its result does not tile the key
    /// space: it needs a full snapshot.
    #[error("malformed route delta: {0}")]
    Malformed(String),
}

/// The delta from version `from` to the catalog's current version, given
/// everything that changed in between.
pub fn build_delta(catalog: &RouteCatalog, from: u64, changes: &Changes) -> pdpb::RouteDelta {
    let mut upserted: Vec<&RegionRecord> = Vec::new();
    let mut removed = Vec::new();
    for id in &changes.regions {
        match catalog.region(*id) {
            Some(rec) => upserted.push(rec),
            None => removed.push(*id),
        }
    }
    upserted.sort_by(|a, b| a.region.start_key.cmp(&b.region.start_key));
    pdpb::RouteDelta {
        from_version: from,
        to_version: catalog.version(),
        upserted: upserted.into_iter().map(RegionRecord::route).collect(),
        removed,
        stores: changes.stores.iter().filter_map(|id| catalog.store(*id).cloned()).collect(),
    }
}

fn start_key(route: &pdpb::RegionRoute) -> &[u8] {
    route.region.as_ref().map_or(&[][..], |r| r.start_key.as_slice())
}

/// `base` with `delta` applied: PD's routes at `delta.to_version`, in the
/// order of a full snapshot.
///
/// # Errors
///
/// `Stale` when `base` is at `to_version` or past it; `Gap` when it is not
/// at `from_version`; `Malformed` when the delta contradicts itself or its
/// result leaves a gap or an overlap.
pub fn apply_delta(base: &pdpb::RouteSnapshot, delta: &pdpb::RouteDelta) -> Result<pdpb::RouteSnapshot, DeltaRefusal> {
    let malformed = |m: String| Err(DeltaRefusal::Malformed(m));
    if delta.to_version <= delta.from_version {
        return malformed(format!("to version {} is not above from version {}", delta.to_version, delta.from_version));
    }
    if base.version >= delta.to_version {
        return Err(DeltaRefusal::Stale { have: base.version, to: delta.to_version });
    }
    if base.version != delta.from_version {
        return Err(DeltaRefusal::Gap { have: base.version, from: delta.from_version });
    }
    let mut dropped: HashSet<u64> = delta.removed.iter().copied().collect();
    for route in &delta.upserted {
        let Some(r) = &route.region else {
            return malformed("an upserted route has no region".into());
        };
        if delta.removed.contains(&r.id) {
            return malformed(format!("region {} is both upserted and removed", r.id));
        }
        if !dropped.insert(r.id) {
            return malformed(format!("region {} is upserted twice", r.id));
        }
    }
    let mut upserted: Vec<&pdpb::RegionRoute> = delta.upserted.iter().collect();
    upserted.sort_by(|a, b| start_key(a).cmp(start_key(b)));
    // Both lists are in start-key order: merge them.
    let kept = base.regions.iter().filter(|r| r.region.as_ref().is_none_or(|r| !dropped.contains(&r.id)));
    let mut regions = Vec::with_capacity(base.regions.len() + delta.upserted.len());
    let mut new = upserted.into_iter().peekable();
    for old in kept {
        while let Some(n) = new.next_if(|n| start_key(n) < start_key(old)) {
            regions.push(n.clone());
        }
        regions.push(old.clone());
    }
    regions.extend(new.cloned());
    check_tiling(&regions).map_err(DeltaRefusal::Malformed)?;

    let mut stores: BTreeMap<u64, proto::metapb::Store> = base.stores.iter().map(|s| (s.id, s.clone())).collect();
    for s in &delta.stores {
        stores.insert(s.id, s.clone());
    }
    Ok(pdpb::RouteSnapshot { version: delta.to_version, stores: stores.into_values().collect(), regions })
}

/// Regions in start-key order must cover the key space without a gap or an
/// overlap (or be none: routes before bootstrap).
fn check_tiling(regions: &[pdpb::RegionRoute]) -> Result<(), String> {
    let mut expected: &[u8] = b"";
    for (i, route) in regions.iter().enumerate() {
        let r = route.region.as_ref().ok_or("a route has no region")?;
        if i > 0 && expected.is_empty() {
            return Err(format!("region {} starts after the region that ends the key space", r.id));
        }
        if r.start_key != expected {
            return Err(format!(
                "region {} starts at {:?} where {:?} was expected (gap or overlap)",
                r.id,
                keys::display(&r.start_key),
                keys::display(expected)
            ));
        }
        expected = &r.end_key;
    }
    if !regions.is_empty() && !expected.is_empty() {
        return Err(format!("the key space ends at {:?}, not +inf", keys::display(expected)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proto::metapb;

    use super::*;

    fn route(id: u64, start: &str, end: &str, version: u64) -> pdpb::RegionRoute {
        pdpb::RegionRoute {
            region: Some(metapb::Region {
                id,
                start_key: start.into(),
                end_key: end.into(),
                region_epoch: Some(metapb::RegionEpoch { conf_ver: 1, version }),
                peers: vec![metapb::Peer { id: id * 10, store_id: 1, role: 0 }],
            }),
            leader: None,
        }
    }

    fn store(id: u64, address: &str) -> metapb::Store {
        metapb::Store { id, address: address.into(), ..Default::default() }
    }

    fn base() -> pdpb::RouteSnapshot {
        pdpb::RouteSnapshot {
            version: 7,
            stores: vec![store(1, "a:1")],
            regions: vec![route(2, "", "m", 1), route(3, "m", "", 1)],
        }
    }

    fn delta(from: u64, to: u64, upserted: Vec<pdpb::RegionRoute>, removed: Vec<u64>) -> pdpb::RouteDelta {
        pdpb::RouteDelta { from_version: from, to_version: to, upserted, removed, stores: Vec::new() }
    }

    #[test]
    fn a_split_delta_gives_the_routes_of_the_newer_version_in_snapshot_order() {
        // Region 3 [m, +inf) split at t: 4 takes [m, t), 3 keeps [t, +inf).
        let mut d = delta(7, 8, vec![route(4, "m", "t", 2), route(3, "t", "", 2)], vec![]);
        d.stores = vec![store(5, "b:1"), store(1, "a:2")];
        let got = apply_delta(&base(), &d).unwrap();
        let want = pdpb::RouteSnapshot {
            version: 8,
            stores: vec![store(1, "a:2"), store(5, "b:1")],
            regions: vec![route(2, "", "m", 1), route(4, "m", "t", 2), route(3, "t", "", 2)],
        };
        assert_eq!(got, want);
    }

    #[test]
    fn removed_regions_leave_and_their_range_goes_to_the_upserted_ones() {
        // Regions 2 and 3 replaced by 9 over the whole key space.
        let got = apply_delta(&base(), &delta(7, 9, vec![route(9, "", "", 2)], vec![2, 3])).unwrap();
        assert_eq!(got.regions, vec![route(9, "", "", 2)]);
        assert_eq!(got.version, 9);
    }

    #[test]
    fn a_delta_applies_only_at_its_from_version() {
        let d = delta(6, 8, vec![route(2, "", "m", 2)], vec![]);
        assert_eq!(apply_delta(&base(), &d), Err(DeltaRefusal::Gap { have: 7, from: 6 }));
        let d = delta(5, 7, vec![route(2, "", "m", 2)], vec![]);
        assert_eq!(apply_delta(&base(), &d), Err(DeltaRefusal::Stale { have: 7, to: 7 }));
        let empty = pdpb::RouteSnapshot::default();
        assert_eq!(apply_delta(&empty, &delta(7, 8, vec![], vec![])), Err(DeltaRefusal::Gap { have: 0, from: 7 }));
    }

    #[test]
    fn malformed_deltas_and_holes_are_refused() {
        let cases = [
            delta(7, 7, vec![], vec![]),
            delta(7, 8, vec![pdpb::RegionRoute::default()], vec![]),
            delta(7, 8, vec![route(2, "", "m", 2)], vec![2]),
            delta(7, 8, vec![route(2, "", "g", 2), route(2, "g", "m", 2)], vec![]),
            // Region 2 shrinks to [, g) and nothing covers [g, m).
            delta(7, 8, vec![route(2, "", "g", 2)], vec![]),
            // Region 3 removed and nothing covers [m, +inf).
            delta(7, 8, vec![], vec![3]),
            // A new region over region 3's range, which stays.
            delta(7, 8, vec![route(4, "m", "", 2)], vec![]),
        ];
        for d in cases {
            assert!(matches!(apply_delta(&base(), &d), Err(DeltaRefusal::Malformed(_))), "{d:?}");
        }
    }
}
