//! What every PD directive shares on the store: how it ended, the refusal
//! sent back up, and the check that this store leads the region at the
//! epoch the directive names.

use std::sync::Arc;

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use proto::metapb;
use proto::pdpb::{self, ErrorType};

use super::{Node, RegionPeer};
use crate::raft::TypeConfig;

/// How a directive was carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectiveOutcome {
    /// The split was proposed and applied here.
    Proposed,
    /// A split this directive asked for already applied (or is being
    /// proposed); its report goes to PD again.
    Repeated,
}

impl DirectiveOutcome {
    pub fn label(self) -> &'static str {
        match self {
            DirectiveOutcome::Proposed => "proposed",
            DirectiveOutcome::Repeated => "repeated",
        }
    }
}

pub fn refuse(kind: ErrorType, message: String) -> pdpb::Error {
    pdpb::Error { r#type: kind as i32, message, leader: None }
}

/// The refusal for a membership change raft would not make: `NOT_LEADER`
/// when leadership moved, `INVALID_ARGUMENT` for a change that makes no
/// sense for the membership, `UNAVAILABLE` for one to retry later (another
/// change in flight, the leader's first entry not committed yet, raft
/// stopped).
pub fn membership_refusal(region_id: u64, e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> pdpb::Error {
    let kind = match &e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_) | ClientWriteError::LogEntryDiscarded(_)) => {
            ErrorType::NotLeader
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::EmptyMembership(_)
            | ChangeMembershipError::LearnerNotFound(_)
            | ChangeMembershipError::UnsupportedMembershipTransition(_)
            | ChangeMembershipError::NodeMetadataChanged(_),
        )) => ErrorType::InvalidArgument,
        _ => ErrorType::Unavailable,
    };
    refuse(kind, format!("region {region_id}: membership change refused: {e}"))
}

impl Node {
    /// The region's initialized local peer.
    ///
    /// # Errors
    ///
    /// `REGION_NOT_FOUND` when this store serves no such region.
    pub async fn directive_peer(&self, region_id: u64) -> Result<Arc<RegionPeer>, pdpb::Error> {
        let peer = self
            .initialized_peer(region_id)
            .ok_or_else(|| refuse(ErrorType::RegionNotFound, format!("region {region_id} not found on this store")))?;
        // A dormant leader's group restarts (and is elected again) to carry
        // the directive out.
        if peer.is_dormant() && peer.is_leader() {
            self.wake(&peer, super::hibernation::WakeCause::Request).await;
        }
        Ok(peer)
    }

    /// The peer's running raft group.
    ///
    /// # Errors
    ///
    /// `UNAVAILABLE` when it is not running (dormant again, or stopped):
    /// PD asks again.
    pub fn directive_raft(peer: &RegionPeer) -> Result<crate::raft::RegionRaft, pdpb::Error> {
        peer.raft().ok_or_else(|| {
            refuse(ErrorType::Unavailable, format!("region {}: raft is not running here", peer.region_id()))
        })
    }

    /// The region as `peer` has it, if this store leads it at the epoch
    /// directive `d` names; `what` names the directive in the refusal.
    ///
    /// # Errors
    ///
    /// `NOT_LEADER` naming the leader this store knows of; `STALE_EPOCH`
    /// with both epochs.
    pub async fn leading_at_epoch(
        &self,
        peer: &Arc<RegionPeer>,
        d: &pdpb::Directive,
        what: &str,
    ) -> Result<metapb::Region, pdpb::Error> {
        if !peer.is_leader() {
            let leader = peer.leader().map_or_else(|| "unknown".to_string(), |l| format!("store {}", l.store_id));
            return Err(refuse(
                ErrorType::NotLeader,
                format!("store {} does not lead region {} (leader: {leader})", self.store_id, d.region_id),
            ));
        }
        // A directive is traffic: a hibernated leader resumes its timers,
        // a dormant one is revived and elected again.
        self.wake(peer, super::hibernation::WakeCause::Request).await;
        let region = peer.region();
        let epoch = region.region_epoch.unwrap_or_default();
        let asked = d.region_epoch.unwrap_or_default();
        if asked != epoch {
            return Err(refuse(
                ErrorType::StaleEpoch,
                format!(
                    "{what} of region {} at epoch (conf_ver {}, version {}), but the region is at (conf_ver {}, version {})",
                    d.region_id, asked.conf_ver, asked.version, epoch.conf_ver, epoch.version
                ),
            ));
        }
        Ok(region)
    }
}
