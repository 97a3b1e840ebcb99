//! PD's transfer-leader directive, on the store it believes leads the
//! region: check it against the region as this leader has it, and hand
//! leadership to the target voter with openraft's leader transfer. The new
//! leader reports the region at once (see [`super::Node`]'s leadership
//! watch), which is how PD learns the transfer is done.

use std::sync::Arc;

use proto::metapb;
use proto::pdpb::{self, ErrorType};
use tracing::info;

use openraft::async_runtime::WatchReceiver;

use super::Node;
use super::directive::{DirectiveOutcome, refuse};

/// A target at most this many entries behind the leader takes over at
/// once. One further behind is not handed leadership: while a transfer is
/// pending the leader takes no writes and sends no heartbeats, and a target
/// that cannot catch up in time never campaigns, so the region would sit
/// leaderless until an election timeout. PD asks again a moment later.
const MAX_TRANSFER_LAG: u64 = 16;

impl Node {
    /// Carries out a transfer-leader directive.
    ///
    /// # Errors
    ///
    /// The refusal to send PD: `INVALID_ARGUMENT` (no target, or the target
    /// is not a voter of the region), `REGION_NOT_FOUND`, `NOT_LEADER`,
    /// `STALE_EPOCH`, `UNAVAILABLE` (the target lags too far behind to take
    /// over now, or the region's raft has stopped; PD asks again).
    pub async fn transfer_leader_directive(
        self: &Arc<Self>,
        d: &pdpb::Directive,
        t: &pdpb::TransferLeader,
    ) -> Result<DirectiveOutcome, pdpb::Error> {
        let target = t
            .peer
            .ok_or_else(|| refuse(ErrorType::InvalidArgument, "transfer-leader directive names no peer".into()))?;
        let peer = self.initialized_peer(d.region_id).ok_or_else(|| {
            refuse(ErrorType::RegionNotFound, format!("region {} not found on this store", d.region_id))
        })?;
        if peer.leader().is_some_and(|l| l.id == target.id) {
            // Done already (a repeat): the new leader reports the region.
            return Ok(DirectiveOutcome::Repeated);
        }
        let region = self.leading_at_epoch(&peer, d, "transfer").await?;
        let voter = region
            .peers
            .iter()
            .any(|p| p.id == target.id && p.store_id == target.store_id && p.role == metapb::PeerRole::Voter as i32);
        if !voter {
            return Err(refuse(
                ErrorType::InvalidArgument,
                format!("peer {} on store {} is not a voter of region {}", target.id, target.store_id, region.id),
            ));
        }
        let m = Self::directive_raft(&peer)?.metrics().borrow_watched().clone();
        let last = m.last_log_index.unwrap_or(0);
        let matched =
            m.replication.as_ref().and_then(|r| r.get(&target.id)).and_then(|l| l.as_ref()).map_or(0, |l| l.index());
        if last.saturating_sub(matched) > MAX_TRANSFER_LAG {
            return Err(refuse(
                ErrorType::Unavailable,
                format!(
                    "peer {} of region {} has {matched} of the leader's {last} entries: not handing over yet",
                    target.id, region.id
                ),
            ));
        }
        info!(
            directive_id = d.id,
            region_id = region.id,
            to_peer = target.id,
            to_store = target.store_id,
            "transferring leadership"
        );
        Self::directive_raft(&peer)?
            .trigger()
            .transfer_leader(target.id)
            .await
            .map_err(|e| refuse(ErrorType::Unavailable, format!("region {} raft stopped: {e}", region.id)))?;
        Ok(DirectiveOutcome::Proposed)
    }
}
