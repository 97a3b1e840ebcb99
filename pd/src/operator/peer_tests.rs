//! Membership operators driven by hand: a real catalog, a recording sink, a
//! scripted store that applies each directive the way the store contract
//! says, and time passed in.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use proto::{metapb, pdpb};

use super::controller::RESEND_INTERVAL;
use super::peer_plan::{Next, PeerPlan};
use super::*;
use crate::byte_size::ByteSize;
use crate::catalog::{CatalogCommand, CommandOutcome, RegionRecord, RouteCatalog};
use crate::error::PdError;

const TIMEOUT: Duration = Duration::from_secs(120);
const VOTER: i32 = metapb::PeerRole::Voter as i32;
const LEARNER: i32 = metapb::PeerRole::Learner as i32;
const INCOMING: i32 = metapb::PeerRole::IncomingVoter as i32;
const DEMOTING: i32 = metapb::PeerRole::DemotingVoter as i32;

#[derive(Default)]
struct Recorder {
    sent: RefCell<Vec<(u64, pdpb::Directive)>>,
}

impl DirectiveSink for Recorder {
    fn send(&self, store_id: u64, directive: pdpb::Directive) -> Result<(), String> {
        self.sent.borrow_mut().push((store_id, directive));
        Ok(())
    }
}

impl Recorder {
    fn take(&self) -> Vec<(u64, pdpb::Directive)> {
        std::mem::take(&mut self.sent.borrow_mut())
    }
}

/// The catalog, the leaders' peer reports and the clock of one test.
struct World {
    c: RouteCatalog,
    peers: PeerReports,
    ctl: OperatorController,
    sink: Recorder,
    now: Now,
}

/// Stores 1..=4, one region over everything on `voters`, led from the
/// first of them.
fn world(voters: &[u64]) -> World {
    let mut c = RouteCatalog::new();
    c.apply(&CatalogCommand::AllocIds { count: 4 }).unwrap();
    for id in 1..=4 {
        let store = metapb::Store { id, address: format!("127.0.0.1:{}", 20160 + id), ..Default::default() };
        c.apply(&CatalogCommand::PutStore { store }).unwrap();
    }
    c.apply(&CatalogCommand::Bootstrap { store_ids: voters.to_vec(), split_keys: vec![] }).unwrap();
    let mut w = World {
        c,
        peers: PeerReports::default(),
        ctl: OperatorController::default(),
        sink: Recorder::default(),
        now: Now { at: Instant::now(), unix_ms: 1_700_000_000_000 },
    };
    let r = w.region();
    w.report(r, voters[0], &[]);
    w
}

impl World {
    fn rec(&self) -> RegionRecord {
        self.c.regions().next().unwrap().clone()
    }

    fn region(&self) -> metapb::Region {
        self.rec().region
    }

    /// The region's leader on `leader_store` reports `region` with these
    /// pending peers (a term up, so a leader change is never stale).
    fn report(&mut self, region: metapb::Region, leader_store: u64, pending: &[u64]) {
        let term = self.c.regions().next().map_or(1, |r| r.term + 1);
        let leader = *region.peers.iter().find(|p| p.store_id == leader_store).unwrap();
        let pending = region.peers.iter().filter(|p| pending.contains(&p.id)).copied().collect();
        let status = PeerStatus { epoch: region.region_epoch.unwrap(), pending, down: Vec::new() };
        self.peers.record(region.id, status);
        self.c
            .apply(&CatalogCommand::ReportRegions {
                regions: vec![region],
                leader: Some(leader),
                term,
                leaderships: Vec::new(),
            })
            .unwrap();
    }

    fn leader_store(&self) -> u64 {
        self.rec().leader.unwrap().store_id
    }

    fn alloc(&mut self, count: u32) -> u64 {
        let Ok(CommandOutcome::Ids { first, .. }) = self.c.apply(&CatalogCommand::AllocIds { count }) else {
            panic!("alloc")
        };
        first
    }

    fn status(&self) -> Option<PeerStatus> {
        let rec = self.rec();
        self.peers.current(rec.region.id, &rec.epoch()).cloned()
    }

    fn tick(&mut self) -> Vec<(u64, pdpb::Directive)> {
        self.now = self.now.after(Duration::from_millis(500));
        let versions = StoreVersions { up: (1..=4).map(|s| (s, self.c.version())).collect() };
        self.ctl.tick(self.now, &self.c, &versions, &self.peers, &self.sink);
        self.sink.take()
    }

    /// Ticks until a directive goes out; exactly one must.
    fn next_directive(&mut self) -> (u64, pdpb::Directive) {
        for _ in 0..3 {
            let mut sent = self.tick();
            if !sent.is_empty() {
                assert_eq!(sent.len(), 1, "{sent:?}");
                return sent.pop().unwrap();
            }
        }
        panic!("no directive; operators: {:?}", self.ctl.list(true));
    }

    /// What the store contract says the leader does with `d`. `joint_only`:
    /// a change of several peers stops after its joint half (the leader
    /// lost leadership in between).
    fn carry_out(&mut self, store: u64, d: &pdpb::Directive, joint_only: bool) {
        assert_eq!(store, self.leader_store(), "directives go to the region's leader");
        let mut r = self.region();
        assert_eq!(d.region_epoch, r.region_epoch, "directives carry the region's current epoch");
        let epoch = r.region_epoch.as_mut().unwrap();
        let mut leader = store;
        let mut pending = Vec::new();
        match d.kind.as_ref().unwrap() {
            pdpb::directive::Kind::TransferLeader(t) => leader = t.peer.unwrap().store_id,
            pdpb::directive::Kind::AddLearner(a) => {
                let p = a.peer.unwrap();
                assert_eq!(p.role, LEARNER);
                r.peers.push(p);
                epoch.conf_ver += 1;
                pending.push(p.id);
            }
            pdpb::directive::Kind::ChangePeers(cp) if cp.changes.is_empty() => {
                for p in &mut r.peers {
                    p.role = match p.role {
                        INCOMING => VOTER,
                        DEMOTING => LEARNER,
                        other => other,
                    };
                }
                epoch.conf_ver += 1;
            }
            pdpb::directive::Kind::ChangePeers(cp) => {
                for c in &cp.changes {
                    let id = c.peer.unwrap().id;
                    let p = r.peers.iter_mut().find(|p| p.id == id).unwrap();
                    p.role = match (c.kind(), joint_only) {
                        (pdpb::ChangeKind::AddVoter, true) => INCOMING,
                        (pdpb::ChangeKind::AddVoter, false) => VOTER,
                        (pdpb::ChangeKind::DemoteVoter, true) => DEMOTING,
                        (pdpb::ChangeKind::DemoteVoter, false) => LEARNER,
                        other => panic!("unexpected change {other:?}"),
                    };
                }
                epoch.conf_ver += if joint_only { 1 } else { 2 };
            }
            pdpb::directive::Kind::RemovePeer(rp) => {
                let p = rp.peer.unwrap();
                assert_eq!(r.peers.iter().find(|x| x.id == p.id).unwrap().role, LEARNER, "only learners are removed");
                assert_ne!(p.store_id, store, "the leader never removes itself");
                r.peers.retain(|x| x.id != p.id);
                epoch.conf_ver += 1;
            }
            pdpb::directive::Kind::Split(_) => panic!("no splits here"),
        }
        self.report(r, leader, &pending);
    }

    /// The new learner caught up: the leader reports it not pending.
    fn caught_up(&mut self) {
        let r = self.region();
        let leader = self.leader_store();
        self.report(r, leader, &[]);
    }

    fn op(&self, id: u64) -> pdpb::Operator {
        self.ctl.get(id).unwrap().to_pb((0, 0))
    }
}

/// A short name for a directive, for comparing sequences.
fn name(d: &pdpb::Directive) -> String {
    match d.kind.as_ref().unwrap() {
        pdpb::directive::Kind::TransferLeader(t) => format!("transfer->{}", t.peer.unwrap().store_id),
        pdpb::directive::Kind::AddLearner(a) => format!("add-learner@{}", a.peer.unwrap().store_id),
        pdpb::directive::Kind::ChangePeers(c) if c.changes.is_empty() => "leave-joint".into(),
        pdpb::directive::Kind::ChangePeers(c) => {
            let parts: Vec<String> = c
                .changes
                .iter()
                .map(|x| {
                    let verb = if x.kind() == pdpb::ChangeKind::AddVoter { "promote" } else { "demote" };
                    format!("{verb}@{}", x.peer.unwrap().store_id)
                })
                .collect();
            parts.join("+")
        }
        pdpb::directive::Kind::RemovePeer(r) => format!("remove@{}", r.peer.unwrap().store_id),
        pdpb::directive::Kind::Split(_) => "split".into(),
    }
}

fn start_move(w: &mut World, from: u64, to: u64) -> u64 {
    let rec = w.rec();
    let status = w.status();
    let moving = move_peer::validate(&rec, status.as_ref(), &w.c, &BTreeSet::new(), from, to).unwrap();
    let first = w.alloc(2);
    let op =
        move_peer::operator(&rec, status.as_ref(), &w.c, moving, to, (first, first + 1), Source::Admin, w.now, TIMEOUT);
    w.ctl.add(op).unwrap();
    first
}

/// Runs the operator to its end, the store carrying out every directive
/// (catching the learner up when it waits); returns the directives' names.
fn run_to_end(w: &mut World, id: u64) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..20 {
        if !w.ctl.get(id).unwrap().is_running() {
            return seen;
        }
        let sent = w.tick();
        match sent.as_slice() {
            [] => {
                if w.ctl.get(id).unwrap().is_running() {
                    assert!(w.op(id).step.contains("catch up"), "waits only for a learner: {}", w.op(id).step);
                    w.caught_up();
                }
            }
            [(store, d)] => {
                assert_eq!(d.id, id, "every directive carries the operator id");
                seen.push(name(d));
                w.carry_out(*store, d, false);
            }
            more => panic!("one directive at a time: {more:?}"),
        }
    }
    panic!("operator {id} did not end: {:?}", w.op(id));
}

#[test]
fn a_move_off_the_leader_transfers_adds_catches_up_promotes_and_removes() {
    let mut w = world(&[1, 2, 3]);
    let id = start_move(&mut w, 1, 4);
    let op = w.op(id);
    assert_eq!((op.source_store_id, op.target_store_id, op.new_peer_id), (1, 4, id + 1));
    assert_eq!(op.steps.len(), 5, "{:?}", op.steps);
    assert!(op.steps[0].starts_with("transfer leadership to peer"), "{:?}", op.steps);
    assert!(op.steps[1].starts_with(&format!("add learner {} on store 4", id + 1)), "{:?}", op.steps);
    assert!(op.steps[2].contains("catch up"), "{:?}", op.steps);
    assert!(op.steps[3].contains("joint consensus"), "{:?}", op.steps);
    assert!(op.steps[4].starts_with("remove peer"), "{:?}", op.steps);
    assert_eq!(op.timeout_ms, TIMEOUT.as_millis() as u64);

    let (store, d) = w.next_directive();
    assert_eq!((store, name(&d)), (1, "transfer->2".to_string()), "leadership leaves the source first");
    assert_eq!(w.op(id).step_index, 0);
    w.carry_out(store, &d, false);
    let (store, d) = w.next_directive();
    assert_eq!((store, name(&d)), (2, "add-learner@4".to_string()));
    let Some(pdpb::directive::Kind::AddLearner(a)) = &d.kind else { panic!() };
    assert_eq!(a.peer.unwrap().id, id + 1, "the new peer has the id PD allocated");
    assert_eq!(w.op(id).step_index, 1);
    w.carry_out(store, &d, false);

    // Pending: nothing is sent, for as long as it takes.
    assert!(w.tick().is_empty());
    w.now = w.now.after(RESEND_INTERVAL * 3);
    assert!(w.tick().is_empty(), "waiting for catch-up sends nothing");
    assert_eq!(w.op(id).step_index, 2);
    assert!(w.op(id).step.contains("pending"), "{}", w.op(id).step);
    w.caught_up();
    let (store, d) = w.next_directive();
    assert_eq!(name(&d), "promote@4+demote@1");
    assert_eq!(w.op(id).step_index, 3);
    w.carry_out(store, &d, false);
    let (store, d) = w.next_directive();
    assert_eq!(name(&d), "remove@1");
    assert_eq!(w.op(id).step_index, 4);
    w.carry_out(store, &d, false);
    w.tick();
    let op = w.op(id);
    assert_eq!(op.status(), pdpb::OperatorStatus::Succeeded, "{op:?}");
    let peers = &w.region().peers;
    assert!(peers.iter().all(|p| p.store_id != 1 && p.role == VOTER), "{peers:?}");
    assert!(peers.iter().any(|p| p.store_id == 4 && p.id == id + 1));
    assert_eq!(op.result.len(), 1);
}

#[test]
fn a_move_not_off_the_leader_skips_the_transfer() {
    let mut w = world(&[1, 2, 3]);
    let id = start_move(&mut w, 3, 4);
    assert_eq!(w.op(id).steps.len(), 4);
    assert_eq!(run_to_end(&mut w, id), ["add-learner@4", "promote@4+demote@3", "remove@3"]);
    assert_eq!(w.op(id).status(), pdpb::OperatorStatus::Succeeded);
    assert_eq!(w.leader_store(), 1);
}

#[test]
fn a_region_left_joint_is_asked_to_leave_it_before_the_removal() {
    let mut w = world(&[1, 2, 3]);
    let id = start_move(&mut w, 3, 4);
    let (s, d) = w.next_directive();
    w.carry_out(s, &d, false);
    w.caught_up();
    let (s, d) = w.next_directive();
    assert_eq!(name(&d), "promote@4+demote@3");
    // The leader lost leadership between the joint and the uniform config.
    w.carry_out(s, &d, true);
    assert!(w.region().peers.iter().any(|p| p.role == INCOMING));
    let (s, d) = w.next_directive();
    assert_eq!(name(&d), "leave-joint", "ChangePeers{{}} leaves the joint state");
    assert!(w.op(id).steps.iter().any(|s| s.contains("joint configuration")), "{:?}", w.op(id).steps);
    w.carry_out(s, &d, false);
    assert_eq!(run_to_end(&mut w, id), ["remove@3"]);
    assert_eq!(w.op(id).status(), pdpb::OperatorStatus::Succeeded);
}

#[test]
fn a_lost_directive_goes_again_and_a_stale_epoch_answer_passes() {
    let mut w = world(&[1, 2, 3]);
    let id = start_move(&mut w, 3, 4);
    let (_, first) = w.next_directive();
    assert!(w.tick().is_empty(), "not again within the resend interval");
    w.now = w.now.after(RESEND_INTERVAL);
    let (_, again) = w.next_directive();
    assert_eq!(first, again);
    // A repeat that reaches the store after the first took effect is stale.
    w.carry_out(1, &first, false);
    let err = pdpb::Error { r#type: pdpb::ErrorType::StaleEpoch as i32, message: "epoch moved".into(), leader: None };
    assert!(w.ctl.directive_failed(id, 1, err, w.now));
    assert!(w.ctl.get(id).unwrap().is_running(), "STALE_EPOCH does not end a membership operator");
    w.caught_up();
    let (_, d) = w.next_directive();
    assert_eq!(name(&d), "promote@4+demote@3");
    let err = pdpb::Error { r#type: pdpb::ErrorType::InvalidArgument as i32, message: "no".into(), leader: None };
    w.ctl.directive_failed(id, 1, err, w.now);
    let op = w.op(id);
    assert_eq!(op.status(), pdpb::OperatorStatus::Failed);
    assert_eq!(op.error.unwrap().r#type(), pdpb::ErrorType::InvalidArgument);
}

#[test]
fn add_peer_adds_a_learner_and_promotes_it() {
    let mut w = world(&[1, 2]);
    add_peer::validate(&w.rec(), &w.c, &BTreeSet::new(), 3).unwrap();
    let first = w.alloc(2);
    let op = add_peer::operator(&w.rec(), None, &w.c, 3, (first, first + 1), Source::ReplicaRepair, w.now, TIMEOUT);
    w.ctl.add(op).unwrap();
    assert_eq!(w.op(first).source, "replica-repair");
    assert_eq!(run_to_end(&mut w, first), ["add-learner@3", "promote@3"]);
    assert_eq!(w.op(first).status(), pdpb::OperatorStatus::Succeeded);
    assert_eq!(w.region().peers.iter().filter(|p| p.role == VOTER).count(), 3);
}

#[test]
fn remove_peer_moves_leadership_demotes_then_removes() {
    let mut w = world(&[1, 2, 3]);
    remove_peer::validate(&w.rec(), None, &w.c, &BTreeSet::new(), 1).unwrap();
    let id = w.alloc(1);
    let op = remove_peer::operator(&w.rec(), None, &w.c, 1, id, Source::Decommission, w.now, TIMEOUT);
    w.ctl.add(op).unwrap();
    assert_eq!(w.op(id).steps.len(), 3);
    assert_eq!(run_to_end(&mut w, id), ["transfer->2", "demote@1", "remove@1"]);
    assert_eq!(w.op(id).status(), pdpb::OperatorStatus::Succeeded);
    assert_eq!(w.region().peers.len(), 2);
}

#[test]
fn a_learner_moves_as_a_learner() {
    let mut w = world(&[1, 2]);
    let first = w.alloc(2);
    let op = add_peer::operator(&w.rec(), None, &w.c, 3, (first, first + 1), Source::Admin, w.now, TIMEOUT);
    w.ctl.add(op).unwrap();
    // Only the learner half: the store adds it, PD is cancelled before promotion.
    let (s, d) = w.next_directive();
    w.carry_out(s, &d, false);
    w.caught_up();
    w.ctl.cancel(first, w.now).unwrap();
    let id = start_move(&mut w, 3, 4);
    assert_eq!(run_to_end(&mut w, id), ["add-learner@4", "remove@3"]);
    let on4 = w.region().peers.into_iter().find(|p| p.store_id == 4).unwrap();
    assert_eq!(on4.role, LEARNER);
}

#[test]
fn a_single_voter_moves_by_promoting_first_then_handing_over() {
    let mut w = world(&[1]);
    let id = start_move(&mut w, 1, 2);
    let planned = w.op(id).steps;
    let ran = run_to_end(&mut w, id);
    assert_eq!(ran, ["add-learner@2", "promote@2", "transfer->2", "demote@1", "remove@1"]);
    assert_eq!(planned.len(), 6, "the plan includes the catch-up wait: {planned:?}");
    assert_eq!(w.op(id).status(), pdpb::OperatorStatus::Succeeded);
    assert_eq!(w.leader_store(), 2);
}

#[test]
fn leave_joint_runs_only_on_a_joint_region() {
    let mut w = world(&[1, 2, 3]);
    assert!(matches!(leave_joint::validate(&w.rec()), Err(PdError::InvalidArgument(_))));
    let mut r = w.region();
    r.peers[2].role = DEMOTING;
    r.region_epoch.as_mut().unwrap().conf_ver += 1;
    w.report(r, 1, &[]);
    leave_joint::validate(&w.rec()).unwrap();
    let id = w.alloc(1);
    let op = leave_joint::operator(&w.rec(), None, &w.c, id, Source::JointChecker, w.now, TIMEOUT);
    w.ctl.add(op).unwrap();
    assert_eq!(run_to_end(&mut w, id), ["leave-joint"]);
    assert_eq!(w.op(id).status(), pdpb::OperatorStatus::Succeeded);
}

#[test]
fn another_peer_on_the_target_fails_the_move() {
    let mut w = world(&[1, 2, 3]);
    let id = start_move(&mut w, 3, 4);
    let mut r = w.region();
    let stranger = w.alloc(1);
    r.peers.push(metapb::Peer { id: stranger, store_id: 4, role: LEARNER });
    r.region_epoch.as_mut().unwrap().conf_ver += 1;
    w.report(r, 1, &[]);
    w.tick();
    let op = w.op(id);
    assert_eq!(op.status(), pdpb::OperatorStatus::Failed);
    assert_eq!(op.error.unwrap().r#type(), pdpb::ErrorType::PeerExists);
}

#[test]
fn requests_are_validated_with_typed_errors() {
    let mut w = world(&[1, 2, 3]);
    let rec = w.rec();
    let none = BTreeSet::new();
    let check = |from, to| move_peer::validate(&rec, None, &w.c, &none, from, to);
    assert!(matches!(check(1, 1), Err(PdError::InvalidArgument(_))));
    assert!(matches!(check(9, 4), Err(PdError::StoreNotFound(9))));
    assert!(matches!(check(1, 9), Err(PdError::StoreNotFound(9))));
    assert!(matches!(check(4, 1), Err(PdError::PeerNotFound(_))));
    assert!(matches!(check(1, 2), Err(PdError::PeerExists(_))));
    assert!(matches!(add_peer::validate(&rec, &w.c, &none, 2), Err(PdError::PeerExists(_))));
    assert!(matches!(remove_peer::validate(&rec, None, &w.c, &none, 4), Err(PdError::PeerNotFound(_))));

    // Store 4 offline: it takes no new peer.
    let mut snap = w.c.to_snapshot();
    for s in &mut snap.stores {
        if s.id == 4 {
            s.state = metapb::StoreState::Offline as i32;
        }
    }
    let offline = RouteCatalog::from_snapshot(snap).unwrap();
    assert!(matches!(move_peer::validate(&rec, None, &offline, &none, 1, 4), Err(PdError::StoreUnavailable(_))));
    assert!(matches!(add_peer::validate(&rec, &offline, &none, 4), Err(PdError::StoreUnavailable(_))));

    // Store 2's peer is down: removing store 3's would leave 1 healthy voter of 2.
    let mut status = w.status().unwrap();
    status.down = vec![*rec.region.peers.iter().find(|p| p.store_id == 2).unwrap()];
    assert!(matches!(remove_peer::validate(&rec, Some(&status), &w.c, &none, 3), Err(PdError::QuorumAtRisk(_))));
    remove_peer::validate(&rec, Some(&status), &w.c, &none, 2).expect("removing the down one is fine");
    move_peer::validate(&rec, Some(&status), &w.c, &none, 3, 4).expect("a move keeps 2 of 3 healthy");

    // Stores PD reports Down take no peer, and their voters are not healthy.
    let down4 = BTreeSet::from([4]);
    assert!(
        matches!(add_peer::validate(&rec, &w.c, &down4, 4), Err(PdError::StoreUnavailable(m)) if m.contains("Down"))
    );
    assert!(matches!(move_peer::validate(&rec, None, &w.c, &down4, 1, 4), Err(PdError::StoreUnavailable(_))));
    let down2 = BTreeSet::from([2]);
    assert!(matches!(remove_peer::validate(&rec, None, &w.c, &down2, 3), Err(PdError::QuorumAtRisk(_))));

    // The last voter never goes.
    let w1 = world(&[1]);
    assert!(matches!(remove_peer::validate(&w1.rec(), None, &w1.c, &none, 1), Err(PdError::QuorumAtRisk(_))));

    // One operator per region.
    let id = start_move(&mut w, 3, 4);
    assert!(
        matches!(w.ctl.check_free(w.rec().region.id), Err(PdError::OperatorExists(m)) if m.contains(&id.to_string()))
    );
}

#[test]
fn the_plan_is_a_function_of_the_record_and_timeouts_grow_with_size() {
    let w = world(&[1, 2, 3]);
    let plan = PeerPlan { add: None, remove_store: Some(3) };
    let mut rec = w.rec();
    rec.leader = None;
    assert!(matches!(plan.next(&rec, None, &w.c), Ok(Next::Wait(m)) if m.contains("leader")));
    assert_eq!(
        peer_plan::timeout(120_000, ByteSize::mib(8), 96 << 20),
        Duration::from_secs(132),
        "96 MiB at 8 MiB/s adds 12 s"
    );
    assert_eq!(peer_plan::timeout(1_000, ByteSize::mib(8), 0), Duration::from_secs(1));
}

#[test]
fn a_region_without_a_leader_still_gets_a_plan() {
    let mut c = world(&[1, 2, 3]).c;
    let mut snap = c.to_snapshot();
    for r in &mut snap.regions {
        r.leader = None;
    }
    c = RouteCatalog::from_snapshot(snap).unwrap();
    let rec = c.regions().next().unwrap().clone();
    assert!(rec.leader.is_none());
    let plan = PeerPlan { add: None, remove_store: Some(1) };
    let steps: Vec<&str> = plan.steps(&rec, None, &c).iter().map(peer_step::PeerStep::label).collect();
    assert_eq!(steps, ["change_peers", "remove_peer"]);
}
