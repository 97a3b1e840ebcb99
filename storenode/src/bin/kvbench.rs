//! `kvbench`: a load generator for this store or an etcd cluster.
//!
//! ```text
//! kvbench --pd 127.0.0.1:2379 --workload put --clients 64 --duration 30s
//! kvbench --etcd 127.0.0.1:2379,127.0.0.1:22379 --workload get --clients 64 --duration 30s
//! kvbench --pd 127.0.0.1:2379 --split-regions 16 --workload put --duration 30s
//! kvbench --pd 127.0.0.1:2379 --workload ycsb-a --distribution zipfian --record-count 100000 --duration 30s
//! kvbench --pd 127.0.0.1:2379 --workload ycsb-e --operation-count 100000 --skip-load
//! ```
//!
//! `--split-regions N` first splits the key space (after `--key-prefix`)
//! into N even regions through PD, waiting for each split to reach every
//! store.
//!
//! Workloads: `put`, `get`, `scan`, `mixed` (`--read-pct` gets, the rest
//! puts), and YCSB's core workloads `ycsb-a` .. `ycsb-f` (see
//! `storenode::bench::ycsb` and docs/benchmarks.md). A workload that reads
//! first writes every record once (the load phase), unless `--no-preload`
//! (alias `--skip-load`).
//!
//! Prints a progress line every second and, at the end, throughput and
//! count, rate and p50/p90/p99/p99.9/max latency per operation. With
//! `--metrics` pointing at store HTTP addresses it also reports fsyncs
//! (group commits) per second against writes per second, from the stores'
//! own counters.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use proto::etcdserverpb::kv_client::KvClient as EtcdKv;
use storenode::bench::chooser::KeyChooser;
use storenode::bench::distribution::Distribution;
use storenode::bench::mix::Mix;
use storenode::bench::op::Op;
use storenode::bench::presplit::{presplit, split_during};
use storenode::bench::scan_length::ScanLength;
use storenode::bench::ycsb::{self, Ycsb};
use storenode::bench::zipfian::YCSB_THETA;
use storenode::bench::{Backend, BenchConfig, load, run};
use storenode::client::Client;
use storenode::config::{MAX_KEY_SIZE, MAX_VALUE_SIZE};

/// Without --value-size: the bench scripts' 256 B, or YCSB's 1000 B record
/// (10 fields of 100 B) for the YCSB workloads.
const DEFAULT_VALUE_SIZE: usize = 256;
const DEFAULT_DURATION: Duration = Duration::from_secs(10);
const DEFAULT_READ_PCT: u32 = 50;
const DEFAULT_SCAN_LIMIT: u32 = 10;

#[derive(Parser, Debug)]
#[command(name = "kvbench", about = "Measure throughput and latency of this store or etcd")]
struct Args {
    /// PD endpoints of this store's cluster.
    #[arg(long, value_delimiter = ',', conflicts_with = "etcd")]
    pd: Vec<String>,
    /// etcd endpoints (gRPC), to measure etcd instead.
    #[arg(long, value_delimiter = ',')]
    etcd: Vec<String>,
    /// put, get, scan, mixed, or YCSB's core workloads ycsb-a .. ycsb-f.
    #[arg(long, value_enum, default_value_t = Workload::Put)]
    workload: Workload,
    /// With --workload mixed: percent of reads (the rest are puts) [default: 50].
    #[arg(long)]
    read_pct: Option<u32>,
    #[arg(long, default_value_t = 64)]
    clients: usize,
    #[arg(long, default_value_t = 16)]
    key_size: usize,
    /// Bytes per value [default: 256; YCSB workloads: 1000, YCSB's 10 fields of 100 B].
    #[arg(long)]
    value_size: Option<usize>,
    /// Records (keys) written by the load phase and chosen from by the run.
    #[arg(long, visible_alias = "record-count", default_value_t = 100_000)]
    keys: u64,
    /// Put in front of every key (not counted in --key-size), to aim the
    /// load at one region of a pre-split cluster.
    #[arg(long, default_value = "")]
    key_prefix: String,
    /// How keys are chosen [default: uniform; YCSB workloads: YCSB's, zipfian or for ycsb-d latest].
    #[arg(long, value_enum)]
    distribution: Option<Dist>,
    /// Skew of zipfian and latest [default: 0.99, YCSB's].
    #[arg(long)]
    zipf_theta: Option<f64>,
    /// How long the run lasts, e.g. 30s, 2m [default: 10s, or no limit with --operation-count].
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// End the run after this many operations over all clients (with
    /// --duration too: whichever comes first).
    #[arg(long)]
    operation_count: Option<u64>,
    /// With --workload scan: records per scan [default: 10].
    #[arg(long)]
    scan_limit: Option<u32>,
    /// With --workload ycsb-e: scans read 1..=N records, uniform [default: 100, YCSB's].
    #[arg(long)]
    max_scan_length: Option<u32>,
    /// Seeds each client's generator (operations, records, scan lengths):
    /// the same seed and client count make the same draws.
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
    /// Skip the load phase (writing every record once before a workload
    /// that reads): the records are already there from an earlier run.
    #[arg(long, visible_alias = "skip-load")]
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
    YcsbA,
    YcsbB,
    YcsbC,
    YcsbD,
    YcsbE,
    YcsbF,
}

impl Workload {
    fn ycsb(self) -> Option<Ycsb> {
        match self {
            Workload::YcsbA => Some(Ycsb::A),
            Workload::YcsbB => Some(Ycsb::B),
            Workload::YcsbC => Some(Ycsb::C),
            Workload::YcsbD => Some(Ycsb::D),
            Workload::YcsbE => Some(Ycsb::E),
            Workload::YcsbF => Some(Ycsb::F),
            Workload::Put | Workload::Get | Workload::Scan | Workload::Mixed => None,
        }
    }

    fn name(self) -> String {
        self.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Dist {
    Uniform,
    /// YCSB's scrambled zipfian.
    #[value(alias = "zipf")]
    Zipfian,
    /// YCSB's latest: the newest records are the hottest.
    Latest,
}

impl From<Dist> for Distribution {
    fn from(d: Dist) -> Self {
        match d {
            Dist::Uniform => Distribution::Uniform,
            Dist::Zipfian => Distribution::Zipfian,
            Dist::Latest => Distribution::Latest,
        }
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m)")),
    };
    if d.is_zero() {
        return Err("a duration must be above zero".into());
    }
    Ok(d)
}

/// The flags, checked and turned into a run.
#[derive(Debug)]
struct Plan {
    cfg: BenchConfig,
    distribution: Distribution,
    /// Write every record before the run.
    load: bool,
}

/// Checks every flag against the others and builds the run.
fn plan(args: &Args) -> Result<Plan, String> {
    let ycsb = args.workload.ycsb();
    let workload = args.workload.name();
    if args.read_pct.is_some() && args.workload != Workload::Mixed {
        return Err(format!("--read-pct applies to --workload mixed, not {workload}"));
    }
    if args.scan_limit.is_some() && args.workload != Workload::Scan {
        return Err(format!("--scan-limit applies to --workload scan, not {workload} (ycsb-e: --max-scan-length)"));
    }
    if args.max_scan_length.is_some() && args.workload != Workload::YcsbE {
        return Err(format!("--max-scan-length applies to --workload ycsb-e, not {workload}"));
    }
    let mix = match (args.workload, ycsb) {
        (_, Some(y)) => y.mix(),
        (Workload::Put, _) => Mix::new(&[(Op::Put, 100)])?,
        (Workload::Get, _) => Mix::new(&[(Op::Get, 100)])?,
        (Workload::Scan, _) => Mix::new(&[(Op::Scan, 100)])?,
        (_, None) => {
            let read = args.read_pct.unwrap_or(DEFAULT_READ_PCT);
            if read > 100 {
                return Err(format!("--read-pct {read} is not a percentage (0..=100)"));
            }
            Mix::new(&[(Op::Put, 100 - read), (Op::Get, read)])?
        }
    };
    if args.clients == 0 {
        return Err("--clients must be at least 1".into());
    }
    let distribution: Distribution = match (args.distribution, ycsb) {
        (Some(d), _) => d.into(),
        (None, Some(y)) => y.distribution(),
        (None, None) => Distribution::Uniform,
    };
    if args.keys == 0 {
        return Err(format!("--record-count (--keys) must be at least 1: {distribution} needs records to choose from"));
    }
    let max_key = MAX_KEY_SIZE.saturating_sub(args.key_prefix.len());
    if !(8..=max_key).contains(&args.key_size) {
        return Err(format!(
            "--key-size {} out of range: 8 (a key holds its record number) to {max_key} (the store's key limit less the prefix)",
            args.key_size
        ));
    }
    let value_size = args.value_size.unwrap_or(if ycsb.is_some() { ycsb::VALUE_SIZE } else { DEFAULT_VALUE_SIZE });
    if value_size > MAX_VALUE_SIZE {
        return Err(format!("--value-size {value_size} is above the store's value limit of {MAX_VALUE_SIZE} bytes"));
    }
    let theta = match args.zipf_theta {
        Some(_) if distribution == Distribution::Uniform => {
            return Err("--zipf-theta applies to the zipfian and latest distributions, not uniform".into());
        }
        Some(t) if !(t > 0.0 && t < 1.0) => return Err(format!("--zipf-theta {t} must be in (0, 1)")),
        Some(t) => t,
        None => YCSB_THETA,
    };
    if args.operation_count == Some(0) {
        return Err("--operation-count must be at least 1".into());
    }
    let duration = match (args.duration, args.operation_count) {
        (None, None) => Some(DEFAULT_DURATION),
        (d, _) => d,
    };
    let scan_length = if args.workload == Workload::YcsbE {
        ScanLength::Uniform { max: args.max_scan_length.unwrap_or(ycsb::MAX_SCAN_LENGTH) }
    } else {
        ScanLength::Fixed(args.scan_limit.unwrap_or(DEFAULT_SCAN_LIMIT))
    };
    if matches!(scan_length, ScanLength::Fixed(0) | ScanLength::Uniform { max: 0 }) {
        return Err("a scan must read at least 1 record (--scan-limit, --max-scan-length)".into());
    }
    if !args.etcd.is_empty() {
        for (set, flag) in [
            (args.split_regions > 1, "--split-regions"),
            (args.split_during > 0, "--split-during"),
            (!args.metrics.is_empty(), "--metrics"),
        ] {
            if set {
                return Err(format!("{flag} needs this store's cluster (--pd), not etcd"));
            }
        }
    }
    // As YCSB does: the zipfian spreads its popularity over the records
    // the run is expected to have inserted by its end too (twice the
    // expected count); without an operation count the run's length in
    // operations is unknown and it covers the loaded records only.
    let expected_inserts = args.operation_count.map_or(0, |n| n.saturating_mul(u64::from(mix.share(Op::Insert))) / 100);
    let zipfian_items = args.keys.saturating_add(expected_inserts.saturating_mul(2));
    let cfg = BenchConfig {
        clients: args.clients,
        key_size: args.key_size,
        value_size,
        records: args.keys,
        key_prefix: args.key_prefix.clone().into_bytes(),
        chooser: KeyChooser::new(distribution, args.keys, zipfian_items, theta),
        duration,
        operations: args.operation_count,
        scan_length,
        seed: args.seed,
        progress: true,
        mix,
    };
    Ok(Plan { load: !args.no_preload && cfg.mix.reads(), cfg, distribution })
}

/// Sums one counter over the stores' `/metrics` (none without --metrics).
async fn counter(addrs: &[String], name: &str) -> Option<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if addrs.is_empty() {
        return None;
    }
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
    let plan = match plan(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("kvbench: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    match runtime.block_on(bench(args, plan)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kvbench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn bench(args: Args, plan: Plan) -> Result<(), String> {
    let Plan { cfg, distribution, load: load_first } = plan;
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
    let workload = args.workload.name();
    let workload_line = match args.workload.ycsb() {
        Some(y) => format!("{workload} ({}): {}", y.title(), cfg.mix.describe()),
        None => format!("{workload}: {}", cfg.mix.describe()),
    };
    let until = match (cfg.duration, cfg.operations) {
        (Some(d), Some(n)) => format!("{n} operations or {d:?}"),
        (Some(d), None) => format!("{d:?}"),
        (None, Some(n)) => format!("{n} operations"),
        (None, None) => unreachable!("plan sets one"),
    };
    eprintln!(
        "kvbench: {target}; {workload_line}; {} clients, {} B keys, {} B values, {} records {distribution}, seed {}, {until}",
        cfg.clients, cfg.key_size, cfg.value_size, cfg.records, cfg.seed
    );
    let mut load_secs = None;
    if load_first {
        eprintln!("kvbench: loading {} records", cfg.records);
        let took = load(&backend, &cfg).await?;
        load_secs = Some(took.as_secs_f64());
    }
    let commits_before = counter(&args.metrics, "store_group_commits_total").await;
    let splits = (args.split_during > 0 && !pd_endpoints.is_empty()).then(|| {
        let pd = pd::client::PdClient::new(&pd_endpoints).map_err(|e| e.to_string());
        let (prefix, n) = (args.key_prefix.clone().into_bytes(), args.split_during);
        // Spread over the run's duration (or 10 s for a run bounded by
        // operations alone).
        let over = cfg.duration.unwrap_or(DEFAULT_DURATION);
        tokio::spawn(async move { split_during(&pd?, &prefix, n, over).await })
    });
    let records = cfg.records;
    let report = run(backend, cfg).await;
    let commits_after = counter(&args.metrics, "store_group_commits_total").await;
    let split_times = match splits {
        Some(task) => Some(task.await.map_err(|e| e.to_string())??),
        None => None,
    };

    let secs = report.elapsed.as_secs_f64();
    println!("target       {target}");
    println!("workload     {workload_line}; {distribution} over {records} records");
    if let Some(l) = load_secs {
        println!("load         {records} records in {l:.1}s, {:.0} records per second", records as f64 / l);
    }
    println!("elapsed      {secs:.1}s");
    println!("throughput   {:.0} ops/s", report.throughput());
    println!("errors       {}", report.errors);
    if report.not_found > 0 {
        println!("not found    {} reads found no value", report.not_found);
    }
    for (op, s) in &report.ops {
        println!(
            "{:<6} {:>9} ops {:>9.0}/s  p50 {:>8.2}ms  p90 {:>8.2}ms  p99 {:>8.2}ms  p999 {:>8.2}ms  max {:>8.2}ms",
            op.name(),
            s.count,
            s.count as f64 / secs,
            ms(s.p50),
            ms(s.p90),
            ms(s.p99),
            ms(s.p999),
            ms(s.max),
        );
    }
    let mut fsyncs_per_sec = None;
    if let (Some(a), Some(b)) = (commits_before, commits_after) {
        let rate = (b - a) / secs;
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
                    "op": op.name(), "count": s.count, "ops_per_sec": s.count as f64 / secs,
                    "p50_ms": ms(s.p50), "p90_ms": ms(s.p90), "p99_ms": ms(s.p99), "p999_ms": ms(s.p999),
                    "max_ms": ms(s.max),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "target": target, "workload": workload, "distribution": distribution.name(), "records": records,
                "clients": args.clients, "seed": args.seed, "load_seconds": load_secs, "elapsed_seconds": secs,
                "throughput": report.throughput(), "errors": report.errors, "not_found": report.not_found,
                "ops": ops, "fsyncs_per_sec": fsyncs_per_sec, "splits": split_summary,
            })
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(flags: &[&str]) -> Result<Plan, String> {
        let args =
            Args::try_parse_from(std::iter::once("kvbench").chain(flags.iter().copied())).map_err(|e| e.to_string())?;
        plan(&args)
    }

    fn refused(flags: &[&str], says: &str) {
        match plan_of(flags) {
            Ok(p) => panic!("{flags:?} accepted: {p:?}"),
            Err(e) => assert!(e.contains(says), "{flags:?}: {e:?} does not say {says:?}"),
        }
    }

    #[test]
    fn the_scripts_flags_still_parse_as_before() {
        let p = plan_of(&["--pd", "127.0.0.1:1", "--workload", "put", "--clients", "64", "--duration", "20s"]).unwrap();
        assert_eq!(p.cfg.mix.share(Op::Put), 100);
        assert_eq!((p.cfg.value_size, p.cfg.records), (256, 100_000));
        assert_eq!((p.cfg.duration, p.cfg.operations), (Some(Duration::from_secs(20)), None));
        assert_eq!(p.distribution, Distribution::Uniform);
        assert!(!p.load, "a put run loads nothing");
        let p =
            plan_of(&["--workload", "get", "--key-prefix", "a", "--keys", "4096", "--value-size", "65536"]).unwrap();
        assert!(p.load);
        assert_eq!((p.cfg.records, p.cfg.value_size), (4096, 65536));
        let p = plan_of(&["--workload", "mixed", "--read-pct", "80", "--distribution", "zipf"]).unwrap();
        assert_eq!((p.cfg.mix.share(Op::Get), p.cfg.mix.share(Op::Put)), (80, 20));
        assert_eq!(p.distribution, Distribution::Zipfian);
        assert_eq!(plan_of(&["--workload", "get", "--no-preload"]).map(|p| p.load), Ok(false));
    }

    #[test]
    fn ycsb_workloads_take_ycsbs_defaults() {
        let p = plan_of(&["--workload", "ycsb-a"]).unwrap();
        assert_eq!((p.cfg.mix.share(Op::Get), p.cfg.mix.share(Op::Put)), (50, 50));
        assert_eq!((p.distribution, p.cfg.value_size), (Distribution::Zipfian, 1000));
        assert!(p.load);
        assert_eq!(plan_of(&["--workload", "ycsb-d"]).unwrap().distribution, Distribution::Latest);
        let p = plan_of(&["--workload", "ycsb-e", "--max-scan-length", "20", "--distribution", "uniform"]).unwrap();
        assert_eq!(p.cfg.scan_length, ScanLength::Uniform { max: 20 });
        assert_eq!(p.distribution, Distribution::Uniform);
        let p = plan_of(&["--workload", "ycsb-f", "--record-count", "500", "--skip-load", "--operation-count", "9"])
            .unwrap();
        assert_eq!((p.cfg.records, p.load), (500, false));
        // An operation count alone: no time limit.
        assert_eq!((p.cfg.operations, p.cfg.duration), (Some(9), None));
        assert_eq!(plan_of(&["--workload", "ycsb-b", "--value-size", "100"]).unwrap().cfg.value_size, 100);
    }

    #[test]
    fn bad_flags_are_refused_with_the_reason() {
        refused(&["--workload", "ycsb-g"], "invalid value 'ycsb-g'");
        refused(&["--distribution", "pareto"], "invalid value 'pareto'");
        refused(&["--workload", "ycsb-a", "--distribution", "zipfian", "--record-count", "0"], "zipfian needs records");
        refused(&["--keys", "0"], "at least 1");
        refused(&["--clients", "0"], "--clients");
        refused(&["--key-size", "4"], "--key-size 4");
        refused(&["--value-size", "2000000"], "value limit");
        refused(&["--workload", "mixed", "--read-pct", "101"], "not a percentage");
        refused(&["--workload", "put", "--read-pct", "50"], "applies to --workload mixed");
        refused(&["--workload", "ycsb-e", "--scan-limit", "5"], "--max-scan-length");
        refused(&["--workload", "ycsb-a", "--max-scan-length", "5"], "applies to --workload ycsb-e");
        refused(&["--workload", "ycsb-e", "--max-scan-length", "0"], "at least 1 record");
        refused(&["--workload", "ycsb-a", "--zipf-theta", "1.5"], "must be in (0, 1)");
        refused(&["--zipf-theta", "0.5"], "not uniform");
        refused(&["--operation-count", "0"], "--operation-count");
        refused(&["--duration", "0s"], "above zero");
        refused(&["--duration", "5h"], "bad duration unit");
        refused(&["--etcd", "127.0.0.1:1", "--split-regions", "4"], "--split-regions needs");
    }
}
