//! A region's outgoing raft RPCs, over the store-to-store transport.

use std::future::Future;
use std::sync::Arc;

use openraft::OptionalSend;
use openraft::errors::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use proto::raftpb;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::snapshot::SnapshotFile;
use super::state_machine::RegionShared;
use super::{PeerNode, Snapshot, TypeConfig, Vote, decode, encode};
use crate::transport::client::Transport;

#[derive(Clone)]
pub struct RegionNetwork {
    pub shared: Arc<RegionShared>,
    pub transport: Arc<Transport>,
}

impl RaftNetworkFactory<TypeConfig> for RegionNetwork {
    type Network = PeerConn;

    async fn new_client(&mut self, target: u64, node: &PeerNode) -> PeerConn {
        PeerConn { to_peer: target, to_store: node.store_id, net: self.clone(), heartbeats: false }
    }

    /// openraft's periodic heartbeats get their own client, whose empty
    /// appends ride in per-store batches. Replication keeps the direct
    /// client: its empty appends carry commit progress writes wait on.
    async fn new_heartbeat_client(&mut self, target: u64, node: &PeerNode) -> PeerConn {
        PeerConn { to_peer: target, to_store: node.store_id, net: self.clone(), heartbeats: true }
    }
}

pub struct PeerConn {
    to_peer: u64,
    to_store: u64,
    net: RegionNetwork,
    /// Made by `new_heartbeat_client`: batch its empty appends.
    heartbeats: bool,
}

impl PeerConn {
    fn unreachable(&self, e: impl std::fmt::Display) -> Unreachable<TypeConfig> {
        Unreachable::from_string(format!(
            "region {} peer {} on store {}: {e}",
            self.net.shared.region_id, self.to_peer, self.to_store
        ))
    }

    /// Sends one RPC; `batched` ones (heartbeats) share an RPC with other
    /// regions' heartbeats to the same store.
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        kind: raftpb::RaftCallKind,
        req: &Req,
        option: &RPCOption,
        batched: bool,
    ) -> Result<Resp, Unreachable<TypeConfig>> {
        let shared = &self.net.shared;
        let msg = raftpb::RaftRequest {
            region_id: shared.region_id,
            from_peer: shared.peer_id,
            to_peer: self.to_peer,
            to_store: self.to_store,
            region: Some(shared.region()),
            kind: kind as i32,
            payload: encode(req).map_err(|e| self.unreachable(e))?,
        };
        let transport = &self.net.transport;
        let resp = if batched {
            transport.call_batched(msg, option.soft_ttl()).await
        } else {
            let ttl = match kind {
                raftpb::RaftCallKind::AppendEntries => option.soft_ttl().max(payload_ttl(msg.payload.len())),
                _ => option.soft_ttl(),
            };
            transport.call(msg, ttl).await
        }
        .map_err(|e| self.unreachable(e))?;
        decode(&resp).map_err(|e| self.unreachable(e))
    }
}

/// How long a message of `bytes` may take: openraft's deadline follows the
/// heartbeat interval, which a large append (a new or far-behind follower
/// sent hundreds of batched writes at once) cannot meet on a busy store.
/// Timing out would make the leader send it again, forever, and the
/// follower would never catch up.
fn payload_ttl(bytes: usize) -> std::time::Duration {
    const BASE: std::time::Duration = std::time::Duration::from_secs(2);
    const RATE: f64 = 8.0 * 1024.0 * 1024.0;
    BASE + std::time::Duration::from_secs_f64(bytes as f64 / RATE)
}

impl RaftNetworkV2<TypeConfig> for PeerConn {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let heartbeat = self.heartbeats && rpc.entries.is_empty();
        let timed = (!rpc.entries.is_empty()).then(std::time::Instant::now);
        let resp = self.call(raftpb::RaftCallKind::AppendEntries, &rpc, &option, heartbeat).await?;
        if let Some(sent) = timed {
            let secs = sent.elapsed().as_secs_f64();
            crate::metrics::RAFT_STAGE_SECONDS.with_label_values(&["replicate"]).observe(secs);
        }
        Ok(resp)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        Ok(self.call(raftpb::RaftCallKind::Vote, &rpc, &option, false).await?)
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let shared = &self.net.shared;
        let header = raftpb::SnapshotHeader {
            region_id: shared.region_id,
            from_peer: shared.peer_id,
            to_peer: self.to_peer,
            to_store: self.to_store,
            region: Some(shared.region()),
            meta: encode(&(vote, &snapshot.meta)).map_err(|e| self.unreachable(e))?,
        };
        // Holds back this peer's next snapshot build until the send ends.
        let _sending = shared.snapshot_send();
        let send = self.net.transport.send_snapshot(header, &snapshot.snapshot);
        tokio::select! {
            res = send => {
                let bytes = res.map_err(|e| self.unreachable(e))?;
                Ok(decode(&bytes).map_err(|e| self.unreachable(e))?)
            }
            closed = cancel => Err(StreamingError::Closed(closed)),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        Ok(self.call(raftpb::RaftCallKind::TransferLeader, &req, &option, false).await?)
    }
}
