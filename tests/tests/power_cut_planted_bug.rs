//! The crash suite can fail: with the raft log's append sync removed (the
//! test-only `STORE_FAILPOINT_SKIP_LOG_SYNC`), power cuts to every store
//! at once lose acknowledged writes, and the suite's check says so.
//!
//! On its own test binary so that it never runs at the same time as the
//! suite itself.

use cluster_tests::nemesis::checker::Verdict;
use cluster_tests::nemesis::power_cut::{CrashConfig, run};
use storenode::disk::PowerCut;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_crash_suite_reports_writes_lost_to_a_missing_fsync() {
    let config = CrashConfig { seed: 1, cuts: 3, all_stores_every: 1, model: Some(PowerCut::All), skip_log_sync: true };
    let report = run(&config, false).await;
    eprintln!("POWER-CUT planted bug: {}", report.summary());
    assert!(report.ok > 0, "no operation succeeded: {}", report.summary());
    assert!(!report.is_valid(), "the suite passed a run with a missing fsync: {}", report.summary());
    assert!(!report.lost.is_empty(), "the suite missed the writes a missing fsync lost: {}", report.summary());
    if let Verdict::Violation(v) = &report.verdict {
        eprintln!("{v}");
    }
}
