//! The step machine shared by the membership operators (move, add-peer,
//! remove-peer, leave-joint).
//!
//! A plan names at most one peer to add (its id allocated by PD, its store,
//! the role it ends with) and at most one store whose peer leaves. The next
//! step is a pure function of the catalog's record of the region (peers,
//! roles, leader) and the leader's last peer report (pending and down
//! peers), so every tick re-derives it from what the stores last reported:
//! a step is confirmed by the record moving on, a lost directive or a
//! leader change costs a re-send, and a region another change touched
//! meanwhile is taken from where it is. In order:
//!
//! 1. A region in a joint configuration leaves it first (`ChangePeers{}`).
//! 2. The new peer is added as a learner; while the leader sits on the
//!    store losing its peer, leadership first goes to another healthy voter.
//! 3. The learner must catch up: the leader's report at the region's
//!    current epoch no longer lists it as pending.
//! 4. It is promoted, and the leaving voter demoted, in one joint change
//!    (`[ADD_VOTER new, DEMOTE_VOTER old]`); with no other voter to lead,
//!    it is promoted alone and leadership moves to it before the demotion.
//!    A learner that moves stays a learner: nothing is promoted.
//! 5. The leaving peer, demoted to learner and not leading, is removed.
//!
//! Done when the region is not joint, the new peer has its final role, and
//! no peer remains on the leaving store.

use std::time::Duration;

use proto::{metapb, pdpb};

use super::peer_reports::PeerStatus;
use super::peer_step::PeerStep;
use crate::byte_size::ByteSize;
use crate::catalog::{RegionRecord, RouteCatalog};
use crate::error::{PdError, Result};

const VOTER: i32 = metapb::PeerRole::Voter as i32;
const LEARNER: i32 = metapb::PeerRole::Learner as i32;
const INCOMING: i32 = metapb::PeerRole::IncomingVoter as i32;
const DEMOTING: i32 = metapb::PeerRole::DemotingVoter as i32;

/// What a membership operator changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerPlan {
    /// The peer to add, with the role it ends with (a voter, or a learner
    /// when a learner moves).
    pub add: Option<metapb::Peer>,
    /// The store whose peer leaves the region.
    pub remove_store: Option<u64>,
}

/// What the operator does now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Step(PeerStep),
    /// Nothing can be asked now; the reason, for people.
    Wait(String),
    Done,
}

/// Whether any peer is in a joint role.
pub fn is_joint(region: &metapb::Region) -> bool {
    region.peers.iter().any(|p| p.role == INCOMING || p.role == DEMOTING)
}

fn peer_on(region: &metapb::Region, store_id: u64) -> Option<metapb::Peer> {
    region.peers.iter().find(|p| p.store_id == store_id).copied()
}

/// A voter that may lead instead of the one on `avoid_store`: on an Up
/// store, neither pending nor down in the leader's last report; the one on
/// `prefer_store` if it qualifies, else the lowest peer id.
pub fn pick_leader(
    region: &metapb::Region,
    status: Option<&PeerStatus>,
    catalog: &RouteCatalog,
    avoid_store: u64,
    prefer_store: Option<u64>,
) -> Option<metapb::Peer> {
    let mut fit: Vec<metapb::Peer> = region
        .peers
        .iter()
        .filter(|p| p.role == VOTER && p.store_id != avoid_store)
        .filter(|p| status.is_none_or(|s| !s.is_pending(p.id) && !s.is_down(p.id)))
        .filter(|p| catalog.store(p.store_id).is_some_and(|s| s.state == metapb::StoreState::Up as i32))
        .copied()
        .collect();
    fit.sort_by_key(|p| (Some(p.store_id) != prefer_store, p.id));
    fit.first().copied()
}

/// How long a membership operator on a region of `size` bytes may run: a
/// base for the steps themselves, plus the time to send the region's data
/// at `rate` bytes per second to a new peer.
pub fn timeout(base_ms: u64, rate: ByteSize, size: u64) -> Duration {
    let per_sec = rate.bytes().max(1);
    Duration::from_millis(base_ms) + Duration::from_millis(size.saturating_mul(1000) / per_sec)
}

impl PeerPlan {
    /// Whether the catalog's record shows the plan carried out.
    pub fn is_done(&self, region: &metapb::Region) -> bool {
        if is_joint(region) {
            return false;
        }
        let added =
            self.add.is_none_or(|a| peer_on(region, a.store_id).is_some_and(|p| p.id == a.id && p.role == a.role));
        let removed = self.remove_store.is_none_or(|s| peer_on(region, s).is_none());
        added && removed
    }

    /// The region, once the catalog's record shows the plan carried out.
    pub fn result(&self, region_id: u64, catalog: &RouteCatalog) -> Option<Vec<metapb::Region>> {
        let rec = catalog.region(region_id)?;
        self.is_done(&rec.region).then(|| vec![rec.region.clone()])
    }

    /// The next step from the catalog's record of the region and its
    /// leader's peer report at the record's epoch (`None`: none yet).
    ///
    /// # Errors
    ///
    /// `PeerExists` when another peer than the planned one turned up on the
    /// target store: someone else changed the region, and this plan no
    /// longer fits it.
    pub fn next(&self, rec: &RegionRecord, status: Option<&PeerStatus>, catalog: &RouteCatalog) -> Result<Next> {
        let r = &rec.region;
        if self.is_done(r) {
            return Ok(Next::Done);
        }
        let Some(leader) = rec.leader else {
            return Ok(Next::Wait(format!("waiting for region {} to report a leader", r.id)));
        };
        if is_joint(r) {
            return Ok(Next::Step(PeerStep::LeaveJoint));
        }
        let source = self.remove_store.and_then(|s| peer_on(r, s));
        let target = self.add.and_then(|a| peer_on(r, a.store_id));
        if let (Some(a), Some(t)) = (self.add, target)
            && t.id != a.id
        {
            return Err(PdError::PeerExists(format!(
                "store {} holds peer {} of region {}, not peer {} this operator added",
                a.store_id, t.id, r.id, a.id
            )));
        }
        let leader_on_source = source.is_some_and(|s| s.store_id == leader.store_id);
        let other_leader = || {
            let avoid = self.remove_store.unwrap_or_default();
            pick_leader(r, status, catalog, avoid, self.add.map(|a| a.store_id))
                .map(|to| PeerStep::TransferLeader { to })
        };
        if let Some(a) = self.add {
            let Some(t) = target else {
                if leader_on_source && let Some(step) = other_leader() {
                    return Ok(Next::Step(step));
                }
                return Ok(Next::Step(PeerStep::AddLearner {
                    peer: metapb::Peer { id: a.id, store_id: a.store_id, role: LEARNER },
                }));
            };
            if t.role == LEARNER && status.is_none_or(|s| s.is_pending(t.id)) {
                return Ok(Next::Step(PeerStep::CatchUp { peer: t }));
            }
            if a.role == VOTER && t.role == LEARNER {
                let mut changes = vec![change(pdpb::ChangeKind::AddVoter, t)];
                if let Some(s) = source.filter(|s| s.role == VOTER) {
                    if leader_on_source {
                        if let Some(step) = other_leader() {
                            return Ok(Next::Step(step));
                        }
                    } else {
                        changes.push(change(pdpb::ChangeKind::DemoteVoter, s));
                    }
                }
                return Ok(Next::Step(PeerStep::ChangePeers { changes }));
            }
        }
        if let Some(s) = source {
            if s.role == VOTER {
                if leader_on_source {
                    return Ok(match other_leader() {
                        Some(step) => Next::Step(step),
                        None => Next::Wait(format!(
                            "no healthy voter of region {} can take leadership from store {}",
                            r.id, s.store_id
                        )),
                    });
                }
                return Ok(Next::Step(PeerStep::ChangePeers {
                    changes: vec![change(pdpb::ChangeKind::DemoteVoter, s)],
                }));
            }
            return Ok(Next::Step(PeerStep::RemovePeer { peer: s }));
        }
        Ok(Next::Done)
    }

    /// Every step from `rec` to done, assuming each works at once: the plan
    /// `pdctl operator show` lists. Derived with [`PeerPlan::next`] itself.
    pub fn steps(&self, rec: &RegionRecord, status: Option<&PeerStatus>, catalog: &RouteCatalog) -> Vec<PeerStep> {
        let mut rec = rec.clone();
        let mut status = PeerStatus {
            epoch: rec.epoch(),
            pending: status.map(|s| s.pending.clone()).unwrap_or_default(),
            down: status.map(|s| s.down.clone()).unwrap_or_default(),
        };
        if rec.leader.is_none() {
            // No leader yet: plan as if a voter not leaving leads; a
            // transfer joins the plan if the real one leads from there.
            let avoid = self.remove_store.unwrap_or_default();
            rec.leader = pick_leader(&rec.region, None, catalog, avoid, None)
                .or_else(|| rec.region.peers.iter().find(|p| p.role == VOTER).copied());
        }
        let mut out: Vec<PeerStep> = Vec::new();
        // Every step changes the record; a dozen is far more than any plan.
        for _ in 0..12 {
            let Ok(Next::Step(step)) = self.next(&rec, Some(&status), catalog) else {
                break;
            };
            simulate(&mut rec, &mut status, &step);
            out.push(step);
        }
        out
    }
}

fn change(kind: pdpb::ChangeKind, peer: metapb::Peer) -> pdpb::PeerChange {
    pdpb::PeerChange { kind: kind as i32, peer: Some(peer) }
}

/// What a step does to the region when it works.
fn simulate(rec: &mut RegionRecord, status: &mut PeerStatus, step: &PeerStep) {
    let peers = &mut rec.region.peers;
    match step {
        PeerStep::TransferLeader { to } => rec.leader = Some(*to),
        PeerStep::AddLearner { peer } => {
            peers.push(*peer);
            status.pending.push(*peer);
        }
        PeerStep::CatchUp { peer } => status.pending.retain(|p| p.id != peer.id),
        PeerStep::ChangePeers { changes } => {
            for c in changes {
                let id = c.peer.unwrap_or_default().id;
                let role = if c.kind() == pdpb::ChangeKind::AddVoter { VOTER } else { LEARNER };
                peers.iter_mut().filter(|p| p.id == id).for_each(|p| p.role = role);
            }
        }
        PeerStep::LeaveJoint => {
            for p in peers.iter_mut() {
                p.role = match p.role {
                    INCOMING => VOTER,
                    DEMOTING => LEARNER,
                    other => other,
                };
            }
        }
        PeerStep::RemovePeer { peer } => peers.retain(|p| p.id != peer.id),
    }
}
