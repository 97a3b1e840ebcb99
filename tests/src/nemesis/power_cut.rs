//! The crash suite: power cuts under the register workload.
//!
//! Every store runs on the write-back disk (`STORE_POWER_CUT_DISK`,
//! `storenode::disk::power_cut`): its unsynced writes live in the store's
//! own memory, so `kill -9` of a store is a power cut that loses them,
//! while what it synced survives the restart. Each store gets its own
//! model of what a cut keeps (nothing unsynced, a random subset of pages,
//! a torn last page) unless the run names one.
//!
//! A run cuts power, over and over, to one random store or to every store
//! at once, restarts them on their data, then checks the recorded history
//! with the linearizability checker (an acknowledged write a cut lost
//! shows as a read of an older value), waits until every replica agrees on
//! every key, and checks what the replicas hold against the history
//! ([`super::lost_writes`]). The planted bug's run skips the wait: its
//! regions may never serve again, and the replicas' own data is what shows
//! the loss.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::checker::{self, Outcome, Verdict};
use super::history::Recorder;
use super::lost_writes;
use super::workload::Worker;
use crate::cluster::Cluster;
use storenode::bench::rng::Rng;
use storenode::disk::{PowerCut, PowerCutConfig};

/// The write-back models, one per store in a run that names none.
const MODELS: [PowerCut; 3] = [PowerCut::All, PowerCut::Pages, PowerCut::TornPage];
/// Applied entries between region snapshots: a restarted store often
/// catches up by snapshot, so snapshot files meet the cuts too.
const SNAPSHOT_LOGS: &str = "200";
/// How long the workload runs between cuts, in ms: long enough for a few
/// hundred writes and a data-file sync ([`storenode::engine::writer::DATA_SYNC_INTERVAL`]).
const BETWEEN_CUTS_MS: (u64, u64) = (800, 2_500);
/// How long a store stays without power, in ms.
const DARK_MS: (u64, u64) = (100, 1_000);
/// How long the workload runs after the last restart: the stores elect,
/// catch up and serve, and every worker reads what survived.
const SETTLE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct CrashConfig {
    pub seed: u64,
    /// Power cuts in the run.
    pub cuts: usize,
    /// Every this many cuts, one takes every store at once; the others
    /// take one random store.
    pub all_stores_every: usize,
    /// Every store's model; `None`: one per store from [`MODELS`].
    pub model: Option<PowerCut>,
    /// The planted bug: the raft log's appends are acknowledged unsynced.
    pub skip_log_sync: bool,
}

impl CrashConfig {
    pub fn new(seed: u64, cuts: usize) -> CrashConfig {
        CrashConfig { seed, cuts, all_stores_every: 3, model: None, skip_log_sync: false }
    }
}

/// What a run did and found.
#[derive(Debug)]
pub struct CrashReport {
    pub seed: u64,
    /// One line per cut: whose power, and for how long.
    pub cuts: Vec<String>,
    pub ops: usize,
    pub ok: usize,
    pub unknown: usize,
    pub verdict: Verdict,
    /// Keys whose acknowledged writes no replica holds.
    pub lost: Vec<String>,
}

impl CrashReport {
    pub fn is_valid(&self) -> bool {
        matches!(self.verdict, Verdict::Linearizable) && self.lost.is_empty()
    }

    pub fn summary(&self) -> String {
        let all = self.cuts.iter().filter(|c| c.starts_with("every store")).count();
        let verdict = match &self.verdict {
            Verdict::Linearizable => "valid".to_string(),
            other => format!("INVALID: {other:?}"),
        };
        format!(
            "seed={} cuts={} (every store at once: {all}) ops={} ok={} unknown={} verdict={verdict} lost={:?}",
            self.seed,
            self.cuts.len(),
            self.ops,
            self.ok,
            self.unknown,
            self.lost
        )
    }
}

/// Runs one crash schedule on a new cluster (one PD member, three stores)
/// and checks it. With `converge`, every worker reads every key once the
/// workload stops, and the replicas must agree on every key before they
/// are checked.
///
/// # Panics
///
/// When a store does not restart, or (with `converge`) the replicas do not
/// agree in time.
pub async fn run(config: &CrashConfig, converge: bool) -> CrashReport {
    crate::phase(&format!("crash run {config:?}"));
    let models: Vec<PowerCut> = (0..3).map(|i| config.model.unwrap_or(MODELS[i])).collect();
    let (seed, skip) = (config.seed, config.skip_log_sync);
    let mut cluster = Cluster::start_with_env(
        1,
        3,
        &["--bootstrap-split-keys", "k2"],
        &["--fault-injection", "--raft-snapshot-logs", SNAPSHOT_LOGS],
        |i| {
            let mut env = vec![
                (PowerCutConfig::DISK.to_string(), models[i - 1].to_string()),
                (PowerCutConfig::SEED.to_string(), (seed * 16 + i as u64).to_string()),
            ];
            if skip {
                env.push((PowerCutConfig::SKIP_LOG_SYNC.to_string(), "1".into()));
            }
            env
        },
    )
    .await;
    let mut rng = Rng::new(config.seed);
    let keys: Vec<String> = (0..4).map(|i| format!("k{i}")).collect();
    let recorder = Arc::new(Recorder::new(Instant::now()));
    let (_pause_tx, pause_rx) = watch::channel(false);
    let workers = Worker::start_all(&cluster, &mut rng, &keys, (3, 1), &recorder, &pause_rx).await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let running: Vec<_> = workers.into_iter().map(|w| tokio::spawn(w.run(stop_rx.clone()))).collect();

    let mut cuts = Vec::new();
    for cut in 1..=config.cuts {
        tokio::time::sleep(millis(&mut rng, BETWEEN_CUTS_MS)).await;
        let dark = millis(&mut rng, DARK_MS);
        let victims: Vec<usize> = if cut % config.all_stores_every.max(1) == 0 {
            (0..cluster.stores.len()).collect()
        } else {
            vec![rng.below(cluster.stores.len() as u64) as usize]
        };
        // Every victim loses power before any comes back: a cut of every
        // store is one event, not a rolling restart.
        for &v in &victims {
            cluster.stores[v].kill();
        }
        tokio::time::sleep(dark).await;
        for &v in &victims {
            tokio::task::block_in_place(|| cluster.stores[v].restart());
        }
        let who = if victims.len() > 1 {
            "every store".to_string()
        } else {
            format!("store {}", cluster.stores[victims[0]].store_id)
        };
        crate::phase(&format!("crash: power cut to {who} for {dark:?}"));
        cuts.push(format!("{who} for {dark:?}"));
    }
    tokio::time::sleep(SETTLE).await;
    stop_tx.send_replace(true);
    let mut workers: Vec<Worker> = Vec::new();
    for w in running {
        workers.push(w.await.expect("worker"));
    }
    if converge {
        for w in &mut workers {
            w.read_all().await;
        }
        super::wait_converged(&cluster, &keys).await;
    }
    let events = recorder.events();
    let replicas = lost_writes::read_replicas(&cluster, &keys).await;
    let count = |o: Outcome| events.iter().filter(|e| e.outcome == o).count();
    let report = CrashReport {
        seed: config.seed,
        cuts,
        ops: events.len(),
        ok: count(Outcome::Ok),
        unknown: count(Outcome::Unknown),
        verdict: checker::check(&events),
        lost: lost_writes::lost_writes(&events, &replicas),
    };
    crate::phase(&format!("crash: {}", report.summary()));
    super::keep_logs(&cluster, config.seed);
    report
}

/// Uniform in `lo..hi` milliseconds.
fn millis(rng: &mut Rng, (lo, hi): (u64, u64)) -> Duration {
    Duration::from_millis(lo + rng.below(hi - lo))
}
