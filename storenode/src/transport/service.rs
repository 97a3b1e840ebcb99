//! The receiving side of the store-to-store raft transport: checks that a
//! message is meant for this store and peer, creates the peer on demand
//! when it does not exist yet, and hands the message to its raft.
//!
//! Data for a peer passes the node's range checks here, before raft sees
//! it: the first log entries of a peer with no range yet, and every
//! snapshot (see [`crate::node`] for the range invariant). Refusing inside
//! the state machine instead would be fatal to the region's raft group; a
//! refused message is only answered with an error, and the leader retries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use openraft::raft::AppendEntriesRequest;
use proto::metapb;
use proto::raftpb::{self, raft_transport_server::RaftTransport};
use tonic::{Request, Response, Status, Streaming};
use tracing::info;

use super::client::kind_name;
use crate::metrics;
use crate::node::hibernation::WakeCause;
use crate::node::{Node, PeerOrigin, RegionPeer};
use crate::raft::snapshot;
use crate::raft::{Snapshot, SnapshotMeta, TypeConfig, Vote, decode, encode};

#[derive(Clone)]
pub struct TransportService {
    node: Arc<Node>,
    /// Turns true when the store shuts down: open streams then stop taking
    /// messages and end, so the gRPC server's drain is not held up by peer
    /// stores' streams, which would otherwise never end.
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl TransportService {
    pub fn new(node: Arc<Node>, shutdown: tokio::sync::watch::Receiver<bool>) -> Self {
        TransportService { node, shutdown }
    }

    /// The local peer for a message, created if this store should have it.
    ///
    /// The split race: traffic for a region born by a split this store has
    /// not applied yet (a local region of an older version still owns its
    /// keys) must not create an empty peer over those keys. With `hold`, it
    /// waits up to one election timeout for the split to apply here; then,
    /// or without `hold` (a batch of many regions' heartbeats, which must
    /// not wait on one), it is refused and the leader tries again.
    async fn peer_for(
        &self,
        region_id: u64,
        to_peer: u64,
        to_store: u64,
        region: Option<&metapb::Region>,
        hold: bool,
    ) -> Result<Arc<RegionPeer>, String> {
        if to_store != self.node.store_id {
            return Err(format!("message for store {to_store} reached store {}", self.node.store_id));
        }
        if self.node.peer(region_id).is_none()
            && let Some(r) = region.filter(|r| r.id == region_id && self.node.awaits_split(r))
        {
            let wait = Duration::from_millis(if hold { self.node.config.raft.election_timeout_min_ms } else { 0 });
            if !self.node.hold_for_split(r, wait).await {
                return Err(format!(
                    "region {region_id} is not split off here yet: a local region still owns its keys"
                ));
            }
        }
        if let Some(peer) = self.node.peer(region_id) {
            if peer.shared.peer_id != to_peer {
                return Err(format!(
                    "message for peer {to_peer} of region {region_id}, but this store runs peer {}",
                    peer.shared.peer_id
                ));
            }
            return Ok(peer);
        }
        let region = region
            .filter(|r| r.id == region_id)
            .ok_or_else(|| format!("region {region_id} unknown here and the message has no meta for it"))?;
        // The node refuses a destroyed peer and keys a newer local region
        // owns; the new peer owns no range until data arrives.
        info!(region_id, peer_id = to_peer, "creating peer on demand for incoming raft traffic");
        self.node.start_peer(region.clone(), to_peer, PeerOrigin::RaftMessage).await.map_err(|e| e.to_string())
    }
}

fn refused(reason: String) -> raftpb::RaftResponse {
    metrics::RAFT_MESSAGES_DROPPED.with_label_values(&["refused_here"]).inc();
    raftpb::RaftResponse { payload: Vec::new(), error: reason }
}

fn answer<T: serde::Serialize, E: std::fmt::Display>(res: Result<T, E>) -> raftpb::RaftResponse {
    match res.map_err(|e| e.to_string()).and_then(|v| encode(&v).map_err(|e| e.to_string())) {
        Ok(payload) => raftpb::RaftResponse { payload, error: String::new() },
        Err(e) => refused(e),
    }
}

impl TransportService {
    /// The peer's running group, for traffic about to reach it: noted as
    /// heard (so it does not go dormant under it), and revived if dormant
    /// (only a running group can answer, a bare heartbeat too).
    async fn running(&self, peer: &Arc<RegionPeer>) -> Result<crate::raft::RegionRaft, String> {
        peer.heard();
        self.node.revive(peer).await.map_err(|e| format!("region {} failed to revive: {e}", peer.region_id()))?;
        peer.raft().ok_or_else(|| format!("peer {} of region {} is stopped", peer.shared.peer_id, peer.region_id()))
    }

    /// Delivers one raft RPC to its peer; every failure becomes the
    /// response's `error`.
    async fn deliver(&self, req: raftpb::RaftRequest, hold: bool) -> raftpb::RaftResponse {
        metrics::RAFT_MESSAGES_RECEIVED.with_label_values(&[kind_name(req.kind)]).inc();
        if req.kind == raftpb::RaftCallKind::Hibernate as i32 || req.kind == raftpb::RaftCallKind::Wake as i32 {
            // Never creates a peer: these are for members that exist.
            return match self.node.on_hibernation_message(&req).await {
                Ok(payload) => raftpb::RaftResponse { payload, error: String::new() },
                Err(error) => raftpb::RaftResponse { payload: Vec::new(), error },
            };
        }
        let peer = match self.peer_for(req.region_id, req.to_peer, req.to_store, req.region.as_ref(), hold).await {
            Ok(p) => p,
            Err(e) => return refused(e),
        };
        let raft = match self.running(&peer).await {
            Ok(r) => r,
            Err(e) => return refused(e),
        };
        let bad = |e: std::io::Error| format!("bad raft payload: {e}");
        // Everything but a bare heartbeat wakes a hibernated peer. A
        // heartbeat is answered asleep: a leader woken for a read sends
        // them, and one sent just before the leader itself hibernated must
        // not leave a follower ticking towards an election against it.
        let mut wakes = true;
        let resp = match raftpb::RaftCallKind::try_from(req.kind) {
            Ok(raftpb::RaftCallKind::AppendEntries) => match decode::<AppendEntriesRequest<TypeConfig>>(&req.payload) {
                Ok(r) => {
                    // Its first entries make a peer with no range hold data:
                    // it claims its range first.
                    if !r.entries.is_empty()
                        && !self.node.is_initialized(peer.region_id())
                        && let Err(e) = self.node.admit_data(&peer, &peer.region(), "raft_message")
                    {
                        return refused(e.to_string());
                    }
                    wakes = !r.entries.is_empty();
                    let timed = (!r.entries.is_empty()).then(std::time::Instant::now);
                    let resp = raft.append_entries(r).await;
                    if let Some(at) = timed {
                        let secs = at.elapsed().as_secs_f64();
                        metrics::RAFT_STAGE_SECONDS.with_label_values(&["follower_append"]).observe(secs);
                    }
                    answer(resp)
                }
                Err(e) => refused(bad(e)),
            },
            Ok(raftpb::RaftCallKind::Vote) if !self.node.may_vote() => {
                metrics::VOTES_REFUSED_AFTER_RESTART.inc();
                refused("store restarted less than one election timeout ago: not voting yet".into())
            }
            Ok(raftpb::RaftCallKind::Vote) => match decode(&req.payload) {
                Ok(r) => answer(raft.vote(r).await),
                Err(e) => refused(bad(e)),
            },
            Ok(raftpb::RaftCallKind::TransferLeader) => match decode(&req.payload) {
                Ok(r) => answer(raft.handle_transfer_leader(r).await),
                Err(e) => refused(bad(e)),
            },
            Ok(raftpb::RaftCallKind::Hibernate | raftpb::RaftCallKind::Wake) => {
                return refused("hibernation message on the raft path".into());
            }
            Err(_) => return refused(format!("unknown raft call kind {}", req.kind)),
        };
        // After delivery: a follower's first tick then sees the message,
        // not a leader silent since it hibernated.
        if wakes {
            self.node.wake(&peer, WakeCause::RaftMessage).await;
        }
        resp
    }
}

/// The replies of one `Stream`, as the deliveries finish.
type ReplyStream = futures::stream::BoxStream<'static, Result<raftpb::RaftReply, Status>>;

#[tonic::async_trait]
impl RaftTransport for TransportService {
    type StreamStream = ReplyStream;

    /// Delivers each envelope as it arrives, each in a task of its own: an
    /// append waiting for its fsync, or a message held for a split, must
    /// not hold back another region's messages behind it on the stream.
    async fn stream(
        &self,
        req: Request<Streaming<raftpb::RaftEnvelope>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let mut inbound = req.into_inner();
        // Unbounded, yet bounded by the sender: each region's replication
        // to a peer has one message in flight, and a reply is one small
        // message per envelope taken.
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let service = self.clone();
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            // An error or the store's shutdown ends the stream: the sender
            // sees it end and fails what it has in flight.
            loop {
                let envelope = tokio::select! {
                    next = inbound.message() => match next {
                        Ok(Some(envelope)) => envelope,
                        Ok(None) | Err(_) => break,
                    },
                    _ = shutdown.wait_for(|stop| *stop) => break,
                };
                let (service, tx) = (service.clone(), tx.clone());
                tokio::spawn(async move {
                    let response = match envelope.request {
                        Some(r) => service.deliver(r, true).await,
                        None => refused("raft envelope without a request".to_string()),
                    };
                    let _ = tx.send(Ok(raftpb::RaftReply { id: envelope.id, response: Some(response) }));
                });
            }
        });
        let replies = tokio_stream::wrappers::UnboundedReceiverStream::new(rx);
        Ok(Response::new(Box::pin(replies)))
    }

    async fn call(&self, req: Request<raftpb::RaftRequest>) -> Result<Response<raftpb::RaftResponse>, Status> {
        Ok(Response::new(self.deliver(req.into_inner(), true).await))
    }

    async fn batch_call(&self, req: Request<raftpb::RaftBatch>) -> Result<Response<raftpb::RaftBatchResponse>, Status> {
        let requests = req.into_inner().requests;
        let responses = futures::future::join_all(requests.into_iter().map(|r| self.deliver(r, false))).await;
        Ok(Response::new(raftpb::RaftBatchResponse { responses }))
    }

    async fn install_snapshot(
        &self,
        req: Request<Streaming<raftpb::SnapshotChunk>>,
    ) -> Result<Response<raftpb::RaftResponse>, Status> {
        let Some(_slot) = self.node.transport.snapshots.try_receive_slot() else {
            return Ok(Response::new(refused("too many snapshots being received; retry later".to_string())));
        };
        let started = Instant::now();
        let mut stream = req.into_inner();
        let first = stream.message().await?.ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        let header = first.header.ok_or_else(|| Status::invalid_argument("first snapshot chunk has no header"))?;
        // Chunks go to a file as they arrive: memory stays at a chunk
        // whatever the region's size. Dropped unless installed.
        let chunks = futures::stream::iter([Ok(first.data)])
            .chain(stream.map(|c| c.map(|c| c.data).map_err(|s| std::io::Error::other(s.message().to_string()))));
        let dir = &self.node.engine.snapshot_dir;
        let (snapshot, bytes) = match snapshot::receive::receive(dir, header.region_id, chunks).await {
            Ok(v) => v,
            Err(e) => return Err(Status::internal(format!("receiving snapshot: {e}"))),
        };
        metrics::SNAPSHOTS.with_label_values(&["received"]).inc();
        metrics::SNAPSHOT_BYTES.with_label_values(&["received"]).inc_by(bytes);
        let peer = match self
            .peer_for(header.region_id, header.to_peer, header.to_store, header.region.as_ref(), true)
            .await
        {
            Ok(p) => p,
            Err(e) => return Ok(Response::new(refused(e))),
        };
        // The sender's view of the region stands for the snapshot's: the
        // file is the state machine's to read.
        let region = header.region.filter(|r| r.id == header.region_id).unwrap_or_else(|| peer.region());
        // What the install clears and writes is the file's range, which
        // may be older than the sender's view (a file built before a split):
        // the two must agree, and the range is checked and claimed at once.
        let file_region = match crate::raft::snapshot::region_of(&snapshot.path) {
            Ok(r) => r,
            Err(e) => return Err(Status::internal(format!("reading the snapshot's head: {e}"))),
        };
        if let Err(e) = self.node.admit_snapshot(&peer, &region, &file_region) {
            return Ok(Response::new(refused(e.to_string())));
        }
        let (vote, meta): (Vote, SnapshotMeta) =
            decode(&header.meta).map_err(|e| Status::invalid_argument(format!("bad snapshot header: {e}")))?;
        let raft = match self.running(&peer).await {
            Ok(r) => r,
            Err(e) => return Ok(Response::new(refused(e))),
        };
        let res = raft.install_full_snapshot(vote, Snapshot { meta, snapshot }).await;
        self.node.wake(&peer, WakeCause::RaftMessage).await;
        metrics::SNAPSHOT_SECONDS.with_label_values(&["receive"]).observe(started.elapsed().as_secs_f64());
        Ok(Response::new(answer(res)))
    }
}
