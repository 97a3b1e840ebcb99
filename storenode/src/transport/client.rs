//! The sending side of the store-to-store raft transport.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use proto::raftpb::{self, raft_transport_client::RaftTransportClient};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;

use super::pipe::Pipe;
use super::snapshot_limits::SnapshotLimits;
use super::{MAX_MESSAGE, SNAPSHOT_CHUNK, SendError};
use crate::fault::Partition;
use crate::metrics;
use crate::raft::snapshot::SnapshotFile;
use crate::routes::RouteTable;

pub struct Transport {
    routes: Arc<RouteTable>,
    partition: Arc<Partition>,
    /// store id -> (address the channel was made for, channel).
    channels: Mutex<HashMap<u64, (String, RaftTransportClient<Channel>)>>,
    /// store id -> (address, the stream small RPCs to it travel on).
    pipes: Mutex<HashMap<u64, (String, Arc<Pipe>)>>,
    /// store id -> the queue of its heartbeat batcher.
    batchers: Mutex<HashMap<u64, mpsc::Sender<Queued>>>,
    /// The store's snapshot rate and concurrency limits.
    pub snapshots: Arc<SnapshotLimits>,
    me: Weak<Transport>,
}

/// A heartbeat waiting for the next batch to its store.
struct Queued {
    req: raftpb::RaftRequest,
    reply: oneshot::Sender<Result<Vec<u8>, SendError>>,
}

/// How long a heartbeat may wait for others bound to the same store. Far
/// below any election timeout; openraft measures leases from when it sent
/// the heartbeat, so the wait costs no safety.
const BATCH_WINDOW: Duration = Duration::from_millis(50);
/// Most heartbeats in one batch.
const MAX_BATCH: usize = 512;

/// Largest payload sent on a store's stream; a larger append (a follower
/// catching up) goes as an RPC of its own, so that it does not hold the
/// messages behind it on the stream while its bytes cross.
const PIPE_MAX_PAYLOAD: usize = 256 << 10;

impl Transport {
    pub fn new(routes: Arc<RouteTable>, partition: Arc<Partition>, snapshots: SnapshotLimits) -> Arc<Self> {
        Arc::new_cyclic(|me| Transport {
            routes,
            partition,
            channels: Mutex::new(HashMap::new()),
            pipes: Mutex::new(HashMap::new()),
            batchers: Mutex::new(HashMap::new()),
            snapshots: Arc::new(snapshots),
            me: me.clone(),
        })
    }

    /// Sends a heartbeat (an append with no entries) in the next batch for
    /// its store: one RPC carries every region's heartbeat to that store.
    ///
    /// # Errors
    ///
    /// As [`Transport::call`], or `timeout` elapsing.
    pub async fn call_batched(&self, req: raftpb::RaftRequest, timeout: Duration) -> Result<Vec<u8>, SendError> {
        let tx = self.batcher(req.to_store);
        let (reply, wait) = oneshot::channel();
        metrics::RAFT_MESSAGES_SENT.with_label_values(&[kind_name(req.kind)]).inc();
        tx.send(Queued { req, reply }).await.map_err(|_| "heartbeat batcher stopped".to_string())?;
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(res)) => res,
            Ok(Err(_)) => Err("heartbeat batch dropped".to_string()),
            Err(_) => Err(format!("heartbeat not answered in {timeout:?}")),
        }
    }

    fn batcher(&self, store_id: u64) -> mpsc::Sender<Queued> {
        let mut batchers = self.batchers.lock().unwrap();
        if let Some(tx) = batchers.get(&store_id).filter(|tx| !tx.is_closed()) {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(run_batcher(self.me.clone(), store_id, rx));
        batchers.insert(store_id, tx.clone());
        tx
    }

    fn client(&self, store_id: u64) -> Result<RaftTransportClient<Channel>, SendError> {
        let address = self.address(store_id)?;
        self.channel(store_id, address)
    }

    /// The address of `store_id`, if a message may go there now.
    fn address(&self, store_id: u64) -> Result<String, SendError> {
        if self.partition.blocks_store(store_id) {
            metrics::RAFT_MESSAGES_DROPPED.with_label_values(&["partitioned"]).inc();
            return Err(format!("store {store_id} is cut off (fault injection)"));
        }
        let store = self.routes.store(store_id).ok_or_else(|| {
            metrics::RAFT_MESSAGES_DROPPED.with_label_values(&["unknown_store"]).inc();
            format!("store {store_id} is not in the route table")
        })?;
        Ok(store.address)
    }

    /// The channel to `store_id` at `address`, made anew when the store
    /// moved.
    fn channel(&self, store_id: u64, address: String) -> Result<RaftTransportClient<Channel>, SendError> {
        let mut channels = self.channels.lock().unwrap();
        if let Some((addr, c)) = channels.get(&store_id)
            && *addr == address
        {
            return Ok(c.clone());
        }
        let ch = pd::client::channel(&address).map_err(|e| e.to_string())?;
        let c =
            RaftTransportClient::new(ch).max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(MAX_MESSAGE);
        channels.insert(store_id, (address, c.clone()));
        Ok(c)
    }

    /// The stream to `store_id`, opened anew when the last one ended or
    /// the store moved.
    fn pipe(&self, store_id: u64) -> Result<Arc<Pipe>, SendError> {
        let address = self.address(store_id)?;
        let mut pipes = self.pipes.lock().unwrap();
        if let Some((addr, pipe)) = pipes.get(&store_id)
            && *addr == address
            && !pipe.is_ended()
        {
            return Ok(pipe.clone());
        }
        let pipe = Pipe::open(self.channel(store_id, address.clone())?, store_id);
        pipes.insert(store_id, (address, pipe.clone()));
        Ok(pipe)
    }

    /// Sends one raft RPC and returns the receiver's (encoded) response:
    /// on the store's stream, or, for a large payload, as an RPC of its
    /// own.
    ///
    /// # Errors
    ///
    /// The store is unknown or unreachable, or refused the message.
    pub async fn call(&self, req: raftpb::RaftRequest, timeout: Duration) -> Result<Vec<u8>, SendError> {
        if req.payload.len() > PIPE_MAX_PAYLOAD {
            return self.call_unary(req, timeout).await;
        }
        let pipe = self.pipe(req.to_store)?;
        metrics::RAFT_MESSAGES_SENT.with_label_values(&[kind_name(req.kind)]).inc();
        pipe.call(req, timeout).await
    }

    async fn call_unary(&self, req: raftpb::RaftRequest, timeout: Duration) -> Result<Vec<u8>, SendError> {
        let kind = kind_name(req.kind);
        let mut client = self.client(req.to_store)?;
        let mut request = tonic::Request::new(req);
        request.set_timeout(timeout);
        metrics::RAFT_MESSAGES_SENT.with_label_values(&[kind]).inc();
        let resp = client.call(request).await.map_err(|s| {
            metrics::RAFT_MESSAGES_DROPPED.with_label_values(&["unreachable"]).inc();
            s.message().to_string()
        })?;
        let resp = resp.into_inner();
        if !resp.error.is_empty() {
            metrics::RAFT_MESSAGES_DROPPED.with_label_values(&["refused"]).inc();
            return Err(resp.error);
        }
        Ok(resp.payload)
    }

    /// Streams a snapshot file in chunks, reading it as the receiver takes
    /// them: at most a chunk or two of it is in memory. Returns the
    /// receiver's response.
    ///
    /// # Errors
    ///
    /// As [`Transport::call`], or the file failing to read.
    pub async fn send_snapshot(
        &self,
        header: raftpb::SnapshotHeader,
        snapshot: &SnapshotFile,
    ) -> Result<Vec<u8>, SendError> {
        let _slot = self.snapshots.send_slot().await;
        let started = Instant::now();
        let mut client = self.client(header.to_store)?;
        let mut file = tokio::fs::File::from_std(snapshot.file.try_clone().map_err(|e| e.to_string())?);
        file.rewind().await.map_err(|e| format!("snapshot file {}: {e}", snapshot.path.display()))?;
        let sent = Arc::new(AtomicU64::new(0));
        let failed: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let state = ChunkSource {
            header: Some(header),
            file,
            done: false,
            sent: sent.clone(),
            failed: failed.clone(),
            limits: self.snapshots.clone(),
        };
        let chunks = futures::stream::unfold(state, ChunkSource::next);
        let resp = client.install_snapshot(chunks).await;
        // A read failure ends the stream early; the receiver then refuses
        // the truncated file, but the reason is ours to report.
        if let Some(e) = failed.lock().unwrap().take() {
            return Err(format!("reading snapshot {}: {e}", snapshot.path.display()));
        }
        let resp = resp.map_err(|s| {
            metrics::RAFT_MESSAGES_DROPPED.with_label_values(&["unreachable"]).inc();
            s.message().to_string()
        })?;
        let resp = resp.into_inner();
        if !resp.error.is_empty() {
            return Err(resp.error);
        }
        metrics::SNAPSHOTS.with_label_values(&["sent"]).inc();
        metrics::SNAPSHOT_BYTES.with_label_values(&["sent"]).inc_by(sent.load(Ordering::Relaxed));
        metrics::SNAPSHOT_SECONDS.with_label_values(&["send"]).observe(started.elapsed().as_secs_f64());
        Ok(resp.payload)
    }
}

/// The chunks of one snapshot send, read from the file one at a time as
/// gRPC flow control asks for them.
struct ChunkSource {
    /// Sent with the first chunk.
    header: Option<raftpb::SnapshotHeader>,
    file: tokio::fs::File,
    done: bool,
    sent: Arc<AtomicU64>,
    failed: Arc<Mutex<Option<String>>>,
    /// Paces the chunks at the store's snapshot rate.
    limits: Arc<SnapshotLimits>,
}

impl ChunkSource {
    async fn next(mut self) -> Option<(raftpb::SnapshotChunk, Self)> {
        if self.done {
            return None;
        }
        let mut data = vec![0u8; SNAPSHOT_CHUNK];
        let mut n = 0;
        while n < data.len() {
            match self.file.read(&mut data[n..]).await {
                Ok(0) => {
                    self.done = true;
                    break;
                }
                Ok(k) => n += k,
                Err(e) => {
                    *self.failed.lock().unwrap() = Some(e.to_string());
                    return None;
                }
            }
        }
        data.truncate(n);
        if n == 0 && self.header.is_none() {
            return None;
        }
        self.limits.pace(n as u64).await;
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
        Some((raftpb::SnapshotChunk { header: self.header.take(), data }, self))
    }
}

/// Collects heartbeats for one store for up to [`BATCH_WINDOW`] and sends
/// each batch as one RPC, answering every heartbeat from its slot in the
/// response. Ends when the transport is gone.
async fn run_batcher(transport: Weak<Transport>, store_id: u64, mut rx: mpsc::Receiver<Queued>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let flush_at = tokio::time::Instant::now() + BATCH_WINDOW;
        while batch.len() < MAX_BATCH {
            tokio::select! {
                next = rx.recv() => match next {
                    Some(q) => batch.push(q),
                    None => break,
                },
                () = tokio::time::sleep_until(flush_at) => break,
            }
        }
        let Some(transport) = transport.upgrade() else { return };
        let client = transport.client(store_id);
        // Send in the background so the next batch can gather meanwhile.
        tokio::spawn(async move {
            let (requests, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|q| (q.req, q.reply)).unzip();
            let result = match client {
                Ok(mut c) => c.batch_call(raftpb::RaftBatch { requests }).await.map_err(|s| {
                    metrics::RAFT_MESSAGES_DROPPED.with_label_values(&["unreachable"]).inc();
                    s.message().to_string()
                }),
                Err(e) => Err(e),
            };
            match result {
                Ok(resp) => {
                    let responses = resp.into_inner().responses;
                    for (i, reply) in replies.into_iter().enumerate() {
                        let r = match responses.get(i) {
                            Some(r) if r.error.is_empty() => Ok(r.payload.clone()),
                            Some(r) => Err(r.error.clone()),
                            None => Err("batch response too short".to_string()),
                        };
                        let _ = reply.send(r);
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        });
    }
}

pub fn kind_name(kind: i32) -> &'static str {
    match raftpb::RaftCallKind::try_from(kind) {
        Ok(raftpb::RaftCallKind::AppendEntries) => "append",
        Ok(raftpb::RaftCallKind::Vote) => "vote",
        Ok(raftpb::RaftCallKind::TransferLeader) => "transfer_leader",
        Ok(raftpb::RaftCallKind::Hibernate) => "hibernate",
        Ok(raftpb::RaftCallKind::Wake) => "wake",
        Err(_) => "unknown",
    }
}
