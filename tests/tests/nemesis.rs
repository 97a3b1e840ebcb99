//! The nemesis suite: a register workload through the client library and
//! the HTTP API while faults hit real processes, checked for
//! linearizability, then every replica checked for agreement.
//!
//! CI runs a short schedule. Longer ones:
//!
//! ```sh
//! NEMESIS_RUNS=100 NEMESIS_SECS=60 cargo test -p cluster-tests --test nemesis -- --nocapture
//! NEMESIS_SEED=42 NEMESIS_SECS=60 cargo test -p cluster-tests --test nemesis -- --nocapture   # replay one seed
//! ```
//!
//! `NEMESIS_LOGS=<dir>` keeps every process's log of each run in
//! `<dir>/seed-<seed>/`. `NEMESIS_FAULTS` (comma separated: kill-store, kill-leader-store,
//! pause-store, partition-store, kill-pd, kill-pd-leader, split, transfer-leader, move, down-store, dormant,
//! split-pause-move) narrows the mixed
//! schedule.

use std::time::Duration;

use cluster_tests::nemesis::faults::FaultKind;
use cluster_tests::nemesis::{NemesisConfig, Report, run};
use cluster_tests::phase;

/// See the leader-targeting schedule below.
const LEADER_KILL_SEED: u64 = 2;
/// See the move regression below.
const MOVE_SNAPSHOT_SEED: u64 = 903;
const MOVE_SNAPSHOT_SECS: Duration = Duration::from_secs(40);
/// The mixed schedule that found a snapshot from before a split installed
/// over another region's keys (see below).
const SPLIT_SNAPSHOT_SEED: u64 = 911;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v} is not a number")))
}

fn env_faults() -> Option<Vec<FaultKind>> {
    let v = std::env::var("NEMESIS_FAULTS").ok()?;
    Some(
        v.split(',')
            .map(|name| {
                *FaultKind::ALL
                    .iter()
                    .find(|k| k.to_string() == name.trim())
                    .unwrap_or_else(|| panic!("unknown fault kind {name:?}"))
            })
            .collect(),
    )
}

/// Runs the schedules one after another (two clusters at once would starve
/// each other on a small machine) and fails on the first invalid history.
async fn run_all(configs: Vec<NemesisConfig>) -> Vec<Report> {
    let mut reports = Vec::new();
    for c in configs {
        let report = run(&c).await;
        assert!(report.is_valid(), "seed {} is not linearizable: {}", c.seed, report.summary());
        assert!(report.ok > 0, "seed {}: no operation succeeded: {}", c.seed, report.summary());
        reports.push(report);
    }
    phase("nemesis: every run valid");
    for r in &reports {
        eprintln!("NEMESIS {}", r.summary());
    }
    reports
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn register_is_linearizable_under_faults() {
    let secs = Duration::from_secs(env_u64("NEMESIS_SECS").unwrap_or(30));
    let runs = env_u64("NEMESIS_RUNS").unwrap_or(1);
    let first = env_u64("NEMESIS_SEED").unwrap_or(1);
    let mixed = env_faults().unwrap_or_else(|| FaultKind::ALL.to_vec());
    let mut configs = Vec::new();
    for seed in first..first + runs {
        configs.push(NemesisConfig::new(seed, secs, &mixed));
    }
    if std::env::var("NEMESIS_FAULTS").is_err() {
        // The store leading a region killed while writes are in flight and
        // restarted within a second or two, over and over. Seed 2 of this
        // schedule found a stale read within 30 s (a restarted leader
        // resuming its term over a state machine behind what it had
        // acknowledged) before leader restore was turned off: kept as the
        // regression run.
        configs.push(NemesisConfig::new(LEADER_KILL_SEED, secs, &[FaultKind::KillLeaderStore]));
        // The regression seeds below replay the mix they were found with:
        // a kind added since would change their schedules.
        let found_with: Vec<FaultKind> =
            FaultKind::ALL.into_iter().filter(|k| *k != FaultKind::SplitPauseMove).collect();
        // The mixed schedule of seed 903 over 40 s left a region a replica
        // short in 2 of 3 runs: a repair's new peer installed a snapshot
        // built before it was added, PD's routes still showed the region
        // from before the add, and the store destroyed the peer as removed
        // and refused its id for good. Kept as the regression run.
        configs.push(NemesisConfig::new(MOVE_SNAPSHOT_SEED, MOVE_SNAPSHOT_SECS, &found_with));
        // Seed 911 over 40 s read values gone for seconds, in 2 runs of 2:
        // a region split, a learner added right after got the region's
        // snapshot from before the split, then led; a peer it added later
        // got that same file, on a store holding the split-off region. The
        // install cleared the old, wider range, and the log after it
        // replayed old writes into the other region's keys. Kept as the
        // regression run.
        configs.push(NemesisConfig::new(SPLIT_SNAPSHOT_SEED, MOVE_SNAPSHOT_SECS, &found_with));
    }
    let reports = run_all(configs).await;
    let faults = || reports.iter().flat_map(|r| &r.faults);
    if std::env::var("NEMESIS_FAULTS").is_err() || mixed.contains(&FaultKind::KillLeaderStore) {
        let leader_kills = faults().filter(|f| f.kind == FaultKind::KillLeaderStore).count();
        assert!(leader_kills >= 3, "the schedules killed only {leader_kills} leaders");
    }
    if mixed.contains(&FaultKind::TransferLeader) {
        let transfers = faults().filter(|f| f.target.contains("led from there")).count();
        assert!(transfers >= 1, "no leader transfer succeeded during the schedule");
    }
    if mixed.contains(&FaultKind::DownStore) {
        let repairs = faults().filter(|f| f.target.ends_with(": repaired")).count();
        assert!(repairs >= 1, "no store's replicas were repaired during the schedule");
    }
    if mixed.contains(&FaultKind::Move) {
        let moves = faults().filter(|f| f.target.contains(": moved")).count();
        assert!(moves >= 1, "no move succeeded during the schedule");
    }
    if mixed.contains(&FaultKind::Dormant) {
        let dormant = faults().filter(|f| f.kind == FaultKind::Dormant && f.target.contains("peers dormant")).count();
        assert!(dormant >= 1, "the regions never all went dormant during the schedule");
    }
    if mixed.contains(&FaultKind::SplitPauseMove) {
        let raced = faults().filter(|f| f.target.ends_with("moved off the paused store")).count();
        assert!(raced >= 1, "no paused follower of a fresh split was moved away during the schedule");
    }
    if mixed.contains(&FaultKind::Split) {
        let splits: usize = faults().map(|f| f.target.matches("split into").count()).sum();
        assert!(splits >= 1, "no split succeeded during the schedule");
    }
}
