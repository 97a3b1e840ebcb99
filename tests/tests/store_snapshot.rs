//! A follower that falls behind past the leader's log truncation catches up
//! by snapshot: built into a file from one read transaction, streamed in
//! chunks, installed in bounded steps.

use std::time::Duration;

use cluster_tests::cluster::Cluster;
use cluster_tests::{http_get, metric_value, phase, wait_for};
use proto::kvpb::{self, kv_client::KvClient};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lagging_follower_catches_up_by_snapshot() {
    phase("three stores that snapshot every 50 entries");
    let mut cluster = Cluster::start_with(1, 3, &[], &["--raft-snapshot-logs", "50"]).await;
    let client = cluster.client().await;
    let pd = pd::client::PdClient::new(&cluster.pd_endpoints()).expect("pd");
    let route = wait_for("a region leader", WAIT, || async {
        let r = pd.list_routes().await.ok()?;
        r.regions.first().filter(|r| r.leader.is_some()).cloned()
    })
    .await;
    let region = route.region.unwrap();
    let leader_store = route.leader.unwrap().store_id;
    let follower = region.peers.iter().map(|p| p.store_id).find(|s| *s != leader_store).unwrap();

    phase("stop a follower, write far past the snapshot interval");
    cluster.store(follower).kill();
    for i in 0..1500 {
        client.put(format!("snap{i:04}").as_bytes(), format!("v{i}").as_bytes()).await.expect("put");
    }

    phase("restart it: it installs a snapshot and holds every key");
    cluster.store(follower).restart();
    let http = cluster.store(follower).http();
    wait_for("a snapshot installed on the follower", WAIT, || {
        let http = http.clone();
        async move {
            let (_, body) = http_get(&http, "/metrics").await.ok()?;
            let n = metric_value(&body, "store_snapshots_total{direction=\"installed\"}")?;
            (n >= 1.0).then_some(())
        }
    })
    .await;
    let mut local = KvClient::new(pd::client::channel(&cluster.store(follower).grpc()).expect("channel"));
    let ctx = kvpb::Context { region_id: region.id, stale_read: true, ..Default::default() };
    wait_for("the follower's own copy to hold the last key", WAIT, || {
        let mut local = local.clone();
        async move {
            let r = local.get(kvpb::GetRequest { context: Some(ctx), key: b"snap1499".to_vec() }).await.ok()?;
            let r = r.into_inner();
            (r.found && r.value == b"v1499").then_some(())
        }
    })
    .await;
    let r = local
        .scan(kvpb::ScanRequest {
            context: Some(ctx),
            start_key: b"snap".to_vec(),
            end_key: b"snaq".to_vec(),
            limit: 2000,
        })
        .await
        .expect("scan")
        .into_inner();
    assert_eq!(r.pairs.len(), 1500, "the follower's copy after the snapshot");
}
