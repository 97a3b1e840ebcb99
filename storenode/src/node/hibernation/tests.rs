//! Hibernation on a real single-voter region: when a leader may sleep.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pd::client::PdClient;
use proto::metapb;
use tokio::sync::mpsc;

use super::{HibernationAsk, WakeCause};
use crate::config::StoreConfig;
use crate::engine::Engine;
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
