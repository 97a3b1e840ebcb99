//! `kvbench`: a load generator for this store or an etcd cluster.
//!
//! ```text
//! kvbench --pd 127.0.0.1:2379 --workload put --clients 64 --duration 30s
//! kvbench --etcd 127.0.0.1:2379,127.0.0.1:22379 --workload get --clients 64 --duration 30s
//! kvbench --pd 127.0.0.1:2379 --split-regions 16 --workload put --duration 30s
//! ```
//!
//! `--split-regions N` first splits the key space (after `--key-prefix`)
//! into N even regions through PD, waiting for each split to reach every
//! store.
//!
//! Prints a progress line every second and, at the end, throughput and
//! p50/p90/p99/p99.9/max latency per operation. With `--metrics` pointing at store
//! HTTP addresses it also reports fsyncs (group commits) per second against
//! writes per second, from the stores' own counters.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use proto::etcdserverpb::kv_client::KvClient as EtcdKv;
use storenode::bench::keygen::{Distribution, Zipf};
use storenode::bench::presplit::{presplit, split_during};
use storenode::bench::{Backend, BenchConfig, preload, run};
use storenode::client::Client;

#[derive(Parser, Debug)]
#[command(name = "kvbench", about = "Measure throughput and latency of this store or etcd")]
struct Args {
    /// PD endpoints of this store's cluster.
    #[arg(long, value_delimiter = ',', conflicts_with = "etcd")]
    pd: Vec<String>,
    /// etcd endpoints (gRPC), to measure etcd instead.
    #[arg(long, value_delimiter = ',')]
    etcd: Vec<String>,
    #[arg(long, value_enum, default_value_t = Workload::Put)]
    workload: Workload,
    /// With --workload mixed: percent of reads (the rest are puts).
    #[arg(long, default_value_t = 50)]
    read_pct: u32,
    #[arg(long, default_value_t = 64)]
    clients: usize,
    #[arg(long, default_value_t = 16)]
    key_size: usize,
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Size of the key space.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Put in front of every key (not counted in --key-size), to aim the
    /// load at one region of a pre-split cluster.
    #[arg(long, default_value = "")]
    key_prefix: String,
    #[arg(long, value_enum, default_value_t = Dist::Uniform)]
    distribution: Dist,
    #[arg(long, default_value_t = 0.99)]
    zipf_theta: f64,
    /// e.g. 30s, 2m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    #[arg(long, default_value_t = 10)]
    scan_limit: u32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Split the key space after --key-prefix into this many even regions
    /// (through PD's admin API) before the run. 0 or 1: leave it as it is.
    #[arg(long, default_value_t = 0)]
    split_regions: u32,
    /// Make this many splits at even keys, spread over the run, and report
    /// each one's time from request to every store's routes showing it.
    #[arg(long, default_value_t = 0)]
    split_during: u32,
    /// Skip writing every key before a read workload.
    #[arg(long)]
    no_preload: bool,
    /// Store HTTP addresses to read group-commit counters from.
    #[arg(long, value_delimiter = ',')]
    metrics: Vec<String>,
    /// Print the result as one JSON line as well.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Workload {
    Put,
    Get,
    Scan,
    Mixed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Dist {
    Uniform,
    Zipf,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("bad duration unit in {s:?} (ms, s, m)")),
    }
}

/// Sums one counter over the stores' `/metrics`.
async fn counter(addrs: &[String], name: &str) -> Option<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut total = 0.0;
    for addr in addrs {
        let mut s = tokio::net::TcpStream::connect(addr.trim_start_matches("http://")).await.ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).await.ok()?;
        total += body
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    Some(total)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    match runtime.block_on(bench(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kvbench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn bench(args: Args) -> Result<(), String> {
    let (put_pct, get_pct, scan_pct) = match args.workload {
        Workload::Put => (100, 0, 0),
        Workload::Get => (0, 100, 0),
        Workload::Scan => (0, 0, 100),
        Workload::Mixed => (100 - args.read_pct.min(100), args.read_pct.min(100), 0),
    };
    if args.clients == 0 || args.keys == 0 || args.key_size < 8 {
        return Err("clients and keys must be positive, key size at least 8".into());
    }
    let distribution = match args.distribution {
        Dist::Uniform => Distribution::Uniform,
        Dist::Zipf => {
            if !(args.zipf_theta > 0.0 && args.zipf_theta < 1.0) {
                return Err("zipf theta must be in (0, 1)".into());
            }
            Distribution::Zipf(Zipf::new(args.keys, args.zipf_theta))
        }
    };
    let mut pd_endpoints = Vec::new();
    let (backend, target) = if !args.etcd.is_empty() {
        let eps = args
            .etcd
            .iter()
            .map(|e| pd::client::channel(e).map(EtcdKv::new).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        (Backend::Etcd(eps), format!("etcd {}", args.etcd.join(",")))
    } else {
        let pd = if args.pd.is_empty() { vec!["127.0.0.1:2379".to_string()] } else { args.pd.clone() };
        pd_endpoints = pd.clone();
        if args.split_regions > 1 {
            let pd_client = pd::client::PdClient::new(&pd).map_err(|e| e.to_string())?;
            let prefix = args.key_prefix.as_bytes();
            let n = presplit(&pd_client, prefix, args.split_regions, Duration::from_secs(60)).await?;
            eprintln!("kvbench: split {n} times into {} regions", args.split_regions);
        }
        let client = Client::connect(&pd).await.map_err(|e| e.to_string())?;
        (Backend::Store(Arc::new(client)), format!("store via PD {}", pd.join(",")))
    };
    let backend = Arc::new(backend);
    let cfg = BenchConfig {
        put_pct,
        get_pct,
        scan_pct,
        clients: args.clients,
        key_size: args.key_size,
        value_size: args.value_size,
        keys: args.keys,
        key_prefix: args.key_prefix.clone().into_bytes(),
        distribution,
        duration: args.duration,
        scan_limit: args.scan_limit,
        seed: args.seed,
        preload: !args.no_preload && (get_pct + scan_pct) > 0,
        progress: true,
    };
    eprintln!(
        "kvbench: {target}; {:?} {} clients, {} B keys, {} B values, {} keys {:?}, {:?}",
        args.workload, cfg.clients, cfg.key_size, cfg.value_size, cfg.keys, args.distribution, cfg.duration
    );
    if cfg.preload {
        eprintln!("kvbench: preloading {} keys", cfg.keys);
        preload(&backend, &cfg).await?;
    }
    let commits_before = counter(&args.metrics, "store_group_commits_total").await;
    let splits = (args.split_during > 0 && !pd_endpoints.is_empty()).then(|| {
        let pd = pd::client::PdClient::new(&pd_endpoints).map_err(|e| e.to_string());
        let (prefix, n, over) = (args.key_prefix.clone().into_bytes(), args.split_during, cfg.duration);
        tokio::spawn(async move { split_during(&pd?, &prefix, n, over).await })
    });
    let report = run(backend, cfg).await;
    let commits_after = counter(&args.metrics, "store_group_commits_total").await;
    let split_times = match splits {
        Some(task) => Some(task.await.map_err(|e| e.to_string())??),
        None => None,
    };

    println!("target       {target}");
    println!("elapsed      {:.1}s", report.elapsed.as_secs_f64());
    println!("throughput   {:.0} ops/s", report.throughput());
    println!("errors       {}", report.errors);
    for (op, s) in &report.ops {
        println!(
            "{:<6} {:>9} ops {:>9.0}/s  p50 {:>8.2}ms  p90 {:>8.2}ms  p99 {:>8.2}ms  p999 {:>8.2}ms  max {:>8.2}ms",
            op.name(),
            s.count,
            s.count as f64 / report.elapsed.as_secs_f64(),
            s.p50.as_secs_f64() * 1e3,
            s.p90.as_secs_f64() * 1e3,
            s.p99.as_secs_f64() * 1e3,
            s.p999.as_secs_f64() * 1e3,
            s.max.as_secs_f64() * 1e3,
        );
    }
    let mut fsyncs_per_sec = None;
    if let (Some(a), Some(b)) = (commits_before, commits_after) {
        let rate = (b - a) / report.elapsed.as_secs_f64();
        fsyncs_per_sec = Some(rate);
        println!("fsyncs       {rate:.0}/s across {} stores (group commits)", args.metrics.len());
    }
    if let Some(e) = &report.last_error {
        println!("last error   {e}");
    }
    let mut split_summary = None;
    if let Some(mut times) = split_times.filter(|t| !t.is_empty()) {
        times.sort_unstable();
        let at = |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "splits       {} to convergence on every store: p50 {:.1}ms  p99 {:.1}ms  max {:.1}ms",
            times.len(),
            ms(at(0.5)),
            ms(at(0.99)),
            ms(times[times.len() - 1])
        );
        split_summary = Some(serde_json::json!({"count": times.len(), "p50_ms": ms(at(0.5)), "p99_ms": ms(at(0.99))}));
    }
    if args.json {
        let ops: Vec<_> = report
            .ops
            .iter()
            .map(|(op, s)| {
                serde_json::json!({
                    "op": op.name(), "count": s.count,
                    "p50_ms": s.p50.as_secs_f64() * 1e3, "p90_ms": s.p90.as_secs_f64() * 1e3,
                    "p99_ms": s.p99.as_secs_f64() * 1e3, "p999_ms": s.p999.as_secs_f64() * 1e3,
                    "max_ms": s.max.as_secs_f64() * 1e3,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "target": target, "clients": args.clients, "throughput": report.throughput(),
                "errors": report.errors, "ops": ops, "fsyncs_per_sec": fsyncs_per_sec, "splits": split_summary,
            })
        );
    }
    Ok(())
}
