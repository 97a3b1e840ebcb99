//! One step of a membership operator: what PD asks the region's leader to
//! do next, or what it waits for.

use proto::{metapb, pdpb};

/// A step of a move, add-peer, remove-peer or leave-joint operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerStep {
    /// Leadership goes to this voter first: the store never demotes or
    /// removes the peer that leads.
    TransferLeader { to: metapb::Peer },
    /// The new peer joins as a learner (it gets the data without voting).
    AddLearner { peer: metapb::Peer },
    /// No directive: the leader's reports must stop listing the learner as
    /// pending (it has the log, or installed a snapshot).
    CatchUp { peer: metapb::Peer },
    /// One membership change: several changes go through joint consensus.
    ChangePeers { changes: Vec<pdpb::PeerChange> },
    /// `ChangePeers{}`: the region leaves a joint configuration.
    LeaveJoint,
    /// The peer, a learner by now, leaves the region.
    RemovePeer { peer: metapb::Peer },
}

impl PeerStep {
    /// The directive carrying the step, `None` for a step that only waits.
    pub fn directive_kind(&self) -> Option<pdpb::directive::Kind> {
        use pdpb::directive::Kind;
        match self {
            PeerStep::TransferLeader { to } => Some(Kind::TransferLeader(pdpb::TransferLeader { peer: Some(*to) })),
            PeerStep::AddLearner { peer } => Some(Kind::AddLearner(pdpb::AddLearner { peer: Some(*peer) })),
            PeerStep::CatchUp { .. } => None,
            PeerStep::ChangePeers { changes } => {
                Some(Kind::ChangePeers(pdpb::ChangePeers { changes: changes.clone() }))
            }
            PeerStep::LeaveJoint => Some(Kind::ChangePeers(pdpb::ChangePeers { changes: Vec::new() })),
            PeerStep::RemovePeer { peer } => Some(Kind::RemovePeer(pdpb::RemovePeer { peer: Some(*peer) })),
        }
    }

    /// The step's name in metric labels.
    pub fn label(&self) -> &'static str {
        match self {
            PeerStep::TransferLeader { .. } => "transfer_leader",
            PeerStep::AddLearner { .. } => "add_learner",
            PeerStep::CatchUp { .. } => "catch_up",
            PeerStep::ChangePeers { .. } => "change_peers",
            PeerStep::LeaveJoint => "leave_joint",
            PeerStep::RemovePeer { .. } => "remove_peer",
        }
    }

    /// Whether `other` fills the same place in a plan (the same kind of
    /// step; a leader transfer may pick another voter than planned).
    pub fn same_kind(&self, other: &PeerStep) -> bool {
        self.label() == other.label()
    }

    /// The step for people.
    pub fn describe(&self) -> String {
        match self {
            PeerStep::TransferLeader { to } => {
                format!("transfer leadership to peer {} on store {}", to.id, to.store_id)
            }
            PeerStep::AddLearner { peer } => format!("add learner {} on store {}", peer.id, peer.store_id),
            PeerStep::CatchUp { peer } => {
                format!("wait for learner {} on store {} to catch up", peer.id, peer.store_id)
            }
            PeerStep::ChangePeers { changes } => {
                let parts: Vec<String> = changes
                    .iter()
                    .map(|c| {
                        let p = c.peer.unwrap_or_default();
                        let verb = match c.kind() {
                            pdpb::ChangeKind::AddVoter => "promote",
                            pdpb::ChangeKind::AddLearner => "add learner",
                            pdpb::ChangeKind::DemoteVoter => "demote",
                            pdpb::ChangeKind::Remove => "remove",
                        };
                        format!("{verb} {} on store {}", p.id, p.store_id)
                    })
                    .collect();
                let joint = if changes.len() > 1 { " (joint consensus)" } else { "" };
                format!("{}{joint}", parts.join(", "))
            }
            PeerStep::LeaveJoint => "leave the joint configuration".into(),
            PeerStep::RemovePeer { peer } => format!("remove peer {} on store {}", peer.id, peer.store_id),
        }
    }
}

/// The step label values of `pd_operator_step_seconds`.
pub const STEP_LABELS: [&str; 6] =
    ["transfer_leader", "add_learner", "catch_up", "change_peers", "leave_joint", "remove_peer"];
