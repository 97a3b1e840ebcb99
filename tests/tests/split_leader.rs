//! PD names the leader of a split-born region that its own raft group
//! elected, although that group's terms are lower than the region it was
//! split from: no fault at all, only transfers and a split.

use std::sync::Arc;
use std::time::Duration;

use cluster_tests::cluster::Cluster;
use cluster_tests::leaders::{agree_deadline, store_leaders, wait_leaders_agree};
use cluster_tests::split::{split_region, wait_operator};
use cluster_tests::{http_get, http_request, phase, wait_for};
use pd::client::PdClient;

const WAIT: Duration = Duration::from_secs(60);

/// The store the stores agree leads `region_id`, with its term.
async fn led_by(cluster: &Cluster, region_id: u64) -> Option<(u64, u64)> {
    let l = store_leaders(cluster).await.ok()?.get(&region_id).copied()?;
    Some((l.store_id, l.term))
}

/// Moves `region_id`'s leadership to `to` through a PD operator and waits
/// until it has succeeded and converged.
async fn transfer(pd: &PdClient, region_id: u64, to: u64) {
    let op = pd.transfer_leader(region_id, to).await.expect("transfer-leader accepted");
    wait_operator(pd, op.id, WAIT).await.expect("transfer-leader succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pd_names_the_new_leader_of_a_split_born_region_and_any_store_serves_it() {
    phase("one region on three of four stores, keys on both sides of m");
    let cluster = Cluster::start(1, 4, &[]).await;
    let client = Arc::new(cluster.client().await);
    let pd = PdClient::new(&cluster.pd_endpoints()).expect("pd");
    for i in 0..20 {
        for prefix in ["a", "p"] {
            client.put(format!("{prefix}{i:03}").as_bytes(), format!("v{i}").as_bytes()).await.expect("put");
        }
    }
    let parent = pd.list_routes().await.expect("routes").regions[0].region.clone().expect("region");
    let voters: Vec<u64> = parent.peers.iter().map(|p| p.store_id).collect();

    phase("move the region's leadership twice: its group's term climbs");
    for _ in 0..2 {
        let (from, _) = wait_for("a parent leader", WAIT, || led_by(&cluster, parent.id)).await;
        let to = *voters.iter().find(|s| **s != from).expect("another voter");
        transfer(&pd, parent.id, to).await;
    }
    let (parent_leader, parent_term) = wait_for("a parent leader", WAIT, || led_by(&cluster, parent.id)).await;

    phase(&format!("split at m (parent led by store {parent_leader} at term {parent_term})"));
    split_region(&pd, parent.id, b"m", WAIT).await.expect("split");
    let child = pd.get_region(b"a").await.expect("region of a").route.and_then(|r| r.region).expect("child");
    assert_ne!(child.id, parent.id, "the split-born region holds the keys below m");
    let (child_leader, _) = wait_for("a child leader", WAIT, || led_by(&cluster, child.id)).await;

    phase("move the split-born region's leadership to another store");
    let to = *voters.iter().find(|s| **s != child_leader).expect("another voter");
    let op = pd.transfer_leader(child.id, to).await.expect("transfer-leader accepted");
    let child_term = wait_for("the stores to say the target leads", WAIT, || async {
        led_by(&cluster, child.id).await.filter(|(s, _)| *s == to).map(|(_, term)| term)
    })
    .await;
    let (_, parent_term) = led_by(&cluster, parent.id).await.expect("parent leader");
    assert!(
        child_term < parent_term,
        "the split-born group's term {child_term} must be below its parent's {parent_term} for this test to mean anything"
    );

    phase(&format!("PD names store {to} within three region heartbeats (child term {child_term})"));
    let named = tokio::time::timeout(agree_deadline(), async {
        loop {
            let route = pd.get_region_by_id(child.id).await.ok().and_then(|r| r.route);
            if route.and_then(|r| r.leader).is_some_and(|l| l.store_id == to) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let route = pd.get_region_by_id(child.id).await.expect("region").route;
    assert!(named.is_ok(), "PD still names {:?} as the leader of region {}", route.and_then(|r| r.leader), child.id);
    wait_operator(&pd, op.id, WAIT).await.expect("the transfer-leader operator saw its target lead");
    wait_leaders_agree(&cluster, agree_deadline()).await;

    phase("a store outside the region serves its keys over HTTP");
    let outsider = cluster.stores.iter().find(|s| !voters.contains(&s.store_id)).expect("a fourth store");
    let (code, body) = http_get(&outsider.http(), "/kv/a007").await.expect("http get");
    assert_eq!(
        (code, body.as_str()),
        (200, "v7"),
        "read of a key in region {} through store {}",
        child.id,
        outsider.store_id
    );
    let (code, body) = http_request(&outsider.http(), "PUT", "/kv/a100", b"written-outside").await.expect("http put");
    assert!((200..300).contains(&code), "write through store {}: {code} {body}", outsider.store_id);
    assert_eq!(client.get(b"a100").await.expect("get"), Some(b"written-outside".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_outside_a_region_follows_a_not_leader_hint_while_pd_lags() {
    phase("one region on three of four stores; PD will not hear of its next leader");
    let cluster = Cluster::start_with(1, 4, &[], &["--fault-injection"]).await;
    let client = cluster.client().await;
    let pd = PdClient::new(&cluster.pd_endpoints()).expect("pd");
    client.put(b"a007", b"v7").await.expect("put");
    let region = pd.list_routes().await.expect("routes").regions[0].region.clone().expect("region");
    let voters: Vec<u64> = region.peers.iter().map(|p| p.store_id).collect();
    let (from, _) = wait_for("a leader", WAIT, || led_by(&cluster, region.id)).await;
    let to = *voters.iter().find(|s| **s != from).expect("another voter");
    // The target keeps talking to the other stores, not to PD: once it
    // leads, only the stores know.
    let target = cluster.stores.iter().find(|s| s.store_id == to).expect("target store");
    let (code, body) = http_request(&target.http(), "PUT", "/debug/partition", br#"{"stores": [], "pd": true}"#)
        .await
        .expect("partition");
    assert_eq!(code, 200, "{body}");

    phase(&format!("leadership moves from store {from} to store {to}; PD still names store {from}"));
    pd.transfer_leader(region.id, to).await.expect("transfer-leader accepted");
    wait_for("the stores to say the target leads", WAIT, || async {
        led_by(&cluster, region.id).await.filter(|(s, _)| *s == to)
    })
    .await;
    let named = pd.get_region_by_id(region.id).await.expect("region").route.and_then(|r| r.leader);
    assert_eq!(named.map(|l| l.store_id), Some(from), "PD must lag for this test to mean anything");

    phase("a store outside the region serves the key: the old leader's NotLeader names the new one");
    let outsider = cluster.stores.iter().find(|s| !voters.contains(&s.store_id)).expect("a fourth store");
    let (code, body) = http_get(&outsider.http(), "/kv/a007").await.expect("http get");
    assert_eq!((code, body.as_str()), (200, "v7"), "read through store {}", outsider.store_id);
    let (_, metrics) = http_get(&outsider.http(), "/metrics").await.expect("metrics");
    let hints = cluster_tests::metric_value(&metrics, "store_kv_leader_hints_total").unwrap_or(0.0);
    assert!(hints >= 1.0, "the outsider learned the leader from a NotLeader answer");

    phase("healed, PD names the stores' leader");
    let (code, body) = http_request(&target.http(), "DELETE", "/debug/partition", b"").await.expect("heal");
    assert_eq!(code, 200, "{body}");
    wait_leaders_agree(&cluster, WAIT).await;
}
