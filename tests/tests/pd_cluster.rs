//! PD as an operator and a storage node meet it: a 3-member group on
//! loopback, store heartbeat streams, route watches, leader loss, full
//! restart.

use std::time::{Duration, Instant};

use cluster_tests::pd_cluster::PdCluster;
use cluster_tests::test_store::{HeartbeatStream, register_store};
use cluster_tests::{http_get, metric_value, phase, wait_for};
use proto::pdpb;

const STREAM_WAIT: Duration = Duration::from_secs(15);

async fn next_watch(s: &mut tonic::Streaming<pdpb::WatchRoutesResponse>) -> pdpb::RouteSnapshot {
    let msg = tokio::time::timeout(STREAM_WAIT, s.message())
        .await
        .expect("watch message in time")
        .expect("watch stream healthy")
        .expect("watch stream open");
    msg.routes.expect("routes in watch message")
}

fn region_of(r: &pdpb::RouteSnapshot) -> proto::metapb::Region {
    r.regions[0].region.clone().expect("region")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_member_pd_serves_heartbeats_and_survives_leader_loss() {
    phase("start a 3-member PD group");
    let mut cluster = PdCluster::start(3, &[]).await;
    let pd = cluster.client();

    phase("register stores; the third one triggers bootstrap");
    let s1 = register_store(&pd, 20160).await;
    let mut hb1 = HeartbeatStream::open(&pd, s1).await.expect("open heartbeat");
    let first = hb1.next_routes(STREAM_WAIT).await.expect("snapshot at stream start");
    assert!(first.version >= 1, "a registered store is a route change");
    assert!(first.stores.iter().any(|s| s.id == s1));
    let s2 = register_store(&pd, 20170).await;
    let s3 = register_store(&pd, 20180).await;
    let boot = hb1.routes_until(STREAM_WAIT, |r| r.regions.len() == 1).await;
    let region = region_of(&boot);
    let mut peer_stores: Vec<u64> = region.peers.iter().map(|p| p.store_id).collect();
    peer_stores.sort_unstable();
    assert_eq!(peer_stores, vec![s1, s2, s3]);
    assert!(region.start_key.is_empty() && region.end_key.is_empty(), "first region covers the key space");

    phase("a second stream and a route watcher see the same version");
    let mut hb2 = HeartbeatStream::open(&pd, s2).await.expect("open heartbeat");
    assert_eq!(hb2.next_routes(STREAM_WAIT).await.expect("snapshot").version, boot.version);
    let mut watch = pd.watch_routes(0).await.expect("watch");
    assert_eq!(next_watch(&mut watch).await.version, boot.version, "since 0 sends the current snapshot");

    phase("a report with a newer epoch bumps the version on every stream");
    let mut newer = region.clone();
    newer.region_epoch.as_mut().unwrap().conf_ver += 1;
    hb1.report_region(&newer, 1).await;
    let v1 = boot.version + 1;
    for r in [
        hb1.routes_until(STREAM_WAIT, |r| r.version >= v1).await,
        hb2.routes_until(STREAM_WAIT, |r| r.version >= v1).await,
        next_watch(&mut watch).await,
    ] {
        assert_eq!(r.version, v1);
        assert_eq!(region_of(&r).region_epoch, newer.region_epoch);
        assert_eq!(r.regions[0].leader.expect("leader").store_id, s1);
    }

    phase("a stale report is ignored and counted");
    // On one stream, in order: a report with the old epoch, then a real
    // change. Only the second may move the version.
    hb2.report_region(&region, 9).await;
    let mut newest = newer.clone();
    newest.region_epoch.as_mut().unwrap().conf_ver += 1;
    hb2.report_region(&newest, 2).await;
    let r = hb2.routes_until(STREAM_WAIT, |r| r.version > v1).await;
    assert_eq!(r.version, v1 + 1, "the stale report must not have changed routes");
    assert_eq!(region_of(&r).region_epoch, newest.region_epoch);
    assert_eq!(r.regions[0].leader.expect("leader").store_id, s2);
    let leader_id = cluster.wait_members(3).await;
    let leader_http = cluster.member(leader_id).http().clone();
    let (_, metrics) = http_get(&leader_http, "/metrics").await.expect("metrics");
    let stale = metric_value(&metrics, "pd_region_reports_refused_total{reason=\"stale\"}").unwrap_or(0.0);
    assert!(stale >= 1.0, "stale report not counted:\n{metrics}");

    phase("kill -9 the PD leader");
    let before = pd.list_routes().await.expect("routes");
    cluster.member(leader_id).kill();
    let started = Instant::now();
    let new_leader = cluster.wait_members(3).await;
    eprintln!("new leader {new_leader} after {:?}", started.elapsed());
    assert_ne!(new_leader, leader_id);

    phase("the catalog is intact on the new leader");
    let pd2 = cluster.client();
    assert_eq!(pd2.list_routes().await.expect("routes"), before);

    phase("streams end and reconnect to the new leader");
    // Snapshots pushed before the kill may still be buffered; after them the
    // stream must fail rather than hang.
    let ended = loop {
        if let Err(e) = hb1.next_routes(STREAM_WAIT).await {
            break e;
        }
    };
    assert!(!ended.to_string().contains("in time"), "stream to the dead leader hung: {ended}");
    let mut hb1 = HeartbeatStream::open(&pd2, s1).await.expect("reopen heartbeat");
    assert_eq!(hb1.next_routes(STREAM_WAIT).await.expect("snapshot").version, before.version);
    let mut watch = pd2.watch_routes(before.version).await.expect("rewatch");
    let mut after_failover = newest.clone();
    after_failover.region_epoch.as_mut().unwrap().conf_ver += 1;
    hb1.report_region(&after_failover, 3).await;
    assert_eq!(next_watch(&mut watch).await.version, before.version + 1);
    assert_eq!(hb1.routes_until(STREAM_WAIT, |r| r.version > before.version).await.version, before.version + 1);

    phase("the killed member restarts and catches up");
    cluster.member(leader_id).restart();
    let http = cluster.member(leader_id).http().clone();
    let want = before.version + 1;
    wait_for("restarted member to apply the latest catalog", STREAM_WAIT, || {
        let http = http.clone();
        async move {
            let (status, body) = http_get(&http, "/api/v1/routes").await.ok()?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            (status == 200 && v["version"] == want).then_some(())
        }
    })
    .await;
    cluster.wait_members(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_every_member_reloads_the_catalog() {
    phase("start a 3-member PD group that pre-splits into 4 regions");
    let mut cluster = PdCluster::start(3, &["--bootstrap-regions", "4"]).await;
    let pd = cluster.client();
    for port in [20160, 20170, 20180] {
        register_store(&pd, port).await;
    }
    let before =
        wait_for("bootstrap", STREAM_WAIT, || async { pd.list_routes().await.ok().filter(|r| r.regions.len() == 4) })
            .await;
    let last_id = pd.alloc_id().await.expect("alloc");

    phase("kill -9 every member, then restart them all");
    for id in 1..=3 {
        cluster.member(id).kill();
    }
    for id in 1..=3 {
        cluster.member(id).restart();
    }
    cluster.wait_members(3).await;

    phase("routes, version and the id allocator came back from disk");
    let pd = cluster.client();
    assert_eq!(pd.list_routes().await.expect("routes"), before);
    assert!(pd.alloc_id().await.expect("alloc") > last_id, "an id was handed out twice");
    for id in 1..=3 {
        let http = cluster.member(id).http().clone();
        let (status, body) = http_get(&http, "/api/v1/regions").await.expect("regions");
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["count"], 4, "member {id}: {body}");
    }
}
