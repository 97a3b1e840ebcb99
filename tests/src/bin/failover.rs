//! How long writes stop after a kill -9, on a real cluster on loopback:
//! three PD members and three storage nodes with production timing, built
//! from the binaries beside this one.
//!
//! ```text
//! cargo build --release --workspace --bins
//! ./target/release/failover --trials 20
//! ```
//!
//! Each store trial kills the store leading a region under a steady put
//! load and times, from the kill, the first put that succeeds through the
//! client: one to the loaded region, one to an idle, hibernated region the
//! same store led. Each PD trial kills the PD leader and times the first ID
//! allocation (a raft write on PD) that succeeds, and the slowest data put
//! meanwhile. The killed process restarts on its data before the next
//! trial. The distributions are printed at the end.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use cluster_tests::cluster::{Cluster, StoreProcess, store_dir};
use cluster_tests::pd_cluster::{start_members, wait_leader};
use cluster_tests::{http_get, wait_for};
use pd::client::PdClient;
use storenode::client::Client;

/// How long a killed process's restart and the cluster's recovery may take.
const RECOVER: Duration = Duration::from_secs(60);
/// How long to wait for an idle region led by the victim to hibernate.
const HIBERNATE_WAIT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kill {
    Store,
    Pd,
    Both,
}

#[derive(Parser)]
#[command(about = "Time writes take to resume after kill -9 of a region leader's store or of the PD leader")]
struct Args {
    /// Trials per kind of kill.
    #[arg(long, default_value_t = 20)]
    trials: usize,
    /// What to kill.
    #[arg(long, value_enum, default_value = "both")]
    kill: Kill,
    /// Regions PD bootstraps: the loaded one and idle ones, which hibernate.
    #[arg(long, default_value_t = 16)]
    regions: u32,
    /// Extra flags for every store, e.g. "--raft-heartbeat-ms 1000".
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    store_args: String,
    /// Extra flags for every PD member.
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pd_args: String,
}

/// One region as a store's `/status` shows it.
struct RegionView {
    id: u64,
    leading: bool,
    leader_store: Option<u64>,
    hibernated: bool,
}

async fn regions_at(http: &str) -> Option<Vec<RegionView>> {
    let (code, body) = http_get(http, "/status").await.ok()?;
    if code != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let views = v["regions"]
        .as_array()?
        .iter()
        .map(|r| RegionView {
            id: r["id"].as_u64().unwrap_or_default(),
            leading: r["role"] == "leader",
            leader_store: r["leader"]["store_id"].as_u64(),
            hibernated: r["hibernated"] == true,
        })
        .collect();
    Some(views)
}

/// Every store's view: `(store id, regions)`, once all answer.
async fn views(cluster: &Cluster) -> Option<Vec<(u64, Vec<RegionView>)>> {
    let mut all = Vec::new();
    for s in &cluster.stores {
        all.push((s.store_id, regions_at(&s.http()).await?));
    }
    Some(all)
}

/// The store every store agrees leads `region`, if they agree.
fn agreed_leader(views: &[(u64, Vec<RegionView>)], region: u64) -> Option<u64> {
    let mut leader = None;
    for (store, regions) in views {
        let r = regions.iter().find(|r| r.id == region)?;
        let l = r.leader_store?;
        if (r.leading && l != *store) || leader.is_some_and(|x| x != l) {
            return None;
        }
        leader = Some(l);
    }
    leader
}

/// A region other than `active`, led by `store` and hibernated on every
/// replica.
fn hibernated_led_by(views: &[(u64, Vec<RegionView>)], store: u64, active: u64) -> Option<u64> {
    let (_, mine) = views.iter().find(|(s, _)| *s == store)?;
    mine.iter().filter(|r| r.leading && r.id != active).map(|r| r.id).find(|id| {
        views.iter().all(|(_, regions)| regions.iter().any(|r| r.id == *id && r.hibernated))
            && agreed_leader(views, *id) == Some(store)
    })
}

/// From `from`, how long until a put of `key` succeeds.
///
/// # Panics
///
/// If none succeeds within [`RECOVER`].
async fn first_put(client: &Client, key: &[u8], from: Instant) -> Duration {
    loop {
        if client.put(key, b"after-kill").await.is_ok() {
            return from.elapsed();
        }
        assert!(from.elapsed() < RECOVER, "writes did not resume within {RECOVER:?} of the kill");
    }
}

/// Nearest-rank percentile of sorted `xs`.
fn pct(xs: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * xs.len() as f64).ceil().max(1.0) as usize;
    xs[rank.min(xs.len()) - 1]
}

fn summary(name: &str, xs: &mut [Duration]) {
    if xs.is_empty() {
        println!("{name:<34} no samples");
        return;
    }
    xs.sort();
    let s = |d: Duration| format!("{:.2}s", d.as_secs_f64());
    println!(
        "{name:<34} n={:<3} min={} p50={} p90={} p99={} max={}",
        xs.len(),
        s(xs[0]),
        s(pct(xs, 50.0)),
        s(pct(xs, 90.0)),
        s(pct(xs, 99.0)),
        s(xs[xs.len() - 1])
    );
}

fn words(s: &str) -> Vec<&str> {
    s.split_whitespace().collect()
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.trials == 0 || args.regions < 2 {
        eprintln!("error: --trials must be at least 1 and --regions at least 2 (one loaded, one idle)");
        return ExitCode::from(2);
    }
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(run(args));
    ExitCode::SUCCESS
}

async fn run(args: Args) {
    let dir = tempfile::tempdir().expect("temp dir");
    let regions = args.regions.to_string();
    let mut pd_args = vec!["--bootstrap-regions", regions.as_str()];
    pd_args.extend(words(&args.pd_args));
    let pd = start_members(dir.path(), 3, &pd_args);
    let endpoints: Vec<String> = pd.iter().map(|m| m.grpc()).collect();
    wait_leader(&endpoints, 3).await;
    let store_args = words(&args.store_args);
    let stores: Vec<StoreProcess> = (1..=3)
        .map(|i| {
            let name = format!("store{i}");
            StoreProcess::spawn_at(
                &name,
                store_dir(dir.path(), i),
                &endpoints,
                "127.0.0.1:0",
                "127.0.0.1:0",
                &store_args,
            )
        })
        .collect();
    let mut cluster = Cluster { pd, stores, dir };
    cluster.wait_serving().await;
    let client = Arc::new(cluster.client().await);
    let pd_client = PdClient::new(&endpoints).expect("pd client");
    let routes = pd_client.list_routes().await.expect("routes");
    let first = routes.regions.iter().filter_map(|r| r.region.as_ref()).min_by(|a, b| a.start_key.cmp(&b.start_key));
    let active = first.expect("a region").clone();
    let key_in = |start: &[u8], what: &str| [start, b"\x00failover-", what.as_bytes()].concat();
    println!("cluster up: {} regions; loading region {}", routes.regions.len(), active.id);

    // The steady load: one client putting to the loaded region, noting its
    // slowest put since the last reset.
    let stop = Arc::new(AtomicBool::new(false));
    let slowest = Arc::new(Mutex::new(Duration::ZERO));
    let load = {
        let (client, stop, slowest, key) =
            (client.clone(), stop.clone(), slowest.clone(), key_in(&active.start_key, "load"));
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let _ = client.put(&key, b"load").await;
                let mut s = slowest.lock().unwrap();
                *s = (*s).max(t.elapsed());
            }
        })
    };

    let (mut active_resume, mut idle_resume, mut pd_resume, mut pd_put_max) = (vec![], vec![], vec![], vec![]);
    if args.kill != Kill::Pd {
        for trial in 1..=args.trials {
            let victim = wait_for("one leader of the loaded region", RECOVER, || async {
                agreed_leader(&views(&cluster).await?, active.id)
            })
            .await;
            let idle = tokio::time::timeout(HIBERNATE_WAIT, async {
                loop {
                    if let Some(v) = views(&cluster).await
                        && let Some(id) = hibernated_led_by(&v, victim, active.id)
                    {
                        return id;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
            .await
            .ok();
            let idle_key = match idle {
                Some(id) => routes
                    .regions
                    .iter()
                    .filter_map(|r| r.region.as_ref())
                    .find(|r| r.id == id)
                    .map(|r| key_in(&r.start_key, "idle")),
                None => None,
            };
            let killed = Instant::now();
            cluster.store(victim).kill();
            let active_key = key_in(&active.start_key, "probe");
            let (a, i) = tokio::join!(first_put(&client, &active_key, killed), async {
                match &idle_key {
                    Some(k) => Some(first_put(&client, k, killed).await),
                    None => None,
                }
            });
            println!(
                "store trial {trial:>2}: killed store {victim}; loaded region writes after {:.2}s, idle region {}",
                a.as_secs_f64(),
                i.map_or("- (none hibernated under that store)".into(), |d| format!("after {:.2}s", d.as_secs_f64()))
            );
            active_resume.push(a);
            idle_resume.extend(i);
            cluster.store(victim).restart();
            // A region the victim led whose followers had not yet given up
            // on it when it came back has no leader: its followers' probes
            // succeed again and every peer sleeps, the restarted one with
            // no leader, until a request elects one (docs/architecture.md,
            // "Hibernated regions"). Read every region once, as a client
            // would, so each has a leader before the next kill.
            for region in routes.regions.iter().filter_map(|r| r.region.as_ref()) {
                let key = key_in(&region.start_key, "probe");
                wait_for("a read of every region after the restart", RECOVER, || async {
                    client.get(&key).await.ok().map(|_| ())
                })
                .await;
            }
            let http = cluster.store(victim).http();
            wait_for("the restarted store to see a leader of every region", RECOVER, || async {
                regions_at(&http).await.filter(|rs| rs.iter().all(|r| r.leader_store.is_some())).map(|_| ())
            })
            .await;
        }
    }
    if args.kill != Kill::Store {
        for trial in 1..=args.trials {
            let leader = wait_leader(&endpoints, 3).await;
            *slowest.lock().unwrap() = Duration::ZERO;
            let killed = Instant::now();
            cluster.pd.iter_mut().find(|m| m.id == leader).expect("leader member").kill();
            let resumed = loop {
                if pd_client.alloc_id().await.is_ok() {
                    break killed.elapsed();
                }
                assert!(killed.elapsed() < RECOVER, "PD writes did not resume within {RECOVER:?} of the kill");
            };
            let worst_put = *slowest.lock().unwrap();
            println!(
                "pd trial {trial:>2}: killed member {leader}; PD writes after {:.2}s; slowest data put meanwhile {:.3}s",
                resumed.as_secs_f64(),
                worst_put.as_secs_f64()
            );
            pd_resume.push(resumed);
            pd_put_max.push(worst_put);
            cluster.pd.iter_mut().find(|m| m.id == leader).expect("leader member").restart();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = load.await;
    println!();
    summary("store kill: loaded region writes", &mut active_resume);
    summary("store kill: idle region writes", &mut idle_resume);
    summary("pd kill: PD writes (alloc id)", &mut pd_resume);
    summary("pd kill: slowest data put", &mut pd_put_max);
}
