use prost::Message;
use proto::{metapb, pdpb, pdraftpb};

use super::bootstrap::even_split_keys;
use super::*;

fn store(id: u64) -> metapb::Store {
    metapb::Store { id, address: format!("127.0.0.1:{}", 20160 + id), ..Default::default() }
}

/// A catalog with stores 1..=3 registered (ids 1..=3 allocated first).
fn with_stores() -> RouteCatalog {
    let mut c = RouteCatalog::new();
    c.apply(&CatalogCommand::AllocIds { count: 3 }).unwrap();
    for id in 1..=3 {
        c.apply(&CatalogCommand::PutStore { store: store(id) }).unwrap();
    }
    c
}

fn bootstrapped(split_keys: &[&str]) -> RouteCatalog {
    let mut c = with_stores();
    c.apply(&CatalogCommand::Bootstrap {
        store_ids: vec![1, 2, 3],
        split_keys: split_keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
    })
    .unwrap();
    c
}

fn report(
    c: &mut RouteCatalog,
    regions: Vec<metapb::Region>,
    leader: metapb::Peer,
    term: u64,
) -> Result<CommandOutcome> {
    c.apply(&CatalogCommand::ReportRegions { regions, leader: Some(leader), term, leaderships: Vec::new() })
}

fn region_at(c: &RouteCatalog, key: &str) -> metapb::Region {
    c.region_by_key(key.as_bytes()).unwrap().region.clone()
}

#[test]
fn ids_are_sequential_and_bounded() {
    let mut c = RouteCatalog::new();
    assert_eq!(c.apply(&CatalogCommand::AllocIds { count: 2 }).unwrap(), CommandOutcome::Ids { first: 1, count: 2 });
    assert_eq!(c.apply(&CatalogCommand::AllocIds { count: 1 }).unwrap(), CommandOutcome::Ids { first: 3, count: 1 });
    assert!(matches!(c.apply(&CatalogCommand::AllocIds { count: 0 }), Err(PdError::InvalidArgument(_))));
    assert!(matches!(
        c.apply(&CatalogCommand::AllocIds { count: MAX_ALLOC_BATCH + 1 }),
        Err(PdError::InvalidArgument(_))
    ));
    assert_eq!(c.next_id(), 4);
    assert_eq!(c.version(), 0, "allocation is not a route change");
}

#[test]
fn put_store_validates_and_bumps_version_only_on_change() {
    let mut c = RouteCatalog::new();
    let err = c.apply(&CatalogCommand::PutStore { store: store(1) }).unwrap_err();
    assert!(matches!(err, PdError::InvalidArgument(ref m) if m.contains("not allocated")), "{err}");
    c.apply(&CatalogCommand::AllocIds { count: 2 }).unwrap();
    for bad in ["", "nohost", ":80", "host:0", "host:99999", "host:http"] {
        let s = metapb::Store { address: bad.into(), ..store(1) };
        assert!(matches!(c.apply(&CatalogCommand::PutStore { store: s }), Err(PdError::InvalidArgument(_))), "{bad}");
    }
    c.apply(&CatalogCommand::PutStore { store: store(1) }).unwrap();
    assert_eq!(c.version(), 1);
    c.apply(&CatalogCommand::PutStore { store: store(1) }).unwrap();
    assert_eq!(c.version(), 1, "re-registering unchanged is not a change");
    // Another store may not take a live store's address.
    let dup = metapb::Store { id: 2, ..store(1) };
    assert!(matches!(c.apply(&CatalogCommand::PutStore { store: dup }), Err(PdError::StoreConflict(_))));
    // A store cannot mark itself offline by registering.
    let s = metapb::Store { state: metapb::StoreState::Offline as i32, ..store(1) };
    c.apply(&CatalogCommand::PutStore { store: s }).unwrap();
    assert_eq!(c.store(1).unwrap().state, metapb::StoreState::Up as i32);
    assert!(c.take_dirty().stores.contains(&1));
}

#[test]
fn bootstrap_covers_the_key_space() {
    let mut c = with_stores();
    let before = c.version();
    let out = c
        .apply(&CatalogCommand::Bootstrap { store_ids: vec![1, 2, 3], split_keys: vec![b"g".to_vec(), b"p".to_vec()] })
        .unwrap();
    let CommandOutcome::Bootstrapped { regions, version } = out else { panic!("{out:?}") };
    assert_eq!(version, before + 1);
    assert_eq!(regions.len(), 3);
    let ranges: Vec<(&[u8], &[u8])> = regions.iter().map(|r| (r.start_key.as_slice(), r.end_key.as_slice())).collect();
    assert_eq!(ranges, vec![(&b""[..], &b"g"[..]), (b"g", b"p"), (b"p", b"")]);
    for r in &regions {
        assert_eq!(r.peers.len(), 3);
        assert_eq!(r.region_epoch, Some(metapb::RegionEpoch { conf_ver: 1, version: 1 }));
    }
    assert_eq!(c.region_by_key(b"").unwrap().region.id, regions[0].id);
    assert_eq!(c.region_by_key(b"g").unwrap().region.id, regions[1].id);
    assert_eq!(c.region_by_key(b"zzz").unwrap().region.id, regions[2].id);
    assert_eq!(c.scan(b"h", b"q", 0).len(), 2);
    assert_eq!(c.scan(b"", b"", 2).len(), 2);
    assert!(matches!(
        c.apply(&CatalogCommand::Bootstrap { store_ids: vec![1], split_keys: vec![] }),
        Err(PdError::AlreadyBootstrapped)
    ));
}

#[test]
fn bootstrap_rejects_bad_input_and_changes_nothing() {
    let mut c = with_stores();
    let snapshot = c.clone();
    let cases = [
        (vec![], vec![]),
        (vec![1, 1], vec![]),
        (vec![1, 9], vec![]),
        (vec![1, 2, 3], vec![b"b".to_vec(), b"a".to_vec()]),
        (vec![1, 2, 3], vec![b"a".to_vec(), b"a".to_vec()]),
        (vec![1, 2, 3], vec![Vec::new()]),
    ];
    for (store_ids, split_keys) in cases {
        let res = c.apply(&CatalogCommand::Bootstrap { store_ids: store_ids.clone(), split_keys });
        assert!(res.is_err(), "{store_ids:?}");
        assert_eq!(c, snapshot, "a refused bootstrap changed the catalog");
    }
    assert!(matches!(
        c.apply(&CatalogCommand::Bootstrap { store_ids: vec![1, 9], split_keys: vec![] }),
        Err(PdError::StoreNotFound(9))
    ));
}

#[test]
fn bootstrap_refuses_when_ids_run_out() {
    // Only a persisted or installed catalog can be this close to the end of
    // the id space; bootstrap must refuse, not overflow while taking ids.
    let meta = pdraftpb::CatalogMeta { version: 3, next_id: u64::MAX - 2, bootstrapped: false };
    let mut c = RouteCatalog::from_parts(meta, (1..=3).map(store), []).unwrap();
    let before = c.clone();
    let err = c.apply(&CatalogCommand::Bootstrap { store_ids: vec![1, 2, 3], split_keys: vec![] }).unwrap_err();
    assert!(matches!(err, PdError::InvalidArgument(ref m) if m.contains("exhausted")), "{err}");
    assert_eq!(c, before);
}

#[test]
fn even_split_keys_are_ascending() {
    assert!(even_split_keys(b"", 1).is_empty());
    let keys = even_split_keys(b"t", 4);
    assert_eq!(keys, vec![b"t\x40\x00".to_vec(), b"t\x80\x00".to_vec(), b"t\xc0\x00".to_vec()]);
    let many = even_split_keys(b"", 1000);
    assert_eq!(many.len(), 999);
    assert!(many.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn newer_heartbeat_is_accepted_and_bumps_version() {
    let mut c = bootstrapped(&["m"]);
    let mut r = region_at(&c, "a");
    let leader = r.peers[0];
    let v0 = c.version();
    let out = report(&mut c, vec![r.clone()], leader, 1).unwrap();
    assert_eq!(out, CommandOutcome::Regions { changed: true, version: v0 + 1 }, "first leader report");
    assert_eq!(c.region(r.id).unwrap().leader, Some(leader));
    // The same report again changes nothing.
    assert_eq!(
        report(&mut c, vec![r.clone()], leader, 1).unwrap(),
        CommandOutcome::Regions { changed: false, version: v0 + 1 }
    );
    // A membership change (conf_ver + 1, one peer removed).
    r.peers.pop();
    r.region_epoch.as_mut().unwrap().conf_ver += 1;
    report(&mut c, vec![r.clone()], leader, 1).unwrap();
    assert_eq!(c.version(), v0 + 2);
    assert_eq!(c.region(r.id).unwrap().region.peers.len(), 2);
}

#[test]
fn stale_epoch_report_is_ignored() {
    let mut c = bootstrapped(&[]);
    let old = region_at(&c, "a");
    let mut newer = old.clone();
    newer.region_epoch.as_mut().unwrap().conf_ver = 5;
    report(&mut c, vec![newer], old.peers[0], 2).unwrap();
    let before = c.clone();
    let err = report(&mut c, vec![old.clone()], old.peers[0], 3).unwrap_err();
    assert!(matches!(err, PdError::StaleEpoch(_)), "{err}");
    assert_eq!(c, before);
    // Same epoch from an older term: a deposed leader.
    let current = region_at(&c, "a");
    let err = report(&mut c, vec![current], old.peers[1], 1).unwrap_err();
    assert!(matches!(err, PdError::StaleEpoch(_)), "{err}");
    assert_eq!(c, before);
}

#[test]
fn same_epoch_with_different_meta_is_a_conflict() {
    let mut c = bootstrapped(&[]);
    let mut r = region_at(&c, "a");
    r.peers.pop();
    let err = report(&mut c, vec![r.clone()], r.peers[0], 1).unwrap_err();
    assert!(matches!(err, PdError::RouteConflict(_)), "{err}");
}

/// Splits the region containing `at` into [start, at) (new id) and [at, end).
/// New ids are allocated here, as PD does before it sends a split.
fn split(c: &mut RouteCatalog, at: &str) -> Vec<metapb::Region> {
    let Ok(CommandOutcome::Ids { first: base, .. }) = c.apply(&CatalogCommand::AllocIds { count: 4 }) else {
        panic!("alloc failed")
    };
    let old = region_at(c, at);
    let mut right = old.clone();
    right.start_key = at.as_bytes().to_vec();
    right.region_epoch.as_mut().unwrap().version += 1;
    let mut left = right.clone();
    left.id = base;
    left.start_key = old.start_key.clone();
    left.end_key = at.as_bytes().to_vec();
    for (i, p) in left.peers.iter_mut().enumerate() {
        p.id = base + 1 + i as u64;
    }
    vec![left, right]
}

#[test]
fn split_report_swaps_regions_atomically() {
    let mut c = bootstrapped(&[]);
    let parts = split(&mut c, "k");
    let leader = parts[1].peers[0];
    let v0 = c.version();
    // Half a split would leave a gap: refused, nothing changes.
    let before = c.clone();
    let err = report(&mut c, vec![parts[1].clone()], leader, 1).unwrap_err();
    assert!(matches!(err, PdError::RouteConflict(_)), "{err}");
    assert_eq!(c, before);
    report(&mut c, parts.clone(), leader, 1).unwrap();
    assert_eq!(c.version(), v0 + 1);
    assert_eq!(c.region_count(), 2);
    assert_eq!(region_at(&c, "a").id, parts[0].id);
    assert_eq!(region_at(&c, "z").id, parts[1].id);
    // The report names no leader of the new region: it has none yet, and
    // no term (its group's terms are its own).
    let born = c.region(parts[0].id).unwrap();
    assert_eq!((born.leader, born.term), (None, 0));
    assert_eq!(c.region(parts[1].id).unwrap().leader, Some(leader));
    // The pre-split region can no longer come back.
    let err = report(&mut c, vec![before.region_by_key(b"a").unwrap().region.clone()], leader, 2).unwrap_err();
    assert!(matches!(err, PdError::StaleEpoch(_)), "{err}");
}

/// A split report as a store sends it: the original region's leader at
/// `term`, and each region's own leadership where that store leads it.
fn report_split(
    c: &mut RouteCatalog,
    parts: &[metapb::Region],
    leader: metapb::Peer,
    term: u64,
    leaderships: Vec<pdpb::RegionLeadership>,
) -> Result<CommandOutcome> {
    c.apply(&CatalogCommand::ReportRegions { regions: parts.to_vec(), leader: Some(leader), term, leaderships })
}

fn leads(peer: metapb::Peer, term: u64) -> pdpb::RegionLeadership {
    pdpb::RegionLeadership { leader: Some(peer), term }
}

#[test]
fn a_split_born_region_is_led_by_its_own_leader_at_its_own_term() {
    let mut c = bootstrapped(&[]);
    let parts = split(&mut c, "k");
    let (child, parent) = (&parts[0], &parts[1]);
    let parent_leader = parent.peers[0];
    let before_split = region_at(&c, "z");
    report(&mut c, vec![before_split], parent_leader, 9).unwrap();

    // The parent's leader at term 9 reports the split, leading the child
    // too, at the child group's term 6.
    let none = pdpb::RegionLeadership::default();
    report_split(&mut c, &parts, parent_leader, 9, vec![leads(child.peers[0], 6), none]).unwrap();
    let rec = c.region(child.id).unwrap();
    assert_eq!((rec.leader, rec.term), (Some(child.peers[0]), 6), "the child's own leadership");
    assert_eq!((c.region(parent.id).unwrap().leader, c.region(parent.id).unwrap().term), (Some(parent_leader), 9));

    // Leadership of the child moves to store 2, at the child's term 7:
    // accepted although the parent's group is at term 9.
    let v = c.version();
    let new_leader = child.peers[1];
    let out = report(&mut c, vec![child.clone()], new_leader, 7).unwrap();
    assert_eq!(out, CommandOutcome::Regions { changed: true, version: v + 1 });
    let rec = c.region(child.id).unwrap();
    assert_eq!((rec.leader, rec.term), (Some(new_leader), 7));

    // The split report again (re-sent until the store sees it in PD's
    // routes), from a store that still leads the parent and no longer the
    // child: the child's leader stays.
    let before = c.clone();
    report_split(&mut c, &parts, parent_leader, 9, vec![none, none]).unwrap();
    assert_eq!(c, before, "a re-sent split report changes nothing");
    // Nor does an older-style report without leaderships.
    report(&mut c, parts.clone(), parent_leader, 9).unwrap();
    assert_eq!(c, before);
    // The deposed child leader's report of term 6 is stale.
    let err = report(&mut c, vec![child.clone()], child.peers[0], 6).unwrap_err();
    assert!(matches!(err, PdError::StaleEpoch(_)), "{err}");
    // And so is its re-sent split report naming itself at term 6.
    let err = report_split(&mut c, &parts, parent_leader, 9, vec![leads(child.peers[0], 6), none]).unwrap_err();
    assert!(matches!(err, PdError::StaleEpoch(_)), "{err}");
    assert_eq!(c, before);
}

#[test]
fn a_record_holding_another_groups_term_heals_when_its_leader_reports() {
    let mut c = bootstrapped(&[]);
    let r = region_at(&c, "a");
    // As a split report stamped it once: the leader's peer at the term of
    // the region the split came from.
    report(&mut c, vec![r.clone()], r.peers[0], 9).unwrap();
    // That peer itself, at its own group's term 6: the record's term was
    // never its own (a peer's term never goes down), so the report is taken.
    report(&mut c, vec![r.clone()], r.peers[0], 6).unwrap();
    assert_eq!(c.region(r.id).unwrap().term, 6);
    // Now its successor at term 7 is taken too, and the deposed one is not.
    report(&mut c, vec![r.clone()], r.peers[1], 7).unwrap();
    let err = report(&mut c, vec![r.clone()], r.peers[0], 6).unwrap_err();
    assert!(matches!(err, PdError::StaleEpoch(_)), "{err}");
    assert_eq!(c.region(r.id).unwrap().leader, Some(r.peers[1]));
}

/// A catalog persisted before terms were kept per region holds split-born
/// regions stamped with the term of the region they split from, led (by
/// its record) from a store that may no longer lead them. Healing by the
/// recorded leader's own report never comes when that store stopped
/// leading: loaded from those rows, the term is unknown, and the real
/// leader's next heartbeat is taken at whatever term its group is at.
#[test]
fn a_term_persisted_before_terms_were_per_region_is_unknown_once_loaded() {
    let mut c = bootstrapped(&[]);
    let r = region_at(&c, "a");
    report(&mut c, vec![r.clone()], r.peers[0], 9).unwrap();
    let mut rows = c.to_snapshot();
    for row in &mut rows.regions {
        row.term_is_own = false;
    }
    let old = RouteCatalog::from_snapshot(pdraftpb::CatalogSnapshot::decode(rows.encode_to_vec().as_slice()).unwrap())
        .unwrap();
    assert_eq!(old.region(r.id).unwrap().term, 0, "a stamped term is not trusted");
    let mut c = old;
    report(&mut c, vec![r.clone()], r.peers[1], 6).unwrap();
    assert_eq!(c.region(r.id).unwrap().leader, Some(r.peers[1]));
    // Rows written now keep their term across a reload.
    let again = RouteCatalog::from_snapshot(c.to_snapshot()).unwrap();
    assert_eq!(again.region(r.id).unwrap().term, 6);
}

#[test]
fn a_split_report_names_leaders_only_among_each_regions_peers() {
    let mut c = bootstrapped(&[]);
    let parts = split(&mut c, "k");
    let parent_leader = parts[1].peers[0];
    let before = c.clone();
    // A leader of the child that is not its peer (the parent's peer id).
    let err = report_split(&mut c, &parts, parent_leader, 1, vec![leads(parent_leader, 5), leads(parent_leader, 1)])
        .unwrap_err();
    assert!(matches!(err, PdError::InvalidArgument(_)), "{err}");
    // One leadership for two regions.
    let err = report_split(&mut c, &parts, parent_leader, 1, vec![leads(parts[0].peers[0], 5)]).unwrap_err();
    assert!(matches!(err, PdError::InvalidArgument(_)), "{err}");
    assert_eq!(c, before);
}

#[test]
fn a_newer_epoch_from_a_deposed_leader_keeps_the_later_terms_leader() {
    let mut c = bootstrapped(&[]);
    let r = region_at(&c, "a");
    report(&mut c, vec![r.clone()], r.peers[1], 10).unwrap();
    // The leader of term 9 applied a membership change before it learned
    // of term 10: the meta is right, its leadership is not.
    let mut newer = r.clone();
    newer.region_epoch.as_mut().unwrap().conf_ver += 1;
    report(&mut c, vec![newer.clone()], r.peers[0], 9).unwrap();
    let rec = c.region(r.id).unwrap();
    assert_eq!(rec.region, newer);
    assert_eq!((rec.leader, rec.term), (Some(r.peers[1]), 10));
}

#[test]
fn overlapping_or_gapped_reports_are_rejected() {
    let mut c = bootstrapped(&["m"]);
    let mut a = split(&mut c, "f");
    let left = region_at(&c, "a");
    let right = region_at(&c, "z");
    // Grow the left region over the right one without a newer version.
    let mut grown = left.clone();
    grown.end_key = Vec::new();
    grown.region_epoch.as_mut().unwrap().conf_ver += 1;
    let before = c.clone();
    let err = report(&mut c, vec![grown], left.peers[0], 1).unwrap_err();
    assert!(matches!(err, PdError::RouteConflict(_)), "{err}");
    // A batch whose members overlap each other.
    a[0].end_key = b"g".to_vec();
    let err = report(&mut c, a, left.peers[0], 1).unwrap_err();
    assert!(matches!(err, PdError::RouteConflict(_)), "{err}");
    // A peer on an unknown store.
    let mut r = right.clone();
    r.peers[0].store_id = 42;
    r.region_epoch.as_mut().unwrap().conf_ver += 1;
    let err = report(&mut c, vec![r], right.peers[1], 1).unwrap_err();
    assert!(matches!(err, PdError::StoreNotFound(42)), "{err}");
    // Malformed ranges and shapes.
    let mut r = right.clone();
    r.end_key = b"a".to_vec();
    assert!(matches!(report(&mut c, vec![r], right.peers[0], 1), Err(PdError::InvalidArgument(_))));
    let mut r = right.clone();
    r.region_epoch = None;
    assert!(matches!(report(&mut c, vec![r], right.peers[0], 1), Err(PdError::InvalidArgument(_))));
    let mut r = right.clone();
    r.id = 0;
    assert!(matches!(report(&mut c, vec![r], right.peers[0], 1), Err(PdError::InvalidArgument(_))));
    let foreign = metapb::Peer { id: 999, store_id: 1, role: 0 };
    assert!(matches!(report(&mut c, vec![right.clone()], foreign, 1), Err(PdError::InvalidArgument(_))));
    assert_eq!(c, before, "refused reports changed the catalog");
}

#[test]
fn reports_before_bootstrap_are_refused() {
    let mut c = with_stores();
    let r = metapb::Region {
        id: 1,
        region_epoch: Some(metapb::RegionEpoch { conf_ver: 1, version: 1 }),
        ..Default::default()
    };
    assert!(matches!(
        c.apply(&CatalogCommand::ReportRegions { regions: vec![r], leader: None, term: 1, leaderships: Vec::new() }),
        Err(PdError::NotBootstrapped)
    ));
}

#[test]
fn snapshot_round_trips_through_protobuf() {
    let mut c = bootstrapped(&["d", "q"]);
    let r = region_at(&c, "e");
    report(&mut c, vec![r.clone()], r.peers[1], 4).unwrap();
    let bytes = c.to_snapshot().encode_to_vec();
    let decoded = RouteCatalog::from_snapshot(pdraftpb::CatalogSnapshot::decode(bytes.as_slice()).unwrap()).unwrap();
    let mut original = c.clone();
    original.take_dirty();
    original.take_route_changes();
    assert_eq!(decoded, original);
    assert_eq!(decoded.route_snapshot(), c.route_snapshot());
}

#[test]
fn inconsistent_rows_are_refused_on_load() {
    let c = bootstrapped(&["m"]);
    let mut s = c.to_snapshot();
    s.regions.pop();
    let err = RouteCatalog::from_snapshot(s).unwrap_err();
    assert!(matches!(err, PdError::Storage(ref m) if m.contains("inconsistent")), "{err}");
}

#[test]
fn route_snapshots_are_deterministic() {
    // Two catalogs reach the same state by registering stores in different
    // orders: their snapshots must encode to the same bytes.
    let mut a = RouteCatalog::new();
    let mut b = RouteCatalog::new();
    for c in [&mut a, &mut b] {
        c.apply(&CatalogCommand::AllocIds { count: 3 }).unwrap();
    }
    for id in [1, 2, 3] {
        a.apply(&CatalogCommand::PutStore { store: store(id) }).unwrap();
    }
    for id in [3, 1, 2] {
        b.apply(&CatalogCommand::PutStore { store: store(id) }).unwrap();
    }
    for c in [&mut a, &mut b] {
        c.apply(&CatalogCommand::Bootstrap {
            store_ids: vec![1, 2, 3],
            split_keys: vec![b"b".to_vec(), b"a1".to_vec()],
        })
        .unwrap_err();
        c.apply(&CatalogCommand::Bootstrap {
            store_ids: vec![1, 2, 3],
            split_keys: vec![b"a1".to_vec(), b"b".to_vec()],
        })
        .unwrap();
    }
    assert_eq!(a.route_snapshot().encode_to_vec(), b.route_snapshot().encode_to_vec());
    let starts: Vec<Vec<u8>> =
        a.route_snapshot().regions.iter().map(|r| r.region.as_ref().unwrap().start_key.clone()).collect();
    assert_eq!(starts, vec![b"".to_vec(), b"a1".to_vec(), b"b".to_vec()]);
}

/// Applies unvalidated edits that break an invariant and checks they are
/// refused with the catalog (its rows, version and dirty set) exactly as
/// before. Returns the refusal's message.
fn assert_refused(c: &mut RouteCatalog, edits: Vec<RawEdit>) -> String {
    let before = c.clone();
    let err = c.apply(&CatalogCommand::Unvalidated { edits: edits.clone() }).unwrap_err();
    let PdError::InvariantViolation(msg) = err else { panic!("{edits:?} refused as {err}") };
    assert_eq!(*c, before, "refusing {edits:?} left changes behind");
    assert_eq!(c.version(), before.version());
    assert_eq!(c.dirty, before.dirty);
    c.check_invariants().unwrap();
    msg
}

/// A bootstrapped catalog over ["", g) [g, p) [p, "") with 8 spare ids, and
/// a dirty set holding both rows of earlier commands (which a refusal must
/// keep) and not others (which it must not add).
fn refusal_fixture() -> (RouteCatalog, [metapb::Region; 3], u64) {
    let mut c = bootstrapped(&["g", "p"]);
    let Ok(CommandOutcome::Ids { first, .. }) = c.apply(&CatalogCommand::AllocIds { count: 8 }) else {
        panic!("alloc failed")
    };
    c.take_dirty();
    let middle = region_at(&c, "h");
    report(&mut c, vec![middle.clone()], middle.peers[0], 1).unwrap();
    assert!(c.dirty.regions.contains(&middle.id) && c.dirty.regions.len() == 1);
    (c.clone(), [region_at(&c, "a"), middle, region_at(&c, "z")], first)
}

#[test]
fn a_change_that_would_break_coverage_is_refused_and_undone() {
    let (mut c, [first, middle, last], fresh) = refusal_fixture();
    let region = |id, start: &str, end: &str| metapb::Region {
        id,
        start_key: start.as_bytes().to_vec(),
        end_key: end.as_bytes().to_vec(),
        ..middle.clone()
    };
    let cases = [
        (vec![RawEdit::PutRegion(region(fresh, "a", "k"))], "gap or overlap"),
        (vec![RawEdit::RemoveRegion(middle.id)], "gap or overlap"),
        // Two regions starting at the same key: the start-key index loses one.
        (vec![RawEdit::PutRegion(region(fresh, "g", "k"))], "start keys"),
        (vec![RawEdit::PutRegion(region(first.id, "a", "g"))], "not -inf"),
        (vec![RawEdit::PutRegion(region(last.id, "p", "x"))], "not +inf"),
        (
            vec![RawEdit::RemoveRegion(first.id), RawEdit::RemoveRegion(middle.id), RawEdit::RemoveRegion(last.id)],
            "no regions",
        ),
        // A split whose right half moved but whose left half never came.
        (vec![RawEdit::PutRegion(region(middle.id, "k", "p"))], "gap or overlap"),
    ];
    for (edits, want) in cases {
        let msg = assert_refused(&mut c, edits.clone());
        assert!(msg.contains(want), "{edits:?}: {msg}");
        assert!(msg.contains("applying unvalidated"), "the refusal names the command: {msg}");
    }
}

#[test]
fn a_change_that_would_break_ids_epochs_or_the_version_is_refused_and_undone() {
    let (mut c, [_, middle, _], _) = refusal_fixture();
    let (next, version) = (c.next_id(), c.version());
    let mut beyond = middle.clone();
    beyond.id = next + 10;
    let mut bad_peer = middle.clone();
    bad_peer.peers[0].id = next;
    let mut older = middle.clone();
    older.region_epoch = Some(metapb::RegionEpoch { conf_ver: 1, version: 0 });
    let cases = [
        (vec![RawEdit::RemoveRegion(middle.id), RawEdit::PutRegion(beyond)], "outside allocated ids"),
        (vec![RawEdit::PutRegion(bad_peer)], "outside allocated ids"),
        (vec![RawEdit::PutStore(store(next))], "outside allocated ids"),
        (vec![RawEdit::PutRegion(older)], "epoch went backwards"),
        (vec![RawEdit::SetVersion(version - 1)], "version went backwards"),
        (vec![RawEdit::SetVersion(version + 2)], "version jumped"),
        (vec![RawEdit::SetNextId(next - 1)], "allocator went backwards"),
        (vec![RawEdit::SetBootstrapped(false)], "unbootstrapped"),
    ];
    for (edits, want) in cases {
        let msg = assert_refused(&mut c, edits.clone());
        assert!(msg.contains(want), "{edits:?}: {msg}");
    }
}

#[test]
fn a_consistent_unvalidated_change_is_kept() {
    // The check must not refuse what keeps every invariant: a split made of
    // raw edits is applied as it would be from a report.
    let (mut c, [_, middle, _], fresh) = refusal_fixture();
    let mut right = middle.clone();
    right.start_key = b"k".to_vec();
    right.region_epoch.as_mut().unwrap().version += 1;
    let left = metapb::Region { id: fresh, end_key: b"k".to_vec(), ..right.clone() };
    let left = metapb::Region { start_key: middle.start_key.clone(), ..left };
    c.apply(&CatalogCommand::Unvalidated { edits: vec![RawEdit::PutRegion(right), RawEdit::PutRegion(left)] }).unwrap();
    assert_eq!(region_at(&c, "h").id, fresh);
    assert_eq!(region_at(&c, "k").id, middle.id);
    assert!(c.dirty.regions.contains(&fresh));
    c.check_invariants().unwrap();
}

#[test]
fn a_version_overflow_is_refused_not_a_panic() {
    // Reachable without any test hook: a catalog persisted (or installed)
    // at the largest version wraps to 0 on its next route change.
    let meta = pdraftpb::CatalogMeta { version: u64::MAX, next_id: 4, bootstrapped: false };
    let mut c = RouteCatalog::from_parts(meta, (1..=3).map(store), []).unwrap();
    let before = c.clone();
    let moved = metapb::Store { address: "127.0.0.1:1".into(), ..store(3) };
    let err = c.apply(&CatalogCommand::PutStore { store: moved }).unwrap_err();
    assert!(matches!(err, PdError::InvariantViolation(ref m) if m.contains("went backwards")), "{err}");
    assert_eq!(c, before);
    // Commands that leave the version alone still apply.
    c.apply(&CatalogCommand::AllocIds { count: 1 }).unwrap();
}

#[test]
fn the_change_check_agrees_with_the_whole_catalog_check() {
    // A fixed pseudo-random walk of unvalidated splits, merges and stray
    // edits, each complete or with one edit missing: apply must refuse
    // exactly those after which the whole-catalog check fails, and undo
    // them completely.
    let mut c = bootstrapped(&["g", "p"]);
    let Ok(CommandOutcome::Ids { first: mut fresh, .. }) = c.apply(&CatalogCommand::AllocIds { count: 10_000 }) else {
        panic!("alloc failed")
    };
    let keys: [&[u8]; 8] = [b"", b"c", b"e", b"g", b"k", b"p", b"t", b"w"];
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut rand = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let (mut kept, mut refused) = (0, 0);
    for step in 0..3_000u64 {
        let regions: Vec<metapb::Region> = c.regions().map(|r| r.region.clone()).collect();
        // Epochs only grow along the walk, so no edit is refused for its epoch.
        let epoch = Some(metapb::RegionEpoch { conf_ver: step + 2, version: step + 2 });
        let r = regions[rand(regions.len())].clone();
        let mut edits = match rand(3) {
            0 => {
                let inside: Vec<&[u8]> = keys
                    .iter()
                    .copied()
                    .filter(|k| keys::contains(&r.start_key, &r.end_key, k) && *k > &r.start_key[..])
                    .collect();
                if inside.is_empty() {
                    continue;
                }
                let at = inside[rand(inside.len())].to_vec();
                fresh += 1;
                let left = metapb::Region { id: fresh, end_key: at.clone(), region_epoch: epoch, ..r.clone() };
                vec![
                    RawEdit::PutRegion(metapb::Region { start_key: at, region_epoch: epoch, ..r.clone() }),
                    RawEdit::PutRegion(left),
                ]
            }
            1 => {
                let Some(next) =
                    c.scan(&r.end_key, b"", 1).first().map(|n| n.region.clone()).filter(|_| !r.end_key.is_empty())
                else {
                    continue;
                };
                let merged = metapb::Region { end_key: next.end_key.clone(), region_epoch: epoch, ..r.clone() };
                vec![RawEdit::PutRegion(merged), RawEdit::RemoveRegion(next.id)]
            }
            _ => {
                let (start, end) = (keys[rand(keys.len())].to_vec(), keys[rand(keys.len())].to_vec());
                let id = if rand(2) == 0 { r.id } else { fresh + 1 };
                vec![RawEdit::PutRegion(metapb::Region {
                    id,
                    start_key: start,
                    end_key: end,
                    region_epoch: epoch,
                    ..r
                })]
            }
        };
        if edits.len() > 1 && rand(3) == 0 {
            edits.remove(rand(edits.len()));
        }
        let mut whole = c.clone();
        whole.apply_unvalidated(&edits);
        let whole = whole.check_invariants();
        let before = c.clone();
        let res = c.apply(&CatalogCommand::Unvalidated { edits: edits.clone() });
        assert_eq!(res.is_ok(), whole.is_ok(), "{edits:?}: apply said {res:?}, the whole check {whole:?}");
        if res.is_ok() {
            kept += 1;
        } else {
            assert_eq!(c, before, "{edits:?} was refused but not undone");
            refused += 1;
        }
    }
    assert!(kept > 100 && refused > 100, "the walk exercised too little: {kept} kept, {refused} refused");
}

/// Registers a store under a freshly allocated id.
fn add_store(c: &mut RouteCatalog) -> u64 {
    let Ok(CommandOutcome::Ids { first, .. }) = c.apply(&CatalogCommand::AllocIds { count: 1 }) else {
        panic!("alloc failed")
    };
    c.apply(&CatalogCommand::PutStore { store: store(first) }).unwrap();
    first
}

fn set_state(c: &mut RouteCatalog, store_id: u64, state: metapb::StoreState, min_up: u32) -> Result<CommandOutcome> {
    c.apply(&CatalogCommand::SetStoreState { store_id, state, min_up_stores: min_up })
}

fn state_of(c: &RouteCatalog, id: u64) -> metapb::StoreState {
    metapb::StoreState::try_from(c.store(id).unwrap().state).unwrap()
}

/// Replaces store `from`'s peer of every region with a peer on `to`, as a
/// finished move would report it.
fn move_all_peers(c: &mut RouteCatalog, from: u64, to: u64) {
    let regions: Vec<metapb::Region> = c.regions().map(|r| r.region.clone()).collect();
    for mut r in regions {
        let Some(p) = r.peers.iter_mut().find(|p| p.store_id == from) else { continue };
        let Ok(CommandOutcome::Ids { first, .. }) = c.apply(&CatalogCommand::AllocIds { count: 1 }) else {
            panic!("alloc failed")
        };
        *p = metapb::Peer { id: first, store_id: to, role: metapb::PeerRole::Voter as i32 };
        let epoch = r.region_epoch.as_mut().unwrap();
        epoch.conf_ver += 1;
        let leader = r.peers[0];
        report(c, vec![r], leader, 1).unwrap();
    }
}

#[test]
fn a_store_goes_offline_then_tombstone_once_it_holds_no_peer() {
    let mut c = bootstrapped(&["g"]);
    let spare = add_store(&mut c);
    let v = c.version();
    let out = set_state(&mut c, 3, metapb::StoreState::Offline, 3).unwrap();
    assert_eq!(out, CommandOutcome::StoreState { state: metapb::StoreState::Offline as i32, version: v + 1 });
    assert_eq!(state_of(&c, 3), metapb::StoreState::Offline);
    assert!(c.take_dirty().stores.contains(&3));
    // Asking again is not a change.
    set_state(&mut c, 3, metapb::StoreState::Offline, 3).unwrap();
    assert_eq!(c.version(), v + 1);

    // Two regions still have a peer there.
    let before = c.clone();
    let err = set_state(&mut c, 3, metapb::StoreState::Tombstone, 3).unwrap_err();
    assert!(matches!(err, PdError::StoreConflict(ref m) if m.contains("2 regions")), "{err}");
    assert_eq!(c, before);

    // An Offline store's peers still report; once they moved it can go.
    move_all_peers(&mut c, 3, spare);
    assert_eq!(c.regions_on_store(3), 0);
    let v = c.version();
    set_state(&mut c, 3, metapb::StoreState::Tombstone, 3).unwrap();
    assert_eq!(c.version(), v + 1);
    assert_eq!(state_of(&c, 3), metapb::StoreState::Tombstone);
    c.check_invariants().unwrap();
}

#[test]
fn nothing_leaves_tombstone_and_its_id_is_never_reused() {
    let mut c = with_stores();
    assert_eq!(add_store(&mut c), 4);
    set_state(&mut c, 4, metapb::StoreState::Offline, 3).unwrap();
    set_state(&mut c, 4, metapb::StoreState::Tombstone, 3).unwrap();
    let before = c.clone();
    for to in [metapb::StoreState::Up, metapb::StoreState::Offline] {
        let err = set_state(&mut c, 4, to, 0).unwrap_err();
        assert!(matches!(err, PdError::StoreConflict(ref m) if m.contains("tombstoned")), "{err}");
    }
    let err = c.apply(&CatalogCommand::PutStore { store: store(4) }).unwrap_err();
    assert!(matches!(err, PdError::StoreConflict(_)), "{err}");
    assert_eq!(c, before);
    // Its address is free for a new store.
    c.apply(&CatalogCommand::AllocIds { count: 1 }).unwrap();
    c.apply(&CatalogCommand::PutStore { store: metapb::Store { id: 5, ..store(4) } }).unwrap();
}

#[test]
fn store_state_changes_refuse_what_is_not_a_legal_transition() {
    let mut c = bootstrapped(&[]);
    let before = c.clone();
    // Up cannot skip Offline, and unknown or zero ids are refused.
    assert!(matches!(set_state(&mut c, 1, metapb::StoreState::Tombstone, 0), Err(PdError::StoreConflict(_))));
    assert!(matches!(set_state(&mut c, 9, metapb::StoreState::Offline, 0), Err(PdError::StoreNotFound(9))));
    assert!(matches!(set_state(&mut c, 0, metapb::StoreState::Offline, 0), Err(PdError::InvalidArgument(_))));
    // Three Up stores and three replicas: none may leave.
    let err = set_state(&mut c, 1, metapb::StoreState::Offline, 3).unwrap_err();
    assert_eq!(err, PdError::NotEnoughStores { need: 3, have: 2 });
    assert_eq!(c, before);
    // With two replicas one may, and a second may not.
    set_state(&mut c, 1, metapb::StoreState::Offline, 2).unwrap();
    let err = set_state(&mut c, 2, metapb::StoreState::Offline, 2).unwrap_err();
    assert_eq!(err, PdError::NotEnoughStores { need: 2, have: 1 });
    // Offline -> Up cancels the delete.
    set_state(&mut c, 1, metapb::StoreState::Up, 2).unwrap();
    assert_eq!(state_of(&c, 1), metapb::StoreState::Up);
}

#[test]
fn a_region_report_may_not_name_a_tombstoned_store() {
    let mut c = bootstrapped(&[]);
    let gone = add_store(&mut c);
    set_state(&mut c, gone, metapb::StoreState::Offline, 3).unwrap();
    set_state(&mut c, gone, metapb::StoreState::Tombstone, 3).unwrap();
    let mut r = region_at(&c, "a");
    let leader = r.peers[0];
    r.peers[2].store_id = gone;
    r.region_epoch.as_mut().unwrap().conf_ver += 1;
    let err = report(&mut c, vec![r.clone()], leader, 1).unwrap_err();
    assert!(matches!(err, PdError::StoreConflict(_)), "{err}");
    // Behind validation, the invariant check refuses it too.
    let msg = assert_refused(&mut c, vec![RawEdit::PutRegion(r)]);
    assert!(msg.contains(&format!("tombstoned store {gone}")), "{msg}");
}

#[test]
fn every_version_records_what_its_command_touched_and_refusals_record_nothing() {
    let mut c = bootstrapped(&["d", "q"]);
    let changes = c.take_route_changes();
    let versions: Vec<u64> = changes.iter().map(|ch| ch.version).collect();
    assert_eq!(versions, vec![1, 2, 3, 4], "three stores registered, then the bootstrap");
    assert_eq!(changes[0].stores, vec![1]);
    assert_eq!(changes[3].regions.len(), 3);
    let r = region_at(&c, "e");
    report(&mut c, vec![r.clone()], r.peers[1], 4).unwrap();
    // A stale report (a leader deposed before term 4) and an unchanged one
    // move no version.
    assert!(report(&mut c, vec![r.clone()], r.peers[0], 3).is_err());
    report(&mut c, vec![r.clone()], r.peers[1], 4).unwrap();
    let changes = c.take_route_changes();
    assert_eq!(changes, vec![RouteChange { version: 5, regions: vec![r.id], stores: vec![] }]);
    assert!(c.take_route_changes().is_empty());
}
