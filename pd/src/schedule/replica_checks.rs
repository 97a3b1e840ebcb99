//! The three replica checkers in one pass, in priority order: **joint**
//! (finish half-done changes first: nothing else can change a region in a
//! joint state), then **replica repair** (replicas lost to Down stores put
//! data at risk), then **decommission** (Offline stores still serve). Each
//! checker sees the regions the ones before it planned for as busy, so a
//! region gets at most one plan per pass.

use std::fmt;

use super::cluster::ClusterView;
use super::plan::{Plan, Skipped};
use super::{decommission, joint, replica_repair};

/// Which checker made a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checker {
    Joint,
    ReplicaRepair,
    Decommission,
}

impl Checker {
    /// The `checker` label of the checker metrics, and the operator source
    /// a plan is started with.
    pub fn as_str(self) -> &'static str {
        match self {
            Checker::Joint => "joint",
            Checker::ReplicaRepair => "replica-repair",
            Checker::Decommission => "decommission",
        }
    }
}

impl fmt::Display for Checker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A plan and the checker that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedPlan {
    pub checker: Checker,
    pub plan: Plan,
}

/// Everything one pass decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaChecks {
    /// In priority order.
    pub plans: Vec<CheckedPlan>,
    pub skipped: Vec<(Checker, Skipped)>,
    /// Offline stores with no peer left, to be marked Tombstone.
    pub ready_for_tombstone: Vec<u64>,
}

/// Runs the checkers over `view`; repair and decommission make at most
/// `max_plans` plans each.
pub fn check_all(view: &ClusterView, max_plans: usize) -> ReplicaChecks {
    let mut out = ReplicaChecks::default();
    let mut view = view.clone();
    let plans = joint::check(&view);
    take(&mut out, &mut view, Checker::Joint, plans);

    let repair = replica_repair::check(&view, max_plans);
    out.skipped.extend(repair.skipped.into_iter().map(|s| (Checker::ReplicaRepair, s)));
    take(&mut out, &mut view, Checker::ReplicaRepair, repair.plans);

    let d = decommission::check(&view, max_plans);
    out.skipped.extend(d.output.skipped.into_iter().map(|s| (Checker::Decommission, s)));
    take(&mut out, &mut view, Checker::Decommission, d.output.plans);
    out.ready_for_tombstone = d.ready_for_tombstone;
    out
}

/// Adds a checker's plans to the pass, and their regions to the busy ones
/// the next checkers skip.
fn take(out: &mut ReplicaChecks, view: &mut ClusterView, checker: Checker, plans: Vec<Plan>) {
    for plan in plans {
        view.busy.insert(plan.region_id);
        out.plans.push(CheckedPlan { checker, plan });
    }
}
