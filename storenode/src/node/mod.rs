//! The node: this store's regions, their raft peers, and the routes from
//! PD. Request handling lives in [`crate::kv`]; PD traffic in
//! [`crate::pd_worker`].
//!
//! Peers come into being four ways: at startup from the engine's region
//! states; when PD's routes name a region with a peer on this store that
//! does not exist here yet (bootstrap regions are initialized with their
//! voters, other peers wait for their leader; a region whose keys a local
//! region still owns is left to the split that will create it); when this
//! store applies a split (the new region's raft state seeded, see
//! [`split`]); and when raft traffic arrives for a region this store does
//! not know yet (held while a local region still owns its keys).
//!
//! # The range invariant
//!
//! At most one *initialized* local region owns any key: every region's
//! data shares the engine's one data table, so overlapping regions would
//! read, overwrite and (by snapshot) wipe each other's keys. The node keeps
//! the ranges of its initialized regions in a [`RangeIndex`], which refuses
//! any overlap, and routes keys through it.
//!
//! A peer is initialized once it holds data of its range, or is about to:
//! a bootstrap replica (initialized with the voters), a peer whose engine
//! has raft data when it starts (an applied state or log entries, see
//! [`Engine::has_raft_data`]), or a peer admitted its first log entries or
//! a snapshot. A peer created for raft traffic or routes without any of
//! these is uninitialized: it owns no range, is not indexed, and serves no
//! requests until its leader sends it data.
//!
//! Every path that creates a peer or fills one checks first, and refuses
//! with a [`PeerRefused`] (logged, counted in
//! `store_peer_refusals_total`):
//!
//! - creating a peer, whatever triggers it, runs
//!   [`refusal::check_new_peer`]: a tombstone row keeps the destroyed peer
//!   (an id not above it, an epoch not past it) from coming back, while a
//!   later peer of the same region may; and no initialized region of
//!   another id with a version not older may overlap. A peer that starts
//!   initialized claims its range in the index under the same lock.
//! - the first log entries or a snapshot for an uninitialized peer claim
//!   its range ([`Node::admit_data`], called by the raft transport before
//!   the message reaches raft); a snapshot for an initialized peer must not
//!   reach into another region's keys nor go back in epoch. A refused
//!   message is answered with an error, and the leader retries later.
//! - after a snapshot is installed, the state machine tells the node, which
//!   moves the region's entry to the installed range.

pub mod add_learner_directive;
pub mod change_peers_directive;
pub mod destroy;
pub mod directive;
pub mod dormancy;
pub mod failed_peers;
pub mod hibernation;
pub mod hibernation_loop;
pub mod peer;
pub mod range_index;
pub mod refusal;
pub mod remove_peer_directive;
pub mod sleepers;
pub mod snapshot_policy;
pub mod split;
pub mod split_directive;
pub mod transfer_leader_directive;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use pd::client::PdClient;
use pd::routes::DeltaRefusal;
use proto::kvpb::kv_client::KvClient;
use proto::{metapb, pdpb, raftpb};
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tracing::{error, info, warn};

use crate::config::StoreConfig;
use crate::engine::Engine;
use crate::fault::Partition;
use crate::metrics;
use crate::routes::RouteTable;
use crate::transport::client::Transport;
pub use peer::RegionPeer;
pub use range_index::{RangeConflict, RangeIndex};
pub use refusal::{PeerRefused, StartPeerError};

/// What starts a peer: decides whether raft is initialized with the
/// region's voters, and labels refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerOrigin {
    /// The engine recorded it in an earlier run.
    Restart,
    /// PD's routes name it; every replica of a bootstrap region initializes
    /// raft with the same voters.
    Route { bootstrap: bool },
    /// Raft traffic arrived for a region this store has no peer of.
    RaftMessage,
    /// A split this store applied created it, its raft state seeded.
    Split,
}

impl PeerOrigin {
    /// The `source` label of `store_peer_refusals_total`.
    pub fn label(self) -> &'static str {
        match self {
            PeerOrigin::Restart => "startup",
            PeerOrigin::Route { .. } => "route",
            PeerOrigin::RaftMessage => "raft_message",
            PeerOrigin::Split => "split",
        }
    }
}

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
    /// `raft_config` with the timers stopped and leadership restored: a
    /// dormant peer's group restarts hibernated, its leader leading
    /// ([`dormancy`]).
    revive_config: Arc<openraft::Config>,
    /// `raft_config` with the timers stopped: a peer started after a
    /// restart sleeps until something wakes it.
    asleep_config: Arc<openraft::Config>,
    /// Peers whose groups are shut down while they sleep.
    dormant: std::sync::atomic::AtomicUsize,
    /// Flow the region heartbeats reported since the last store heartbeat,
    /// which carries it as the store's totals.
    pub reported_flow: crate::pd_worker::FlowTotals,
    /// This node, for tasks its methods spawn.
    me: std::sync::Weak<Node>,
    peers: RwLock<HashMap<u64, Arc<RegionPeer>>>,
    /// The ranges of the initialized peers: the store's range invariant.
    /// Never held across an await, nor together with `peers`.
    ranges: Mutex<RangeIndex>,
    /// Serializes peer creation so two triggers never start one region
    /// twice.
    creating: tokio::sync::Mutex<()>,
    /// Regions whose leadership or membership changed: the PD worker
    /// reports them at once.
    pub region_events: mpsc::UnboundedSender<u64>,
    /// Channels to other stores' KV services, for forwarding.
    kv_clients: std::sync::Mutex<HashMap<String, KvClient<Channel>>>,
    /// Until then this store grants no votes: see [`Node::may_vote`].
    vote_quiet_until: Mutex<Option<Instant>>,
    /// Splits applied here that PD's routes do not show yet, by new region
    /// id: reported (while this store leads) until they do.
    pending_splits: Mutex<std::collections::BTreeMap<u64, split::PendingSplit>>,
    /// Regions with a split directive being carried out: a repeat waits
    /// for the first rather than proposing a second split.
    splitting: Mutex<std::collections::HashSet<u64>>,
    /// Woken whenever a peer starts or the range index changes: raft traffic
    /// held for a split not applied here yet waits on it.
    regions_changed: tokio::sync::Notify,
    /// Regions that applied a snapshot's worth of entries since their last
    /// one: [`snapshot_policy`] looks at these only.
    snapshot_candidates: Mutex<std::collections::HashSet<u64>>,
    /// The peers here whose raft timers are stopped, counted by the store
    /// their leader is on.
    pub sleepers: Arc<sleepers::Sleepers>,
    /// Regions whose peer here stopped on a fatal error: named in the
    /// answer to hibernated followers' liveness probes.
    pub failed_peers: failed_peers::FailedPeers,
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
            // [`snapshot_policy`] builds snapshots, holding them back while
            // one is being sent.
            snapshot_policy: openraft::SnapshotPolicy::Never,
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
            // openraft keeps per-group ring buffers of this many entries
            // per log stage for its own runtime statistics, which this
            // store neither enables nor reads (it times the stages itself:
            // [`crate::raft::stage_clock`]). At the default of 1024 they
            // cost about 150 KiB per region, idle or not.
            log_stage_capacity: Some(1),
            ..Default::default()
        }
        .validate()
        .map_err(|e| std::io::Error::other(format!("region raft timing: {e}")))?;
        let partition = Arc::new(Partition::default());
        let limits = crate::transport::snapshot_limits::SnapshotLimits::new(&config.snapshot);
        let transport = Transport::new(routes.clone(), partition.clone(), limits);
        let asleep_config = openraft::Config { enable_tick: false, ..raft_config.clone() };
        let revive_config =
            openraft::Config { enable_tick: false, enable_leader_restore: Some(true), ..raft_config.clone() };
        Ok(Arc::new_cyclic(|me| Node {
            store_id,
            config,
            advertise_grpc_addr,
            engine,
            routes,
            transport,
            partition,
            pd,
            raft_config: Arc::new(raft_config),
            revive_config: Arc::new(revive_config),
            asleep_config: Arc::new(asleep_config),
            dormant: Default::default(),
            reported_flow: Default::default(),
            me: me.clone(),
            peers: RwLock::new(HashMap::new()),
            ranges: Mutex::new(RangeIndex::new()),
            creating: tokio::sync::Mutex::new(()),
            region_events,
            kv_clients: std::sync::Mutex::new(HashMap::new()),
            vote_quiet_until: Mutex::new(None),
            pending_splits: Mutex::new(std::collections::BTreeMap::new()),
            splitting: Mutex::new(std::collections::HashSet::new()),
            regions_changed: tokio::sync::Notify::new(),
            snapshot_candidates: Mutex::new(std::collections::HashSet::new()),
            sleepers: Arc::default(),
            failed_peers: Default::default(),
        }))
    }

    pub fn peer(&self, region_id: u64) -> Option<Arc<RegionPeer>> {
        self.peers.read().unwrap().get(&region_id).cloned()
    }

    pub fn peers(&self) -> Vec<Arc<RegionPeer>> {
        self.peers.read().unwrap().values().cloned().collect()
    }

    /// The initialized local peer whose region owns `key`.
    pub fn peer_for_key(&self, key: &[u8]) -> Option<Arc<RegionPeer>> {
        let region_id = self.ranges.lock().unwrap().lookup(key)?;
        self.peer(region_id)
    }

    /// The local peer of a region if it is initialized: one that has no
    /// data yet must not answer for the region's keys.
    pub fn initialized_peer(&self, region_id: u64) -> Option<Arc<RegionPeer>> {
        if !self.is_initialized(region_id) {
            return None;
        }
        self.peer(region_id)
    }

    /// Whether the region's local peer owns its range here.
    pub fn is_initialized(&self, region_id: u64) -> bool {
        self.ranges.lock().unwrap().contains_region(region_id)
    }

    /// Whether an initialized local region of another id still owns any of
    /// `region`'s keys.
    pub fn covered_locally(&self, region: &metapb::Region) -> bool {
        self.ranges.lock().unwrap().overlapping(&region.start_key, &region.end_key).any(|r| r.region_id != region.id)
    }

    /// Lets `peer` take data covering `region` (its first log entries, or a
    /// snapshot whose sender's view of the region is `region`). An
    /// uninitialized peer claims the range in the index here, before the
    /// data reaches raft, so no other region can claim those keys while the
    /// data lands. For an initialized peer the range is only checked: the
    /// index follows once a snapshot is installed.
    ///
    /// # Errors
    ///
    /// `Range` when another initialized region owns any of the keys, the
    /// range is invalid, or the epoch is older than the indexed one;
    /// `Destroyed` once the peer's destroy has begun. Counted under
    /// `source`.
    pub fn admit_data(
        &self,
        peer: &RegionPeer,
        region: &metapb::Region,
        source: &'static str,
    ) -> Result<(), PeerRefused> {
        let res = {
            let mut ranges = self.ranges.lock().unwrap();
            // Under the index lock: a destroy raises the fence before it
            // takes the peer out of the index, so either this sees it
            // raised, or the destroy's removal comes after this claim.
            // Traffic that found the peer before its destroy began would
            // otherwise put back a range no peer serves.
            if peer.shared.fence.is_raised() {
                Err(PeerRefused::Destroyed { region_id: peer.region_id(), peer_id: peer.shared.peer_id })
            } else if ranges.contains_region(peer.region_id()) {
                ranges.check_update(region).map_err(PeerRefused::from)
            } else {
                ranges.insert(region).map_err(PeerRefused::from)
            }
        };
        res.inspect_err(|refusal| record_refusal(refusal, source, peer.shared.peer_id))
    }

    /// Lets `peer` take a snapshot whose header names `header` (the
    /// sender's view of the region now) and whose file's head names
    /// `file_region` (the state it was built from). The install clears and
    /// writes the file's range, so that is the range checked and claimed:
    /// the file must name the header's range and version (a file built
    /// before a split covers keys the split gave away, which this store may
    /// hold for the new region; refused, the sender builds a fresh one when
    /// it tries again), and then the range is checked and claimed under one
    /// lock of the index, as [`Node::admit_data`] does, so no other region
    /// can claim any of it in between.
    ///
    /// # Errors
    ///
    /// `SnapshotMismatch`, or [`Node::admit_data`]'s refusals; recorded
    /// under `snapshot`.
    pub fn admit_snapshot(
        &self,
        peer: &RegionPeer,
        header: &metapb::Region,
        file_region: &metapb::Region,
    ) -> Result<(), PeerRefused> {
        if let Err(refusal) = refusal::check_snapshot_file(header, file_region) {
            record_refusal(&refusal, "snapshot", peer.shared.peer_id);
            return Err(refusal);
        }
        // Same range and version: the header's epoch carries the newer
        // `conf_ver`, which the index may already hold.
        self.admit_data(peer, header, "snapshot")
    }

    /// A snapshot was installed: the region's entry moves to the range its
    /// data now covers. Returns the conflict, if any (logged and counted).
    ///
    /// The entry keeps the newer of its `conf_ver` and the file's: the
    /// transport admitted the sender's view, which may list a replica
    /// added after the file was built (a new replica's first snapshot,
    /// on every move), and a membership change moves no keys.
    fn snapshot_installed(&self, region: &metapb::Region) -> Result<(), RangeConflict> {
        let res = {
            let mut ranges = self.ranges.lock().unwrap();
            let mut region = region.clone();
            if let Some(indexed) = ranges.get(region.id) {
                let epoch = region.region_epoch.get_or_insert_default();
                epoch.conf_ver = epoch.conf_ver.max(indexed.epoch.conf_ver);
            }
            ranges.update(&region)
        };
        self.regions_changed.notify_waiters();
        if let Err(e) = &res {
            // The transport admitted the range the sender named; the
            // installed meta differs from it, and the data is already in.
            // Keep the index as it was and say so loudly.
            metrics::PEER_REFUSALS.with_label_values(&["snapshot", e.label()]).inc();
            error!(region_id = region.id, error = %e, "installed snapshot conflicts with the range index");
        }
        res
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
        crate::raft::snapshot::clean_dir(&self.engine.snapshot_dir, &states)?;
        for state in states {
            if state.state == raftpb::PeerState::Tombstone as i32 {
                continue;
            }
            let Some(region) = state.region else { continue };
            let region_id = region.id;
            match self.start_peer(region, state.peer_id, PeerOrigin::Restart).await {
                // Logged and counted; its state stays on disk.
                Ok(_) | Err(StartPeerError::Refused(_)) => {}
                // Its range holds a half-installed snapshot: the peer stays
                // down (so nothing serves that data), the others start.
                Err(StartPeerError::Io(e)) if resume_failed(&e) => {
                    error!(region_id, error = %e, "not starting a peer whose snapshot install cannot resume");
                }
                Err(StartPeerError::Io(e)) => return Err(e),
            }
        }
        Ok(())
    }

    /// Applies PD's routes if newer, and starts peers this store should
    /// host but does not yet.
    pub async fn on_routes(self: &Arc<Self>, snapshot: pdpb::RouteSnapshot) {
        let applied = self.routes.apply_if_newer(snapshot);
        metrics::ROUTE_UPDATES.with_label_values(&["full", if applied { "applied" } else { "stale" }]).inc();
        if applied {
            self.routes_changed().await;
        }
    }

    /// Applies a delta of PD's routes on top of the ones held, then acts as
    /// [`Node::on_routes`] does.
    ///
    /// # Errors
    ///
    /// `Gap` or `Malformed` when the delta cannot apply here: the caller
    /// asks PD for a full snapshot. A stale one is `Ok`: nothing to do.
    pub async fn on_route_delta(self: &Arc<Self>, delta: &pdpb::RouteDelta) -> Result<(), DeltaRefusal> {
        let res = self.routes.apply_delta(delta);
        let result = match &res {
            Ok(()) => "applied",
            Err(DeltaRefusal::Stale { .. }) => "stale",
            Err(DeltaRefusal::Gap { .. }) => "gap",
            Err(DeltaRefusal::Malformed(_)) => "malformed",
        };
        metrics::ROUTE_UPDATES.with_label_values(&["delta", result]).inc();
        match res {
            Ok(()) => {
                self.routes_changed().await;
                Ok(())
            }
            Err(DeltaRefusal::Stale { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// What follows new routes: forget the splits they show, destroy peers
    /// they show removed, start peers they give this store.
    async fn routes_changed(self: &Arc<Self>) {
        let snapshot = self.routes.snapshot();
        self.forget_reported_splits(&snapshot);
        self.destroy_removed_by_routes(&snapshot);
        for route in &snapshot.regions {
            let Some(region) = &route.region else {
                continue;
            };
            let Some(me) = region.peers.iter().find(|p| p.store_id == self.store_id) else {
                continue;
            };
            if self.peer(region.id).is_some() {
                continue;
            }
            // A local region still holds these keys: a split not applied
            // here yet creates this peer, seeded, when it applies (a peer
            // created now would be empty and in its way).
            if self.covered_locally(region) {
                continue;
            }
            let epoch = region.region_epoch.unwrap_or_default();
            let bootstrap = epoch.conf_ver == 1 && epoch.version == 1;
            match self.start_peer(region.clone(), me.id, PeerOrigin::Route { bootstrap }).await {
                // Logged and counted; the next routes try again.
                Ok(_) | Err(StartPeerError::Refused(_)) => {}
                Err(StartPeerError::Io(e)) => warn!(region_id = region.id, error = %e, "cannot start peer"),
            }
        }
    }

    /// Starts the raft peer `peer_id` of `region` here, recording it in the
    /// engine first. Idempotent: a region with a peer here gets that peer.
    ///
    /// The peer must pass [`refusal::check_new_peer`] (a tombstone row
    /// refuses the destroyed peer, an initialized region with a version not
    /// older refuses overlapping keys). It starts initialized, claiming its
    /// range in the index, when it bootstraps or the engine has raft data
    /// for it; otherwise it owns nothing until [`Node::admit_data`].
    ///
    /// # Errors
    ///
    /// `Refused` (logged and counted under the origin), or `Io` for storage
    /// failures and raft refusing to start.
    pub async fn start_peer(
        self: &Arc<Self>,
        region: metapb::Region,
        peer_id: u64,
        origin: PeerOrigin,
    ) -> Result<Arc<RegionPeer>, StartPeerError> {
        self.start_peer_sized(region, peer_id, origin, None).await
    }

    /// [`Node::start_peer`] with the region's approximate keys and bytes
    /// when known (a split-born region), so its range is not counted.
    ///
    /// # Errors
    ///
    /// As [`Node::start_peer`].
    pub async fn start_peer_sized(
        self: &Arc<Self>,
        region: metapb::Region,
        peer_id: u64,
        origin: PeerOrigin,
        sizes: Option<(u64, u64)>,
    ) -> Result<Arc<RegionPeer>, StartPeerError> {
        let _guard = self.creating.lock().await;
        if let Some(p) = self.peer(region.id) {
            return Ok(p);
        }
        let region_id = region.id;
        let local = self.engine.region_state(region_id)?;
        let initialize = origin == (PeerOrigin::Route { bootstrap: true });
        // A peer interrupted installing its first snapshot has partial data
        // in its range: it owns the range while it resumes.
        let applying = local.as_ref().is_some_and(|s| s.state == raftpb::PeerState::Applying as i32);
        let initialized = initialize || applying || self.engine.has_raft_data(region_id)?;
        // Checked and claimed under one lock, so no claim slips in between.
        let admitted = {
            let mut ranges = self.ranges.lock().unwrap();
            refusal::check_new_peer(&ranges, local.as_ref(), &region, peer_id)
                .and_then(|()| if initialized { Ok(ranges.insert(&region)?) } else { Ok(()) })
        };
        if let Err(refusal) = admitted {
            record_refusal(&refusal, origin.label(), peer_id);
            return Err(refusal.into());
        }
        // After a restart, with hibernation on, a peer starts asleep: see
        // [`RegionPeer::sleep_after_restart`].
        let asleep = origin == PeerOrigin::Restart && self.hibernate_after().is_some();
        let peer = match self.open_peer(region, peer_id, local, initialize, sizes, asleep).await {
            Ok(p) => p,
            Err(e) => {
                if initialized {
                    self.ranges.lock().unwrap().remove(region_id);
                }
                return Err(e.into());
            }
        };
        let node = Arc::downgrade(self);
        peer.shared.on_snapshot_installed(move |r| {
            if let Some(node) = node.upgrade() {
                let _ = node.snapshot_installed(r);
            }
        });
        let node = Arc::downgrade(self);
        let parent = region_id;
        peer.shared.on_split_applied(move |done| match node.upgrade() {
            Some(node) => node.split_applied(parent, done),
            None => Box::pin(async {}),
        });
        let node = Arc::downgrade(self);
        peer.shared.on_membership_applied(move |applied, region| {
            let Some(node) = node.upgrade() else { return };
            if applied.removed_self {
                node.destroy_peer_later(region.id, peer_id, destroy::DestroyReason::Removed);
            } else {
                // PD hears the new peers at once.
                let _ = node.region_events.send(region.id);
            }
        });
        let node = Arc::downgrade(self);
        let every = self.config.raft.snapshot_logs;
        peer.shared.on_applied(move |since_snapshot| {
            if since_snapshot >= every
                && let Some(node) = node.upgrade()
            {
                node.add_snapshot_candidate(region_id);
            }
        });
        peer.hibernation.count_in(self.sleepers.clone());
        if asleep {
            peer.sleep_after_restart();
        }
        self.peers.write().unwrap().insert(region_id, peer.clone());
        self.failed_peers.started(region_id);
        self.regions_changed.notify_waiters();
        metrics::REGIONS.set(self.peers.read().unwrap().len() as i64);
        info!(region_id, peer_id, initialize, initialized, origin = origin.label(), "region peer started");
        tokio::spawn(watch_leadership(Arc::downgrade(self), peer.clone()));
        Ok(peer)
    }

    /// Records the peer in the engine (unless a live row exists: a restart)
    /// and starts its raft.
    async fn open_peer(
        &self,
        region: metapb::Region,
        peer_id: u64,
        local: Option<raftpb::RegionLocalState>,
        initialize: bool,
        sizes: Option<(u64, u64)>,
        asleep: bool,
    ) -> std::io::Result<Arc<RegionPeer>> {
        // A tombstone row that passed the checks belongs to an earlier peer:
        // this one replaces it.
        if local.is_none_or(|s| s.state == raftpb::PeerState::Tombstone as i32) {
            let state = raftpb::RegionLocalState {
                region: Some(region.clone()),
                state: raftpb::PeerState::Normal as i32,
                peer_id,
                ..Default::default()
            };
            // Files an earlier peer of the region left would be taken for
            // this peer's snapshot: openraft restores a new peer from them.
            crate::raft::snapshot::remove_older(&self.engine.snapshot_dir, region.id, u64::MAX);
            self.engine.save_region_state(state).await?;
        }
        let config = if asleep { self.asleep_config.clone() } else { self.raft_config.clone() };
        RegionPeer::start(self.engine.clone(), self.transport.clone(), config, region, peer_id, initialize, sizes).await
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
        for raft in self.peers().iter().filter_map(|p| p.raft()) {
            let _ = tokio::time::timeout(Duration::from_secs(5), raft.shutdown()).await;
        }
    }

    fn count_leaders(&self) {
        let n = self.peers.read().unwrap().values().filter(|p| p.is_leader()).count();
        metrics::LEADERS.set(n as i64);
    }
}

/// Whether a peer failed to start because its interrupted snapshot install
/// cannot resume.
fn resume_failed(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<crate::raft::snapshot::install::ResumeFailed>())
}

fn record_refusal(refusal: &PeerRefused, source: &'static str, peer_id: u64) {
    metrics::PEER_REFUSALS.with_label_values(&[source, refusal.label()]).inc();
    info!(source, peer_id, reason = %refusal, "refused a peer or its data");
}

/// Tells the PD worker when a peer gains leadership, its membership changes
/// or, while it leads, a peer stops (or starts) being pending (a new
/// learner caught up), so PD hears at once rather than at the next
/// periodic report.
///
/// Ends when the peer's group stops (it goes dormant or is destroyed); a
/// revived group gets a watcher of its own.
async fn watch_leadership(node: std::sync::Weak<Node>, peer: Arc<RegionPeer>) {
    let Some(mut rx) = peer.raft().map(|r| r.metrics()) else { return };
    let mut last = (false, None, Vec::new());
    loop {
        let now = {
            let m = rx.borrow_watched();
            let leading = m.state == ServerState::Leader && m.current_leader == Some(peer.shared.peer_id);
            let pending: Vec<u64> = if leading {
                m.membership_config
                    .membership()
                    .nodes()
                    .map(|(id, _)| *id)
                    .filter(|id| peer::is_pending(&m, *id) && *id != peer.shared.peer_id)
                    .collect()
            } else {
                Vec::new()
            };
            if let Err(e) = &m.running_state
                && !matches!(e, openraft::errors::Fatal::Stopped)
            {
                warn!(region_id = peer.region_id(), error = %e, "region raft stopped on a fatal error");
                if let Some(node) = node.upgrade() {
                    node.failed_peers.failed(peer.region_id());
                }
                return;
            }
            (leading, *m.membership_config.log_id(), pending)
        };
        if now != last {
            let gained = now.0 && !last.0;
            let changed = now.0 && (gained || now.1 != last.1 || now.2 != last.2);
            let role_changed = now.0 != last.0;
            last = now;
            let Some(node) = node.upgrade() else { return };
            if role_changed {
                node.count_leaders();
            }
            if changed {
                let _ = node.region_events.send(peer.region_id());
            }
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod dormancy_tests;
#[cfg(test)]
mod tests;
