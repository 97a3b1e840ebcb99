//! A client that speaks the store side of PD's heartbeat protocol, for
//! driving PD the way a storage node does without starting one.

use std::time::Duration;

use pd::client::PdClient;
use pd::error::PdError;
use proto::{metapb, pdpb};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// One open heartbeat stream.
pub struct HeartbeatStream {
    pub store_id: u64,
    tx: mpsc::Sender<pdpb::StoreHeartbeatRequest>,
    rx: tonic::Streaming<pdpb::StoreHeartbeatResponse>,
}

/// Allocates a store id and registers a store with a made-up address.
///
/// # Panics
///
/// If PD refuses.
pub async fn register_store(pd: &PdClient, port: u16) -> u64 {
    let id = pd.alloc_id().await.expect("alloc store id");
    let store = metapb::Store {
        id,
        address: format!("127.0.0.1:{port}"),
        http_address: format!("127.0.0.1:{}", port + 1),
        ..Default::default()
    };
    pd.put_store(store).await.expect("put store");
    id
}

impl HeartbeatStream {
    /// Opens a stream to the current PD leader and sends the first store
    /// heartbeat.
    ///
    /// # Errors
    ///
    /// When no leader can be reached.
    pub async fn open(pd: &PdClient, store_id: u64) -> Result<Self, PdError> {
        let (_, mut grpc) = pd.leader_grpc().await?;
        let (tx, rx) = mpsc::channel(16);
        tx.send(Self::stats(store_id)).await.expect("queue first message");
        let resp =
            grpc.store_heartbeat(ReceiverStream::new(rx)).await.map_err(|s| pd::client::status_error("leader", &s))?;
        Ok(HeartbeatStream { store_id, tx, rx: resp.into_inner() })
    }

    fn stats(store_id: u64) -> pdpb::StoreHeartbeatRequest {
        pdpb::StoreHeartbeatRequest {
            store_id,
            payload: Some(pdpb::store_heartbeat_request::Payload::Store(pdpb::StoreStats {
                capacity: 100 << 30,
                available: 50 << 30,
                ..Default::default()
            })),
        }
    }

    pub async fn send(&self, payload: pdpb::store_heartbeat_request::Payload) {
        let msg = pdpb::StoreHeartbeatRequest { store_id: self.store_id, payload: Some(payload) };
        self.tx.send(msg).await.expect("heartbeat stream closed");
    }

    /// Reports `region` as led by this store's peer at `term`.
    pub async fn report_region(&self, region: &metapb::Region, term: u64) {
        let leader = *region.peers.iter().find(|p| p.store_id == self.store_id).expect("store hosts a peer");
        self.send(pdpb::store_heartbeat_request::Payload::Region(pdpb::RegionHeartbeat {
            region: Some(region.clone()),
            leader: Some(leader),
            term,
            stats: Some(pdpb::RegionStats { approximate_size: 1 << 20, approximate_keys: 1000, ..Default::default() }),
            ..Default::default()
        }))
        .await;
    }

    /// The next message: a route snapshot, or PD's refusal.
    ///
    /// # Errors
    ///
    /// The refusal in a header, or `Unavailable` when the stream ends or
    /// nothing arrives within `timeout`.
    pub async fn next_routes(&mut self, timeout: Duration) -> Result<pdpb::RouteSnapshot, PdError> {
        loop {
            let msg = tokio::time::timeout(timeout, self.rx.message())
                .await
                .map_err(|_| PdError::Unavailable("no heartbeat response in time".into()))?
                .map_err(|s| pd::client::status_error("leader", &s))?
                .ok_or_else(|| PdError::Unavailable("heartbeat stream ended".into()))?;
            pd::error::check_header(&msg.header)?;
            if let Some(pdpb::store_heartbeat_response::Payload::Routes(r)) = msg.payload {
                return Ok(r);
            }
        }
    }

    /// Skips snapshots until one satisfies `pred`.
    ///
    /// # Panics
    ///
    /// If the stream fails or nothing matching arrives in `timeout`.
    pub async fn routes_until(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&pdpb::RouteSnapshot) -> bool,
    ) -> pdpb::RouteSnapshot {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let r = self.next_routes(left).await.expect("route snapshot");
            if pred(&r) {
                return r;
            }
        }
    }
}
