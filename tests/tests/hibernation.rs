//! Hibernated regions on real stores: an idle region stops its raft timers
//! on every replica, wakes on a write, a read and on raft traffic from a
//! replica that woke, without an election; PD still hears of it; and a
//! hibernated leader cut off from its followers never answers a read from
//! its old lease once they may have elected another leader.

use std::time::Duration;

use cluster_tests::cluster::Cluster;
use cluster_tests::store_status::{agreed_leader, first_region, hibernation_events};
use cluster_tests::{http_request, phase, wait_for};
use pd::client::PdClient;
use proto::kvpb::{self, kv_client::KvClient};

const WAIT: Duration = Duration::from_secs(60);
const HIBERNATE_AFTER: &str = "500";

async fn all_hibernated(cluster: &Cluster) -> bool {
    for s in &cluster.stores {
        match first_region(&s.http()).await {
            Some(r) if r["hibernated"] == true => {}
            _ => return false,
        }
    }
    true
}

/// Asserts every replica still sees `expected` (term, leader store),
/// printing the stores' logs if not.
async fn same_leader(cluster: &Cluster, expected: (u64, u64), what: &str) {
    let now = agreed_leader(cluster).await;
    if now != Some(expected) {
        for s in &cluster.stores {
            eprintln!("--- store {} log\n{}", s.store_id, s.log_tail());
        }
    }
    assert_eq!(now, Some(expected), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_region_hibernates_and_wakes_on_a_write_a_read_and_raft_traffic() {
    phase("three stores hibernating regions idle for 500 ms");
    let cluster = Cluster::start_with(1, 3, &[], &["--raft-hibernate-after-ms", HIBERNATE_AFTER]).await;
    let client = cluster.client().await;
    client.put(b"k", b"v1").await.expect("put");
    let (term, leader) = wait_for("one leader seen by all", WAIT, || agreed_leader(&cluster)).await;
    let leader_http = cluster.stores.iter().find(|s| s.store_id == leader).unwrap().http();
    let followers: Vec<String> = cluster.stores.iter().filter(|s| s.store_id != leader).map(|s| s.http()).collect();
    wait_for("every replica hibernated", WAIT, || async { all_hibernated(&cluster).await.then_some(()) }).await;

    phase("PD still hears of the region and counts it hibernated");
    let pd = PdClient::new(&cluster.pd_endpoints()).expect("pd");
    wait_for("PD to see a hibernated region on every store", WAIT, || async {
        for s in &cluster.stores {
            let info = pd.get_store(s.store_id).await.ok()?;
            (info.stats?.hibernated_region_count == 1).then_some(())?;
        }
        Some(())
    })
    .await;

    same_leader(&cluster, (term, leader), "hibernation held no election").await;

    phase("a write wakes the leader by request and the followers by its appends");
    let (req_before, fol_before) = (
        hibernation_events(&leader_http, "request").await,
        [
            hibernation_events(&followers[0], "raft_message").await,
            hibernation_events(&followers[1], "raft_message").await,
        ],
    );
    client.put(b"k", b"v2").await.expect("put after hibernation");
    let after = hibernation_events(&leader_http, "request").await;
    assert!(
        after > req_before,
        "the write woke the leader: {req_before} -> {after}, raft_message {}, status {:?}",
        hibernation_events(&leader_http, "raft_message").await,
        first_region(&leader_http).await
    );
    for (i, f) in followers.iter().enumerate() {
        wait_for("the follower to wake on the leader's append", WAIT, || async {
            (hibernation_events(f, "raft_message").await > fol_before[i]).then_some(())
        })
        .await;
    }
    same_leader(&cluster, (term, leader), "waking held no election").await;

    phase("hibernated again, a read wakes the leader and returns the last write");
    wait_for("every replica hibernated again", WAIT, || async { all_hibernated(&cluster).await.then_some(()) }).await;
    let req_before = hibernation_events(&leader_http, "request").await;
    assert_eq!(client.get(b"k").await.expect("get").as_deref(), Some(&b"v2"[..]));
    assert!(hibernation_events(&leader_http, "request").await > req_before, "the read woke the leader");

    phase("hibernated again, a stale read at a follower wakes it and, by its wake message, the leader");
    wait_for("every replica hibernated again", WAIT, || async { all_hibernated(&cluster).await.then_some(()) }).await;
    let follower_grpc = cluster.stores.iter().find(|s| s.store_id != leader).unwrap().grpc();
    let follower_http = cluster.stores.iter().find(|s| s.store_id != leader).unwrap().http();
    let (f_req, l_msg) =
        (hibernation_events(&follower_http, "request").await, hibernation_events(&leader_http, "raft_message").await);
    let mut kv = KvClient::new(pd::client::channel(&follower_grpc).expect("channel"));
    // A stale read is served by the follower itself: nothing but its wake
    // message reaches the leader.
    let ctx = kvpb::Context { stale_read: true, ..Default::default() };
    let r = kv.get(kvpb::GetRequest { context: Some(ctx), key: b"k".to_vec() }).await.expect("rpc").into_inner();
    assert!(r.region_error.is_none() && r.error.is_none(), "stale read at a follower: {r:?}");
    assert_eq!(r.value, b"v2");
    assert!(hibernation_events(&follower_http, "request").await > f_req, "the read woke the follower");
    wait_for("the leader to wake on the follower's wake message", WAIT, || async {
        (hibernation_events(&leader_http, "raft_message").await > l_msg).then_some(())
    })
    .await;
    // Asleep again (no replica ticks, none can campaign): still the same
    // leader and term.
    wait_for("every replica hibernated again", WAIT, || async { all_hibernated(&cluster).await.then_some(()) }).await;
    same_leader(&cluster, (term, leader), "a follower's wake deposed no one").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hibernated_leader_cut_off_never_reads_from_its_old_lease() {
    phase("three stores with fault injection, hibernating after 500 ms");
    let cluster =
        Cluster::start_with(1, 3, &[], &["--raft-hibernate-after-ms", HIBERNATE_AFTER, "--fault-injection"]).await;
    let client = cluster.client().await;
    client.put(b"k", b"old").await.expect("put");
    let (term, leader) = wait_for("one leader seen by all", WAIT, || agreed_leader(&cluster)).await;
    wait_for("every replica hibernated", WAIT, || async { all_hibernated(&cluster).await.then_some(()) }).await;
    let old = cluster.stores.iter().find(|s| s.store_id == leader).unwrap();
    let others: Vec<u64> = cluster.stores.iter().map(|s| s.store_id).filter(|s| *s != leader).collect();

    phase("cut the hibernated leader off from both followers, both directions");
    let body = format!("{{\"stores\":{others:?},\"pd\":false}}");
    let (status, _) = http_request(&old.http(), "PUT", "/debug/partition", body.as_bytes()).await.expect("cut");
    assert_eq!(status, 200);
    for s in cluster.stores.iter().filter(|s| s.store_id != leader) {
        let body = format!("{{\"stores\":[{leader}],\"pd\":false}}");
        let (status, _) = http_request(&s.http(), "PUT", "/debug/partition", body.as_bytes()).await.expect("cut");
        assert_eq!(status, 200);
    }

    phase("the followers notice the silent leader store, wake and elect one of themselves");
    let new_leader = wait_for("a new leader among the followers", WAIT, || async {
        for s in cluster.stores.iter().filter(|s| s.store_id != leader) {
            let r = first_region(&s.http()).await?;
            if r["role"] == "leader" && r["term"].as_u64()? > term {
                return Some(s.grpc());
            }
        }
        None
    })
    .await;
    // Both followers woke and campaigned: the first leader can still lose a
    // second election to the other, so the write is retried (as a client
    // would on NotLeader) until the followers' side accepts it.
    let kv = KvClient::new(pd::client::channel(&new_leader).expect("channel"));
    wait_for("a write accepted on the followers' side of the cut", WAIT, || async {
        let mut kv = kv.clone();
        let r = kv.put(kvpb::PutRequest { context: None, key: b"k".to_vec(), value: b"new".to_vec() }).await;
        let r = r.ok()?.into_inner();
        (r.region_error.is_none() && r.error.is_none()).then_some(())
    })
    .await;

    phase("the old leader, still believing it leads, must not answer from its lease");
    // Only a store that still believes it leads reaches its lease: one
    // that stepped down refuses with NotLeader whatever its lease, and the
    // read would fail for another reason than the lease check.
    let before = first_region(&old.http()).await.expect("old leader's status");
    assert_eq!(
        (before["role"].as_str(), before["term"].as_u64()),
        (Some("leader"), Some(term)),
        "the cut-off store must still believe it leads: {before}"
    );
    let mut kv = KvClient::new(pd::client::channel(&old.grpc()).expect("channel"));
    let r = kv.get(kvpb::GetRequest { context: None, key: b"k".to_vec() }).await.expect("rpc").into_inner();
    assert!(
        r.region_error.is_some() || r.error.is_some(),
        "a read at the cut-off old leader must fail, not return {:?}",
        String::from_utf8_lossy(&r.value)
    );
    let refused_as_leader =
        !matches!(r.region_error.as_ref().and_then(|e| e.kind.as_ref()), Some(kvpb::region_error::Kind::NotLeader(_)));
    assert!(refused_as_leader, "refused as a leader whose lease ran out, not as a follower: {r:?}");

    phase("healed, the old leader's store serves the new value");
    for s in &cluster.stores {
        let (status, _) = http_request(&s.http(), "DELETE", "/debug/partition", b"").await.expect("heal");
        assert_eq!(status, 200);
    }
    wait_for("the old leader's store to read the new value", WAIT, || async {
        let mut kv = kv.clone();
        let r = kv.get(kvpb::GetRequest { context: None, key: b"k".to_vec() }).await.ok()?.into_inner();
        (r.region_error.is_none() && r.error.is_none() && r.value == b"new").then_some(())
    })
    .await;
}
