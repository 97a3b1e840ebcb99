//! Dormant regions on real stores: a region asleep long enough shuts its
//! raft groups down on every replica; a write, a read, a follower's stale
//! read and a split each bring it back, leader and term unchanged, with
//! every acknowledged write readable; and when the leader's store dies
//! while its region is dormant, the followers revive, elect, and serve.

use std::time::Duration;

use cluster_tests::cluster::Cluster;
use cluster_tests::split::split_region;
use cluster_tests::store_status::{agreed_leader, hibernation_events, status};
use cluster_tests::{phase, wait_for};
use pd::client::PdClient;
use proto::kvpb::{self, kv_client::KvClient};

const WAIT: Duration = Duration::from_secs(60);
/// Hibernation after 500 ms; dormancy follows two maximum election
/// timeouts (2 s with the tests' raft timing) of quiet.
const HIBERNATE_AFTER: &str = "500";

/// Whether every store holds `regions` regions, all dormant.
async fn all_dormant(cluster: &Cluster, regions: u64) -> bool {
    for s in &cluster.stores {
        let Some(st) = status(&s.http()).await else { return false };
        if st["region_count"].as_u64() != Some(regions) || st["dormant_region_count"].as_u64() != Some(regions) {
            return false;
        }
    }
    true
}

/// Waits until the live stores agree on a leader, and asserts it is
/// `expected` (term, leader store): a revived follower learns its leader
/// from the leader's first heartbeat.
async fn same_leader(cluster: &Cluster, expected: (u64, u64), what: &str) {
    let agreed = wait_for("the stores to agree on a leader", WAIT, || agreed_leader(cluster)).await;
    assert_eq!(agreed, expected, "{what}");
}

async fn dormant_everywhere(cluster: &Cluster, regions: u64) {
    wait_for("every replica dormant", WAIT, || async { all_dormant(cluster, regions).await.then_some(()) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dormant_region_revives_for_writes_reads_and_splits_without_an_election() {
    phase("three stores; the region hibernates, then goes dormant on every replica");
    let mut cluster = Cluster::start_with(1, 3, &[], &["--raft-hibernate-after-ms", HIBERNATE_AFTER]).await;
    let client = cluster.client().await;
    client.put(b"k", b"v1").await.expect("put");
    let (term, leader) = wait_for("one leader seen by all", WAIT, || agreed_leader(&cluster)).await;
    dormant_everywhere(&cluster, 1).await;
    let leader_http = cluster.stores.iter().find(|s| s.store_id == leader).unwrap().http();
    assert!(hibernation_events(&leader_http, "dormant").await >= 1.0, "the leader's group went dormant");

    phase("PD still sees the region led, and the store heartbeat counts it hibernated");
    let pd = PdClient::new(&cluster.pd_endpoints()).expect("pd");
    wait_for("PD to see a hibernated region on every store", WAIT, || async {
        for s in &cluster.stores {
            let stats = pd.get_store(s.store_id).await.ok()?.stats?;
            (stats.hibernated_region_count == 1 && stats.leader_count == u32::from(s.store_id == leader))
                .then_some(())?;
        }
        Some(())
    })
    .await;

    phase("a write revives the region: acknowledged, same leader and term");
    let revived = hibernation_events(&leader_http, "revived").await;
    client.put(b"k", b"v2").await.expect("put to a dormant region");
    assert!(hibernation_events(&leader_http, "revived").await > revived, "the write revived the leader");
    same_leader(&cluster, (term, leader), "revival held no election").await;

    phase("dormant again, a read revives it and returns the last write");
    dormant_everywhere(&cluster, 1).await;
    assert_eq!(client.get(b"k").await.expect("get").as_deref(), Some(&b"v2"[..]));
    same_leader(&cluster, (term, leader), "the read held no election").await;

    phase("dormant again, a stale read at a follower revives it, and by its wake the leader");
    dormant_everywhere(&cluster, 1).await;
    let follower = cluster.stores.iter().find(|s| s.store_id != leader).unwrap();
    let mut kv = KvClient::new(pd::client::channel(&follower.grpc()).expect("channel"));
    let revived = hibernation_events(&leader_http, "revived").await;
    let ctx = kvpb::Context { stale_read: true, ..Default::default() };
    let r = kv.get(kvpb::GetRequest { context: Some(ctx), key: b"k".to_vec() }).await.expect("rpc").into_inner();
    assert!(r.region_error.is_none() && r.error.is_none(), "stale read at a dormant follower: {r:?}");
    assert_eq!(r.value, b"v2");
    wait_for("the leader revived by the follower's wake", WAIT, || async {
        (hibernation_events(&leader_http, "revived").await > revived).then_some(())
    })
    .await;
    same_leader(&cluster, (term, leader), "a follower's revival deposed no one").await;

    phase("dormant again, a split directive revives the leader and splits the region");
    dormant_everywhere(&cluster, 1).await;
    let region_id = pd.list_routes().await.expect("routes").regions[0].region.as_ref().unwrap().id;
    if let Err(e) = split_region(&pd, region_id, b"m", WAIT).await {
        for s in &cluster.stores {
            eprintln!("--- store {} status {:?}\n{}", s.store_id, status(&s.http()).await, s.log_tail());
        }
        panic!("split of a dormant region: {e}");
    }
    client.put(b"z", b"right").await.expect("put right of the split");
    assert_eq!(client.get(b"k").await.expect("get").as_deref(), Some(&b"v2"[..]));

    phase("both halves dormant; the leader's store is killed; the followers revive, elect, serve");
    dormant_everywhere(&cluster, 2).await;
    cluster.store(leader).kill();
    client.put(b"k", b"v3").await.expect("put after the dormant leader's store died");
    client.put(b"z", b"v3").await.expect("put right after the dormant leader's store died");
    assert_eq!(client.get(b"k").await.expect("get").as_deref(), Some(&b"v3"[..]));
    let (new_term, new_leader) =
        wait_for("a new leader seen by the live stores", WAIT, || agreed_leader(&cluster)).await;
    assert!(
        new_leader != leader && new_term > term,
        "elected anew: ({new_term}, {new_leader}) after ({term}, {leader})"
    );
}
