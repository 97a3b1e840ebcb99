//! The receiving side of PD raft traffic, and the join handshake.

use std::collections::BTreeSet;

use openraft::ChangeMembers;
use openraft::async_runtime::WatchReceiver;
use proto::pdraftpb::{JoinRequest, JoinResponse, RaftPayload, pd_raft_server};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use super::{PdMember, PdRaft, Snapshot, SnapshotMeta, Vote};

pub struct PdRaftService {
    raft: PdRaft,
    node_id: u64,
}

impl PdRaftService {
    pub fn new(raft: PdRaft, node_id: u64) -> Self {
        PdRaftService { raft, node_id }
    }

    fn decode<T: DeserializeOwned>(&self, p: &RaftPayload) -> Result<T, Status> {
        if p.target != self.node_id {
            return Err(Status::failed_precondition(format!(
                "raft message for PD member {} reached member {}",
                p.target, self.node_id
            )));
        }
        serde_json::from_slice(&p.data).map_err(|e| Status::invalid_argument(format!("bad raft payload: {e}")))
    }
}

fn reply<T: Serialize, E: std::fmt::Display>(res: Result<T, E>) -> Result<Response<RaftPayload>, Status> {
    let payload = match res {
        Ok(v) => RaftPayload {
            data: serde_json::to_vec(&v).map_err(|e| Status::internal(e.to_string()))?,
            ..Default::default()
        },
        Err(e) => RaftPayload { error: e.to_string(), ..Default::default() },
    };
    Ok(Response::new(payload))
}

#[tonic::async_trait]
impl pd_raft_server::PdRaft for PdRaftService {
    async fn append_entries(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let rpc = self.decode(req.get_ref())?;
        reply(self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let rpc = self.decode(req.get_ref())?;
        reply(self.raft.vote(rpc).await)
    }

    async fn install_snapshot(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let (vote, meta): (Vote, SnapshotMeta) = self.decode(req.get_ref())?;
        let snapshot = Snapshot { meta, snapshot: req.into_inner().snapshot };
        reply(self.raft.install_full_snapshot(vote, snapshot).await)
    }

    async fn transfer_leader(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let rpc = self.decode(req.get_ref())?;
        reply(self.raft.handle_transfer_leader(rpc).await)
    }

    async fn join(&self, req: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        let req = req.into_inner();
        if req.id == 0 {
            return Err(Status::invalid_argument("member id 0"));
        }
        crate::catalog::validate_address("member address", &req.address)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let metrics = self.raft.metrics().borrow_watched().clone();
        if metrics.current_leader != Some(self.node_id) {
            let leader = metrics
                .current_leader
                .and_then(|id| metrics.membership_config.membership().get_node(&id).map(|n| (id, n.address.clone())));
            let (leader_id, leader_address) = leader.unwrap_or_default();
            return Ok(Response::new(JoinResponse { error: "not the PD leader".into(), leader_id, leader_address }));
        }
        let membership = metrics.membership_config.membership();
        if let Some(existing) = membership.get_node(&req.id) {
            if existing.address != req.address {
                return Ok(Response::new(JoinResponse {
                    error: format!("member id {} is already used by {}", req.id, existing.address),
                    ..Default::default()
                }));
            }
            if membership.voter_ids().any(|v| v == req.id) {
                return Ok(Response::new(JoinResponse::default()));
            }
        }
        let node = PdMember { address: req.address.clone(), http_address: req.http_address.clone() };
        info!(id = req.id, address = %req.address, "adding PD member as learner");
        if let Err(e) = self.raft.add_learner(req.id, node, true).await {
            warn!(id = req.id, error = %e, "add learner failed");
            return Ok(Response::new(JoinResponse { error: e.to_string(), ..Default::default() }));
        }
        info!(id = req.id, "promoting PD member to voter");
        let change = ChangeMembers::AddVoterIds(BTreeSet::from([req.id]));
        if let Err(e) = self.raft.change_membership(change, false).await {
            warn!(id = req.id, error = %e, "promotion failed");
            return Ok(Response::new(JoinResponse { error: e.to_string(), ..Default::default() }));
        }
        Ok(Response::new(JoinResponse::default()))
    }
}
