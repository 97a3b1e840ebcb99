//! Everything the store says to PD and hears from it.
//!
//! At startup the store registers: it takes its id from its engine, or
//! allocates one from PD the first time and records it, then registers its
//! addresses with `PutStore`. Then it keeps one heartbeat stream open to
//! the PD leader: store stats on a timer, a report for every region it
//! leads on a timer and at once after a leadership or membership change;
//! routes come down and are applied if newer. The stream asks for route
//! deltas, naming the version held in its first stats, so a reconnect after
//! a short outage brings only what changed; a delta that does not start at
//! the version held is refused and a full snapshot asked for
//! (`RoutesWanted`). When the stream
//! breaks (PD leader change, network), it reconnects with backoff to
//! whichever member leads now.
//!
//! Directives run in their own tasks, so a long one (a split scans its
//! region for the middle key) never holds up the stream. A split this store
//! applied is reported, parent and new region together, ahead of any
//! region heartbeat and again on every region tick while this store leads
//! the parent, until PD's routes show it. Right after new routes apply, the
//! store sends its stats, so PD learns at once that it has converged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pd::client::PdClient;
use pd::error::PdError;
use proto::metapb;
use proto::pdpb::{self, store_heartbeat_request::Payload, store_heartbeat_response::Payload as Down};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tracing::{info, warn};

use crate::engine::Engine;
use crate::metrics;
use crate::node::Node;
use crate::space;

/// Pause between attempts to reach PD, doubling up to the cap.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(3);

/// Finds or allocates this store's id and registers its addresses; retries
/// until PD answers or `shutdown` fires.
///
/// # Errors
///
/// A refusal PD will repeat (address owned by another store, tombstoned
/// id), or a storage failure.
pub async fn register(
    engine: &Engine,
    pd: &PdClient,
    address: &str,
    http_address: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<u64, PdError> {
    let mut backoff = RETRY_MIN;
    let store_id = loop {
        if let Some(id) = engine.store_id().map_err(|e| PdError::Storage(e.to_string()))? {
            break id;
        }
        match pd.alloc_id().await {
            Ok(id) => {
                engine.set_store_id(id).await.map_err(|e| PdError::Storage(e.to_string()))?;
                info!(store_id = id, "store id allocated by PD");
                break id;
            }
            Err(e) if e.is_retryable() => {
                warn!(error = %e, "waiting for PD to allocate a store id");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_MAX);
            }
            Err(e) => return Err(e),
        }
    };
    let store = metapb::Store {
        id: store_id,
        address: address.to_string(),
        http_address: http_address.to_string(),
        labels: labels.iter().map(|(k, v)| metapb::StoreLabel { key: k.clone(), value: v.clone() }).collect(),
        state: metapb::StoreState::Up as i32,
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    loop {
        match pd.put_store(store.clone()).await {
            Ok(_) => return Ok(store_id),
            Err(e) if e.is_retryable() => {
                warn!(error = %e, "waiting for PD to register the store");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_MAX);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Keeps the heartbeat stream alive until `shutdown`.
pub async fn run(node: Arc<Node>, mut events: mpsc::UnboundedReceiver<u64>, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = RETRY_MIN;
    let mut partition = node.partition.subscribe();
    loop {
        while node.partition.blocks_pd() {
            tokio::select! {
                _ = partition.changed() => {}
                _ = shutdown.changed() => return,
            }
        }
        match session(&node, &mut events, &mut shutdown).await {
            Ok(()) => return,
            Err(e) => {
                metrics::PD_STREAM_RECONNECTS.inc();
                node.pd.leader_failed(&e);
                warn!(error = %e, "PD heartbeat stream ended; reconnecting");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(RETRY_MAX);
    }
}

/// One stream's life. `Ok` only on shutdown.
async fn session(
    node: &Arc<Node>,
    events: &mut mpsc::UnboundedReceiver<u64>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), PdError> {
    let (addr, mut grpc) = node.pd.leader_grpc().await?;
    let (tx, rx) = mpsc::channel(256);
    tx.send(store_stats(node)).await.map_err(|_| PdError::Unavailable("stream closed".into()))?;
    let mut down = grpc
        .store_heartbeat(ReceiverStream::new(rx))
        .await
        .map_err(|s| pd::client::status_error(&addr, &s))?
        .into_inner();
    info!(pd = %addr, "PD heartbeat stream open");
    let send = |msg| {
        let tx = tx.clone();
        async move { tx.send(msg).await.map_err(|_| PdError::Unavailable("heartbeat stream closed".into())) }
    };
    // Report every led region at once: a new PD leader knows nothing of
    // leaders and sizes yet.
    for peer in node.peers() {
        if let Some(msg) = region_heartbeat(node, peer.region_id()) {
            send(msg).await?;
        }
    }
    let mut store_tick = tokio::time::interval(Duration::from_millis(node.config.heartbeat.store_interval_ms));
    let mut region_tick = tokio::time::interval(Duration::from_millis(node.config.heartbeat.region_interval_ms));
    store_tick.tick().await;
    region_tick.tick().await;
    let mut partition = node.partition.subscribe();
    loop {
        tokio::select! {
            _ = partition.changed() => {
                if node.partition.blocks_pd() {
                    return Err(PdError::Unavailable("cut off from PD (fault injection)".into()));
                }
            }
            msg = down.message() => {
                let msg = msg.map_err(|s| pd::client::status_error(&addr, &s))?
                    .ok_or_else(|| PdError::Unavailable("PD closed the heartbeat stream".into()))?;
                pd::error::check_header(&msg.header)?;
                match msg.payload {
                    Some(Down::Routes(snapshot)) => {
                        let version = node.routes.version();
                        node.on_routes(snapshot).await;
                        if node.routes.version() > version {
                            send(store_stats(node)).await?;
                        }
                    }
                    Some(Down::RouteDelta(delta)) => {
                        let version = node.routes.version();
                        match node.on_route_delta(&delta).await {
                            Ok(()) if node.routes.version() > version => send(store_stats(node)).await?,
                            Ok(()) => {}
                            Err(e) => {
                                warn!(error = %e, "route delta refused; asking PD for a full snapshot");
                                let wanted = pdpb::RoutesWanted { have_version: version };
                                send(up(node, Payload::RoutesWanted(wanted))).await?;
                            }
                        }
                    }
                    Some(Down::Directive(d)) => {
                        tokio::spawn(directive(node.clone(), d, tx.clone()));
                    }
                    None => {}
                }
            }
            Some(region_id) = events.recv() => {
                for report in split_reports(node, false) {
                    send(report).await?;
                }
                if let Some(msg) = region_heartbeat(node, region_id) {
                    send(msg).await?;
                }
            }
            _ = store_tick.tick() => send(store_stats(node)).await?,
            _ = region_tick.tick() => {
                for report in split_reports(node, true) {
                    send(report).await?;
                }
                for peer in node.peers() {
                    if let Some(msg) = region_heartbeat(node, peer.region_id()) {
                        send(msg).await?;
                    }
                }
            }
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

/// Carries out one directive; a refusal goes up the stream for the
/// operator waiting on it.
async fn directive(node: Arc<Node>, d: pdpb::Directive, up: mpsc::Sender<pdpb::StoreHeartbeatRequest>) {
    use pdpb::directive::Kind;
    let (kind, res) = match &d.kind {
        Some(Kind::Split(split)) => ("split", node.split_directive(&d, split).await.map(|o| o.label())),
        Some(Kind::TransferLeader(t)) => {
            ("transfer_leader", node.transfer_leader_directive(&d, t).await.map(|o| o.label()))
        }
        Some(Kind::AddLearner(a)) => ("add_learner", node.add_learner_directive(&d, a).await.map(|o| o.label())),
        Some(Kind::ChangePeers(c)) => ("change_peers", node.change_peers_directive(&d, c).await.map(|o| o.label())),
        Some(Kind::RemovePeer(r)) => ("remove_peer", node.remove_peer_directive(&d, r).await.map(|o| o.label())),
        None => {
            let message = "directive carries no kind".to_string();
            ("empty", Err(pdpb::Error { r#type: pdpb::ErrorType::InvalidArgument as i32, message, leader: None }))
        }
    };
    match res {
        Ok(result) => {
            metrics::DIRECTIVES.with_label_values(&[kind, result]).inc();
            info!(id = d.id, region_id = d.region_id, kind, result, "directive carried out");
        }
        Err(error) => {
            metrics::DIRECTIVES.with_label_values(&[kind, "refused"]).inc();
            warn!(id = d.id, region_id = d.region_id, kind, error = %error.message, "directive refused");
            metrics::PD_HEARTBEATS.with_label_values(&["directive_failed"]).inc();
            let failed = pdpb::DirectiveFailed { directive_id: d.id, region_id: d.region_id, error: Some(error) };
            let _ = up
                .send(pdpb::StoreHeartbeatRequest {
                    store_id: node.store_id,
                    payload: Some(Payload::DirectiveFailed(failed)),
                    route_deltas: true,
                })
                .await;
        }
    }
}

/// Reports of splits applied here that PD's routes do not show yet
/// (`rescan`: see [`Node::split_reports`]).
fn split_reports(node: &Node, rescan: bool) -> Vec<pdpb::StoreHeartbeatRequest> {
    node.split_reports(rescan)
        .into_iter()
        .map(|report| {
            metrics::PD_HEARTBEATS.with_label_values(&["split"]).inc();
            up(node, Payload::Split(report))
        })
        .collect()
}

fn store_stats(node: &Node) -> pdpb::StoreHeartbeatRequest {
    let peers = node.peers();
    let leaders = peers.iter().filter(|p| p.is_leader()).count();
    metrics::PD_HEARTBEATS.with_label_values(&["store"]).inc();
    let used = Engine::used_bytes(&node.config.data_dir);
    // A failed statvfs reports zero space, which PD shows as unknown, rather
    // than skipping the heartbeat that also carries the counts.
    let space = match space::fs_space(&node.config.data_dir) {
        Ok(fs) => space::store_space(fs, used, node.config.capacity.bytes()),
        Err(e) => {
            warn!(error = %e, "cannot read the data directory's file system size");
            space::StoreSpace { capacity: 0, available: 0 }
        }
    };
    up(
        node,
        Payload::Store(pdpb::StoreStats {
            capacity: space.capacity,
            available: space.available,
            used_size: used,
            region_count: peers.len() as u32,
            leader_count: leaders as u32,
            route_version: node.routes.version(),
            hibernated_region_count: node.hibernated_count() as u32,
            bytes_written: node.reported_flow.bytes_written.swap(0, Ordering::Relaxed),
            keys_written: node.reported_flow.keys_written.swap(0, Ordering::Relaxed),
            bytes_read: node.reported_flow.bytes_read.swap(0, Ordering::Relaxed),
            keys_read: node.reported_flow.keys_read.swap(0, Ordering::Relaxed),
        }),
    )
}

/// A message up the stream. Every one says the store applies route deltas
/// (PD reads it from the first).
fn up(node: &Node, payload: Payload) -> pdpb::StoreHeartbeatRequest {
    pdpb::StoreHeartbeatRequest { store_id: node.store_id, payload: Some(payload), route_deltas: true }
}

/// The report for a region this store leads; `None` if it does not.
fn region_heartbeat(node: &Node, region_id: u64) -> Option<pdpb::StoreHeartbeatRequest> {
    let peer = node.peer(region_id)?;
    if !peer.is_leader() {
        return None;
    }
    let s = &peer.shared;
    let size = s.approximate_size.load(Ordering::Relaxed);
    metrics::REGION_SIZE_BYTES.observe(size as f64);
    metrics::PD_HEARTBEATS.with_label_values(&["region"]).inc();
    let leader = metapb::Peer { id: s.peer_id, store_id: node.store_id, role: metapb::PeerRole::Voter as i32 };
    let region = peer.region();
    let (pending_peers, down_peers) = peer.lagging_peers(&region);
    let now = unix_ms();
    let since = s.flow_since_ms.swap(now, Ordering::Relaxed);
    let flow = pdpb::RegionStats {
        bytes_written: s.written_bytes.swap(0, Ordering::Relaxed),
        keys_written: s.written_keys.swap(0, Ordering::Relaxed),
        bytes_read: s.read_bytes.swap(0, Ordering::Relaxed),
        keys_read: s.read_keys.swap(0, Ordering::Relaxed),
        // The first report's counts cover an unknown span: no rate.
        interval_ms: if since == 0 { 0 } else { now.saturating_sub(since) },
        ..Default::default()
    };
    node.reported_flow.add(&flow);
    Some(up(
        node,
        Payload::Region(pdpb::RegionHeartbeat {
            region: Some(region),
            leader: Some(leader),
            term: peer.term(),
            stats: Some(pdpb::RegionStats {
                approximate_size: size,
                approximate_keys: s.approximate_keys.load(Ordering::Relaxed),
                ..flow
            }),
            pending_peers,
            down_peers,
        }),
    ))
}

/// The flow region heartbeats reported, summed until the next store
/// heartbeat takes it.
#[derive(Debug, Default)]
pub struct FlowTotals {
    pub bytes_written: AtomicU64,
    pub keys_written: AtomicU64,
    pub bytes_read: AtomicU64,
    pub keys_read: AtomicU64,
}

impl FlowTotals {
    fn add(&self, s: &pdpb::RegionStats) {
        self.bytes_written.fetch_add(s.bytes_written, Ordering::Relaxed);
        self.keys_written.fetch_add(s.keys_written, Ordering::Relaxed);
        self.bytes_read.fetch_add(s.bytes_read, Ordering::Relaxed);
        self.keys_read.fetch_add(s.keys_read, Ordering::Relaxed);
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
