//! PD's remove-peer directive, on the region's leader: a learner (a voter
//! is demoted first, by change-peers) leaves the region. Every replica's
//! meta loses the peer and `conf_ver` + 1. The removed peer's store
//! destroys it when it applies its own removal or sees PD's routes list
//! the region at a newer `conf_ver` without it.

use std::collections::BTreeSet;
use std::sync::Arc;

use openraft::ChangeMembers;
use openraft::async_runtime::WatchReceiver;
use proto::pdpb::{self, ErrorType};
use tracing::info;

use super::Node;
use super::directive::{DirectiveOutcome, membership_refusal, refuse};

impl Node {
    /// Carries out a remove-peer directive.
    ///
    /// # Errors
    ///
    /// The refusal to send PD: `INVALID_ARGUMENT` (no peer, the peer is a
    /// voter, or it is the leader itself), `REGION_NOT_FOUND`, `NOT_LEADER`,
    /// `STALE_EPOCH`, `UNAVAILABLE` (another change in flight).
    pub async fn remove_peer_directive(
        self: &Arc<Self>,
        d: &pdpb::Directive,
        r: &pdpb::RemovePeer,
    ) -> Result<DirectiveOutcome, pdpb::Error> {
        let target = r.peer.ok_or_else(|| refuse(ErrorType::InvalidArgument, "remove-peer names no peer".into()))?;
        let peer = self.directive_peer(d.region_id).await?;
        let membership = Self::directive_raft(&peer)?.metrics().borrow_watched().membership_config.membership().clone();
        if membership.get_node(&target.id).is_none() {
            // Done already (a repeat).
            return Ok(DirectiveOutcome::Repeated);
        }
        if target.id == peer.shared.peer_id {
            return Err(refuse(
                ErrorType::InvalidArgument,
                format!("region {}: the leader cannot remove itself; transfer leadership first", d.region_id),
            ));
        }
        if membership.get_joint_config().iter().any(|c| c.contains(&target.id)) {
            return Err(refuse(
                ErrorType::InvalidArgument,
                format!("peer {} of region {} is a voter: demote it first", target.id, d.region_id),
            ));
        }
        let region = self.leading_at_epoch(&peer, d, "remove-peer").await?;
        info!(directive_id = d.id, region_id = region.id, peer = target.id, store = target.store_id, "removing peer");
        Self::directive_raft(&peer)?
            .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([target.id])), false)
            .await
            .map_err(|e| membership_refusal(region.id, e))?;
        Ok(DirectiveOutcome::Proposed)
    }
}
