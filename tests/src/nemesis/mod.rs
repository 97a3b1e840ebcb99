//! The nemesis suite: a register workload against a real cluster while
//! seeded faults hit its processes, then a linearizability check of the
//! recorded history and a convergence check of every replica.
//!
//! - [`workload`]: clients (the Rust client library and the HTTP API of
//!   random stores) reading, writing unique values, compare-and-swapping
//!   and deleting a few keys, one operation at a time each.
//! - [`history`]: every operation with its invoke and completion times and
//!   an `ok` / `fail` / `unknown` outcome.
//! - [`faults`]: kill -9 and restart of stores (random ones and region
//!   leaders) and PD members (random ones and the leader), SIGSTOP/SIGCONT
//!   pauses, and network partitions of one store from the others and PD.
//! - [`checker`]: per-key linearizability of the history.
//!
//! After the run every replica must hold the same values, every store the
//! peers PD's routes give it, and PD must name the leader the stores have
//! for every region ([`crate::leaders`]).
//!
//! Every choice (which faults, when, on whom, which operations) comes from
//! one seeded generator ([`Rng`]). A run is a pure function of its seed as far as the harness goes (which
//! faults, when, on whom, which operations); the cluster's own timing is
//! not, so a failing seed is a strong lead, not an exact replay.

pub mod checker;
pub mod faults;
pub mod history;
pub mod lost_writes;
pub mod power_cut;
pub mod workload;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto::kvpb;
use tokio::sync::watch;

use crate::cluster::Cluster;
use checker::{Outcome, Verdict};
use faults::{FaultKind, FaultRecord, Nemesis};
use history::Recorder;
use storenode::bench::rng::Rng;
use workload::Worker;

/// Applied entries between region snapshots in nemesis runs.
const SNAPSHOT_LOGS: &str = "200";
/// How long every replica may take to agree on every key once the faults
/// have healed.
const CONVERGE_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct NemesisConfig {
    pub seed: u64,
    pub duration: Duration,
    pub faults: Vec<FaultKind>,
    /// Workers using the Rust client library.
    pub client_workers: usize,
    /// Workers using the HTTP API.
    pub http_workers: usize,
    pub keys: usize,
}

impl NemesisConfig {
    pub fn new(seed: u64, duration: Duration, faults: &[FaultKind]) -> Self {
        NemesisConfig { seed, duration, faults: faults.to_vec(), client_workers: 4, http_workers: 2, keys: 4 }
    }
}

/// What a run did and found.
#[derive(Debug)]
pub struct Report {
    pub seed: u64,
    pub faults: Vec<FaultRecord>,
    pub ops: usize,
    pub ok: usize,
    pub failed: usize,
    pub unknown: usize,
    /// Per fault kind, the longest stretch without any operation completing
    /// successfully that began while such a fault was held.
    pub unavailable: BTreeMap<FaultKind, Duration>,
    /// Region snapshots installed by the stores during the run (as their
    /// metrics count them since their last start).
    pub snapshots_installed: u64,
    /// Region peers that hibernated during the run, and wakes (as the
    /// stores' metrics count them since their last start).
    pub hibernations: u64,
    pub wakes: u64,
    /// Dormant peers revived (their raft groups restarted).
    pub revivals: u64,
    pub verdict: Verdict,
}

impl Report {
    pub fn is_valid(&self) -> bool {
        matches!(self.verdict, Verdict::Linearizable)
    }

    /// One line per run, for logs and docs.
    pub fn summary(&self) -> String {
        let mut kinds: BTreeMap<FaultKind, usize> = BTreeMap::new();
        for f in &self.faults {
            *kinds.entry(f.kind).or_default() += 1;
        }
        let faults: Vec<String> = kinds.iter().map(|(k, n)| format!("{k}x{n}")).collect();
        let gaps: Vec<String> = self.unavailable.iter().map(|(k, d)| format!("{k}={:.1}s", d.as_secs_f64())).collect();
        let verdict = match &self.verdict {
            Verdict::Linearizable => "valid".to_string(),
            other => format!("INVALID: {other:?}"),
        };
        format!(
            "seed={} ops={} ok={} fail={} unknown={} snapshots-installed={} hibernations={} wakes={} revivals={} faults=[{}] longest-unavailable=[{}] verdict={}",
            self.seed,
            self.ops,
            self.ok,
            self.failed,
            self.unknown,
            self.snapshots_installed,
            self.hibernations,
            self.wakes,
            self.revivals,
            faults.join(" "),
            gaps.join(" "),
            verdict
        )
    }
}

/// Starts a 3-member PD group and three stores, runs the workload under the
/// nemesis for `config.duration`, heals everything, records a final read
/// of every key by every worker, checks the history, and waits until every
/// store holds the same value for every key.
///
/// # Panics
///
/// When the replicas do not converge in time.
pub async fn run(config: &NemesisConfig) -> Report {
    crate::phase(&format!("nemesis run seed={} for {:?}, faults {:?}", config.seed, config.duration, config.faults));
    // Moves and replica repair need a store that holds no replica of the
    // region.
    let stores = if config.faults.iter().any(|k| k.needs_spare_store()) { 4 } else { 3 };
    let cluster = Cluster::start_with(
        3,
        stores,
        // A store silent for 5 s is Down and its replicas re-created: longer
        // than any other fault holds a store, so only `down-store` does it.
        &["--bootstrap-split-keys", "k2", "--max-store-down-time", "5s", "--replica-check-interval-ms", "500"],
        // The harness's 100 ms raft heartbeat: elections after 0.5-1 s. A
        // snapshot every few hundred entries, so a store that was down or
        // cut off for a few seconds often catches up by snapshot, and the
        // snapshot path is under the same faults.
        // Regions idle for 300 ms hibernate, so faults also meet sleeping
        // replicas and wakes.
        &["--fault-injection", "--raft-snapshot-logs", SNAPSHOT_LOGS, "--raft-hibernate-after-ms", "300"],
    )
    .await;
    let mut rng = Rng::new(config.seed);
    let keys: Vec<String> = (0..config.keys).map(|i| format!("k{i}")).collect();
    let recorder = Arc::new(Recorder::new(Instant::now()));
    let (pause_tx, pause_rx) = watch::channel(false);
    let split = (config.client_workers, config.http_workers);
    let workers = Worker::start_all(&cluster, &mut rng, &keys, split, &recorder, &pause_rx).await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let running: Vec<_> = workers.into_iter().map(|w| tokio::spawn(w.run(stop_rx.clone()))).collect();

    let mut nemesis = Nemesis::new(cluster, rng.fork(), config.faults.clone(), pause_tx);
    let until = recorder.now() + config.duration.as_nanos() as u64;
    let faults = nemesis.run(|| recorder.now(), until).await;
    nemesis.heal_all().await;
    crate::phase("nemesis: healed; stopping the workload");
    stop_tx.send_replace(true);
    let mut workers = Vec::new();
    for w in running {
        workers.push(w.await.expect("worker"));
    }
    for w in &mut workers {
        w.read_all().await;
    }

    let events = recorder.events();
    let verdict = checker::check(&events);
    let count = |o: Outcome| events.iter().filter(|e| e.outcome == o).count();
    let report = Report {
        seed: config.seed,
        ops: events.len(),
        ok: count(Outcome::Ok),
        failed: count(Outcome::Fail),
        unknown: count(Outcome::Unknown),
        unavailable: unavailability(&events, &faults),
        snapshots_installed: store_metric(&nemesis.cluster, &["store_snapshots_total{direction=\"installed\"}"]).await,
        hibernations: store_metric(&nemesis.cluster, &["store_hibernation_events_total{event=\"hibernated\"}"]).await,
        revivals: store_metric(&nemesis.cluster, &["store_hibernation_events_total{event=\"revived\"}"]).await,
        wakes: store_metric(
            &nemesis.cluster,
            &[
                "store_hibernation_events_total{event=\"request\"}",
                "store_hibernation_events_total{event=\"raft_message\"}",
                "store_hibernation_events_total{event=\"leader_lost\"}",
            ],
        )
        .await,
        faults,
        verdict,
    };
    crate::phase(&format!("nemesis: {}", report.summary()));
    keep_logs(&nemesis.cluster, config.seed);
    wait_converged(&nemesis.cluster, &keys).await;
    wait_placed(&nemesis.cluster).await;
    // With every replica in place, PD names each region's leader as the
    // stores have it within a few region heartbeats, or the run fails.
    crate::leaders::wait_leaders_agree(&nemesis.cluster, crate::leaders::agree_deadline()).await;
    report
}

/// With `NEMESIS_LOGS=<dir>`, copies every process's log to
/// `<dir>/seed-<seed>/`, to read after the run.
pub(crate) fn keep_logs(cluster: &Cluster, seed: u64) {
    let Ok(root) = std::env::var("NEMESIS_LOGS") else { return };
    let to = std::path::Path::new(&root).join(format!("seed-{seed}"));
    let Ok(entries) = std::fs::create_dir_all(&to).and_then(|()| std::fs::read_dir(cluster.dir.path())) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "log") {
            let _ = std::fs::copy(&path, to.join(entry.file_name()));
        }
    }
}

/// The sum of `samples` over every store's metrics.
async fn store_metric(cluster: &Cluster, samples: &[&str]) -> u64 {
    let mut total = 0.0;
    for s in &cluster.stores {
        if let Ok((200, text)) = crate::http_get(&s.http(), "/metrics").await {
            total += samples.iter().map(|m| crate::metric_value(&text, m).unwrap_or(0.0)).sum::<f64>();
        }
    }
    total as u64
}

/// The longest gap between successful completions that started while a
/// fault of each kind was held.
fn unavailability(events: &[checker::Event], faults: &[FaultRecord]) -> BTreeMap<FaultKind, Duration> {
    let mut done: Vec<u64> = events.iter().filter(|e| e.outcome == Outcome::Ok).map(|e| e.complete).collect();
    done.sort_unstable();
    let mut out = BTreeMap::new();
    for pair in done.windows(2) {
        let (from, to) = (pair[0], pair[1]);
        if let Some(f) = faults.iter().find(|f| f.start <= from && from <= f.end) {
            let gap = Duration::from_nanos(to - from);
            let e = out.entry(f.kind).or_insert(Duration::ZERO);
            *e = (*e).max(gap);
        }
    }
    out
}

/// Waits until every replica of every key's region holds the same value for
/// it (read locally on each store holding one, without a leader round).
pub async fn wait_converged(cluster: &Cluster, keys: &[String]) {
    let pd = pd::client::PdClient::new(&cluster.pd_endpoints()).expect("pd client");
    let stores: BTreeMap<u64, String> = cluster.stores.iter().map(|s| (s.store_id, s.grpc())).collect();
    crate::wait_for("every replica to agree on every key", CONVERGE_DEADLINE, || async {
        for key in keys {
            let region = pd.get_region(key.as_bytes()).await.ok()?.route?.region?;
            let mut seen = None;
            for addr in region.peers.iter().filter_map(|p| stores.get(&p.store_id)) {
                let mut kv = kvpb::kv_client::KvClient::new(pd::client::channel(addr).ok()?);
                let ctx = kvpb::Context { region_id: region.id, stale_read: true, ..Default::default() };
                let r = kv.get(kvpb::GetRequest { context: Some(ctx), key: key.as_bytes().to_vec() }).await.ok()?;
                let r = r.into_inner();
                if r.region_error.is_some() || r.error.is_some() {
                    return None;
                }
                let v = r.found.then_some(r.value);
                if seen.get_or_insert_with(|| v.clone()) != &v {
                    return None;
                }
            }
        }
        Some(())
    })
    .await;
}

/// Waits until every store hosts exactly the peers PD's routes give it: a
/// replica moved away, repaired elsewhere while its store was down, or
/// removed, has been destroyed, and every new one runs.
async fn wait_placed(cluster: &Cluster) {
    let pd = pd::client::PdClient::new(&cluster.pd_endpoints()).expect("pd client");
    let deadline = tokio::time::Instant::now() + CONVERGE_DEADLINE;
    while let Some(diff) = placement_differs(cluster, &pd).await {
        assert!(tokio::time::Instant::now() < deadline, "stores never hosted what PD's routes say: {diff}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How a store's hosted peers differ from PD's routes, if they do.
async fn placement_differs(cluster: &Cluster, pd: &pd::client::PdClient) -> Option<String> {
    let routes = match pd.list_routes().await {
        Ok(r) => r,
        Err(e) => return Some(format!("no routes: {e}")),
    };
    for s in &cluster.stores {
        let want: std::collections::BTreeSet<(u64, u64)> = routes
            .regions
            .iter()
            .filter_map(|r| r.region.as_ref())
            .flat_map(|r| r.peers.iter().filter(|p| p.store_id == s.store_id).map(|p| (r.id, p.id)))
            .collect();
        let have = match crate::http_get(&s.http(), "/status").await {
            Ok((200, body)) => serde_json::from_str::<serde_json::Value>(&body).ok().map(|v| {
                v["regions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| (r["id"].as_u64().unwrap_or(0), r["peer_id"].as_u64().unwrap_or(0)))
                    .collect::<std::collections::BTreeSet<_>>()
            }),
            _ => None,
        };
        match have {
            None => return Some(format!("store {} does not answer /status", s.store_id)),
            Some(have) if have != want => {
                return Some(format!("store {} hosts (region, peer) {have:?}, PD says {want:?}", s.store_id));
            }
            Some(_) => {}
        }
    }
    None
}
