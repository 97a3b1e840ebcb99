//! PD's change-peers directive, on the region's leader: promote learners
//! and demote voters in one joint-consensus change, or leave a joint state.
//!
//! openraft's `change_membership` appends the joint config and, once it
//! commits, the uniform one. A leader that loses leadership in between
//! leaves the region joint; PD then sends `ChangePeers` with no changes,
//! which the new leader carries out by asking for the joint config's new
//! voters again: openraft goes from the joint config straight to that
//! uniform one. Both forms are idempotent: a change already made is a
//! repeat.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use openraft::ChangeMembers;
use openraft::async_runtime::WatchReceiver;
use proto::pdpb::{self, ChangeKind, ErrorType};
use tracing::info;

use super::Node;
use super::directive::{DirectiveOutcome, membership_refusal, refuse};

/// How long the directive task waits for the change to commit. Past it the
/// change may still complete; PD sees it in the region's next report.
const COMMIT_WAIT: Duration = Duration::from_secs(10);

impl Node {
    /// Carries out a change-peers directive.
    ///
    /// # Errors
    ///
    /// The refusal to send PD: `INVALID_ARGUMENT` (a change kind other than
    /// ADD_VOTER / DEMOTE_VOTER, a promoted peer that is not a learner of
    /// the region, demoting the leader itself, no voter left),
    /// `REGION_NOT_FOUND`, `NOT_LEADER`, `STALE_EPOCH`, `UNAVAILABLE`
    /// (another change in flight, or the change did not commit in time).
    pub async fn change_peers_directive(
        self: &Arc<Self>,
        d: &pdpb::Directive,
        c: &pdpb::ChangePeers,
    ) -> Result<DirectiveOutcome, pdpb::Error> {
        let peer = self.directive_peer(d.region_id).await?;
        let region_id = d.region_id;
        let membership = Self::directive_raft(&peer)?.metrics().borrow_watched().membership_config.membership().clone();
        let configs = membership.get_joint_config().clone();
        let joint = configs.len() > 1;
        let current: BTreeSet<u64> = configs.last().cloned().unwrap_or_default();
        let target = if c.changes.is_empty() {
            if !joint {
                return Ok(DirectiveOutcome::Repeated);
            }
            current.clone()
        } else {
            let mut target = current.clone();
            for change in &c.changes {
                let p =
                    change.peer.ok_or_else(|| refuse(ErrorType::InvalidArgument, "a change names no peer".into()))?;
                match ChangeKind::try_from(change.kind) {
                    Ok(ChangeKind::AddVoter) => {
                        if membership.get_node(&p.id).is_none_or(|n| n.store_id != p.store_id) {
                            return Err(refuse(
                                ErrorType::InvalidArgument,
                                format!("peer {} on store {} is not a learner of region {region_id}", p.id, p.store_id),
                            ));
                        }
                        target.insert(p.id);
                    }
                    Ok(ChangeKind::DemoteVoter) => {
                        if p.id == peer.shared.peer_id {
                            return Err(refuse(
                                ErrorType::InvalidArgument,
                                format!(
                                    "region {region_id}: the leader cannot demote itself; transfer leadership first"
                                ),
                            ));
                        }
                        target.remove(&p.id);
                    }
                    _ => {
                        return Err(refuse(
                            ErrorType::InvalidArgument,
                            format!("change kind {} is not carried out by change-peers", change.kind),
                        ));
                    }
                }
            }
            if target.is_empty() {
                return Err(refuse(ErrorType::InvalidArgument, format!("region {region_id} would have no voter")));
            }
            if target == current && !joint {
                return Ok(DirectiveOutcome::Repeated);
            }
            if joint && target != current {
                return Err(refuse(
                    ErrorType::Unavailable,
                    format!("region {region_id} is in a joint state: leave it first"),
                ));
            }
            target
        };
        let region = self.leading_at_epoch(&peer, d, "change-peers").await?;
        info!(directive_id = d.id, region_id = region.id, voters = ?target, joint, "changing voters");
        let raft = Self::directive_raft(&peer)?;
        let change = raft.change_membership(ChangeMembers::ReplaceAllVoters(target), true);
        match tokio::time::timeout(COMMIT_WAIT, change).await {
            Ok(res) => res.map_err(|e| membership_refusal(region.id, e))?,
            Err(_) => {
                return Err(refuse(
                    ErrorType::Unavailable,
                    format!("region {region_id}: the membership change did not commit within {COMMIT_WAIT:?}"),
                ));
            }
        };
        Ok(DirectiveOutcome::Proposed)
    }
}
