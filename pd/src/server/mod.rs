//! The PD server: wires the raft group, the gRPC services, the HTTP API and
//! the background tasks together.
//!
//! - [`context`]: state shared by handlers (raft, catalog, leadership, stats,
//!   operators).
//! - [`grpc`]: the `pdpb.PD` service.
//! - [`heartbeat`]: store heartbeat streams; [`store_streams`] lets others
//!   send directives down them; [`report_queue`] orders their region
//!   reports and [`report_driver`] proposes them in the background;
//!   [`region_stats`] keeps the sizes they report (and the context, their
//!   pending and down peers).
//!
//! Decisions are made by pure code outside this module and carried out
//! here; each pair is named so a reader can tell which file decides and
//! which does the I/O:
//!
//! - [`operator_driver`]: drives the [`crate::operator`] plans and
//!   controller, and the admin operations on operators.
//! - [`split_runner`]: runs the [`crate::schedule::split_checker`] on its
//!   interval.
//! - [`replica_runner`]: runs the replica checkers
//!   ([`crate::schedule::replica_checks`]: repair, decommission, joint) on
//!   their interval and tombstones drained Offline stores.
//!
//! The rest:
//!
//! - [`delete_store`]: `DeleteStore`, the start of a store's decommission.
//! - [`watch`]: watch-routes streams.
//! - [`bootstrap`]: the first regions, once enough stores are up.
//! - [`http`]: health, metrics and the JSON API.

pub mod bootstrap;
pub mod context;
pub mod delete_store;
pub mod grpc;
pub mod heartbeat;
pub mod http;
pub mod log_limit;
pub mod operator_driver;
pub mod region_stats;
pub mod replica_runner;
pub mod report_driver;
pub mod report_queue;
pub mod split_runner;
pub mod store_streams;
pub mod stream_status;
pub mod watch;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::{ServerState, SnapshotPolicy};
use proto::pdpb::pd_server::PdServer as PdGrpcServer;
use proto::pdraftpb::{JoinRequest, pd_raft_client::PdRaftClient, pd_raft_server::PdRaftServer};
use tokio::net::TcpListener;
use tokio::sync::watch as tokio_watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::PdConfig;
use crate::error::{PdError, Result};
use crate::metrics;
use crate::net::MAX_GRPC_MESSAGE;
use crate::raft::log_store::LogStore;
use crate::raft::network::PdNetwork;
use crate::raft::service::PdRaftService;
use crate::raft::state_machine::CatalogStateMachine;
use crate::raft::{PdMember, PdRaft};
use context::PdContext;

/// Longest the regions-missing-replicas gauge lags the catalog: a tenth of
/// a typical scrape interval, and at most one walk of the catalog a second.
const REPLICA_SCAN_INTERVAL: Duration = Duration::from_secs(1);
/// Pause between join attempts while no member can add us.
const JOIN_RETRY: Duration = Duration::from_millis(500);
/// Cap on concurrent requests per gRPC connection.
const GRPC_CONCURRENCY_PER_CONNECTION: usize = 256;

/// A running PD member.
pub struct PdServer {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub advertise_grpc_addr: String,
    pub advertise_http_addr: String,
    ctx: Arc<PdContext>,
    shutdown_tx: tokio_watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

fn advertise(configured: &str, bound: SocketAddr, field: &str) -> Result<String> {
    if !configured.is_empty() {
        return Ok(configured.to_string());
    }
    if bound.ip().is_unspecified() {
        return Err(PdError::InvalidArgument(format!(
            "listening on {bound}: set {field} to an address other members and clients can reach"
        )));
    }
    Ok(bound.to_string())
}

impl PdServer {
    /// Opens the data directory, binds both listeners, starts (or joins, or
    /// restarts) the raft member and every service. Returns once listening;
    /// leadership and joining continue in the background.
    ///
    /// # Errors
    ///
    /// `Storage` when the data directory cannot be opened (or another process
    /// holds it), `InvalidArgument` for unusable addresses.
    pub async fn start(config: PdConfig) -> Result<PdServer> {
        metrics::init();
        crate::operator::init_metrics();
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| PdError::Storage(format!("cannot create {}: {e}", config.data_dir.display())))?;
        let db_path = config.data_dir.join("pd.redb");
        let db = redb::Database::create(&db_path)
            .map_err(|e| PdError::Storage(format!("cannot open {}: {e}", db_path.display())))?;
        let db = Arc::new(db);
        let log_store = LogStore::open(db.clone()).map_err(|e| PdError::Storage(e.to_string()))?;
        let state_machine = CatalogStateMachine::open(db, config.routes.history_versions as usize)
            .map_err(|e| PdError::Storage(e.to_string()))?;
        let catalog = state_machine.shared();

        let grpc_listener = TcpListener::bind(&config.grpc_addr)
            .await
            .map_err(|e| PdError::InvalidArgument(format!("cannot listen on {}: {e}", config.grpc_addr)))?;
        let http_listener = TcpListener::bind(&config.http_addr)
            .await
            .map_err(|e| PdError::InvalidArgument(format!("cannot listen on {}: {e}", config.http_addr)))?;
        let grpc_addr = grpc_listener.local_addr().map_err(|e| PdError::InvalidArgument(e.to_string()))?;
        let http_addr = http_listener.local_addr().map_err(|e| PdError::InvalidArgument(e.to_string()))?;
        let advertise_grpc_addr = advertise(&config.advertise_grpc_addr, grpc_addr, "advertise-grpc-addr")?;
        let advertise_http_addr = advertise(&config.advertise_http_addr, http_addr, "advertise-http-addr")?;

        let raft_config = openraft::Config {
            cluster_name: "pd".into(),
            heartbeat_interval: config.raft.heartbeat_interval_ms,
            election_timeout_min: config.raft.election_timeout_min_ms,
            election_timeout_max: config.raft.election_timeout_max_ms,
            install_snapshot_timeout: 10_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.raft.snapshot_logs),
            max_in_snapshot_log_to_keep: 100,
            purge_batch_size: 256,
            // A restarted leader campaigns like any other member instead of
            // resuming its old term: standard Raft, and it learns the commit
            // point from a quorum rather than from its own disk.
            enable_leader_restore: Some(false),
            ..Default::default()
        }
        .validate()
        .map_err(|e| PdError::InvalidArgument(format!("raft timing: {e}")))?;
        let raft = PdRaft::new(config.node_id, Arc::new(raft_config), PdNetwork, log_store, state_machine)
            .await
            .map_err(|e| PdError::Fatal(format!("raft failed to start: {e}")))?;

        let (shutdown_tx, shutdown_rx) = tokio_watch::channel(false);
        let (leader_tx, leader_rx) = tokio_watch::channel(false);
        let ctx = Arc::new(PdContext {
            node_id: config.node_id,
            config: config.clone(),
            raft: raft.clone(),
            catalog,
            leader_rx,
            stores: Default::default(),
            region_stats: Default::default(),
            peer_reports: Default::default(),
            operators: Default::default(),
            streams: Default::default(),
            reports: Default::default(),
            operator_events: Default::default(),
            leader_since_ms: Default::default(),
            checker_plans: Default::default(),
        });
        ctx.update_catalog_metrics();

        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(track_leadership(ctx.clone(), leader_tx, shutdown_rx.clone())));
        tasks.push(tokio::spawn(track_catalog_metrics(ctx.clone(), shutdown_rx.clone())));

        let pd_service = PdGrpcServer::new(grpc::PdService::new(ctx.clone()))
            .max_decoding_message_size(MAX_GRPC_MESSAGE)
            .max_encoding_message_size(MAX_GRPC_MESSAGE);
        let raft_service = PdRaftServer::new(PdRaftService::new(raft.clone(), config.node_id))
            .max_decoding_message_size(MAX_GRPC_MESSAGE)
            .max_encoding_message_size(MAX_GRPC_MESSAGE);
        let grpc = tonic::transport::Server::builder()
            .concurrency_limit_per_connection(GRPC_CONCURRENCY_PER_CONNECTION)
            .tcp_nodelay(true)
            .add_service(pd_service)
            .add_service(raft_service);
        tasks.push(tokio::spawn(crate::net::serve_grpc(grpc, grpc_listener, shutdown_rx.clone())));
        tasks.push(tokio::spawn(crate::net::serve_http(http::router(ctx.clone()), http_listener, shutdown_rx.clone())));

        let me = PdMember { address: advertise_grpc_addr.clone(), http_address: advertise_http_addr.clone() };
        let initialized = raft.is_initialized().await.map_err(|e| PdError::Fatal(e.to_string()))?;
        if initialized {
            info!(node_id = config.node_id, "restarting PD member from its data directory");
        } else if config.join.is_empty() {
            info!(node_id = config.node_id, "starting a new PD group");
            if let Err(e) = raft.initialize(BTreeMap::from([(config.node_id, me)])).await {
                return Err(PdError::Fatal(format!("cannot initialize the PD group: {e}")));
            }
        } else {
            tasks.push(tokio::spawn(join(config.node_id, me, config.join.clone(), shutdown_rx.clone())));
        }
        tasks.push(tokio::spawn(operator_driver::run(ctx.clone(), shutdown_rx.clone())));
        tasks.push(tokio::spawn(split_runner::run(ctx.clone(), shutdown_rx.clone())));
        tasks.push(tokio::spawn(replica_runner::run(
            ctx.clone(),
            shutdown_rx.clone(),
            replica_runner::start_operators,
        )));
        tasks.push(tokio::spawn(bootstrap::run(ctx.clone(), shutdown_rx)));

        Ok(PdServer { grpc_addr, http_addr, advertise_grpc_addr, advertise_http_addr, ctx, shutdown_tx, tasks })
    }

    pub fn context(&self) -> &Arc<PdContext> {
        &self.ctx
    }

    /// Stops serving, drains the servers, and stops raft.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        if let Err(e) = self.ctx.raft.shutdown().await {
            warn!(error = %e, "raft shutdown");
        }
    }
}

/// Publishes "am I the leader" for streams and metrics, and records when
/// this member took over (store liveness counts from then).
async fn track_leadership(
    ctx: Arc<PdContext>,
    leader_tx: tokio_watch::Sender<bool>,
    mut shutdown: tokio_watch::Receiver<bool>,
) {
    let node_id = ctx.node_id;
    let mut rx = ctx.raft.metrics();
    loop {
        let (is_leader, term, leader) = {
            let m = rx.borrow_watched();
            metrics::RAFT_LAST_LOG_INDEX.set(m.last_log_index.unwrap_or(0) as i64);
            metrics::RAFT_APPLIED_INDEX.set(m.last_applied.as_ref().map_or(0, |l| l.index()) as i64);
            (m.state == ServerState::Leader && m.current_leader == Some(node_id), m.current_term, m.current_leader)
        };
        metrics::IS_LEADER.set(i64::from(is_leader));
        metrics::RAFT_TERM.set(term as i64);
        // Set before the flag is published, so whoever sees the leader flag
        // also sees when leadership began.
        ctx.set_leading(is_leader);
        if leader_tx.send_if_modified(|v| std::mem::replace(v, is_leader) != is_leader) {
            info!(node_id, is_leader, ?leader, term, "PD leadership changed");
        }
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

/// Updates the catalog gauges on every change; the one that walks every
/// region at most once per [`REPLICA_SCAN_INTERVAL`], so a burst of route
/// changes over 100,000 regions does not walk them all each time (and hold
/// up the pushes of those changes).
async fn track_catalog_metrics(ctx: Arc<PdContext>, mut shutdown: tokio_watch::Receiver<bool>) {
    let mut routes = ctx.catalog.subscribe();
    let mut last_scan = tokio::time::Instant::now();
    let mut scan_due = false;
    loop {
        let next_scan = last_scan + REPLICA_SCAN_INTERVAL;
        tokio::select! {
            r = routes.changed() => {
                if r.is_err() { return }
                ctx.update_catalog_counts();
                scan_due = true;
            }
            () = tokio::time::sleep_until(next_scan), if scan_due => {}
            _ = shutdown.changed() => return,
        }
        if scan_due && tokio::time::Instant::now() >= next_scan {
            ctx.update_replica_metrics();
            last_scan = tokio::time::Instant::now();
            scan_due = false;
        }
    }
}

/// Asks the members in `seeds` (following leader hints) to add this member,
/// until one leader does.
async fn join(node_id: u64, me: PdMember, seeds: Vec<String>, mut shutdown: tokio_watch::Receiver<bool>) {
    let req = JoinRequest { id: node_id, address: me.address.clone(), http_address: me.http_address.clone() };
    let mut targets = seeds.clone();
    loop {
        for addr in std::mem::take(&mut targets) {
            let Ok(ch) = crate::net::channel(&addr) else {
                continue;
            };
            match PdRaftClient::new(ch).join(req.clone()).await {
                Ok(resp) => {
                    let resp = resp.into_inner();
                    if resp.error.is_empty() {
                        info!(node_id, via = %addr, "joined the PD group");
                        return;
                    }
                    if !resp.leader_address.is_empty() && resp.leader_address != addr {
                        targets.push(resp.leader_address);
                    }
                    info!(node_id, via = %addr, reason = %resp.error, "join not accepted yet");
                }
                Err(status) => {
                    info!(node_id, via = %addr, error = %status.message(), "join attempt failed")
                }
            }
        }
        if targets.is_empty() {
            targets = seeds.clone();
            tokio::select! {
                () = tokio::time::sleep(JOIN_RETRY) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod heartbeat_tests;
#[cfg(test)]
mod store_delete_tests;
#[cfg(test)]
mod test_member;
#[cfg(test)]
mod tests;
