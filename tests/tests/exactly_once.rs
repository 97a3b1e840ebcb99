//! Exactly-once writes and reads across a leader change, on real processes.
//!
//! A write whose reply never reached its client is retried with the same
//! request id after the leader's store was killed and restarted: the region
//! answers with the first attempt's outcome and does not apply it again. A
//! CAS proves it (a second application would fail), and so does a DELETE
//! (a second application would report the key absent). A read right after
//! an election falls back to a read index instead of failing.

use std::time::Duration;

use cluster_tests::cluster::Cluster;
use cluster_tests::{http_get, metric_value, phase, wait_for};
use proto::kvpb::{self, kv_client::KvClient};

const WAIT: Duration = Duration::from_secs(60);
/// A fixed client identity, so the test controls every request id.
const CLIENT: u64 = 0xE0E0;

async fn kv(addr: &str) -> KvClient<tonic::transport::Channel> {
    KvClient::new(pd::client::channel(addr).expect("channel"))
}

fn ctx(seq: u64) -> Option<kvpb::Context> {
    Some(kvpb::Context {
        request_id: Some(kvpb::RequestId { client_id: CLIENT, seq, acked_below: 1 }),
        ..Default::default()
    })
}

/// The store whose peer of the region holding `key` leads, by the stores'
/// own status pages.
async fn leader_of(cluster: &Cluster, key: &str) -> u64 {
    let pd = pd::client::PdClient::new(&cluster.pd_endpoints()).expect("pd");
    let region = pd.get_region(key.as_bytes()).await.expect("route").route.and_then(|r| r.region).expect("region");
    let stores: Vec<(u64, String)> =
        cluster.stores.iter().filter(|s| s.is_running()).map(|s| (s.store_id, s.http())).collect();
    wait_for("a leader for the region", WAIT, || async {
        for (id, http) in &stores {
            let (_, body) = http_get(http, "/status").await.ok()?;
            let status: serde_json::Value = serde_json::from_str(&body).ok()?;
            let leads = status["regions"]
                .as_array()?
                .iter()
                .any(|r| r["id"].as_u64() == Some(region.id) && r["role"] == "leader");
            if leads {
                return Some(*id);
            }
        }
        None
    })
    .await
}

async fn duplicates(cluster: &Cluster) -> f64 {
    let mut total = 0.0;
    for s in cluster.stores.iter().filter(|s| s.is_running()) {
        let (_, text) = http_get(&s.http(), "/metrics").await.expect("metrics");
        total += metric_value(&text, "store_duplicate_writes_total").unwrap_or(0.0);
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_write_applies_once_across_a_leader_restart() {
    let mut cluster = Cluster::start(1, 3, &[]).await;
    let client = cluster.client().await;
    client.put(b"eo-del", b"x").await.expect("seed the delete key");

    phase("first attempts reach the leader; their replies are lost");
    let leader = leader_of(&cluster, "eo-cas").await;
    let mut at_leader = kv(&cluster.store(leader).grpc()).await;
    let cas = |seq| kvpb::CasRequest {
        context: ctx(seq),
        key: b"eo-cas".to_vec(),
        expected_exists: false,
        expected: Vec::new(),
        value: b"v1".to_vec(),
    };
    let del = |seq| kvpb::DeleteRequest { context: ctx(seq), key: b"eo-del".to_vec() };
    let first = at_leader.compare_and_swap(cas(1)).await.expect("cas").into_inner();
    assert!(first.succeeded && first.region_error.is_none(), "{first:?}");
    let first = at_leader.delete(del(2)).await.expect("delete").into_inner();
    assert!(first.existed && first.region_error.is_none(), "{first:?}");

    phase("kill -9 the leader's store and restart it");
    cluster.store(leader).kill();
    let new_leader = leader_of(&cluster, "eo-cas").await;
    assert_ne!(new_leader, leader);
    cluster.store(leader).restart();

    phase("retry both with the same ids through another store");
    let via = cluster.stores.iter().map(|s| s.store_id).find(|id| *id != new_leader).expect("a forwarding store");
    let mut elsewhere = kv(&cluster.store(via).grpc()).await;
    let before = duplicates(&cluster).await;
    let retry = wait_for("the CAS retry to be answered", WAIT, || {
        let mut c = elsewhere.clone();
        async move { c.compare_and_swap(cas(1)).await.ok().map(|r| r.into_inner()).filter(|r| r.region_error.is_none()) }
    })
    .await;
    assert!(retry.succeeded && !retry.previous_exists, "the retry got the first outcome: {retry:?}");
    let retry = elsewhere.delete(del(2)).await.expect("delete retry").into_inner();
    assert!(retry.region_error.is_none() && retry.error.is_none(), "{retry:?}");
    assert!(retry.existed, "a DELETE retried after it applied still reports existed:true");
    assert!(duplicates(&cluster).await > before, "the repeats were answered from the session table");

    phase("the state is what one application of each gives");
    assert_eq!(client.get(b"eo-cas").await.expect("get"), Some(b"v1".to_vec()));
    assert_eq!(client.get(b"eo-del").await.expect("get"), None);
    // A new request id is a new write: this CAS fails on the current value.
    let mut c = elsewhere.clone();
    let fresh = c.compare_and_swap(cas(3)).await.expect("cas").into_inner();
    assert!(!fresh.succeeded && fresh.previous_exists && fresh.previous == b"v1", "{fresh:?}");

    phase("a write paused mid-flight at its leader is retried by the client and applied once");
    client.put(b"eo-pause", b"old").await.expect("put");
    let leader = leader_of(&cluster, "eo-pause").await;
    let client = std::sync::Arc::new(client);
    let c = client.clone();
    let cas = tokio::spawn(async move { c.compare_and_swap(b"eo-pause", Some(b"old"), b"new").await });
    cluster.store(leader).signal("STOP");
    let outcome = cas.await.expect("cas task").expect("the client retries until a new leader answers");
    cluster.store(leader).signal("CONT");
    assert!(outcome.0, "applied once: a second application would have failed: {outcome:?}");
    assert_eq!(client.get(b"eo-pause").await.expect("get"), Some(b"new".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_right_after_an_election_waits_for_a_read_index() {
    let mut cluster = Cluster::start(1, 3, &[]).await;
    let client = cluster.client().await;
    client.put(b"lease", b"1").await.expect("put");
    let pd = pd::client::PdClient::new(&cluster.pd_endpoints()).expect("pd");
    let region = pd.get_region(b"lease").await.expect("route").route.and_then(|r| r.region).expect("region");
    let leader = leader_of(&cluster, "lease").await;

    phase("kill the leader's store; read at every other store until one answers");
    cluster.store(leader).kill();
    let others: Vec<String> = cluster.stores.iter().filter(|s| s.is_running()).map(|s| s.grpc()).collect();
    let mut busy = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    'read: loop {
        assert!(tokio::time::Instant::now() < deadline, "no store answered the read");
        for addr in &others {
            let mut c = kv(addr).await;
            // Forwarded: answered by this store's own peer, never passed on.
            let ctx = kvpb::Context { region_id: region.id, forwarded: true, ..Default::default() };
            let Ok(r) = c.get(kvpb::GetRequest { context: Some(ctx), key: b"lease".to_vec() }).await else {
                continue;
            };
            let r = r.into_inner();
            match r.region_error.and_then(|e| e.kind) {
                None if r.error.is_none() => {
                    assert_eq!(r.value, b"1");
                    break 'read;
                }
                Some(kvpb::region_error::Kind::ServerBusy(b)) => busy.push(b.reason),
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(busy.is_empty(), "a new leader refused reads instead of confirming leadership: {busy:?}");
}
