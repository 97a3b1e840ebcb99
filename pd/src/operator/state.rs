//! One operator: what it changes, where it stands, and how it ended.

use std::time::Instant;

use proto::{metapb, pdpb};

use super::peer_plan::PeerPlan;
use super::peer_reports::PeerStatus;
use super::peer_step::PeerStep;
use super::split_plan::SplitPlan;
use super::transfer_plan::TransferPlan;
use crate::catalog::{RegionRecord, RouteCatalog};

/// Who asked for an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The admin API: gRPC, HTTP or pdctl.
    Admin,
    /// PD's own split checker.
    SplitChecker,
    /// PD's replica checker, re-creating missing replicas.
    ReplicaRepair,
    /// Moving replicas off a store being deleted.
    Decommission,
    /// PD's check for regions left in a joint configuration.
    JointChecker,
}

impl Source {
    pub const ALL: [Source; 5] =
        [Source::Admin, Source::SplitChecker, Source::ReplicaRepair, Source::Decommission, Source::JointChecker];

    /// The name in `Operator.source` and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Admin => "admin",
            Source::SplitChecker => "split-checker",
            Source::ReplicaRepair => "replica-repair",
            Source::Decommission => "decommission",
            Source::JointChecker => "joint-checker",
        }
    }
}

/// What an operator changes. Each kind's steps live in their own file.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Split(SplitPlan),
    TransferLeader(TransferPlan),
    /// A replica moves between stores.
    Move(PeerPlan),
    AddPeer(PeerPlan),
    RemovePeer(PeerPlan),
    LeaveJoint(PeerPlan),
}

impl Kind {
    pub fn pb(&self) -> pdpb::OperatorKind {
        match self {
            Kind::Split(_) => pdpb::OperatorKind::Split,
            Kind::TransferLeader(_) => pdpb::OperatorKind::TransferLeader,
            Kind::Move(_) => pdpb::OperatorKind::Move,
            Kind::AddPeer(_) => pdpb::OperatorKind::AddPeer,
            Kind::RemovePeer(_) => pdpb::OperatorKind::RemovePeer,
            Kind::LeaveJoint(_) => pdpb::OperatorKind::LeaveJoint,
        }
    }

    /// The name in metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Split(_) => "split",
            Kind::TransferLeader(_) => "transfer_leader",
            Kind::Move(_) => "move",
            Kind::AddPeer(_) => "add_peer",
            Kind::RemovePeer(_) => "remove_peer",
            Kind::LeaveJoint(_) => "leave_joint",
        }
    }

    /// The membership plan of a move, add-peer, remove-peer or leave-joint
    /// operator: those run in steps re-derived from the catalog.
    pub fn peer_plan(&self) -> Option<&PeerPlan> {
        match self {
            Kind::Move(p) | Kind::AddPeer(p) | Kind::RemovePeer(p) | Kind::LeaveJoint(p) => Some(p),
            Kind::Split(_) | Kind::TransferLeader(_) => None,
        }
    }

    /// What the change produced, once the catalog holds it.
    pub fn result(&self, region_id: u64, catalog: &RouteCatalog) -> Option<Vec<metapb::Region>> {
        match self {
            Kind::Split(plan) => plan.result(region_id, catalog),
            Kind::TransferLeader(plan) => plan.result(region_id, catalog),
            Kind::Move(plan) | Kind::AddPeer(plan) | Kind::RemovePeer(plan) | Kind::LeaveJoint(plan) => {
                plan.result(region_id, catalog)
            }
        }
    }
}

/// The label values of `kind` in operator metrics.
pub const KIND_NAMES: [&str; 6] = ["split", "transfer_leader", "move", "add_peer", "remove_peer", "leave_joint"];

/// How an operator ended, as counted in metrics.
pub fn outcome_name(status: pdpb::OperatorStatus) -> &'static str {
    match status {
        pdpb::OperatorStatus::Running => "running",
        pdpb::OperatorStatus::Succeeded => "succeeded",
        pdpb::OperatorStatus::Failed => "failed",
        pdpb::OperatorStatus::TimedOut => "timed_out",
        pdpb::OperatorStatus::Cancelled => "cancelled",
    }
}

/// The label values of `outcome` in `pd_operators_finished_total`.
pub const OUTCOME_NAMES: [&str; 4] = ["succeeded", "failed", "timed_out", "cancelled"];

/// Where the operator's directive last went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub store_id: u64,
    pub at: Instant,
    /// How many times it has been sent in all.
    pub count: u32,
}

/// A change PD drives for one region. Lives in the leader's memory only.
///
/// Invariant: `status` is RUNNING exactly while `finished_ms` is 0, and an
/// operator leaves RUNNING once.
#[derive(Debug, Clone, PartialEq)]
pub struct Operator {
    /// Allocated from the catalog's id space, so it never repeats, not even
    /// across PD leaders; it is also the id of the operator's directive.
    pub id: u64,
    pub region_id: u64,
    pub kind: Kind,
    pub source: Source,
    /// The region's epoch when the operator was created; its directive
    /// carries it, and the region moving past it without the operator's
    /// change ends the operator.
    pub region_epoch: metapb::RegionEpoch,
    pub status: pdpb::OperatorStatus,
    /// What it is doing or last did, for people.
    pub step: String,
    pub error: Option<pdpb::Error>,
    pub created: Instant,
    pub created_ms: u64,
    pub deadline: Instant,
    pub finished_ms: u64,
    /// A catalog version holding the result; 0 until the catalog does.
    pub result_version: u64,
    /// The regions the change produced, as the catalog held them.
    pub result: Vec<metapb::Region>,
    /// When every Up store first reported `result_version`; 0 until then.
    pub converged_ms: u64,
    pub sent: Option<Sent>,
    /// Membership operators: the planned steps, the one running now (an
    /// index into `steps`), the directive it last sent and the epoch it
    /// carried (a new step or epoch sends at once), and when the step
    /// started.
    pub steps: Vec<PeerStep>,
    pub step_index: usize,
    pub current: Option<(PeerStep, metapb::RegionEpoch)>,
    pub step_started: Instant,
}

impl Operator {
    /// A new operator on `rec`'s region, running from `now` until `timeout`.
    pub fn running(
        id: u64,
        rec: &crate::catalog::RegionRecord,
        kind: Kind,
        source: Source,
        step: String,
        now: super::clock::Now,
        timeout: std::time::Duration,
    ) -> Operator {
        Operator {
            id,
            region_id: rec.region.id,
            kind,
            source,
            region_epoch: rec.epoch(),
            status: pdpb::OperatorStatus::Running,
            step,
            error: None,
            created: now.at,
            created_ms: now.unix_ms,
            deadline: now.at + timeout,
            finished_ms: 0,
            result_version: 0,
            result: Vec::new(),
            converged_ms: 0,
            sent: None,
            steps: Vec::new(),
            step_index: 0,
            current: None,
            step_started: now.at,
        }
    }

    /// A new membership operator on `rec`'s region, its steps planned from
    /// the record and the leader's last peer report.
    #[allow(clippy::too_many_arguments)]
    pub fn stepped(
        id: u64,
        rec: &RegionRecord,
        kind: Kind,
        source: Source,
        now: super::clock::Now,
        timeout: std::time::Duration,
        status: Option<&PeerStatus>,
        catalog: &RouteCatalog,
    ) -> Operator {
        let steps = kind.peer_plan().map(|p| p.steps(rec, status, catalog)).unwrap_or_default();
        let step = match steps.first() {
            Some(first) => format!("created; first step: {}", first.describe()),
            None => "created".into(),
        };
        let mut op = Operator::running(id, rec, kind, source, step, now, timeout);
        op.steps = steps;
        op
    }

    /// Makes `step` the current one: the planned step of its kind from the
    /// current one on, or one planned earlier (a leader moved back), or a
    /// new one inserted after the current one. Returns whether the step
    /// changed.
    pub fn enter_step(&mut self, step: &PeerStep) -> bool {
        if self.steps.get(self.step_index) == Some(step) {
            return false;
        }
        let ahead = (self.step_index..self.steps.len()).find(|&i| self.steps[i].same_kind(step));
        let index = match ahead.or_else(|| self.steps.iter().position(|s| s.same_kind(step))) {
            Some(i) => i,
            None => {
                let at = (self.step_index + 1).min(self.steps.len());
                self.steps.insert(at, step.clone());
                at
            }
        };
        self.steps[index] = step.clone();
        self.step_index = index;
        true
    }

    pub fn is_running(&self) -> bool {
        self.status == pdpb::OperatorStatus::Running
    }

    /// The directive a split or transfer-leader operator sends to the
    /// region's leader (membership operators send their current step's).
    pub fn directive(&self) -> pdpb::Directive {
        let kind = match &self.kind {
            Kind::Split(plan) => Some(plan.directive_kind()),
            Kind::TransferLeader(plan) => Some(plan.directive_kind()),
            Kind::Move(_) | Kind::AddPeer(_) | Kind::RemovePeer(_) | Kind::LeaveJoint(_) => {
                self.current.as_ref().and_then(|(step, _)| step.directive_kind())
            }
        };
        let epoch = match &self.current {
            Some((_, epoch)) if self.kind.peer_plan().is_some() => *epoch,
            _ => self.region_epoch,
        };
        pdpb::Directive { id: self.id, region_id: self.region_id, region_epoch: Some(epoch), kind }
    }

    /// The wire form; `converged` is (Up stores at `result_version`, Up
    /// stores), computed by the caller from the stores' heartbeats.
    pub fn to_pb(&self, converged: (u32, u32)) -> pdpb::Operator {
        let (split_key, new_region_id, target_store_id) = match &self.kind {
            Kind::Split(plan) => (plan.split_key.clone(), plan.new_ids.region_id, 0),
            Kind::TransferLeader(plan) => (Vec::new(), 0, plan.to.store_id),
            Kind::Move(plan) | Kind::AddPeer(plan) | Kind::RemovePeer(plan) | Kind::LeaveJoint(plan) => {
                (Vec::new(), 0, plan.add.map_or(0, |p| p.store_id))
            }
        };
        let plan = self.kind.peer_plan();
        pdpb::Operator {
            id: self.id,
            region_id: self.region_id,
            kind: self.kind.pb() as i32,
            status: self.status as i32,
            step: self.step.clone(),
            error: self.error.clone(),
            source: self.source.as_str().to_string(),
            region_epoch: Some(self.region_epoch),
            split_key,
            new_region_id,
            result_version: self.result_version,
            converged_stores: converged.0,
            total_stores: converged.1,
            created_ms: self.created_ms,
            finished_ms: self.finished_ms,
            converged_ms: self.converged_ms,
            result: self.result.clone(),
            target_store_id,
            source_store_id: plan.and_then(|p| p.remove_store).unwrap_or_default(),
            steps: self.steps.iter().map(PeerStep::describe).collect(),
            step_index: self.step_index as u32,
            timeout_ms: self.deadline.duration_since(self.created).as_millis() as u64,
            new_peer_id: plan.and_then(|p| p.add).map_or(0, |p| p.id),
        }
    }
}
