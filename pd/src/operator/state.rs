//! One operator: what it changes, where it stands, and how it ended.

use std::time::Instant;

use proto::{metapb, pdpb};

use super::split_plan::SplitPlan;
use super::transfer_leader::TransferPlan;
use crate::catalog::RouteCatalog;

/// Who asked for an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The admin API: gRPC, HTTP or pdctl.
    Admin,
    /// PD's own split checker.
    SplitChecker,
}

impl Source {
    pub const ALL: [Source; 2] = [Source::Admin, Source::SplitChecker];

    /// The name in `Operator.source` and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Admin => "admin",
            Source::SplitChecker => "split-checker",
        }
    }
}

/// What an operator changes. Each kind's steps live in their own file.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Split(SplitPlan),
    TransferLeader(TransferPlan),
}

impl Kind {
    pub fn pb(&self) -> pdpb::OperatorKind {
        match self {
            Kind::Split(_) => pdpb::OperatorKind::Split,
            Kind::TransferLeader(_) => pdpb::OperatorKind::TransferLeader,
        }
    }

    /// The name in metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Split(_) => "split",
            Kind::TransferLeader(_) => "transfer_leader",
        }
    }

    /// What the change produced, once the catalog holds it.
    pub fn result(&self, region_id: u64, catalog: &RouteCatalog) -> Option<Vec<metapb::Region>> {
        match self {
            Kind::Split(plan) => plan.result(region_id, catalog),
            Kind::TransferLeader(plan) => plan.result(region_id, catalog),
        }
    }
}

/// The label values of `kind` in operator metrics.
pub const KIND_NAMES: [&str; 2] = ["split", "transfer_leader"];

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
}

impl Operator {
    /// A new operator on `rec`'s region, running from `now` until `timeout`.
    pub fn running(
        id: u64,
        rec: &crate::catalog::RegionRecord,
        kind: Kind,
        source: Source,
        step: String,
        now: super::controller::Now,
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
        }
    }

    pub fn is_running(&self) -> bool {
        self.status == pdpb::OperatorStatus::Running
    }

    /// The directive this operator sends to the region's leader.
    pub fn directive(&self) -> pdpb::Directive {
        let kind = match &self.kind {
            Kind::Split(plan) => plan.directive_kind(),
            Kind::TransferLeader(plan) => plan.directive_kind(),
        };
        pdpb::Directive {
            id: self.id,
            region_id: self.region_id,
            region_epoch: Some(self.region_epoch),
            kind: Some(kind),
        }
    }

    /// The wire form; `converged` is (Up stores at `result_version`, Up
    /// stores), computed by the caller from the stores' heartbeats.
    pub fn to_pb(&self, converged: (u32, u32)) -> pdpb::Operator {
        let (split_key, new_region_id, target_store_id) = match &self.kind {
            Kind::Split(plan) => (plan.split_key.clone(), plan.new_ids.region_id, 0),
            Kind::TransferLeader(plan) => (Vec::new(), 0, plan.to.store_id),
        };
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
            ..Default::default()
        }
    }
}
