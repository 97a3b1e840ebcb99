//! Operator lifecycle, driven by hand: a real catalog, a recording sink, and
//! time passed in.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use proto::{metapb, pdpb};

use super::controller::RESEND_INTERVAL;
use super::*;
use crate::catalog::{CatalogCommand, CommandOutcome, RouteCatalog};
use crate::error::PdError;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Records every directive; refuses stores listed in `offline`.
#[derive(Default)]
struct Recorder {
    sent: RefCell<Vec<(u64, pdpb::Directive)>>,
    offline: Vec<u64>,
}

impl DirectiveSink for Recorder {
    fn send(&self, store_id: u64, directive: pdpb::Directive) -> Result<(), String> {
        if self.offline.contains(&store_id) {
            return Err("no stream".into());
        }
        self.sent.borrow_mut().push((store_id, directive));
        Ok(())
    }
}

impl Recorder {
    fn take(&self) -> Vec<(u64, pdpb::Directive)> {
        std::mem::take(&mut self.sent.borrow_mut())
    }
}

fn t0() -> Now {
    Now { at: Instant::now(), unix_ms: 1_700_000_000_000 }
}

/// Three stores, one region over everything, led from `leader_store`.
fn catalog(leader_store: Option<u64>) -> RouteCatalog {
    let mut c = RouteCatalog::new();
    c.apply(&CatalogCommand::AllocIds { count: 3 }).unwrap();
    for id in 1..=3 {
        let store = metapb::Store { id, address: format!("127.0.0.1:{}", 20160 + id), ..Default::default() };
        c.apply(&CatalogCommand::PutStore { store }).unwrap();
    }
    c.apply(&CatalogCommand::Bootstrap { store_ids: vec![1, 2, 3], split_keys: vec![] }).unwrap();
    if let Some(store) = leader_store {
        lead(&mut c, store, 1);
    }
    c
}

fn region(c: &RouteCatalog) -> metapb::Region {
    c.regions().next().unwrap().region.clone()
}

/// Reports the first region as led from `store` at `term`.
fn lead(c: &mut RouteCatalog, store: u64, term: u64) {
    let r = c.regions().next().unwrap().region.clone();
    let leader = *r.peers.iter().find(|p| p.store_id == store).unwrap();
    c.apply(&CatalogCommand::ReportRegions { regions: vec![r], leader: Some(leader), term, leaderships: Vec::new() })
        .unwrap();
}

/// A split operator on the first region, with ids allocated in `c`.
fn split_op(c: &mut RouteCatalog, key: &[u8], source: Source, now: Now) -> Operator {
    let rec = c.regions().next().unwrap().clone();
    let Ok(CommandOutcome::Ids { first, .. }) =
        c.apply(&CatalogCommand::AllocIds { count: split::ids_needed(&rec.region) })
    else {
        panic!("alloc")
    };
    split::operator(&rec, key.to_vec(), first, source, now, TIMEOUT)
}

/// What a store does with a split directive: the new left region and the
/// shrunk original, reported by the leader. Returns the catalog version.
fn apply_split(c: &mut RouteCatalog, d: &pdpb::Directive, at: &[u8]) -> u64 {
    let Some(pdpb::directive::Kind::Split(s)) = &d.kind else { panic!("not a split") };
    let ids = s.new_ids.clone().unwrap();
    let old = c.region(d.region_id).unwrap().clone();
    let mut right = old.region.clone();
    right.start_key = at.to_vec();
    right.region_epoch.as_mut().unwrap().version += 1;
    let mut left = right.clone();
    left.id = ids.region_id;
    left.start_key = old.region.start_key.clone();
    left.end_key = at.to_vec();
    for (p, id) in left.peers.iter_mut().zip(&ids.peer_ids) {
        p.id = *id;
    }
    let leader = old.leader.unwrap();
    let out = c
        .apply(&CatalogCommand::ReportRegions {
            regions: vec![left, right],
            leader: Some(leader),
            term: old.term,
            leaderships: Vec::new(),
        })
        .unwrap();
    let CommandOutcome::Regions { version, .. } = out else { panic!("{out:?}") };
    version
}

fn versions(all: u64) -> StoreVersions {
    StoreVersions { up: vec![(1, all), (2, all), (3, all)] }
}

#[test]
fn a_split_runs_sends_its_directive_succeeds_and_converges() {
    let now = t0();
    let mut c = catalog(Some(2));
    let sink = Recorder::default();
    let mut ctl = OperatorController::default();
    let op = split_op(&mut c, b"k", Source::Admin, now);
    let id = op.id;
    ctl.add(op).unwrap();

    ctl.tick(now, &c, &versions(c.version()), &PeerReports::default(), &sink);
    let sent = sink.take();
    assert_eq!(sent.len(), 1);
    let (store, d) = &sent[0];
    assert_eq!(*store, 2, "the directive goes to the region's leader");
    assert_eq!(d.id, id);
    assert_eq!(d.region_epoch, region(&c).region_epoch);
    let Some(pdpb::directive::Kind::Split(s)) = &d.kind else { panic!() };
    assert_eq!(s.split_key, b"k");
    assert_eq!(s.new_ids.as_ref().unwrap().peer_ids.len(), 3);
    assert!(ctl.get(id).unwrap().step.contains("sent to store 2"), "{}", ctl.get(id).unwrap().step);

    // Nothing new within the resend interval.
    ctl.tick(now.after(Duration::from_millis(500)), &c, &versions(0), &PeerReports::default(), &sink);
    assert!(sink.take().is_empty());

    let version = apply_split(&mut c, d, b"k");
    ctl.split_applied(id, version, &c, now.after(Duration::from_secs(1)));
    let op = ctl.get(id).unwrap().clone();
    assert_eq!(op.status, pdpb::OperatorStatus::Succeeded);
    assert_eq!(op.result_version, version);
    assert_eq!(op.result.len(), 2);
    assert_eq!(op.result[0].end_key, b"k");
    assert_eq!(op.finished_ms, now.unix_ms + 1000);
    assert!(ctl.check_free(op.region_id).is_ok(), "a finished operator frees its region");

    // Two of three stores have the split's routes: not converged yet.
    let partial = StoreVersions { up: vec![(1, version), (2, version), (3, version - 1)] };
    ctl.tick(now.after(Duration::from_secs(2)), &c, &partial, &PeerReports::default(), &sink);
    assert_eq!(ctl.get(id).unwrap().converged_ms, 0);
    assert_eq!(ctl.get(id).unwrap().to_pb(partial.converged(version)).converged_stores, 2);
    ctl.tick(now.after(Duration::from_secs(3)), &c, &versions(version), &PeerReports::default(), &sink);
    let op = ctl.get(id).unwrap();
    assert_eq!(op.converged_ms, now.unix_ms + 3000);
    assert_eq!(op.step, "converged on 3/3 stores");
    assert!(sink.take().is_empty());
}

#[test]
fn one_operator_per_region() {
    let now = t0();
    let mut c = catalog(None);
    let mut ctl = OperatorController::default();
    let first = split_op(&mut c, b"k", Source::Admin, now);
    let first_id = first.id;
    ctl.add(first).unwrap();
    let second = split_op(&mut c, b"m", Source::SplitChecker, now);
    let err = ctl.add(second.clone()).unwrap_err();
    assert!(
        matches!(&err, PdError::OperatorExists(m) if m.contains(&format!("operator {first_id}")) && m.contains("admin")),
        "{err}"
    );
    assert_eq!(ctl.list(false).len(), 1);
    ctl.cancel(first_id, now).unwrap();
    ctl.add(second).unwrap();
    assert_eq!(ctl.busy_regions().collect::<Vec<_>>(), vec![region(&c).id]);
}

#[test]
fn without_a_leader_an_operator_waits_then_times_out() {
    let now = t0();
    let mut c = catalog(None);
    let sink = Recorder::default();
    let mut ctl = OperatorController::default();
    let op = split_op(&mut c, b"k", Source::Admin, now);
    let id = op.id;
    ctl.add(op).unwrap();
    ctl.tick(now, &c, &versions(0), &PeerReports::default(), &sink);
    assert!(sink.take().is_empty());
    let op = ctl.get(id).unwrap();
    assert_eq!(op.status, pdpb::OperatorStatus::Running);
    assert!(op.step.contains("waiting for region"), "{}", op.step);

    ctl.tick(now.after(TIMEOUT - Duration::from_millis(1)), &c, &versions(0), &PeerReports::default(), &sink);
    assert_eq!(ctl.get(id).unwrap().status, pdpb::OperatorStatus::Running);
    ctl.tick(now.after(TIMEOUT), &c, &versions(0), &PeerReports::default(), &sink);
    let op = ctl.get(id).unwrap();
    assert_eq!(op.status, pdpb::OperatorStatus::TimedOut);
    let err = op.error.as_ref().unwrap();
    assert!(err.message.contains("60000 ms") && err.message.contains("waiting for region"), "{}", err.message);
    assert!(ctl.list(false).is_empty());
    assert_eq!(ctl.list(true).len(), 1);
}

#[test]
fn cancel_ends_a_running_operator_and_leaves_a_finished_one_alone() {
    let now = t0();
    let mut c = catalog(Some(1));
    let sink = Recorder::default();
    let mut ctl = OperatorController::default();
    let op = split_op(&mut c, b"k", Source::Admin, now);
    let id = op.id;
    ctl.add(op).unwrap();
    ctl.tick(now, &c, &versions(0), &PeerReports::default(), &sink);
    let cancelled = ctl.cancel(id, now.after(Duration::from_secs(1))).unwrap();
    assert_eq!(cancelled.status, pdpb::OperatorStatus::Cancelled);
    assert!(cancelled.error.unwrap().message.contains("cancelled"));
    assert_eq!(ctl.cancel(id, now).unwrap().finished_ms, cancelled.finished_ms, "cancel is idempotent");
    assert!(matches!(ctl.cancel(999, now), Err(PdError::OperatorNotFound(999))));

    // The store applies the split after all: the catalog takes it, the
    // cancelled operator stays cancelled.
    let d = sink.take().pop().unwrap().1;
    apply_split(&mut c, &d, b"k");
    ctl.tick(now.after(Duration::from_secs(2)), &c, &versions(0), &PeerReports::default(), &sink);
    assert_eq!(ctl.get(id).unwrap().status, pdpb::OperatorStatus::Cancelled);
}

#[test]
fn directives_follow_the_leader_and_are_resent_without_progress() {
    let now = t0();
    let mut c = catalog(Some(1));
    let sink = Recorder { offline: vec![3], ..Default::default() };
    let mut ctl = OperatorController::default();
    let op = split_op(&mut c, b"", Source::SplitChecker, now);
    let id = op.id;
    ctl.add(op).unwrap();
    ctl.tick(now, &c, &versions(0), &PeerReports::default(), &sink);
    assert_eq!(sink.take().iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![1]);

    ctl.tick(now.after(RESEND_INTERVAL), &c, &versions(0), &PeerReports::default(), &sink);
    let again = sink.take();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].1.id, id, "a re-sent directive is the same directive");
    assert!(ctl.get(id).unwrap().step.ends_with("attempt 2"));

    // The leader moves: the directive follows at once.
    lead(&mut c, 2, 2);
    ctl.tick(now.after(RESEND_INTERVAL + Duration::from_millis(100)), &c, &versions(0), &PeerReports::default(), &sink);
    assert_eq!(sink.take().iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![2]);

    // A leader PD cannot reach: the operator says so and keeps trying.
    lead(&mut c, 3, 3);
    ctl.tick(now.after(RESEND_INTERVAL + Duration::from_millis(200)), &c, &versions(0), &PeerReports::default(), &sink);
    assert!(sink.take().is_empty());
    let op = ctl.get(id).unwrap();
    assert_eq!(op.status, pdpb::OperatorStatus::Running);
    assert!(op.step.contains("cannot reach store 3"), "{}", op.step);
}

#[test]
fn passing_store_errors_are_retried_and_lasting_ones_fail_the_operator() {
    let now = t0();
    let mut c = catalog(Some(1));
    let sink = Recorder::default();
    let mut ctl = OperatorController::default();
    let op = split_op(&mut c, b"k", Source::Admin, now);
    let id = op.id;
    ctl.add(op).unwrap();
    ctl.tick(now, &c, &versions(0), &PeerReports::default(), &sink);
    sink.take();

    let not_leader = pdpb::Error { r#type: pdpb::ErrorType::NotLeader as i32, message: "moved".into(), leader: None };
    assert!(ctl.directive_failed(id, 1, not_leader, now.after(Duration::from_secs(1))));
    let op = ctl.get(id).unwrap();
    assert_eq!(op.status, pdpb::OperatorStatus::Running);
    assert!(op.step.contains("NOT_LEADER"), "{}", op.step);
    // Sent again once the interval has passed since the answer.
    ctl.tick(now.after(Duration::from_secs(2)), &c, &versions(0), &PeerReports::default(), &sink);
    assert!(sink.take().is_empty());
    ctl.tick(now.after(Duration::from_secs(1) + RESEND_INTERVAL), &c, &versions(0), &PeerReports::default(), &sink);
    assert_eq!(sink.take().len(), 1);

    let bad_key =
        pdpb::Error { r#type: pdpb::ErrorType::InvalidSplitKey as i32, message: "no middle".into(), leader: None };
    assert!(!ctl.directive_failed(id + 1000, 1, bad_key.clone(), now), "unknown directives are ignored");
    assert!(ctl.directive_failed(id, 1, bad_key.clone(), now.after(Duration::from_secs(4))));
    let op = ctl.get(id).unwrap();
    assert_eq!(op.status, pdpb::OperatorStatus::Failed);
    assert_eq!(op.error.as_ref(), Some(&bad_key));
    assert!(!ctl.directive_failed(id, 1, bad_key, now), "a finished operator takes no more answers");
}

#[test]
fn an_operator_fails_when_its_region_moves_on_without_it() {
    let now = t0();
    let mut c = catalog(Some(1));
    let sink = Recorder::default();
    let mut ctl = OperatorController::default();
    let op = split_op(&mut c, b"k", Source::SplitChecker, now);
    let id = op.id;
    let epoch = op.region_epoch;
    ctl.add(op).unwrap();
    // Another split (not this operator's) lands first.
    let other = split_op(&mut c, b"c", Source::Admin, now);
    apply_split(&mut c, &other.directive(), b"c");
    ctl.tick(now, &c, &versions(0), &PeerReports::default(), &sink);
    let op = ctl.get(id).unwrap();
    assert_eq!(op.status, pdpb::OperatorStatus::Failed);
    assert_eq!(op.error.as_ref().unwrap().r#type(), pdpb::ErrorType::StaleEpoch);
    assert_eq!(ctl.failed_checker_splits(), vec![(op.region_id, epoch)]);
}

#[test]
fn a_split_found_in_the_catalog_succeeds_without_its_report() {
    let now = t0();
    let mut c = catalog(Some(1));
    let sink = Recorder::default();
    let mut ctl = OperatorController::default();
    let op = split_op(&mut c, b"", Source::SplitChecker, now);
    let id = op.id;
    ctl.add(op).unwrap();
    ctl.tick(now, &c, &versions(0), &PeerReports::default(), &sink);
    let d = sink.take().pop().unwrap().1;
    // The leader picked "m" as the middle.
    apply_split(&mut c, &d, b"m");
    ctl.tick(now.after(Duration::from_secs(1)), &c, &versions(0), &PeerReports::default(), &sink);
    let op = ctl.get(id).unwrap();
    assert_eq!(op.status, pdpb::OperatorStatus::Succeeded);
    assert_eq!(op.result_version, c.version());
    assert_eq!(op.result[1].start_key, b"m");
}

#[test]
fn finished_operators_are_forgotten_by_age_and_count() {
    let now = t0();
    let mut c = catalog(None);
    let sink = Recorder::default();
    let mut ctl = OperatorController::default();
    let op = split_op(&mut c, b"k", Source::Admin, now);
    let id = op.id;
    ctl.add(op).unwrap();
    ctl.cancel(id, now).unwrap();
    ctl.tick(now.after(controller::KEEP_FINISHED_FOR), &c, &versions(0), &PeerReports::default(), &sink);
    assert!(ctl.get(id).is_some());
    ctl.tick(
        now.after(controller::KEEP_FINISHED_FOR + Duration::from_millis(1)),
        &c,
        &versions(0),
        &PeerReports::default(),
        &sink,
    );
    assert!(ctl.get(id).is_none());

    for _ in 0..controller::KEEP_FINISHED + 5 {
        let op = split_op(&mut c, b"k", Source::Admin, now);
        let id = op.id;
        ctl.add(op).unwrap();
        ctl.cancel(id, now).unwrap();
    }
    ctl.tick(now, &c, &versions(0), &PeerReports::default(), &sink);
    assert_eq!(ctl.list(true).len(), controller::KEEP_FINISHED);
}

#[test]
fn clearing_drops_everything() {
    let now = t0();
    let mut c = catalog(None);
    let mut ctl = OperatorController::default();
    ctl.add(split_op(&mut c, b"k", Source::Admin, now)).unwrap();
    assert_eq!(ctl.clear(), 1);
    assert!(ctl.list(true).is_empty());
    assert!(ctl.check_free(region(&c).id).is_ok());
}
