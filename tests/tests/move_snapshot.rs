//! A region moved while it takes writes reaches its new replica in one
//! snapshot: its leader builds no newer snapshot (and truncates no log)
//! while the one on its way streams, so the new replica continues from the
//! leader's log after installing it instead of needing the region again.
//!
//! The send is slowed (1 MiB/s for a region of about 4 MiB) and snapshots
//! are due every 100 entries, so the writer passes several snapshot
//! intervals while the snapshot streams. Built with openraft's own
//! `LogsSinceLast` policy instead, which truncates the log mid-send, the
//! same move never completes: every snapshot arrives behind the leader's
//! truncated log and another is sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cluster_tests::cluster::Cluster;
use cluster_tests::moves::move_region;
use cluster_tests::{http_get, metric_value, phase, wait_for};
use pd::client::PdClient;

const WAIT: Duration = Duration::from_secs(90);
const SNAPSHOT_LOGS: u64 = 100;

async fn snapshots(http: &str, direction: &str) -> f64 {
    let (_, text) = http_get(http, "/metrics").await.expect("metrics");
    metric_value(&text, &format!("store_snapshots_total{{direction=\"{direction}\"}}")).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_region_moved_under_writes_is_sent_in_one_snapshot() {
    phase("one region of 4 MiB on three of four stores; snapshots every 100 entries, sent at 1 MiB/s");
    let logs = SNAPSHOT_LOGS.to_string();
    let mut cluster =
        Cluster::start_with(1, 4, &[], &["--raft-snapshot-logs", &logs, "--snapshot-max-send-rate-mb", "1"]).await;
    let client = Arc::new(cluster.client().await);
    let pd = PdClient::new(&cluster.pd_endpoints()).expect("pd");
    for chunk in (0..4_000).collect::<Vec<_>>().chunks(500) {
        let pairs = chunk.iter().map(|i| (format!("k{i:05}").into_bytes(), vec![b'v'; 1024])).collect();
        client.batch_put(pairs).await.expect("preload");
    }
    let route = wait_for("a region leader", WAIT, || async {
        pd.list_routes().await.ok()?.regions.first().filter(|r| r.leader.is_some()).cloned()
    })
    .await;
    let region = route.region.unwrap();
    let leader = route.leader.unwrap().store_id;
    let from = region.peers.iter().map(|p| p.store_id).find(|s| *s != leader).unwrap();
    let to =
        cluster.stores.iter().map(|s| s.store_id).find(|s| !region.peers.iter().any(|p| p.store_id == *s)).unwrap();
    let target = cluster.store(to).http();
    assert_eq!(snapshots(&target, "received").await, 0.0);

    phase("enough writes that the leader snapshots the 4 MiB and truncates its log");
    let leader_http = cluster.store(leader).http();
    let mut i = 0u64;
    wait_for("a snapshot built on the leader", WAIT, || {
        i += 1;
        let (client, leader_http) = (client.clone(), leader_http.clone());
        async move {
            for j in 0..20 {
                client.put(format!("p{i:04}{j:02}").as_bytes(), b"x").await.expect("write");
            }
            let (_, text) = http_get(&leader_http, "/metrics").await.ok()?;
            let built = metric_value(&text, "store_snapshot_bytes_total{direction=\"built\"}").unwrap_or(0.0);
            (built >= 4e6).then_some(())
        }
    })
    .await;

    phase(&format!("move region {} from store {from} to store {to} while a writer writes", region.id));
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (client, stop, written) = (client.clone(), stop.clone(), written.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                client.put(format!("w{:03}", i % 100).as_bytes(), b"x").await.expect("write during the move");
                written.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        })
    };
    move_region(&pd, region.id, from, to, WAIT).await.expect("move");
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
    let during = written.load(Ordering::Relaxed);
    eprintln!("writes during the move: {during}");
    assert!(
        during > 2 * SNAPSHOT_LOGS,
        "the writer made only {during} writes during the move: the test needs several snapshot intervals"
    );

    phase("the new replica received exactly one snapshot");
    let received = snapshots(&target, "received").await;
    let installed = snapshots(&target, "installed").await;
    assert_eq!((received, installed), (1.0, 1.0), "store {to} received {received} and installed {installed} snapshots");
}
