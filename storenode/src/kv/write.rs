//! Writes: put, delete, batch put, compare-and-swap. Each is one raft
//! command, applied by every replica in one engine transaction, at most once
//! per request id (the caller's `Context.request_id`, passed through
//! forwarding unchanged).
//!
//! Errors say whether the write may have been proposed (see
//! [`crate::retry`]): anything before the proposal is a region error the
//! caller retries freely; once proposed, a lost leadership or a commit wait
//! that timed out is `StaleCommand`, an unknown outcome the caller retries
//! with the same request id.

use std::time::Instant;

use openraft::async_runtime::WatchReceiver;
use proto::kvpb;

use super::read::error_response;
use super::{RAFT_TIMEOUT, check_key, check_value};
use crate::config::{MAX_BATCH_BYTES, MAX_BATCH_KEYS};
use crate::error::{Result, StoreError};
use crate::metrics;
use crate::node::{Node, RegionPeer};
use crate::raft::command_clock::CommandClock;
use crate::raft::{KvCommand, KvOp, KvReply, RequestId};

fn request_id(ctx: Option<&kvpb::Context>) -> Option<RequestId> {
    RequestId::from_pb(ctx.and_then(|c| c.request_id.as_ref()))
}

impl Node {
    /// Proposes `op` to the region and waits for it to apply.
    pub(crate) async fn propose(&self, peer: &RegionPeer, op: KvOp, request: Option<RequestId>) -> Result<KvReply> {
        self.check_leader(peer)?;
        let region = peer.region();
        if let Some(k) = op.keys().into_iter().find(|k| !peer.shared.contains(k)) {
            return Err(super::key_not_in_region(k, &region));
        }
        let cmd_key = op.keys().first().map(|k| k.to_vec());
        let raft = super::running(peer)?;
        // Read before the stamp: its anchor must not be later than the
        // leader's clock reading (see `raft::log_clock`).
        let applied_log_ms = peer.shared.log_time_ms();
        let term = raft.metrics().borrow_watched().current_term;
        let cmd = KvCommand {
            epoch_version: region.region_epoch.unwrap_or_default().version,
            op,
            request,
            clock: CommandClock::Stamp(peer.shared.log_clock.stamp(term, peer.shared.peer_id, applied_log_ms)),
        };
        let started = Instant::now();
        let res = tokio::time::timeout(RAFT_TIMEOUT, raft.client_write(cmd)).await;
        let elapsed = started.elapsed().as_secs_f64();
        metrics::RAFT_PROPOSE_SECONDS.observe(elapsed);
        metrics::RAFT_STAGE_SECONDS.with_label_values(&["propose"]).observe(elapsed);
        let reply = match res {
            // Proposed and maybe committed later: the outcome is unknown.
            Err(_) => return Err(StoreError::StaleCommand),
            Ok(Err(e)) => {
                if matches!(
                    &e,
                    openraft::errors::RaftError::APIError(openraft::errors::ClientWriteError::LogEntryDiscarded(_))
                ) {
                    return Err(StoreError::StaleCommand);
                }
                return Err(self.raft_error(peer, &e));
            }
            Ok(Ok(resp)) => {
                peer.shared.stages.replied(resp.log_id.index());
                resp.data
            }
        };
        match reply {
            KvReply::EpochNotMatch { current } => {
                let key = cmd_key.unwrap_or_default();
                Err(self.epoch_not_match(current, &key))
            }
            KvReply::KeyNotInRegion { key, region } => Err(super::key_not_in_region(&key, &region)),
            KvReply::Forgotten => Err(StoreError::StaleCommand),
            other => Ok(other),
        }
    }

    pub async fn put(&self, req: kvpb::PutRequest) -> kvpb::PutResponse {
        if let Err(e) = check_key(&req.key).and_then(|()| check_value(&req.value)) {
            return error_response(e);
        }
        let op = KvOp::Put { key: req.key.clone(), value: req.value.clone() };
        let id = request_id(req.context.as_ref());
        self.dispatch(
            "put",
            req.context,
            &req.key.clone(),
            |peer| async move {
                self.propose(&peer, op, id).await?;
                Ok(kvpb::PutResponse::default())
            },
            |mut c, ctx| async move { c.put(kvpb::PutRequest { context: Some(ctx), ..req }).await },
        )
        .await
    }

    pub async fn delete(&self, req: kvpb::DeleteRequest) -> kvpb::DeleteResponse {
        if let Err(e) = check_key(&req.key) {
            return error_response(e);
        }
        let op = KvOp::Delete { key: req.key.clone() };
        let id = request_id(req.context.as_ref());
        self.dispatch(
            "delete",
            req.context,
            &req.key.clone(),
            |peer| async move {
                let existed = matches!(self.propose(&peer, op, id).await?, KvReply::Deleted { existed: true });
                Ok(kvpb::DeleteResponse { existed, ..Default::default() })
            },
            |mut c, ctx| async move { c.delete(kvpb::DeleteRequest { context: Some(ctx), ..req }).await },
        )
        .await
    }

    pub async fn batch_put(&self, req: kvpb::BatchPutRequest) -> kvpb::BatchPutResponse {
        if let Err(e) = check_batch_put(&req.pairs) {
            return error_response(e);
        }
        let op = KvOp::BatchPut { pairs: req.pairs.iter().map(|p| (p.key.clone(), p.value.clone())).collect() };
        let first = req.pairs[0].key.clone();
        let id = request_id(req.context.as_ref());
        self.dispatch(
            "batch_put",
            req.context,
            &first,
            |peer| async move {
                self.propose(&peer, op, id).await?;
                Ok(kvpb::BatchPutResponse::default())
            },
            |mut c, ctx| async move { c.batch_put(kvpb::BatchPutRequest { context: Some(ctx), ..req }).await },
        )
        .await
    }

    pub async fn compare_and_swap(&self, req: kvpb::CasRequest) -> kvpb::CasResponse {
        if let Err(e) = check_key(&req.key).and_then(|()| check_value(&req.value)) {
            return error_response(e);
        }
        let op = KvOp::Cas {
            key: req.key.clone(),
            expected: req.expected_exists.then(|| req.expected.clone()),
            value: req.value.clone(),
        };
        let id = request_id(req.context.as_ref());
        self.dispatch(
            "cas",
            req.context,
            &req.key.clone(),
            |peer| async move {
                match self.propose(&peer, op, id).await? {
                    KvReply::Cas { succeeded, previous } => Ok(kvpb::CasResponse {
                        succeeded,
                        previous_exists: previous.is_some(),
                        previous: previous.unwrap_or_default(),
                        ..Default::default()
                    }),
                    other => Err(StoreError::Unavailable(format!("compare-and-swap applied as {other:?}"))),
                }
            },
            |mut c, ctx| async move { c.compare_and_swap(kvpb::CasRequest { context: Some(ctx), ..req }).await },
        )
        .await
    }
}

fn check_batch_put(pairs: &[kvpb::KvPair]) -> Result<()> {
    if pairs.is_empty() {
        return Err(StoreError::InvalidArgument("batch carries no pairs".into()));
    }
    if pairs.len() > MAX_BATCH_KEYS {
        return Err(StoreError::InvalidArgument(format!(
            "{} pairs exceed the batch limit {MAX_BATCH_KEYS}",
            pairs.len()
        )));
    }
    let mut total = 0usize;
    for p in pairs {
        check_key(&p.key)?;
        check_value(&p.value)?;
        total += p.key.len() + p.value.len();
    }
    if total > MAX_BATCH_BYTES {
        return Err(StoreError::InvalidArgument(format!("batch of {total} bytes exceeds {MAX_BATCH_BYTES}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
