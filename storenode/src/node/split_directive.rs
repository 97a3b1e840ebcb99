//! PD's split directive, on the store it believes leads the region: check
//! it against the region as this leader has it, find the split key (the
//! middle by size when PD names none), and propose the split admin entry.
//!
//! A directive may arrive more than once (PD re-sends until it hears of the
//! result): a split it already caused is not proposed again, its report is
//! re-sent instead.

use std::sync::Arc;

use pd::catalog::keys;
use proto::pdpb::{self, ErrorType};
use tracing::info;

use super::Node;
use super::directive::{DirectiveOutcome, refuse};
use crate::error::StoreError;
use crate::raft::split::SplitCommand;
use crate::raft::split_point;
use crate::raft::{KvOp, KvReply};

/// Removes the region from the in-flight set when the directive ends.
struct Splitting<'a>(&'a Node, u64);

impl Drop for Splitting<'_> {
    fn drop(&mut self) {
        self.0.splitting.lock().unwrap().remove(&self.1);
    }
}

impl Node {
    /// Carries out a split directive.
    ///
    /// # Errors
    ///
    /// The refusal to send PD: `REGION_NOT_FOUND`, `NOT_LEADER`,
    /// `STALE_EPOCH` (the directive's epoch is not the region's),
    /// `INVALID_ARGUMENT` (malformed ids), `INVALID_SPLIT_KEY` (outside the
    /// region, at its start, or no key to split at), `UNAVAILABLE` (the
    /// proposal did not commit in time).
    pub async fn split_directive(
        self: &Arc<Self>,
        d: &pdpb::Directive,
        split: &pdpb::SplitRegion,
    ) -> Result<DirectiveOutcome, pdpb::Error> {
        let ids = split.new_ids.clone().unwrap_or_default();
        if self.split_pending(ids.region_id) {
            let _ = self.region_events.send(d.region_id);
            return Ok(DirectiveOutcome::Repeated);
        }
        let peer = self.peer(d.region_id).filter(|_| self.is_initialized(d.region_id)).ok_or_else(|| {
            refuse(ErrorType::RegionNotFound, format!("region {} not found on this store", d.region_id))
        })?;
        if self.initialized_peer(ids.region_id).is_some() {
            // Split, reported and routed already: PD's routes will show it.
            return Ok(DirectiveOutcome::Repeated);
        }
        let region = self.leading_at_epoch(&peer, d, "split").await?;
        let epoch = region.region_epoch.unwrap_or_default();
        if ids.region_id == 0
            || ids.region_id == region.id
            || ids.peer_ids.len() != region.peers.len()
            || ids.peer_ids.contains(&0)
        {
            return Err(refuse(
                ErrorType::InvalidArgument,
                format!(
                    "split of region {} needs a new region id and {} new peer ids, got {:?}",
                    region.id,
                    region.peers.len(),
                    ids
                ),
            ));
        }
        let at = (!split.split_key.is_empty()).then(|| split.split_key.clone());
        if let Some(key) = &at
            && (key.as_slice() <= region.start_key.as_slice()
                || !keys::contains(&region.start_key, &region.end_key, key))
        {
            return Err(refuse(
                ErrorType::InvalidSplitKey,
                format!(
                    "key {} is not strictly inside region {} [{}, {})",
                    keys::display(key),
                    region.id,
                    keys::display(&region.start_key),
                    keys::display(&region.end_key)
                ),
            ));
        }
        if !self.splitting.lock().unwrap().insert(region.id) {
            return Ok(DirectiveOutcome::Repeated);
        }
        let _in_flight = Splitting(self, region.id);
        let total = peer.shared.approximate_size.load(std::sync::atomic::Ordering::Relaxed);
        let point = split_point::find_blocking(self.engine.clone(), region.clone(), at, total)
            .await
            .map_err(|e| refuse(ErrorType::Unavailable, format!("scanning region {}: {e}", region.id)))?
            .ok_or_else(|| {
                refuse(
                    ErrorType::InvalidSplitKey,
                    format!("region {} holds fewer than two keys: no key to split at", region.id),
                )
            })?;
        let cmd = SplitCommand {
            split_key: point.key,
            new_region_id: ids.region_id,
            new_peer_ids: ids.peer_ids,
            conf_ver: epoch.conf_ver,
            version: epoch.version,
            left_keys: point.left_keys,
            left_size: point.left_size,
            directive_id: d.id,
        };
        info!(directive_id = d.id, region_id = region.id, new_region_id = cmd.new_region_id, split_key = %keys::display(&cmd.split_key), "proposing split");
        match self.propose(&peer, KvOp::Split(cmd), None).await {
            Ok(KvReply::Split { .. }) => Ok(DirectiveOutcome::Proposed),
            Ok(other) => Err(refuse(ErrorType::Unavailable, format!("split applied as {other:?}"))),
            // Applied by an earlier attempt after all.
            Err(_) if self.split_pending(ids.region_id) => Ok(DirectiveOutcome::Repeated),
            Err(e) => Err(match e {
                StoreError::NotLeader { .. } => refuse(ErrorType::NotLeader, e.to_string()),
                StoreError::EpochNotMatch(_) => refuse(ErrorType::StaleEpoch, e.to_string()),
                StoreError::KeyNotInRegion { .. } => refuse(ErrorType::InvalidSplitKey, e.to_string()),
                other => refuse(ErrorType::Unavailable, other.to_string()),
            }),
        }
    }
}
