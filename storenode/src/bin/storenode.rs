//! `storenode`: a storage node.
//!
//! Configuration: defaults, then `--config FILE` (YAML), then `STORE_*`
//! environment variables, then flags. Once registered with PD and serving it
//! prints one line to stdout:
//!
//! ```text
//! storenode ready store=4 grpc=127.0.0.1:20160 http=127.0.0.1:20180
//! ```
//!
//! `storenode check-log --data-dir D` checks the raft log of a stopped
//! store without starting it: it lists each segment (with `--records`,
//! each record), a tail an open would drop, and the damage that would
//! refuse the open, and exits 0 when the log opens, 1 when it is damaged.
//!
//! Logs go to stderr. SIGINT or SIGTERM stops it gracefully. If the
//! group-commit writer dies (the database refuses writes, or a write job
//! panicked), it logs `group-commit writer died: <reason>; exiting` and
//! exits with status 1 at once: a store that cannot write must not serve.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use pd::config::LogFormat;
use storenode::config::StoreConfig;
use storenode::engine::{LOG_DIR, RecoveryMode, log_engine};
use storenode::server::StoreServer;

#[derive(Parser, Debug)]
#[command(name = "storenode", version, about = "Storage node: replicated regions of the key space")]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// YAML config file; see deploy/storenode.yaml.
    #[arg(long)]
    config: Option<PathBuf>,
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
    /// PD gRPC endpoints, comma separated.
    #[arg(long, value_delimiter = ',')]
    pd: Vec<String>,
    /// Region raft heartbeat; election timeouts scale with it (5x..10x).
    #[arg(long)]
    raft_heartbeat_ms: Option<u64>,
    /// Idle time after which a region hibernates (stops its raft timers);
    /// 0: never.
    #[arg(long)]
    raft_hibernate_after_ms: Option<u64>,
    /// Region report interval to PD.
    #[arg(long)]
    region_heartbeat_ms: Option<u64>,
    /// Store stats interval to PD: keep it well below PD's
    /// `max-store-down-time`.
    #[arg(long)]
    store_heartbeat_ms: Option<u64>,
    /// Applied entries between region snapshots.
    #[arg(long)]
    raft_snapshot_logs: Option<u64>,
    /// Snapshot send rate in MiB/s shared by the store's sends; 0 for none.
    #[arg(long)]
    snapshot_max_send_rate_mb: Option<u64>,
    #[arg(long)]
    log_level: Option<String>,
    #[arg(long, value_parser = ["text", "json"])]
    log_format: Option<String>,
    /// The size reported to PD instead of the disk's, e.g. 10GiB (0: the disk).
    #[arg(long)]
    capacity: Option<String>,
    /// The engine's page cache in MiB.
    #[arg(long)]
    engine_cache_mb: Option<u64>,
    /// What opening the raft log does with a tail a crash may have torn:
    /// drop it, or refuse to start. Damage refuses either way.
    #[arg(long, value_parser = RecoveryMode::NAMES)]
    recovery_mode: Option<String>,
    /// Tests only: serve /debug/partition to simulate network partitions.
    #[arg(long)]
    fault_injection: bool,
    /// Health probe for containers: GET this URL, exit 0 on 200, else 1.
    #[arg(long)]
    probe: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check a stopped store's raft log without starting the store: its
    /// segments, records, a torn tail an open would drop, and damage.
    CheckLog {
        /// The store's data directory (its raft log is under raftlog/).
        #[arg(long)]
        data_dir: PathBuf,
        /// List every record.
        #[arg(long)]
        records: bool,
    },
}

/// Prints the check of the raft log under `data_dir`: exit 0 when it opens,
/// 1 when it is damaged or cannot be read.
fn check_log(data_dir: &std::path::Path, records: bool) -> ExitCode {
    let dir = data_dir.join(LOG_DIR);
    let report = log_engine::check::check(&dir, |r| {
        if records {
            println!("{r}");
        }
    });
    match report {
        Ok(report) => {
            print!("{report}");
            if report.opens() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(e) => {
            eprintln!("storenode check-log: {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

fn load(args: &Args) -> Result<StoreConfig, pd::config::ConfigError> {
    let mut c = match &args.config {
        Some(path) => StoreConfig::from_file(path)?,
        None => StoreConfig::default(),
    };
    c.apply_env(|k| std::env::var(k).ok())?;
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
    if !args.pd.is_empty() {
        c.pd_endpoints = args.pd.clone();
    }
    if let Some(v) = args.raft_heartbeat_ms {
        c.raft.set_heartbeat(v);
    }
    if let Some(v) = args.raft_hibernate_after_ms {
        c.raft.hibernate_after_ms = v;
    }
    if let Some(v) = args.region_heartbeat_ms {
        c.heartbeat.region_interval_ms = v;
    }
    if let Some(v) = args.store_heartbeat_ms {
        c.heartbeat.store_interval_ms = v;
    }
    if let Some(v) = args.raft_snapshot_logs {
        c.raft.snapshot_logs = v;
    }
    if let Some(v) = args.snapshot_max_send_rate_mb {
        c.snapshot.max_send_rate_mb = v;
    }
    if let Some(v) = &args.capacity {
        c.capacity = v.parse().map_err(|e| pd::config::ConfigError::Invalid { field: "--capacity", reason: e })?;
    }
    if let Some(v) = args.engine_cache_mb {
        c.engine.cache_size_mb = v;
    }
    if let Some(v) = &args.recovery_mode {
        c.engine.recovery_mode =
            v.parse().map_err(|e| pd::config::ConfigError::Invalid { field: "--recovery-mode", reason: e })?;
    }
    if args.fault_injection {
        c.fault_injection = true;
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
    storenode::memory::tune_allocator();
    let args = Args::parse();
    if let Some(code) = pd::cli::probe_exit(args.probe.as_deref()) {
        return code;
    }
    if let Some(Command::CheckLog { data_dir, records }) = &args.command {
        return check_log(data_dir, *records);
    }
    let config = match load(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("storenode: {e}");
            return ExitCode::from(2);
        }
    };
    pd::logging::init(&config.log.level, config.log.format);
    let runtime = match pd::cli::runtime("storenode") {
        Ok(r) => r,
        Err(code) => return code,
    };
    let data_dir = config.data_dir.clone();
    let code = runtime.block_on(async move {
        let server = match StoreServer::start(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("storenode: {e}");
                if let Some(d) = log_engine::LogDamage::of(&e) {
                    let why = match d.refusal {
                        log_engine::Refusal::Damage => "the raft log is damaged and this store cannot start on it",
                        log_engine::Refusal::TornTail => "the raft log has a torn tail that recovery-mode refuses",
                    };
                    eprintln!(
                        "storenode: {why}; `storenode check-log --data-dir {}` reports it, and the operations \
                         guide's \"A damaged raft log\" says how to retire the store",
                        data_dir.display()
                    );
                }
                return ExitCode::FAILURE;
            }
        };
        pd::cli::ready(&format!(
            "storenode ready store={} grpc={} http={}",
            server.store_id, server.advertise_grpc_addr, server.advertise_http_addr
        ));
        tokio::select! {
            () = pd::cli::wait_for_signal() => {}
            reason = server.writer_died() => {
                // No graceful shutdown: everything committed is already in
                // the database, and stopping the raft groups would only wait
                // on writes that cannot succeed. A restart repairs the file.
                tracing::error!("group-commit writer died: {reason}; exiting");
                return ExitCode::FAILURE;
            }
        }
        tracing::info!("shutting down");
        server.shutdown().await;
        ExitCode::SUCCESS
    });
    // Bounded, so a stuck blocking task cannot keep a dying store alive.
    runtime.shutdown_timeout(Duration::from_secs(5));
    code
}
