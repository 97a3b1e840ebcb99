//! `playground`: a local cluster on loopback without Docker, like
//! `tiup playground`.
//!
//! ```text
//! cargo build --workspace --bins && ./target/debug/playground --data-dir ./playground-data
//! ```
//!
//! Starts the PD group (members after the first join it) and the storage
//! nodes on fixed ports, waits until the cluster serves writes, prints the
//! endpoints and a few commands to try, and runs until Ctrl-C. Data stays in
//! `--data-dir`, so running it again on the same directory brings the same
//! cluster back.
//!
//! A port already taken, or a data directory that cannot be made, ends it
//! before anything starts with one `error:` line (naming the flag that
//! changes the port) and exit status 1.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use cluster_tests::cluster::StoreProcess;
use cluster_tests::pd_cluster::{PdProcess, wait_leader};
use cluster_tests::playground_ports::PortClaim;

#[derive(Parser, Debug)]
#[command(name = "playground", about = "Run a local cluster on loopback")]
struct Args {
    /// Where every process keeps its data and log.
    #[arg(long, default_value = "playground-data")]
    data_dir: PathBuf,
    /// PD members (1 or 3 make sense).
    #[arg(long, default_value_t = 1)]
    pd: u64,
    /// Storage nodes. PD bootstraps once 3 have registered.
    #[arg(long, default_value_t = 3)]
    stores: u64,
    /// Pre-split the key space into this many regions at bootstrap.
    #[arg(long, default_value_t = 1)]
    regions: u32,
    /// PD member i listens on base + 10*(i-1) (gRPC) and +2 (HTTP).
    #[arg(long, default_value_t = 2379)]
    pd_port: u16,
    /// Store i listens on base + 10*(i-1) (gRPC) and +2 (HTTP).
    #[arg(long, default_value_t = 20160)]
    store_port: u16,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Checked up front, so a taken port is named rather than found as a
    // process that never became ready.
    let unusable = PortClaim::playground(args.pd_port, args.pd, args.store_port, args.stores)
        .map_err(|e| format!("error: {e}"))
        .and_then(|claims| PortClaim::first_unusable(&claims).map_or(Ok(()), Err));
    if let Err(line) = unusable {
        eprintln!("{line}");
        return ExitCode::FAILURE;
    }
    let data_dir = match std::fs::create_dir_all(&args.data_dir).and_then(|()| args.data_dir.canonicalize()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: data directory {}: {e} (change it with --data-dir)", args.data_dir.display());
            return ExitCode::FAILURE;
        }
    };
    let mut members: Vec<PdProcess> = Vec::new();
    for id in 1..=args.pd {
        let port = args.pd_port + 10 * (id as u16 - 1);
        let mut extra = vec!["--bootstrap-regions".to_string(), args.regions.to_string()];
        if id > 1 {
            extra.push("--join".to_string());
            extra.push(members.iter().map(|m| m.grpc()).collect::<Vec<_>>().join(","));
        }
        let m = PdProcess::spawn(
            id,
            data_dir.join(format!("pd{id}")),
            &format!("127.0.0.1:{port}"),
            &format!("127.0.0.1:{}", port + 2),
            extra,
        );
        println!("pd{id}:    grpc {}  http http://{}  log {}", m.grpc(), m.http(), m.log_path().display());
        members.push(m);
    }
    let endpoints: Vec<String> = members.iter().map(|m| m.grpc()).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(wait_leader(&endpoints, args.pd as usize));
    let mut stores = Vec::new();
    for i in 1..=args.stores {
        let port = args.store_port + 10 * (i as u16 - 1);
        let grpc = format!("127.0.0.1:{port}");
        let http = format!("127.0.0.1:{}", port + 2);
        let s = StoreProcess::spawn_at(
            &format!("store{i}"),
            data_dir.join(format!("store{i}")),
            &endpoints,
            &grpc,
            &http,
            &[],
        );
        println!("store{}: grpc {}  http http://{}  log {}", s.store_id, s.grpc(), s.http(), s.log_path().display());
        stores.push(s);
    }
    let pd = endpoints.join(",");
    println!();
    println!("try:");
    println!("  ./target/debug/pdctl --pd {pd} store list");
    println!("  ./target/debug/pdctl --pd {pd} region list");
    println!("  curl -X PUT --data world http://{}/kv/hello", stores[0].http());
    println!("  curl http://{}/kv/hello", stores[stores.len() - 1].http());
    println!("  ./target/debug/kvbench --pd {pd} --workload put --clients 16 --duration 10s");
    println!();
    println!("Ctrl-C stops the cluster; data stays in {}", data_dir.display());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        });
        let _ = tx.send(());
    });
    let _ = rx.recv();
    for s in &mut stores {
        s.stop(Duration::from_secs(5));
    }
    for m in &mut members {
        m.stop(Duration::from_secs(5));
    }
    ExitCode::SUCCESS
}
