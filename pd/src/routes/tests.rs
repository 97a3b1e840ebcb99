//! Deltas built from a real catalog's recorded changes: applied to the
//! routes of an older version, they give exactly the current routes.

use proto::{metapb, pdpb};

use super::*;
use crate::catalog::{CatalogCommand, RouteCatalog};

fn store(id: u64) -> metapb::Store {
    metapb::Store { id, address: format!("127.0.0.1:{}", 20160 + id), ..Default::default() }
}

/// A catalog bootstrapped over stores 1..=3 at `split_keys`, and the
/// history that followed it from the start.
fn bootstrapped(split_keys: &[&str], capacity: usize) -> (RouteCatalog, RouteHistory) {
    let mut c = RouteCatalog::new();
    let mut h = RouteHistory::new(capacity, 0);
    c.apply(&CatalogCommand::AllocIds { count: 3 }).unwrap();
    for id in 1..=3 {
        c.apply(&CatalogCommand::PutStore { store: store(id) }).unwrap();
    }
    let split_keys = split_keys.iter().map(|k| k.as_bytes().to_vec()).collect();
    c.apply(&CatalogCommand::Bootstrap { store_ids: vec![1, 2, 3], split_keys }).unwrap();
    record(&mut c, &mut h);
    (c, h)
}

fn record(c: &mut RouteCatalog, h: &mut RouteHistory) {
    for change in c.take_route_changes() {
        h.record(change);
    }
}

fn region_at(c: &RouteCatalog, key: &str) -> metapb::Region {
    c.region_by_key(key.as_bytes()).unwrap().region.clone()
}

fn leader_on(r: &metapb::Region, store_id: u64) -> metapb::Peer {
    *r.peers.iter().find(|p| p.store_id == store_id).unwrap()
}

/// Reports `r` led from `store_id` at `term`.
fn lead(c: &mut RouteCatalog, r: &metapb::Region, store_id: u64, term: u64) {
    let leader = Some(leader_on(r, store_id));
    c.apply(&CatalogCommand::ReportRegions { regions: vec![r.clone()], leader, term, leaderships: Vec::new() })
        .unwrap();
}

/// Splits the region holding `key` there, the new region taking the left
/// part; returns (left, right).
fn split(c: &mut RouteCatalog, key: &str) -> (metapb::Region, metapb::Region) {
    let old = region_at(c, key);
    let first = match c.apply(&CatalogCommand::AllocIds { count: 4 }).unwrap() {
        crate::catalog::CommandOutcome::Ids { first, .. } => first,
        other => panic!("{other:?}"),
    };
    let mut right = old.clone();
    right.start_key = key.as_bytes().to_vec();
    right.region_epoch.as_mut().unwrap().version += 1;
    let mut left = right.clone();
    left.id = first;
    left.start_key = old.start_key.clone();
    left.end_key = key.as_bytes().to_vec();
    for (i, p) in left.peers.iter_mut().enumerate() {
        p.id = first + 1 + i as u64;
    }
    let leader = Some(leader_on(&right, 1));
    c.apply(&CatalogCommand::ReportRegions {
        regions: vec![left.clone(), right.clone()],
        leader,
        term: 1,
        leaderships: Vec::new(),
    })
    .unwrap();
    (left, right)
}

fn ids(routes: &[pdpb::RegionRoute]) -> Vec<u64> {
    routes.iter().map(|r| r.region.as_ref().unwrap().id).collect()
}

fn delta_since(c: &RouteCatalog, h: &RouteHistory, from: u64) -> pdpb::RouteDelta {
    build_delta(c, from, &h.changes_between(from, c.version()).expect("history covers it"))
}

#[test]
fn a_delta_holds_exactly_the_regions_changed_and_brings_old_routes_to_the_new_version() {
    let (mut c, mut h) = bootstrapped(&["g", "p"], 64);
    let old = c.route_snapshot();
    let b = region_at(&c, "h");
    // Region [g, p) gets a leader, then splits at k; [p, +inf) is untouched.
    lead(&mut c, &b, 2, 1);
    let (left, right) = split(&mut c, "k");
    record(&mut c, &mut h);
    assert_eq!(c.version(), old.version + 2);

    let d = delta_since(&c, &h, old.version);
    assert_eq!((d.from_version, d.to_version), (old.version, c.version()));
    // Region b changed twice and is there once, with the new region, in
    // start-key order; nothing else is.
    assert_eq!(ids(&d.upserted), vec![left.id, right.id]);
    assert_eq!(right.id, b.id);
    assert!(d.removed.is_empty());
    assert!(d.stores.is_empty());
    assert_eq!(d.upserted[1].region.as_ref().unwrap().start_key, b"k");
    assert_eq!(apply_delta(&old, &d).unwrap(), c.route_snapshot());

    // From the version in between: the split only.
    let mid = delta_since(&c, &h, old.version + 1);
    assert_eq!(ids(&mid.upserted), vec![left.id, right.id]);
}

#[test]
fn a_region_replaced_by_others_is_named_removed() {
    let (mut c, mut h) = bootstrapped(&[], 64);
    let old = c.route_snapshot();
    let whole = region_at(&c, "a");
    // A report of two newer regions over the whole key space, neither of
    // them the old one: it is replaced.
    let first = match c.apply(&CatalogCommand::AllocIds { count: 8 }).unwrap() {
        crate::catalog::CommandOutcome::Ids { first, .. } => first,
        other => panic!("{other:?}"),
    };
    let mut a = whole.clone();
    a.id = first;
    a.end_key = b"m".to_vec();
    a.region_epoch.as_mut().unwrap().version = 3;
    for (i, p) in a.peers.iter_mut().enumerate() {
        p.id = first + 1 + i as u64;
    }
    let mut z = a.clone();
    z.id = first + 4;
    z.start_key = b"m".to_vec();
    z.end_key = Vec::new();
    for (i, p) in z.peers.iter_mut().enumerate() {
        p.id = first + 5 + i as u64;
    }
    let leader = Some(leader_on(&a, 1));
    c.apply(&CatalogCommand::ReportRegions {
        regions: vec![a.clone(), z.clone()],
        leader,
        term: 1,
        leaderships: Vec::new(),
    })
    .unwrap();
    record(&mut c, &mut h);

    let d = delta_since(&c, &h, old.version);
    assert_eq!(ids(&d.upserted), vec![a.id, z.id]);
    assert_eq!(d.removed, vec![whole.id]);
    assert_eq!(apply_delta(&old, &d).unwrap(), c.route_snapshot());
}

#[test]
fn store_changes_travel_in_the_delta_and_unchanged_reports_record_nothing() {
    let (mut c, mut h) = bootstrapped(&["m"], 64);
    let old = c.route_snapshot();
    let r = region_at(&c, "a");
    lead(&mut c, &r, 1, 1);
    // The same report again, and one from a later term of the same leader:
    // no route change, no version.
    lead(&mut c, &r, 1, 1);
    lead(&mut c, &r, 1, 2);
    let moved = metapb::Store { address: "127.0.0.1:30000".into(), ..store(2) };
    c.apply(&CatalogCommand::PutStore { store: moved.clone() }).unwrap();
    record(&mut c, &mut h);
    assert_eq!(c.version(), old.version + 2);

    let d = delta_since(&c, &h, old.version);
    assert_eq!(ids(&d.upserted), vec![r.id]);
    assert_eq!(d.stores, vec![moved]);
    assert_eq!(apply_delta(&old, &d).unwrap(), c.route_snapshot());
}

#[test]
fn versions_evicted_from_the_history_have_no_delta() {
    let (mut c, mut h) = bootstrapped(&["m"], 2);
    let old = c.version();
    let r = region_at(&c, "a");
    for (store, term) in [(2, 1), (3, 2), (1, 3)] {
        lead(&mut c, &r, store, term);
    }
    record(&mut c, &mut h);
    assert_eq!(c.version(), old + 3);
    assert!(h.changes_between(old, c.version()).is_none(), "three versions, two kept");
    assert_eq!(ids(&delta_since(&c, &h, old + 1).upserted), vec![r.id]);
}
