//! Reviving a dormant peer over a real engine and openraft group: only a
//! peer that led when it went dormant may come back leading without an
//! election.

use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use pd::client::PdClient;
use proto::metapb;
use tokio::sync::mpsc;

use super::{Node, PeerOrigin};
use crate::config::StoreConfig;
use crate::engine::Engine;
use crate::routes::RouteTable;

const STORE: u64 = 1;
const PEER: u64 = 11;
/// Short raft timers, so the first election is quick.
const HEARTBEAT_MS: u64 = 50;
const DEADLINE: Duration = Duration::from_secs(20);

fn node(engine: Arc<Engine>) -> Arc<Node> {
    let mut config = StoreConfig::default();
    config.raft.set_heartbeat(HEARTBEAT_MS);
    // Hibernation on: a restarted peer starts asleep, and may go dormant.
    config.raft.hibernate_after_ms = 1_000;
    // Nothing here talks to PD; the client connects lazily.
    let pd = Arc::new(PdClient::new(&["127.0.0.1:1".to_string()]).expect("pd client"));
    let (events, _) = mpsc::unbounded_channel();
    Node::new(STORE, config, "127.0.0.1:0".into(), engine, Arc::new(RouteTable::default()), pd, events).expect("node")
}

fn region() -> metapb::Region {
    metapb::Region {
        id: 1,
        region_epoch: Some(metapb::RegionEpoch { conf_ver: 1, version: 1 }),
        peers: vec![metapb::Peer { id: PEER, store_id: STORE, role: metapb::PeerRole::Voter as i32 }],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_led_before_a_restart_and_slept_as_a_follower_revives_as_a_follower() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();

    // First life: the region's only voter elects itself; its vote on disk
    // names it leader, committed.
    let first = node(engine.clone());
    let peer = first.start_peer(region(), PEER, PeerOrigin::Route { bootstrap: true }).await.unwrap();
    let raft = peer.raft().expect("running");
    raft.wait(Some(DEADLINE)).state(ServerState::Leader, "first leader").await.expect("elected");
    first.shutdown().await;
    drop(first);

    // After the restart it starts asleep as a follower: no leader restore.
    let second = node(engine.clone());
    let peer = second.start_peer(region(), PEER, PeerOrigin::Restart).await.unwrap();
    assert!(!peer.is_leader(), "a restart restores no leader");

    // Asleep long enough, it goes dormant, still a follower; then revives.
    second.rest_quiet_regions(Duration::ZERO).await;
    assert!(peer.is_dormant(), "the quiet follower went dormant");
    assert!(second.revive(&peer).await.unwrap(), "revived");
    let raft = peer.raft().expect("running again");
    // openraft restores leadership, if at all, when its core starts, before
    // it runs anything asked of it: ask it for its state.
    let state = raft.with_raft_state(|s| s.server_state).await.expect("core runs");
    assert_eq!(state, ServerState::Follower, "a follower revived leading, from the vote it cast before the restart");
    assert!(!peer.is_leader());
    second.shutdown().await;
}
