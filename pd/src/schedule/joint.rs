//! The joint checker: a region left in a joint configuration (peers in the
//! INCOMING_VOTER or DEMOTING_VOTER role) with no operator finishing it,
//! after a PD leader change dropped its operator for instance, gets a
//! `LeaveJoint`. Until it leaves, no other checker plans for it.

use proto::metapb::PeerRole;

use super::cluster::ClusterView;
use super::plan::{Plan, PlanKind};

pub fn check(view: &ClusterView) -> Vec<Plan> {
    view.regions
        .values()
        .filter(|r| r.in_joint_state() && !view.busy.contains(&r.id))
        .map(|r| {
            let parts: Vec<String> = r
                .peers
                .iter()
                .filter_map(|p| match p.role {
                    PeerRole::IncomingVoter => Some(format!("incoming voter on store {}", p.store_id)),
                    PeerRole::DemotingVoter => Some(format!("demoting voter on store {}", p.store_id)),
                    _ => None,
                })
                .collect();
            Plan { region_id: r.id, kind: PlanKind::LeaveJoint, reason: format!("joint state: {}", parts.join(", ")) }
        })
        .collect()
}
