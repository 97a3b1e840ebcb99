//! Outgoing raft RPCs to other PD members over gRPC.
//!
//! Each request is openraft's own message serialized as JSON inside a
//! `pdraftpb.RaftPayload`, tagged with the target member id. Channels are
//! created lazily and reused; a failed call is reported as `Unreachable`, so
//! openraft backs off instead of spinning on a dead member.

use std::future::Future;

use openraft::OptionalSend;
use openraft::errors::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use proto::pdraftpb::{RaftPayload, pd_raft_client::PdRaftClient};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

use super::{PdMember, Snapshot, TypeConfig, Vote};

/// Creates one [`PeerClient`] per target member.
#[derive(Clone, Default)]
pub struct PdNetwork;

impl RaftNetworkFactory<TypeConfig> for PdNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &PdMember) -> PeerClient {
        PeerClient { target, address: node.address.clone(), client: None }
    }
}

pub struct PeerClient {
    target: u64,
    address: String,
    client: Option<PdRaftClient<Channel>>,
}

#[derive(Clone, Copy)]
enum Rpc {
    Append,
    Vote,
    Snapshot,
    TransferLeader,
}

impl PeerClient {
    fn unreachable(&self, what: impl std::fmt::Display) -> Unreachable<TypeConfig> {
        Unreachable::from_string(format!("PD member {} at {}: {what}", self.target, self.address))
    }

    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &mut self,
        rpc: Rpc,
        req: &Req,
        snapshot: Vec<u8>,
        option: &RPCOption,
    ) -> Result<Resp, Unreachable<TypeConfig>> {
        let data = serde_json::to_vec(req).map_err(|e| self.unreachable(e))?;
        if self.client.is_none() {
            let ch = crate::net::channel(&self.address).map_err(|e| self.unreachable(e))?;
            // Snapshots of a large catalog exceed tonic's 4 MiB default.
            self.client =
                Some(PdRaftClient::new(ch).max_decoding_message_size(256 << 20).max_encoding_message_size(256 << 20));
        }
        let mut client = self.client.clone().expect("set above");
        let mut request =
            tonic::Request::new(RaftPayload { data, error: String::new(), target: self.target, snapshot });
        request.set_timeout(option.soft_ttl());
        let resp = match rpc {
            Rpc::Append => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::Snapshot => client.install_snapshot(request).await,
            Rpc::TransferLeader => client.transfer_leader(request).await,
        };
        let payload = resp.map_err(|s| self.unreachable(s.message()))?.into_inner();
        if !payload.error.is_empty() {
            return Err(self.unreachable(payload.error));
        }
        serde_json::from_slice(&payload.data).map_err(|e| self.unreachable(e))
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        Ok(self.call(Rpc::Append, &rpc, Vec::new(), &option).await?)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        Ok(self.call(Rpc::Vote, &rpc, Vec::new(), &option).await?)
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let head = (vote, snapshot.meta);
        let call = self.call(Rpc::Snapshot, &head, snapshot.snapshot, &option);
        tokio::select! {
            res = call => Ok(res?),
            closed = cancel => Err(StreamingError::Closed(closed)),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        Ok(self.call(Rpc::TransferLeader, &req, Vec::new(), &option).await?)
    }
}
