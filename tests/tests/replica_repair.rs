//! Replicas repaired and stores decommissioned without anyone moving a
//! region by hand: PD's replica checkers start the moves.
//!
//! - A store killed past a short down time has its replicas re-created on
//!   the other stores; every region is back to three voters and every key
//!   reads back; when the dead store returns, its stale peers are
//!   destroyed.
//! - `pdctl store delete` empties a store and leaves it Tombstone, and its
//!   engine holds no user key afterwards.

use std::collections::BTreeSet;
use std::time::Duration;

use cluster_tests::cluster::Cluster;
use cluster_tests::moves::engine_contents;
use cluster_tests::{http_get, metric_value, pdctl, phase, wait_for};
use pd::client::PdClient;
use proto::{metapb, pdpb};

const WAIT: Duration = Duration::from_secs(120);
const KEYS: usize = 3_000;
/// Three regions from the start, so several moves run.
const PD_ARGS: [&str; 6] =
    ["--bootstrap-split-keys", "k1,k2", "--max-store-down-time", "3s", "--replica-check-interval-ms", "500"];

fn key(i: usize) -> Vec<u8> {
    format!("k{}{i:05}", i % 3).into_bytes()
}

/// Every region with three voters, none on `gone`, and no learner left.
fn repaired(routes: &pdpb::RouteSnapshot, gone: u64) -> bool {
    routes.regions.iter().all(|r| {
        let Some(region) = &r.region else { return false };
        let voters = region.peers.iter().filter(|p| p.role == metapb::PeerRole::Voter as i32).count();
        voters == 3 && region.peers.len() == 3 && !region.peers.iter().any(|p| p.store_id == gone) && r.leader.is_some()
    })
}

async fn load(cluster: &Cluster) -> storenode::client::Client {
    let client = cluster.client().await;
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(500) {
        client.batch_put(chunk.iter().map(|i| (key(*i), format!("v{i}").into_bytes())).collect()).await.expect("load");
    }
    client
}

async fn read_all(client: &storenode::client::Client) {
    for i in (0..KEYS).step_by(7) {
        assert_eq!(client.get(&key(i)).await.expect("get"), Some(format!("v{i}").into_bytes()), "key {i}");
    }
}

async fn store_regions(http: &str) -> Option<f64> {
    let (_, text) = http_get(http, "/metrics").await.ok()?;
    metric_value(&text, "store_regions")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_stores_replicas_are_recreated_and_its_stale_peers_destroyed_when_it_returns() {
    phase("three regions on three of four stores, 3,000 keys");
    let mut cluster = Cluster::start(1, 4, &PD_ARGS).await;
    let client = load(&cluster).await;
    let pd = PdClient::new(&cluster.pd_endpoints()).expect("pd");
    let routes = pd.list_routes().await.expect("routes");
    assert_eq!(routes.regions.len(), 3);
    let holders: BTreeSet<u64> =
        routes.regions.iter().flat_map(|r| r.region.as_ref().unwrap().peers.iter().map(|p| p.store_id)).collect();
    let dead = *holders.iter().next().unwrap();

    phase(&format!("kill store {dead}; after 3 s of silence PD re-creates its replicas elsewhere"));
    cluster.store(dead).kill();
    let routes = wait_for("every region back to three voters without the dead store", WAIT, || async {
        pd.list_routes().await.ok().filter(|r| repaired(r, dead))
    })
    .await;
    let info = pd.get_store(dead).await.expect("store");
    assert!(info.down, "PD shows the store Down: {info:?}");
    read_all(&client).await;
    let ops = pd
        .call(|mut c| async move { c.list_operators(pdpb::ListOperatorsRequest { include_finished: true }).await })
        .await
        .expect("operators")
        .operators;
    assert!(
        ops.iter().any(|o| o.source == "replica-repair" && o.status == pdpb::OperatorStatus::Succeeded as i32),
        "a replica-repair operator succeeded: {ops:?}"
    );
    assert_eq!(routes.regions.len(), 3);

    phase(&format!("store {dead} comes back: its stale peers are destroyed"));
    cluster.store(dead).restart();
    let http = cluster.store(dead).http();
    wait_for("the returning store to destroy its stale peers", WAIT, || async {
        (store_regions(&http).await? == 0.0).then_some(())
    })
    .await;
    let info = pd.get_store(dead).await.expect("store");
    assert!(!info.down, "a store heard from again is not Down: {info:?}");
    read_all(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pdctl_store_delete_empties_a_store_and_leaves_it_tombstone() {
    phase("three regions on three of four stores, 3,000 keys");
    let mut cluster = Cluster::start(1, 4, &PD_ARGS).await;
    let client = load(&cluster).await;
    let pd = PdClient::new(&cluster.pd_endpoints()).expect("pd");
    let routes = pd.list_routes().await.expect("routes");
    let victim = routes.regions[0].region.as_ref().unwrap().peers[0].store_id;
    let endpoints = cluster.pd_endpoints().join(",");

    phase(&format!("pdctl store delete {victim}: every replica moves off, the store ends Tombstone"));
    let (code, out, err) =
        pdctl(&["--pd", &endpoints, "store", "delete", &victim.to_string(), "--timeout", &WAIT.as_secs().to_string()]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&format!("store {victim}: Tombstone")), "{out}");
    let info = pd.get_store(victim).await.expect("store");
    assert_eq!(info.store.unwrap().state, metapb::StoreState::Tombstone as i32);
    let routes = pd.list_routes().await.expect("routes");
    assert!(repaired(&routes, victim), "{routes:?}");
    read_all(&client).await;

    phase("its engine holds no user key");
    let http = cluster.store(victim).http();
    wait_for("the deleted store to destroy its peers", WAIT, || async {
        (store_regions(&http).await? == 0.0).then_some(())
    })
    .await;
    let index = cluster.stores.iter().position(|s| s.store_id == victim).unwrap() + 1;
    cluster.store(victim).stop(Duration::from_secs(10));
    let dir = cluster.dir.path().join(format!("store{index}"));
    let (_, keys) = engine_contents(&dir, 0, b"", b"");
    assert!(keys.is_empty(), "store {victim} still holds {} user keys", keys.len());
}
