//! What the replica checkers decide: plans, one region and one change each,
//! for the server to carry out with an operator.

use std::fmt;

/// A change to one region's replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlanKind {
    /// Replace the peer on `from` with a new one on `to` (the move operator:
    /// add a learner on `to`, promote it and demote the old peer in one
    /// joint change, leave the joint state, remove the old peer).
    Move { from: u64, to: u64 },
    /// Add a voter on `store`.
    AddPeer { store: u64 },
    /// Remove the peer on `store`.
    RemovePeer { store: u64 },
    /// Finish a joint configuration change left half done.
    LeaveJoint,
}

impl PlanKind {
    /// The `kind` label of `pd_checker_plans_total`.
    pub fn label(&self) -> &'static str {
        match self {
            PlanKind::Move { .. } => "move",
            PlanKind::AddPeer { .. } => "add_peer",
            PlanKind::RemovePeer { .. } => "remove_peer",
            PlanKind::LeaveJoint => "leave_joint",
        }
    }
}

/// One decision of a checker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub region_id: u64,
    pub kind: PlanKind,
    /// Why, for logs and people.
    pub reason: String,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.region_id;
        match self.kind {
            PlanKind::Move { from, to } => write!(f, "move region {r} from store {from} to store {to}"),
            PlanKind::AddPeer { store } => write!(f, "add a peer of region {r} on store {store}"),
            PlanKind::RemovePeer { store } => write!(f, "remove the peer of region {r} on store {store}"),
            PlanKind::LeaveJoint => write!(f, "leave the joint state of region {r}"),
        }?;
        write!(f, ": {}", self.reason)
    }
}

/// Why a checker left a region that needs a change as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// No healthy Up store without a peer of the region can take one.
    NoCandidate,
    /// Fewer than a majority of the region's voters are on healthy stores:
    /// no membership change can commit until enough of them are back.
    NoQuorum,
}

/// A region left as it is, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    pub region_id: u64,
    pub why: Skip,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.why {
            Skip::NoCandidate => {
                write!(f, "region {}: no healthy Up store without a peer of it can take one", self.region_id)
            }
            Skip::NoQuorum => write!(f, "region {}: a majority of its voters is not on healthy stores", self.region_id),
        }
    }
}

/// What one checker run decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckerOutput {
    pub plans: Vec<Plan>,
    pub skipped: Vec<Skipped>,
}
