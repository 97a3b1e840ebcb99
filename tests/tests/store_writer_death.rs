//! A store whose group-commit writer dies stops serving: it says why in one
//! log line and exits non-zero, the other stores keep serving, and it comes
//! back on its data directory.
//!
//! The writer is killed by the `STORE_FAILPOINT_WRITER_PANIC_AFTER` test
//! failpoint (a job panics after that many job runs), the only way to make a
//! real process's writer die on cue.

use std::time::{Duration, Instant};

use cluster_tests::cluster::{Cluster, StoreProcess, store_dir};
use cluster_tests::pd_cluster::{start_members, wait_leader};
use cluster_tests::{http_get, metric_value, phase, wait_for};
use storenode::engine::Failpoints;

/// Job runs before store1's writer panics: several times what startup and
/// the first writes take, so it dies under the test's writes, not before.
const PANIC_AFTER: u64 = 200;
const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_whose_writer_dies_exits_and_the_others_serve_on() {
    phase("one PD, three stores; store1's writer armed to panic");
    let dir = tempfile::tempdir().expect("temp dir");
    let pd = start_members(dir.path(), 1, &[]);
    let endpoints: Vec<String> = pd.iter().map(|m| m.grpc()).collect();
    wait_leader(&endpoints, 1).await;
    let panic_after = PANIC_AFTER.to_string();
    let armed = [(Failpoints::WRITER_PANIC_AFTER, panic_after.as_str())];
    let mut stores = vec![StoreProcess::spawn_env("store1", store_dir(dir.path(), 1), &endpoints, &[], &armed)];
    for i in 2..=3 {
        stores.push(StoreProcess::spawn(&format!("store{i}"), store_dir(dir.path(), i), &endpoints, &[]));
    }
    let mut cluster = Cluster { pd, stores, dir };
    cluster.wait_serving().await;
    let store1 = cluster.stores[0].http();
    let (status, _) = http_get(&store1, "/health").await.expect("health");
    assert_eq!(status, 200);
    let (_, metrics) = http_get(&store1, "/metrics").await.expect("metrics");
    let used = metric_value(&metrics, "store_group_commit_batch_size_sum").expect("batch size sum");
    eprintln!("store1 ran {used} write jobs by the time the cluster served");
    assert!(used < PANIC_AFTER as f64 / 2.0, "startup took {used} jobs; raise PANIC_AFTER");

    phase("writes until store1's writer panics; store1 exits non-zero");
    let client = cluster.client().await;
    let deadline = Instant::now() + WAIT;
    let mut written = 0u64;
    let status = loop {
        if let Some(status) = cluster.stores[0].exited() {
            break status;
        }
        assert!(Instant::now() < deadline, "store1 still running after {written} writes");
        // Errors are expected while store1 dies (a leader on it, say): the
        // client retries them, and the loop only needs writes to happen.
        for _ in 0..10 {
            let key = format!("k{written:05}");
            let _ = client.put(key.as_bytes(), b"v").await;
            written += 1;
        }
    };
    assert_eq!(status.code(), Some(1), "{status}");
    let log = std::fs::read_to_string(cluster.stores[0].log_path()).expect("store1 log");
    let exits: Vec<&str> = log.lines().filter(|l| l.contains("; exiting")).collect();
    assert_eq!(exits.len(), 1, "one exit line:\n{log}");
    let want = format!(
        "ERROR storenode: group-commit writer died: a write job panicked: failpoint {}={PANIC_AFTER} reached; exiting",
        Failpoints::WRITER_PANIC_AFTER
    );
    assert!(exits[0].ends_with(&want), "{}", exits[0]);

    phase("the two other stores keep serving");
    wait_for("a write without store1", WAIT, || async { client.put(b"after", b"death").await.ok() }).await;
    assert_eq!(client.get(b"after").await.expect("read"), Some(b"death".to_vec()));

    phase("store1 restarts on its data directory without the failpoint");
    cluster.stores[0].remove_env(Failpoints::WRITER_PANIC_AFTER);
    cluster.stores[0].restart();
    let store1 = cluster.stores[0].http();
    wait_for("store1 healthy again", WAIT, || async {
        let (status, _) = http_get(&store1, "/health").await.ok()?;
        (status == 200).then_some(())
    })
    .await;
    let (status, body) = http_get(&store1, "/kv/after").await.expect("get through store1");
    assert_eq!((status, body.as_str()), (200, "death"));
}
