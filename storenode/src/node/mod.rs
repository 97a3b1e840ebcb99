//! The node: this store's regions, their raft peers, and the routes from
//! PD. Request handling lives in [`crate::kv`]; PD traffic in
//! [`crate::pd_worker`].
//!
//! Peers come into being three ways: at startup from the engine's region
//! states; when PD's routes name a region with a peer on this store that
//! does not exist here yet (bootstrap regions are initialized with their
//! voters, other peers wait for their leader); and when raft traffic
//! arrives for a region this store does not know yet.

pub mod peer;
pub mod range_index;
pub mod refusal;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use pd::client::PdClient;
use proto::kvpb::kv_client::KvClient;
use proto::{metapb, pdpb, raftpb};
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tracing::{info, warn};

use crate::config::StoreConfig;
use crate::engine::Engine;
use crate::metrics;
use crate::routes::RouteTable;
use crate::transport::client::Transport;
pub use peer::RegionPeer;

pub struct Node {
    pub store_id: u64,
    pub config: StoreConfig,
    pub advertise_grpc_addr: String,
    pub engine: Arc<Engine>,
    pub routes: Arc<RouteTable>,
    pub transport: Arc<Transport>,
    pub pd: Arc<PdClient>,
    raft_config: Arc<openraft::Config>,
    peers: RwLock<HashMap<u64, Arc<RegionPeer>>>,
    /// Serializes peer creation so two triggers never start one region
    /// twice.
    creating: tokio::sync::Mutex<()>,
    /// Regions whose leadership or membership changed: the PD worker
    /// reports them at once.
    pub region_events: mpsc::UnboundedSender<u64>,
    /// Channels to other stores' KV services, for forwarding.
    kv_clients: std::sync::Mutex<HashMap<String, KvClient<Channel>>>,
}

impl Node {
    /// # Errors
    ///
    /// When the raft timing is invalid.
    pub fn new(
        store_id: u64,
        config: StoreConfig,
        advertise_grpc_addr: String,
        engine: Arc<Engine>,
        routes: Arc<RouteTable>,
        pd: Arc<PdClient>,
        region_events: mpsc::UnboundedSender<u64>,
    ) -> std::io::Result<Arc<Node>> {
        let r = &config.raft;
        let raft_config = openraft::Config {
            cluster_name: "region".into(),
            heartbeat_interval: r.heartbeat_interval_ms,
            election_timeout_min: r.election_timeout_min_ms,
            election_timeout_max: r.election_timeout_max_ms,
            install_snapshot_timeout: 60_000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(r.snapshot_logs),
            // Keep some log behind a snapshot so a briefly lagging follower catches
            // up from the log rather than by a full snapshot.
            max_in_snapshot_log_to_keep: (r.snapshot_logs / 10).min(1_000),
            purge_batch_size: 256,
            ..Default::default()
        }
        .validate()
        .map_err(|e| std::io::Error::other(format!("region raft timing: {e}")))?;
        let transport = Transport::new(routes.clone());
        Ok(Arc::new(Node {
            store_id,
            config,
            advertise_grpc_addr,
            engine,
            routes,
            transport,
            pd,
            raft_config: Arc::new(raft_config),
            peers: RwLock::new(HashMap::new()),
            creating: tokio::sync::Mutex::new(()),
            region_events,
            kv_clients: std::sync::Mutex::new(HashMap::new()),
        }))
    }

    pub fn peer(&self, region_id: u64) -> Option<Arc<RegionPeer>> {
        self.peers.read().unwrap().get(&region_id).cloned()
    }

    pub fn peers(&self) -> Vec<Arc<RegionPeer>> {
        self.peers.read().unwrap().values().cloned().collect()
    }

    /// The local peer whose region contains `key`.
    pub fn peer_for_key(&self, key: &[u8]) -> Option<Arc<RegionPeer>> {
        self.peers.read().unwrap().values().find(|p| p.shared.contains(key)).cloned()
    }

    /// Starts the peers recorded in the engine.
    ///
    /// # Errors
    ///
    /// Storage failures.
    pub async fn start_existing_peers(self: &Arc<Self>) -> std::io::Result<()> {
        for state in self.engine.region_states()? {
            if state.state == raftpb::PeerState::Tombstone as i32 {
                continue;
            }
            let Some(region) = state.region else { continue };
            self.start_peer(region, state.peer_id, false).await?;
        }
        Ok(())
    }

    /// Applies PD's routes if newer, and starts peers this store should
    /// host but does not yet.
    pub async fn on_routes(self: &Arc<Self>, snapshot: pdpb::RouteSnapshot) {
        if !self.routes.apply_if_newer(snapshot) {
            return;
        }
        let snapshot = self.routes.snapshot();
        for route in &snapshot.regions {
            let Some(region) = &route.region else {
                continue;
            };
            let Some(me) = region.peers.iter().find(|p| p.store_id == self.store_id) else {
                continue;
            };
            if self.peer(region.id).is_some() || self.is_tombstone(region.id) {
                continue;
            }
            let epoch = region.region_epoch.unwrap_or_default();
            let bootstrap = epoch.conf_ver == 1 && epoch.version == 1;
            if let Err(e) = self.start_peer(region.clone(), me.id, bootstrap).await {
                warn!(region_id = region.id, error = %e, "cannot start peer");
            }
        }
    }

    fn is_tombstone(&self, region_id: u64) -> bool {
        self.engine
            .region_state(region_id)
            .is_ok_and(|s| s.is_some_and(|s| s.state == raftpb::PeerState::Tombstone as i32))
    }

    /// Starts the raft peer `peer_id` of `region` here, recording it in the
    /// engine first. Idempotent.
    ///
    /// # Errors
    ///
    /// Storage failures or raft refusing to start.
    pub async fn start_peer(
        self: &Arc<Self>,
        region: metapb::Region,
        peer_id: u64,
        initialize: bool,
    ) -> std::io::Result<Arc<RegionPeer>> {
        let _guard = self.creating.lock().await;
        if let Some(p) = self.peer(region.id) {
            return Ok(p);
        }
        let state =
            raftpb::RegionLocalState { region: Some(region.clone()), state: raftpb::PeerState::Normal as i32, peer_id };
        if self.engine.region_state(region.id)?.is_none() {
            self.engine.save_region_state(state).await?;
        }
        let region_id = region.id;
        let peer = RegionPeer::start(
            self.engine.clone(),
            self.transport.clone(),
            self.raft_config.clone(),
            region,
            peer_id,
            initialize,
        )
        .await?;
        self.peers.write().unwrap().insert(region_id, peer.clone());
        metrics::REGIONS.set(self.peers.read().unwrap().len() as i64);
        info!(region_id, peer_id, initialize, "region peer started");
        tokio::spawn(watch_leadership(Arc::downgrade(self), peer.clone()));
        Ok(peer)
    }

    /// A KV client for another store's address, cached.
    ///
    /// # Errors
    ///
    /// A malformed address.
    pub fn kv_client(&self, address: &str) -> Result<KvClient<Channel>, pd::error::PdError> {
        let mut clients = self.kv_clients.lock().unwrap();
        if let Some(c) = clients.get(address) {
            return Ok(c.clone());
        }
        let c = KvClient::new(pd::client::channel(address)?);
        clients.insert(address.to_string(), c.clone());
        Ok(c)
    }

    /// The gRPC address of a store, from the route table.
    pub fn store_address(&self, store_id: u64) -> Option<String> {
        if store_id == self.store_id {
            return Some(self.advertise_grpc_addr.clone());
        }
        self.routes.store(store_id).map(|s| s.address)
    }

    /// Stops every peer's raft.
    pub async fn shutdown(&self) {
        for p in self.peers() {
            let _ = tokio::time::timeout(Duration::from_secs(5), p.raft.shutdown()).await;
        }
    }

    fn count_leaders(&self) {
        let n = self.peers.read().unwrap().values().filter(|p| p.is_leader()).count();
        metrics::LEADERS.set(n as i64);
    }
}

/// Tells the PD worker when a peer gains leadership or its membership
/// changes, so PD hears at once rather than at the next periodic report.
async fn watch_leadership(node: std::sync::Weak<Node>, peer: Arc<RegionPeer>) {
    let mut rx = peer.raft.metrics();
    let mut last = (false, None);
    loop {
        let now = {
            let m = rx.borrow_watched();
            let leading = m.state == ServerState::Leader && m.current_leader == Some(peer.shared.peer_id);
            (leading, *m.membership_config.log_id())
        };
        if now != last {
            last = now;
            let Some(node) = node.upgrade() else { return };
            node.count_leaders();
            if now.0 {
                let _ = node.region_events.send(peer.region_id());
            }
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}
