//! One simulated store: registered with PD like a storage node, with a
//! heartbeat stream that takes route deltas, and no data or raft at all.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto::metapb;
use proto::pdpb::{self, store_heartbeat_request::Payload, store_heartbeat_response::Payload as Down};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use super::route_map::RouteMap;
use crate::client::PdClient;
use crate::error::{PdError, Result};
use crate::routes::DeltaRefusal;

/// Messages the bench may queue on a stream before its sender waits: deep
/// enough that PD, not the queue, sets the pace of a report burst.
const UP_QUEUE: usize = 8_192;

pub struct SimStore {
    pub id: u64,
    tx: mpsc::Sender<pdpb::StoreHeartbeatRequest>,
    routes: Arc<Mutex<RouteMap>>,
    /// The version held and when the routes that brought it arrived.
    arrived: watch::Receiver<(u64, Instant)>,
}

impl SimStore {
    /// Allocates an id, registers the store under a made-up address
    /// `127.0.0.1:port`, and opens its heartbeat stream.
    ///
    /// # Errors
    ///
    /// PD's refusal, or no leader reachable.
    pub async fn start(pd: &PdClient, port: u16) -> Result<SimStore> {
        let id = pd.alloc_id().await?;
        let store = metapb::Store {
            id,
            address: format!("127.0.0.1:{port}"),
            http_address: format!("127.0.0.1:{}", port.wrapping_add(1)),
            state: metapb::StoreState::Up as i32,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        };
        pd.put_store(store).await?;
        let (addr, mut grpc) = pd.leader_grpc().await?;
        let (tx, rx) = mpsc::channel(UP_QUEUE);
        tx.send(up(id, Payload::Store(pdpb::StoreStats::default())))
            .await
            .map_err(|_| PdError::Unavailable("stream closed".into()))?;
        let down =
            grpc.store_heartbeat(ReceiverStream::new(rx)).await.map_err(|s| crate::client::status_error(&addr, &s))?;
        let routes = Arc::new(Mutex::new(RouteMap::default()));
        let (arrived_tx, arrived) = watch::channel((0, Instant::now()));
        tokio::spawn(follow(id, down.into_inner(), routes.clone(), arrived_tx, tx.clone()));
        Ok(SimStore { id, tx, routes, arrived })
    }

    /// Queues one message up the stream.
    ///
    /// # Errors
    ///
    /// `Unavailable` once the stream has ended.
    pub async fn send(&self, payload: Payload) -> Result<()> {
        self.tx.send(up(self.id, payload)).await.map_err(|_| PdError::Unavailable("heartbeat stream ended".into()))
    }

    /// Queues a message built elsewhere (reports prepared ahead of a burst).
    ///
    /// # Errors
    ///
    /// `Unavailable` once the stream has ended.
    pub async fn send_raw(&self, msg: pdpb::StoreHeartbeatRequest) -> Result<()> {
        self.tx.send(msg).await.map_err(|_| PdError::Unavailable("heartbeat stream ended".into()))
    }

    /// When routes at `version` or newer arrived.
    ///
    /// # Errors
    ///
    /// `Unavailable` when they do not arrive within `timeout`.
    pub async fn arrival_of(&self, version: u64, timeout: Duration) -> Result<Instant> {
        let mut rx = self.arrived.clone();
        let got = tokio::time::timeout(timeout, rx.wait_for(|(v, _)| *v >= version))
            .await
            .map_err(|_| PdError::Unavailable(format!("store {} did not reach version {version}", self.id)))?
            .map_err(|_| PdError::Unavailable(format!("store {}'s stream ended", self.id)))?;
        Ok(got.1)
    }

    pub fn version(&self) -> u64 {
        self.arrived.borrow().0
    }

    pub fn routes(&self) -> pdpb::RouteSnapshot {
        self.routes.lock().unwrap().to_snapshot()
    }
}

fn up(store_id: u64, payload: Payload) -> pdpb::StoreHeartbeatRequest {
    pdpb::StoreHeartbeatRequest { store_id, payload: Some(payload), route_deltas: true }
}

/// Applies the routes PD sends, noting when each version arrived; asks for
/// a full snapshot after a delta that does not apply. Directives are not
/// carried out: a simulated store has nothing to act on.
async fn follow(
    id: u64,
    mut down: tonic::Streaming<pdpb::StoreHeartbeatResponse>,
    routes: Arc<Mutex<RouteMap>>,
    arrived: watch::Sender<(u64, Instant)>,
    tx: mpsc::Sender<pdpb::StoreHeartbeatRequest>,
) {
    while let Ok(Some(msg)) = down.message().await {
        let at = Instant::now();
        if let Some(err) = msg.header.and_then(|h| h.error) {
            eprintln!("pdbench: store {id}: PD ended the stream: {}", err.message);
            return;
        }
        let version = match msg.payload {
            Some(Down::Routes(snapshot)) => {
                let mut r = routes.lock().unwrap();
                r.apply_full(snapshot);
                r.version()
            }
            Some(Down::RouteDelta(delta)) => {
                let res = routes.lock().unwrap().apply_delta(delta);
                match res {
                    Ok(()) | Err(DeltaRefusal::Stale { .. }) => {}
                    Err(e) => {
                        eprintln!("pdbench: store {id}: {e}; asking for a full snapshot");
                        let have_version = routes.lock().unwrap().version();
                        let _ = tx.send(up(id, Payload::RoutesWanted(pdpb::RoutesWanted { have_version }))).await;
                    }
                }
                routes.lock().unwrap().version()
            }
            Some(Down::Directive(_)) | None => continue,
        };
        arrived.send_if_modified(|held| {
            let newer = version > held.0;
            if newer {
                *held = (version, at);
            }
            newer
        });
    }
}
