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

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

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
use crate::fault::Partition;
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
    /// Fault injection: which stores and whether PD are unreachable.
    pub partition: Arc<Partition>,
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
    /// Until then this store grants no votes: see [`Node::may_vote`].
    vote_quiet_until: std::sync::Mutex<Option<Instant>>,
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
            // The committed mark and the applied state are written lazily
            // (no fsync of their own), so after a crash a peer's state
            // machine may lag what it acknowledged. A restarted leader that
            // resumed its term at once would serve reads from that state;
            // campaigning instead means the next leader first commits a
            // blank entry of its own term, and reads wait until it applies.
            enable_leader_restore: Some(false),
            ..Default::default()
        }
        .validate()
        .map_err(|e| std::io::Error::other(format!("region raft timing: {e}")))?;
        let partition = Arc::new(Partition::default());
        let transport = Transport::new(routes.clone(), partition.clone());
        Ok(Arc::new(Node {
            store_id,
            config,
            advertise_grpc_addr,
            engine,
            routes,
            transport,
            partition,
            pd,
            raft_config: Arc::new(raft_config),
            peers: RwLock::new(HashMap::new()),
            creating: tokio::sync::Mutex::new(()),
            region_events,
            kv_clients: std::sync::Mutex::new(HashMap::new()),
            vote_quiet_until: std::sync::Mutex::new(None),
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
        let states = self.engine.region_states()?;
        if !states.is_empty() {
            // Before the restart this store may have promised a leader not
            // to vote for anyone else for a lease: keep that promise.
            let quiet = Duration::from_millis(self.config.raft.election_timeout_max_ms);
            *self.vote_quiet_until.lock().unwrap() = Some(Instant::now() + quiet);
        }
        for state in states {
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

    /// Whether this store's peers may grant votes now. A leader serves lease
    /// reads on the strength of its followers' promise not to elect anyone
    /// else for a lease, a promise kept only in memory. A store that
    /// restarts with regions on disk therefore refuses every vote for one
    /// maximum election timeout, so a lease granted before its crash runs
    /// out before its vote can help elect a new leader. A brand-new store
    /// never promised anything and votes at once.
    pub fn may_vote(&self) -> bool {
        let mut quiet = self.vote_quiet_until.lock().unwrap();
        match *quiet {
            Some(until) if Instant::now() < until => false,
            Some(_) => {
                *quiet = None;
                true
            }
            None => true,
        }
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

    /// Whether fault injection cuts this store off from the store at
    /// `address`.
    pub fn cut_off_from(&self, address: &str) -> bool {
        self.partition.spec().stores.iter().any(|id| self.store_address(*id).as_deref() == Some(address))
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
