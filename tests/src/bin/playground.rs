//! `playground`: a local cluster on loopback without Docker, like
//! `tiup playground`.
//!
//! ```text
//! cargo build --workspace --bins && ./target/debug/playground --data-dir ./playground-data
//! ```
//!
//! Starts the PD group (members after the first join it) on fixed ports,
//! prints the endpoints and a few commands to try, and runs until Ctrl-C.
//! Data stays in `--data-dir`, so running it again on the same directory
//! brings the same cluster back.
//!
//! Not done yet: storage nodes (they join the playground once they exist).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use cluster_tests::pd_cluster::PdProcess;

#[derive(Parser, Debug)]
#[command(name = "playground", about = "Run a local cluster on loopback")]
struct Args {
    /// Where every process keeps its data and log.
    #[arg(long, default_value = "playground-data")]
    data_dir: PathBuf,
    /// PD members (1 or 3 make sense).
    #[arg(long, default_value_t = 1)]
    pd: u64,
    /// PD member i listens on base + 10*(i-1) (gRPC) and that + 2 (HTTP).
    #[arg(long, default_value_t = 2379)]
    base_port: u16,
}

fn main() {
    let args = Args::parse();
    std::fs::create_dir_all(&args.data_dir).expect("create data dir");
    let data_dir = args.data_dir.canonicalize().expect("data dir path");
    let mut members: Vec<PdProcess> = Vec::new();
    for id in 1..=args.pd {
        let grpc_port = args.base_port + 10 * (id as u16 - 1);
        let mut extra = Vec::new();
        if id > 1 {
            extra.push("--join".to_string());
            extra.push(
                members
                    .iter()
                    .map(|m| m.grpc().clone())
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        let m = PdProcess::spawn(
            id,
            data_dir.join(format!("pd{id}")),
            &format!("127.0.0.1:{grpc_port}"),
            &format!("127.0.0.1:{}", grpc_port + 2),
            extra,
        );
        println!(
            "pd{id}: grpc {}  http http://{}  log {}",
            m.grpc(),
            m.http(),
            m.log_path().display()
        );
        members.push(m);
    }
    let endpoints = members
        .iter()
        .map(|m| m.grpc().clone())
        .collect::<Vec<_>>()
        .join(",");
    println!();
    println!("try:");
    println!("  ./target/debug/pdctl --pd {endpoints} members");
    println!("  ./target/debug/pdctl --pd {endpoints} store list");
    println!("  curl http://{}/api/v1/routes", members[0].http());
    println!();
    println!(
        "Ctrl-C stops the cluster; data stays in {}",
        data_dir.display()
    );
    let (tx, rx) = std::sync::mpsc::channel();
    ctrlc_channel(tx);
    let _ = rx.recv();
    for m in &mut members {
        m.stop(Duration::from_secs(5));
    }
}

/// Delivers one message on SIGINT/SIGTERM.
fn ctrlc_channel(tx: std::sync::mpsc::Sender<()>) {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("signal handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        });
        let _ = tx.send(());
    });
}
