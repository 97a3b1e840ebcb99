//! The crash suite: power cuts to one store and to every store at once,
//! many times, under the register workload, on stores whose unsynced
//! writes a cut loses (`cluster_tests::nemesis::power_cut`). No
//! acknowledged write may be lost, and every replica must agree afterwards.
//!
//! CI runs one short schedule. Longer ones:
//!
//! ```sh
//! POWER_CUT_RUNS=10 POWER_CUT_CUTS=10 cargo test -p cluster-tests --test power_cut -- --nocapture
//! POWER_CUT_SEED=7 POWER_CUT_MODEL=torn-page cargo test -p cluster-tests --test power_cut -- --nocapture
//! ```

use cluster_tests::nemesis::power_cut::{CrashConfig, run};
use cluster_tests::phase;
use storenode::disk::PowerCut;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v} is not a number")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_acknowledged_write_is_lost_to_power_cuts() {
    let runs = env_u64("POWER_CUT_RUNS").unwrap_or(1);
    let cuts = env_u64("POWER_CUT_CUTS").unwrap_or(6) as usize;
    let first = env_u64("POWER_CUT_SEED").unwrap_or(1);
    let model = std::env::var("POWER_CUT_MODEL").ok().map(|name| {
        PowerCut::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, m)| *m)
            .unwrap_or_else(|| panic!("POWER_CUT_MODEL={name}: expected all, pages or torn-page"))
    });
    let mut summaries = Vec::new();
    for seed in first..first + runs {
        let config = CrashConfig { model, ..CrashConfig::new(seed, cuts) };
        let report = run(&config, true).await;
        assert!(report.is_valid(), "seed {seed} lost acknowledged writes: {}", report.summary());
        assert!(report.ok > 0, "seed {seed}: no operation succeeded: {}", report.summary());
        assert!(
            report.cuts.iter().any(|c| c.starts_with("every store")),
            "seed {seed} never cut every store at once: {:?}",
            report.cuts
        );
        summaries.push(report.summary());
    }
    phase("crash: every run valid");
    for s in summaries {
        eprintln!("POWER-CUT {s}");
    }
}
