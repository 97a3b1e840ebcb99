//! PD's add-learner directive, on the region's leader: the new peer joins
//! the region as a learner (a membership entry; every replica's meta gains
//! the peer and `conf_ver` + 1). The leader then replicates to it; its
//! store creates the peer on the first message, and it catches up from a
//! snapshot, since no region's log starts at index 0.

use std::sync::Arc;

use proto::pdpb::{self, ErrorType};
use tracing::info;

use super::Node;
use super::directive::{DirectiveOutcome, membership_refusal, refuse};
use crate::raft::PeerNode;

impl Node {
    /// Carries out an add-learner directive.
    ///
    /// # Errors
    ///
    /// The refusal to send PD: `INVALID_ARGUMENT` (no peer, a zero id, or
    /// the store already holds another peer of the region),
    /// `REGION_NOT_FOUND`, `NOT_LEADER`, `STALE_EPOCH`, `UNAVAILABLE`
    /// (another membership change in flight; PD asks again).
    pub async fn add_learner_directive(
        self: &Arc<Self>,
        d: &pdpb::Directive,
        a: &pdpb::AddLearner,
    ) -> Result<DirectiveOutcome, pdpb::Error> {
        let target = a.peer.ok_or_else(|| refuse(ErrorType::InvalidArgument, "add-learner names no peer".into()))?;
        if target.id == 0 || target.store_id == 0 {
            return Err(refuse(ErrorType::InvalidArgument, format!("add-learner of an invalid peer {target:?}")));
        }
        let peer = self.directive_peer(d.region_id).await?;
        let current = peer.region();
        if current.peers.iter().any(|p| p.id == target.id && p.store_id == target.store_id) {
            // Done already (a repeat).
            return Ok(DirectiveOutcome::Repeated);
        }
        let region = self.leading_at_epoch(&peer, d, "add-learner").await?;
        if let Some(other) = region.peers.iter().find(|p| p.store_id == target.store_id) {
            return Err(refuse(
                ErrorType::InvalidArgument,
                format!("store {} already holds peer {} of region {}", target.store_id, other.id, region.id),
            ));
        }
        info!(directive_id = d.id, region_id = region.id, peer = target.id, store = target.store_id, "adding learner");
        Self::directive_raft(&peer)?
            .add_learner(target.id, PeerNode { store_id: target.store_id }, false)
            .await
            .map_err(|e| membership_refusal(region.id, e))?;
        Ok(DirectiveOutcome::Proposed)
    }
}
