//! `pd-server`: one member of the placement driver group.
//!
//! Configuration: defaults, then `--config FILE` (YAML), then `PD_*`
//! environment variables, then flags. Once both listeners are bound it
//! prints one line to stdout:
//!
//! ```text
//! pd-server ready id=1 grpc=127.0.0.1:2379 http=127.0.0.1:2381
//! ```
//!
//! Logs go to stderr. SIGINT or SIGTERM stops it gracefully.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use pd::byte_size::ByteSize;
use pd::config::{LogFormat, PdConfig};
use pd::duration_text::DurationText;
use pd::server::PdServer;

#[derive(Parser, Debug)]
#[command(name = "pd-server", version, about = "Placement driver: owns the route catalog of the cluster")]
struct Args {
    /// YAML config file; see deploy/pd.yaml.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    node_id: Option<u64>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// gRPC listen address (port 0 picks a free port).
    #[arg(long)]
    grpc_addr: Option<String>,
    #[arg(long)]
    advertise_grpc_addr: Option<String>,
    #[arg(long)]
    http_addr: Option<String>,
    #[arg(long)]
    advertise_http_addr: Option<String>,
    /// gRPC addresses of existing members to join, comma-separated.
    #[arg(long, value_delimiter = ',')]
    join: Vec<String>,
    #[arg(long)]
    max_replicas: Option<u32>,
    /// Pre-split the first bootstrap into this many even regions.
    #[arg(long)]
    bootstrap_regions: Option<u32>,
    /// Pre-split the first bootstrap at these keys, comma separated.
    #[arg(long, value_delimiter = ',')]
    bootstrap_split_keys: Vec<String>,
    /// How often the leader looks for regions to split (0: never).
    #[arg(long)]
    split_check_interval_ms: Option<u64>,
    /// Split a region once it is this big: bytes, or with a unit (96MiB).
    #[arg(long)]
    region_split_size: Option<ByteSize>,
    #[arg(long)]
    region_split_keys: Option<u64>,
    /// Regions past this size are split first.
    #[arg(long)]
    region_max_size: Option<ByteSize>,
    #[arg(long)]
    region_max_keys: Option<u64>,
    #[arg(long)]
    max_splits_per_check: Option<u32>,
    #[arg(long)]
    split_operator_timeout_ms: Option<u64>,
    /// Base timeout of move, add-peer, remove-peer and leave-joint operators.
    #[arg(long)]
    peer_operator_timeout_ms: Option<u64>,
    /// Snapshot rate (bytes per second) the membership timeouts assume.
    #[arg(long)]
    peer_operator_rate: Option<ByteSize>,
    /// A store silent this long is Down: seconds, or with units (30m, 90s).
    #[arg(long)]
    max_store_down_time: Option<DurationText>,
    /// How often the leader runs the replica checkers (0: never).
    #[arg(long)]
    replica_check_interval_ms: Option<u64>,
    #[arg(long)]
    max_replica_plans_per_check: Option<u32>,
    /// Catalog versions remembered for route deltas (0: full snapshots only).
    #[arg(long)]
    route_history_versions: Option<u64>,
    #[arg(long)]
    log_level: Option<String>,
    #[arg(long, value_parser = ["text", "json"])]
    log_format: Option<String>,
    /// Health probe for containers: GET this URL, exit 0 on 200, else 1.
    #[arg(long)]
    probe: Option<String>,
}

fn load(args: &Args) -> Result<PdConfig, pd::config::ConfigError> {
    let mut c = match &args.config {
        Some(path) => PdConfig::from_file(path)?,
        None => PdConfig::default(),
    };
    c.apply_env(|k| std::env::var(k).ok())?;
    if let Some(v) = args.node_id {
        c.node_id = v;
    }
    if let Some(v) = &args.data_dir {
        c.data_dir = v.clone();
    }
    if let Some(v) = &args.grpc_addr {
        c.grpc_addr = v.clone();
    }
    if let Some(v) = &args.advertise_grpc_addr {
        c.advertise_grpc_addr = v.clone();
    }
    if let Some(v) = &args.http_addr {
        c.http_addr = v.clone();
    }
    if let Some(v) = &args.advertise_http_addr {
        c.advertise_http_addr = v.clone();
    }
    if !args.join.is_empty() {
        c.join = args.join.clone();
    }
    if let Some(v) = args.max_replicas {
        c.replication.max_replicas = v;
    }
    if let Some(v) = args.bootstrap_regions {
        c.bootstrap.regions = v;
    }
    if !args.bootstrap_split_keys.is_empty() {
        c.bootstrap.split_keys = args.bootstrap_split_keys.clone();
    }
    let s = &mut c.schedule;
    if let Some(v) = args.split_check_interval_ms {
        s.split_check_interval_ms = v;
    }
    if let Some(v) = args.region_split_size {
        s.region_split_size = v;
    }
    if let Some(v) = args.region_split_keys {
        s.region_split_keys = v;
    }
    if let Some(v) = args.region_max_size {
        s.region_max_size = v;
    }
    if let Some(v) = args.region_max_keys {
        s.region_max_keys = v;
    }
    if let Some(v) = args.max_splits_per_check {
        s.max_splits_per_check = v;
    }
    if let Some(v) = args.split_operator_timeout_ms {
        s.split_operator_timeout_ms = v;
    }
    if let Some(v) = args.peer_operator_timeout_ms {
        s.peer_operator_timeout_ms = v;
    }
    if let Some(v) = args.peer_operator_rate {
        s.peer_operator_rate = v;
    }
    if let Some(v) = args.max_store_down_time {
        s.max_store_down_time = v;
    }
    if let Some(v) = args.replica_check_interval_ms {
        s.replica_check_interval_ms = v;
    }
    if let Some(v) = args.max_replica_plans_per_check {
        s.max_replica_plans_per_check = v;
    }
    if let Some(v) = args.route_history_versions {
        c.routes.history_versions = v;
    }
    if let Some(v) = &args.log_level {
        c.log.level = v.clone();
    }
    if let Some(v) = &args.log_format {
        c.log.format = if v == "json" { LogFormat::Json } else { LogFormat::Text };
    }
    c.validate()?;
    Ok(c)
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(code) = pd::cli::probe_exit(args.probe.as_deref()) {
        return code;
    }
    let config = match load(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pd-server: {e}");
            return ExitCode::from(2);
        }
    };
    pd::logging::init(&config.log.level, config.log.format);
    let runtime = match pd::cli::runtime("pd-server") {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let node_id = config.node_id;
        let server = match PdServer::start(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("pd-server: {e}");
                return ExitCode::FAILURE;
            }
        };
        pd::cli::ready(&format!(
            "pd-server ready id={node_id} grpc={} http={}",
            server.advertise_grpc_addr, server.advertise_http_addr
        ));
        pd::cli::wait_for_signal().await;
        tracing::info!("shutting down");
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}
