//! Moving a region's replica between stores end to end: a learner on the
//! target catches up by snapshot, a joint change promotes it and demotes
//! the source, the source is removed, and the source store destroys its
//! peer: its engine keeps a tombstone and none of the range's keys.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster_tests::cluster::Cluster;
use cluster_tests::moves::{engine_contents, move_region, start_move};
use cluster_tests::split::{wait_converged, wait_operator};
use cluster_tests::{phase, wait_for};
use pd::client::PdClient;
use proto::{metapb, pdpb, raftpb};

const WAIT: Duration = Duration::from_secs(90);
const KEYS: usize = 50_000;

fn key(i: usize) -> Vec<u8> {
    format!("m{i:06}").into_bytes()
}

/// The cluster's only region once it has a leader.
async fn the_region(pd: &PdClient) -> pdpb::RegionRoute {
    wait_for("a region leader", WAIT, || async {
        pd.list_routes().await.ok()?.regions.first().filter(|r| r.leader.is_some()).cloned()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_moves_to_a_fourth_store_under_writes_and_leaves_nothing_behind() {
    phase("one region on three of four stores, 50,000 keys, a writer running");
    let mut cluster = Cluster::start(1, 4, &[]).await;
    let client = Arc::new(cluster.client().await);
    let pd = PdClient::new(&cluster.pd_endpoints()).expect("pd");
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(2_000) {
        let pairs = chunk.iter().map(|i| (key(*i), vec![b'v'; 64])).collect();
        client.batch_put(pairs).await.expect("preload");
    }
    let route = the_region(&pd).await;
    let region = route.region.clone().unwrap();
    let leader = route.leader.unwrap().store_id;
    let from = region.peers.iter().map(|p| p.store_id).find(|s| *s != leader).unwrap();
    let to =
        cluster.stores.iter().map(|s| s.store_id).find(|s| !region.peers.iter().any(|p| p.store_id == *s)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<BTreeMap<Vec<u8>, Vec<u8>>>> = Arc::default();
    let writer = {
        let (client, stop, acked) = (client.clone(), stop.clone(), acked.clone());
        tokio::spawn(async move {
            let mut errors = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let (k, v) = (format!("w{:04}", i % 500).into_bytes(), format!("v{i}").into_bytes());
                match client.put(&k, &v).await {
                    Ok(()) => {
                        acked.lock().unwrap().insert(k, v);
                    }
                    Err(e) => errors.push(e.to_string()),
                }
                i += 1;
            }
            errors
        })
    };

    phase(&format!("move region {} from store {from} to store {to}", region.id));
    let op = match move_region(&pd, region.id, from, to, WAIT).await {
        Ok(op) => op,
        Err(e) => {
            for s in &cluster.stores {
                eprintln!("--- store {}:\n{}", s.store_id, s.log_tail());
            }
            panic!("move: {e}");
        }
    };
    assert_eq!(op.kind, pdpb::OperatorKind::Move as i32);
    let moved = pd.get_region_by_id(region.id).await.expect("region").route.unwrap().region.unwrap();
    let stores: Vec<u64> = moved.peers.iter().map(|p| p.store_id).collect();
    assert!(stores.contains(&to) && !stores.contains(&from), "peers after the move: {:?}", moved.peers);
    assert!(moved.peers.iter().all(|p| p.role == metapb::PeerRole::Voter as i32), "{:?}", moved.peers);
    assert!(
        moved.region_epoch.unwrap().conf_ver > region.region_epoch.unwrap().conf_ver,
        "conf_ver grew: {:?} -> {:?}",
        region.region_epoch,
        moved.region_epoch
    );

    phase("the writer saw no errors; every acknowledged write reads back");
    stop.store(true, Ordering::Relaxed);
    let errors = writer.await.expect("writer");
    assert!(errors.is_empty(), "clients saw errors during the move: {errors:?}");
    let acked = acked.lock().unwrap().clone();
    assert!(!acked.is_empty());
    for (k, v) in &acked {
        assert_eq!(client.get(k).await.expect("read").as_ref(), Some(v), "key {:?}", String::from_utf8_lossy(k));
    }

    phase("the new replica leads and serves linearizable reads of every key");
    let transfer = pdpb::TransferLeaderRequest { region_id: region.id, to_store_id: to };
    let op =
        pd.call(|mut c| async move { c.transfer_leader(transfer).await }).await.expect("transfer").operator.unwrap();
    wait_operator(&pd, op.id, WAIT).await.expect("transfer to the new replica");
    let scanned = client.scan(&key(0), &key(KEYS), KEYS + 1).await.expect("scan through the new leader");
    assert_eq!(scanned.len(), KEYS, "every preloaded key through the new leader");
    for (k, v) in &acked {
        assert_eq!(client.get(k).await.expect("read").as_ref(), Some(v));
    }
    wait_converged(&cluster, 3, WAIT).await;

    phase(&format!("store {from} destroyed its peer: a tombstone and none of the range's keys in its engine"));
    let from_http = cluster.store(from).http();
    wait_for("the source store to drop its peer", WAIT, || async {
        let (_, metrics) = cluster_tests::http_get(&from_http, "/metrics").await.ok()?;
        (cluster_tests::metric_value(&metrics, "store_regions") == Some(0.0)).then_some(())
    })
    .await;
    let dir = cluster.dir.path().join(format!("store{}", index_of(&cluster, from)));
    cluster.store(from).stop(Duration::from_secs(10));
    let (state, left) = engine_contents(&dir, region.id, &region.start_key, &region.end_key);
    let state = state.expect("a row for the region");
    assert_eq!(state.state, raftpb::PeerState::Tombstone as i32, "{state:?}");
    assert!(left.is_empty(), "store {from} still holds {} keys of the moved region", left.len());

    phase("a stale raft message for the destroyed peer does not bring it back");
    cluster.store(from).restart();
    let old_peer = region.peers.iter().find(|p| p.store_id == from).unwrap();
    let mut raft = proto::raftpb::raft_transport_client::RaftTransportClient::new(
        pd::client::channel(&cluster.store(from).grpc()).expect("channel"),
    );
    let resp = raft
        .call(raftpb::RaftRequest {
            region_id: region.id,
            from_peer: region.peers.iter().find(|p| p.store_id == leader).unwrap().id,
            to_peer: old_peer.id,
            to_store: from,
            region: Some(region.clone()),
            kind: raftpb::RaftCallKind::Vote as i32,
            payload: Vec::new(),
        })
        .await
        .expect("raft call")
        .into_inner();
    assert!(resp.error.contains("destroyed"), "refused as destroyed: {:?}", resp.error);
    let (_, metrics) = cluster_tests::http_get(&cluster.store(from).http(), "/metrics").await.expect("metrics");
    assert_eq!(cluster_tests::metric_value(&metrics, "store_regions"), Some(0.0), "no peer came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moving_the_leaders_replica_moves_leadership_first() {
    let cluster = Cluster::start(1, 4, &[]).await;
    let client = cluster.client().await;
    let pd = PdClient::new(&cluster.pd_endpoints()).expect("pd");
    for i in 0..200 {
        client.put(&key(i), b"v").await.expect("put");
    }
    let route = the_region(&pd).await;
    let region = route.region.unwrap();
    let from = route.leader.unwrap().store_id;
    let to =
        cluster.stores.iter().map(|s| s.store_id).find(|s| !region.peers.iter().any(|p| p.store_id == *s)).unwrap();
    phase(&format!("move region {}'s leader replica from store {from} to store {to}", region.id));
    move_region(&pd, region.id, from, to, WAIT).await.expect("move");
    let after = pd.get_region_by_id(region.id).await.expect("region").route.unwrap();
    let r = after.region.unwrap();
    assert!(!r.peers.iter().any(|p| p.store_id == from), "{:?}", r.peers);
    assert_ne!(after.leader.unwrap().store_id, from, "leadership left the source");
    for i in 0..200 {
        assert_eq!(client.get(&key(i)).await.expect("get"), Some(b"v".to_vec()));
    }
    wait_converged(&cluster, 3, WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_move_whose_target_dies_is_cancelled_and_the_region_keeps_serving() {
    let mut cluster = Cluster::start(1, 4, &[]).await;
    let client = cluster.client().await;
    let pd = PdClient::new(&cluster.pd_endpoints()).expect("pd");
    for chunk in (0..20_000).collect::<Vec<_>>().chunks(2_000) {
        let pairs = chunk.iter().map(|i| (key(*i), vec![b'v'; 64])).collect();
        client.batch_put(pairs).await.expect("preload");
    }
    let route = the_region(&pd).await;
    let region = route.region.unwrap();
    let leader = route.leader.unwrap().store_id;
    let from = region.peers.iter().map(|p| p.store_id).find(|s| *s != leader).unwrap();
    let to =
        cluster.stores.iter().map(|s| s.store_id).find(|s| !region.peers.iter().any(|p| p.store_id == *s)).unwrap();

    phase(&format!("pause store {to}, move region {} onto it, kill store {to} once it has a learner", region.id));
    // Paused, the target cannot catch up: the move stays at its learner.
    cluster.store(to).signal("STOP");
    let op = start_move(&pd, region.id, from, to).await.expect("move");
    wait_for("the learner on the target", WAIT, || async {
        let r = pd.get_region_by_id(region.id).await.ok()?.route?.region?;
        r.peers.iter().any(|p| p.store_id == to).then_some(())
    })
    .await;
    cluster.store(to).kill();

    phase("cancel the operator: the region keeps three voters and serves writes");
    pd.call(|mut c| async move { c.cancel_operator(pdpb::CancelOperatorRequest { operator_id: op.id }).await })
        .await
        .expect("cancel");
    let got = pd
        .call(|mut c| async move { c.get_operator(pdpb::GetOperatorRequest { operator_id: op.id }).await })
        .await
        .expect("operator")
        .operator
        .unwrap();
    assert_ne!(got.status, pdpb::OperatorStatus::Running as i32);
    for i in 0..100 {
        client.put(&key(i), b"after").await.expect("write after the cancelled move");
    }
    let r = pd.get_region_by_id(region.id).await.expect("region").route.unwrap().region.unwrap();
    let voters: Vec<metapb::Peer> =
        r.peers.iter().filter(|p| p.role == metapb::PeerRole::Voter as i32).copied().collect();
    assert_eq!(voters.len(), 3, "three voters: {:?}", r.peers);
    assert!(!voters.iter().any(|p| p.store_id == to), "the dead target never became a voter: {:?}", r.peers);

    phase("the three voters are healthy: a leader reports none of them pending or down, only the dead learner");
    let report = wait_for("the leader to report the dead learner down", WAIT, || async {
        let resp = pd.get_region_by_id(region.id).await.ok()?;
        resp.route.as_ref()?.leader?;
        resp.down_peers.iter().any(|p| p.store_id == to).then_some(resp)
    })
    .await;
    for v in &voters {
        assert!(!report.down_peers.contains(v), "voter {v:?} is down: {:?}", report.down_peers);
        assert!(!report.pending_peers.contains(v), "voter {v:?} is pending: {:?}", report.pending_peers);
    }
    for i in 0..100 {
        assert_eq!(client.get(&key(i)).await.expect("get"), Some(b"after".to_vec()));
    }
}

/// The 1-based index of a store in the cluster, which names its directory.
fn index_of(cluster: &Cluster, store_id: u64) -> usize {
    cluster.stores.iter().position(|s| s.store_id == store_id).unwrap() + 1
}
