//! Starting a storage node: engine, registration with PD, peers, gRPC (KV +
//! raft transport), HTTP, and the PD worker.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pd::client::PdClient;
use proto::kvpb::kv_server::KvServer;
use proto::raftpb::raft_transport_server::RaftTransportServer;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::info;

use crate::config::StoreConfig;
use crate::disk::{self, Disk, PowerCutConfig, WriteBack};
use crate::engine::{Engine, Failpoints};
use crate::kv::service::KvService;
use crate::node::Node;
use crate::routes::RouteTable;
use crate::transport::service::TransportService;
use crate::transport::{CONNECTION_WINDOW, MAX_MESSAGE, STREAM_WINDOW};
use crate::{http, metrics, pd_worker};

/// How long startup waits for PD's first route snapshot.
const ROUTES_WAIT: Duration = Duration::from_secs(30);

pub struct StoreServer {
    pub store_id: u64,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub advertise_grpc_addr: String,
    pub advertise_http_addr: String,
    node: Arc<Node>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

fn advertise(configured: &str, bound: SocketAddr, field: &str) -> std::io::Result<String> {
    if !configured.is_empty() {
        return Ok(configured.to_string());
    }
    if bound.ip().is_unspecified() {
        return Err(std::io::Error::other(format!("listening on {bound}: set {field}")));
    }
    Ok(bound.to_string())
}

/// Runs the store on the write-back disk when the environment asks for it
/// ([`crate::disk::power_cut`]); only with fault injection on, as its
/// point is to lose data.
fn install_power_cut_disk(config: &StoreConfig) -> std::io::Result<()> {
    let Some(power_cut) = PowerCutConfig::from_env(|k| std::env::var(k).ok())? else { return Ok(()) };
    if !config.fault_injection {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is a test-only setting: it needs fault-injection", PowerCutConfig::DISK),
        ));
    }
    tracing::warn!(?power_cut, "running on the write-back disk: a kill loses every unsynced write");
    disk::install(Disk::WriteBack(Arc::new(WriteBack::new(power_cut))))?;
    // The last run's names whose directories it never synced: a power cut
    // would have lost them.
    let undone = disk::undo_unsynced(&config.data_dir)?;
    tracing::info!(undone, "undid the name changes a power cut loses");
    Ok(())
}

impl StoreServer {
    /// Opens the engine, binds the listeners, registers with PD (waiting for
    /// it), restarts recorded peers and starts serving.
    ///
    /// # Errors
    ///
    /// Engine, listener or registration failures.
    pub async fn start(config: StoreConfig) -> std::io::Result<StoreServer> {
        metrics::init();
        let failpoints = Failpoints::from_env(|k| std::env::var(k).ok())?;
        if failpoints != Failpoints::default() {
            tracing::warn!(?failpoints, "test failpoints armed: this store will fail on purpose");
        }
        install_power_cut_disk(&config)?;
        let cache = usize::try_from(config.engine.cache_size_mb).unwrap_or(usize::MAX).saturating_mul(1024 * 1024);
        let engine = Engine::open_with(&config.data_dir, cache, config.engine.recovery_mode, failpoints)?;
        let grpc_listener = TcpListener::bind(&config.grpc_addr).await?;
        let http_listener = TcpListener::bind(&config.http_addr).await?;
        let grpc_addr = grpc_listener.local_addr()?;
        let http_addr = http_listener.local_addr()?;
        let advertise_grpc_addr = advertise(&config.advertise_grpc_addr, grpc_addr, "advertise-grpc-addr")?;
        let advertise_http_addr = advertise(&config.advertise_http_addr, http_addr, "advertise-http-addr")?;

        let pd = Arc::new(PdClient::new(&config.pd_endpoints).map_err(std::io::Error::other)?);
        let store_id = pd_worker::register(&engine, &pd, &advertise_grpc_addr, &advertise_http_addr, &config.labels)
            .await
            .map_err(std::io::Error::other)?;
        info!(store_id, grpc = %advertise_grpc_addr, "store registered with PD");

        let routes = Arc::new(RouteTable::default());
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let node = Node::new(store_id, config.clone(), advertise_grpc_addr.clone(), engine, routes, pd, events_tx)?;
        node.start_existing_peers().await?;

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let kv = KvServer::new(KvService::new(node.clone(), shutdown_rx.clone()))
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let transport = RaftTransportServer::new(TransportService::new(node.clone(), shutdown_rx.clone()))
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let grpc = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .add_service(kv)
            .add_service(transport);
        tasks.push(tokio::spawn(pd::net::serve_grpc(grpc, grpc_listener, shutdown_rx.clone())));
        tasks.push(tokio::spawn(pd::net::serve_http(http::router(node.clone()), http_listener, shutdown_rx.clone())));
        tasks.push(tokio::spawn(crate::node::snapshot_policy::run(Arc::downgrade(&node), shutdown_rx.clone())));
        tasks.push(tokio::spawn(crate::node::hibernation_loop::run(Arc::downgrade(&node), shutdown_rx.clone())));
        tasks.push(tokio::spawn(pd_worker::run(node.clone(), events_rx, shutdown_rx)));
        // Serving before the first routes arrive would answer every request
        // that needs forwarding with ServerBusy.
        if tokio::time::timeout(ROUTES_WAIT, node.routes.wait_for_routes()).await.is_err() {
            tracing::warn!("no routes from PD after {ROUTES_WAIT:?}; serving anyway");
        }
        Ok(StoreServer {
            store_id,
            grpc_addr,
            http_addr,
            advertise_grpc_addr,
            advertise_http_addr,
            node,
            shutdown_tx,
            tasks,
        })
    }

    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Resolves, with the reason, if the group-commit writer dies: nothing
    /// can be written any more, and the caller must stop serving.
    pub async fn writer_died(&self) -> String {
        self.node.engine.writer.died().await
    }

    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        self.node.shutdown().await;
    }
}
