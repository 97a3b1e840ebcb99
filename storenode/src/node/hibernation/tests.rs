//! Hibernation on a real single-voter region: when a leader may sleep.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pd::client::PdClient;
use proto::{kvpb, metapb, raftpb};
use tokio::sync::mpsc;

use super::{HibernationAsk, WakeCause};
use crate::config::StoreConfig;
use crate::engine::{Engine, SESSIONS, io_err};
use crate::node::{Node, PeerOrigin, RegionPeer};
use crate::routes::RouteTable;

const STORE: u64 = 1;
const WAIT: Duration = Duration::from_secs(20);

fn node(engine: Arc<Engine>) -> Arc<Node> {
    // Nothing here talks to PD; the client connects lazily.
    let pd = Arc::new(PdClient::new(&["127.0.0.1:1".to_string()]).expect("pd client"));
    let (events, _) = mpsc::unbounded_channel();
    Node::new(STORE, StoreConfig::default(), "127.0.0.1:0".into(), engine, Arc::new(RouteTable::default()), pd, events)
        .expect("node")
}

/// Region 1 over the whole key space, led by this store's only voter.
async fn leader_of_one(node: &Arc<Node>) -> Arc<RegionPeer> {
    let region = metapb::Region {
        id: 1,
        region_epoch: Some(metapb::RegionEpoch { conf_ver: 1, version: 1 }),
        peers: vec![metapb::Peer { id: 11, store_id: STORE, role: metapb::PeerRole::Voter as i32 }],
        ..Default::default()
    };
    node.start_peer(region, 11, PeerOrigin::Route { bootstrap: true }).await.expect("start");
    let peer = node.peer(1).expect("peer");
    let deadline = Instant::now() + WAIT;
    while !peer.is_leader() {
        assert!(Instant::now() < deadline, "region 1 elected no leader");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    peer
}

/// The leader's ask, once the region counts as idle and caught up.
async fn ready_to_sleep(peer: &RegionPeer) -> HibernationAsk {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(ask) = peer.hibernation_request(Duration::ZERO) {
            return ask;
        }
        assert!(Instant::now() < deadline, "region 1 never became ready to hibernate");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_after_the_idleness_check_keeps_the_leader_awake() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(Engine::open(dir.path()).unwrap());
    let peer = leader_of_one(&node).await;

    let ask = ready_to_sleep(&peer).await;
    // A request reaches the region after the leader found it idle, before
    // the leader asked its members to sleep.
    node.wake(&peer, WakeCause::Request).await;
    node.hibernate_region(peer.clone(), ask).await;
    assert!(!peer.is_hibernated(), "the leader slept with a request in flight");

    let ask = ready_to_sleep(&peer).await;
    node.hibernate_region(peer.clone(), ask).await;
    assert!(peer.is_hibernated(), "with no request since the check, the leader sleeps");
    node.shutdown().await;
}

/// The probe another store's hibernated followers send this store.
async fn probe(node: &Node) -> Vec<u64> {
    let req = raftpb::RaftRequest { kind: raftpb::RaftCallKind::Wake as i32, ..Default::default() };
    let payload = node.on_hibernation_message(&req).await.expect("the store answers");
    if payload.is_empty() { Vec::new() } else { crate::raft::decode(&payload).expect("probe answer") }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_answer_names_a_region_whose_peer_stopped_on_a_storage_error() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(Engine::open(dir.path()).unwrap());
    let peer = leader_of_one(&node).await;
    assert!(probe(&node).await.is_empty(), "a healthy store names no region");

    // Client 77's session row is damaged: applying its write fails on
    // storage, and openraft stops the region's group.
    node.engine
        .writer
        .write(|tx| {
            tx.open_table(SESSIONS).map_err(io_err)?.insert((1, 77), [0xffu8].as_slice()).map_err(io_err)?;
            Ok(())
        })
        .await
        .unwrap();
    let ctx = kvpb::Context {
        request_id: Some(kvpb::RequestId { client_id: 77, seq: 1, acked_below: 1 }),
        ..Default::default()
    };
    let put = kvpb::PutRequest { context: Some(ctx), key: b"k".to_vec(), value: b"v".to_vec() };
    let reply = node.put(put).await;
    assert!(reply.region_error.is_some() || reply.error.is_some(), "the write must not succeed: {reply:?}");

    let deadline = Instant::now() + WAIT;
    while probe(&node).await != vec![1] {
        assert!(Instant::now() < deadline, "the store's answer never named region 1");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!peer.is_leader(), "the stopped peer no longer leads");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_asleep_under_a_store_wake_for_the_regions_its_answer_names() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(Engine::open(dir.path()).unwrap());
    let peer = leader_of_one(&node).await;
    // Its timers stopped as a follower's whose leader is on store 9 (what
    // `hibernate_follower` records; this store has no store 9 to ask).
    {
        let mut s = peer.hibernation.state.lock().unwrap();
        s.hibernated = true;
        s.leader_store = Some(9);
    }
    let names = |regions: &[u64]| crate::raft::encode(&regions.to_vec()).unwrap();

    node.wake_under_failed_leaders(9, &[]).await;
    node.wake_under_failed_leaders(9, &names(&[2])).await;
    node.wake_under_failed_leaders(8, &names(&[1])).await;
    assert_eq!(peer.asleep_under(), Some(9), "another region, or another store's answer, wakes nothing");

    node.wake_under_failed_leaders(9, &names(&[2, 1])).await;
    assert!(!peer.is_hibernated(), "its leader's peer stopped: the follower wakes to campaign");
    node.shutdown().await;
}
