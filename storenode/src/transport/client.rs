//! The sending side of the store-to-store raft transport.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto::raftpb::{self, raft_transport_client::RaftTransportClient};
use tonic::transport::Channel;

use super::{MAX_MESSAGE, SNAPSHOT_CHUNK};
use crate::metrics;
use crate::routes::RouteTable;

pub struct Transport {
    routes: Arc<RouteTable>,
    /// store id -> (address the channel was made for, channel).
    channels: Mutex<HashMap<u64, (String, RaftTransportClient<Channel>)>>,
}

/// Why a message could not be delivered; openraft treats it as the peer
/// being unreachable and backs off.
pub type SendError = String;

impl Transport {
    pub fn new(routes: Arc<RouteTable>) -> Arc<Self> {
        Arc::new(Transport {
            routes,
            channels: Mutex::new(HashMap::new()),
        })
    }

    fn client(&self, store_id: u64) -> Result<RaftTransportClient<Channel>, SendError> {
        let store = self.routes.store(store_id).ok_or_else(|| {
            metrics::RAFT_MESSAGES_DROPPED
                .with_label_values(&["unknown_store"])
                .inc();
            format!("store {store_id} is not in the route table")
        })?;
        let mut channels = self.channels.lock().unwrap();
        if let Some((addr, c)) = channels.get(&store_id)
            && *addr == store.address
        {
            return Ok(c.clone());
        }
        let ch = pd::client::channel(&store.address).map_err(|e| e.to_string())?;
        let c = RaftTransportClient::new(ch)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        channels.insert(store_id, (store.address, c.clone()));
        Ok(c)
    }

    /// Sends one raft RPC and returns the receiver's (encoded) response.
    ///
    /// # Errors
    ///
    /// The store is unknown or unreachable, or refused the message.
    pub async fn call(
        &self,
        req: raftpb::RaftRequest,
        timeout: Duration,
    ) -> Result<Vec<u8>, SendError> {
        let kind = kind_name(req.kind);
        let mut client = self.client(req.to_store)?;
        let mut request = tonic::Request::new(req);
        request.set_timeout(timeout);
        metrics::RAFT_MESSAGES_SENT.with_label_values(&[kind]).inc();
        let resp = client.call(request).await.map_err(|s| {
            metrics::RAFT_MESSAGES_DROPPED
                .with_label_values(&["unreachable"])
                .inc();
            s.message().to_string()
        })?;
        let resp = resp.into_inner();
        if !resp.error.is_empty() {
            metrics::RAFT_MESSAGES_DROPPED
                .with_label_values(&["refused"])
                .inc();
            return Err(resp.error);
        }
        Ok(resp.payload)
    }

    /// Streams a snapshot in chunks; returns the receiver's response.
    ///
    /// # Errors
    ///
    /// As [`Transport::call`].
    pub async fn send_snapshot(
        &self,
        header: raftpb::SnapshotHeader,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, SendError> {
        let started = Instant::now();
        let mut client = self.client(header.to_store)?;
        let bytes = data.len() as u64;
        let mut chunks = Vec::with_capacity(data.len() / SNAPSHOT_CHUNK + 1);
        let mut header = Some(header);
        let mut rest = data.as_slice();
        loop {
            let n = rest.len().min(SNAPSHOT_CHUNK);
            chunks.push(raftpb::SnapshotChunk {
                header: header.take(),
                data: rest[..n].to_vec(),
            });
            rest = &rest[n..];
            if rest.is_empty() {
                break;
            }
        }
        let resp = client
            .install_snapshot(tokio_stream::iter(chunks))
            .await
            .map_err(|s| {
                metrics::RAFT_MESSAGES_DROPPED
                    .with_label_values(&["unreachable"])
                    .inc();
                s.message().to_string()
            })?;
        let resp = resp.into_inner();
        if !resp.error.is_empty() {
            return Err(resp.error);
        }
        metrics::SNAPSHOTS.with_label_values(&["sent"]).inc();
        metrics::SNAPSHOT_BYTES
            .with_label_values(&["sent"])
            .inc_by(bytes);
        metrics::SNAPSHOT_SECONDS
            .with_label_values(&["send"])
            .observe(started.elapsed().as_secs_f64());
        Ok(resp.payload)
    }
}

pub fn kind_name(kind: i32) -> &'static str {
    match raftpb::RaftCallKind::try_from(kind) {
        Ok(raftpb::RaftCallKind::AppendEntries) => "append",
        Ok(raftpb::RaftCallKind::Vote) => "vote",
        Ok(raftpb::RaftCallKind::TransferLeader) => "transfer_leader",
        Err(_) => "unknown",
    }
}
