//! The node's range invariant over real peers: which starts are refused,
//! which peers own a range, and how data claims one.

use std::sync::Arc;
use std::time::Duration;

use pd::client::PdClient;
use proto::{metapb, raftpb};
use tokio::sync::mpsc;

use super::range_index::RangeConflict;
use super::{Node, PeerOrigin, PeerRefused, StartPeerError};
use crate::config::StoreConfig;
use crate::engine::Engine;
use crate::routes::RouteTable;

const STORE: u64 = 1;

fn node(engine: Arc<Engine>) -> Arc<Node> {
    // Nothing here talks to PD; the client connects lazily.
    let pd = Arc::new(PdClient::new(&["127.0.0.1:1".to_string()]).expect("pd client"));
    let (events, _) = mpsc::unbounded_channel();
    let routes = Arc::new(RouteTable::default());
    Node::new(STORE, StoreConfig::default(), "127.0.0.1:0".into(), engine, routes, pd, events).expect("node")
}

fn region(id: u64, start: &str, end: &str, conf_ver: u64, version: u64, peer_id: u64) -> metapb::Region {
    metapb::Region {
        id,
        start_key: start.as_bytes().to_vec(),
        end_key: end.as_bytes().to_vec(),
        region_epoch: Some(metapb::RegionEpoch { conf_ver, version }),
        peers: vec![metapb::Peer { id: peer_id, store_id: STORE, role: metapb::PeerRole::Voter as i32 }],
    }
}

const BOOTSTRAP: PeerOrigin = PeerOrigin::Route { bootstrap: true };

fn refusal<T>(r: Result<T, StartPeerError>) -> PeerRefused {
    match r {
        Err(StartPeerError::Refused(r)) => r,
        Err(StartPeerError::Io(e)) => panic!("io error instead of a refusal: {e}"),
        Ok(_) => panic!("started instead of refused"),
    }
}

#[tokio::test]
async fn a_bootstrap_peer_owns_its_range_and_an_on_demand_peer_owns_none() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(Engine::open(dir.path()).unwrap());
    node.start_peer(region(1, "", "m", 1, 1, 11), 11, BOOTSTRAP).await.unwrap();
    node.start_peer(region(2, "m", "", 1, 1, 21), 21, PeerOrigin::RaftMessage).await.unwrap();

    assert!(node.is_initialized(1));
    assert_eq!(node.peer_for_key(b"a").map(|p| p.region_id()), Some(1));
    assert_eq!(node.peer_for_key(b"").map(|p| p.region_id()), Some(1), "empty start key");

    assert!(node.peer(2).is_some(), "the peer runs");
    assert!(!node.is_initialized(2));
    assert!(node.initialized_peer(2).is_none(), "it serves nothing");
    assert!(node.peer_for_key(b"x").is_none(), "and owns no key");
    node.shutdown().await;
}

#[tokio::test]
async fn a_peer_over_a_newer_local_region_is_refused_and_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let node = node(engine.clone());
    node.start_peer(region(1, "", "m", 1, 2, 11), 11, BOOTSTRAP).await.unwrap();

    for origin in [PeerOrigin::RaftMessage, PeerOrigin::Route { bootstrap: false }, BOOTSTRAP] {
        let r = refusal(node.start_peer(region(3, "k", "z", 1, 2, 31), 31, origin).await);
        assert!(matches!(r, PeerRefused::Overlaps { region_id: 3, existing_region: 1, .. }), "{origin:?}: {r}");
    }
    assert!(node.peer(3).is_none());
    assert!(engine.region_state(3).unwrap().is_none(), "no local state recorded for a refused peer");
    node.shutdown().await;
}

#[tokio::test]
async fn start_peer_honours_a_tombstone_row() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let tomb = raftpb::RegionLocalState {
        region: Some(region(5, "x", "y", 2, 1, 7)),
        state: raftpb::PeerState::Tombstone as i32,
        peer_id: 7,
        ..Default::default()
    };
    engine.save_region_state(tomb).await.unwrap();
    let node = node(engine.clone());

    for (peer_id, origin) in [(7, PeerOrigin::RaftMessage), (6, PeerOrigin::Route { bootstrap: false })] {
        let r = refusal(node.start_peer(region(5, "x", "y", 3, 1, peer_id), peer_id, origin).await);
        assert_eq!(r, PeerRefused::Tombstoned { region_id: 5, peer_id, tombstone_peer_id: 7 });
    }
    let r = refusal(node.start_peer(region(5, "x", "y", 2, 1, 8), 8, PeerOrigin::RaftMessage).await);
    assert!(matches!(r, PeerRefused::StaleEpoch { region_id: 5, .. }), "{r}");
    assert!(node.peer(5).is_none());

    // The region comes back as a new peer, added at a newer epoch.
    let peer = node.start_peer(region(5, "x", "y", 3, 1, 8), 8, PeerOrigin::RaftMessage).await.unwrap();
    assert_eq!(peer.shared.peer_id, 8);
    let row = engine.region_state(5).unwrap().unwrap();
    assert_eq!((row.state, row.peer_id), (raftpb::PeerState::Normal as i32, 8), "the tombstone is replaced");
    node.shutdown().await;
}

#[tokio::test]
async fn data_claims_a_range_only_where_no_other_region_owns_keys() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(Engine::open(dir.path()).unwrap());
    node.start_peer(region(1, "", "m", 1, 1, 11), 11, BOOTSTRAP).await.unwrap();
    // Newer than region 1: allowed to exist, uninitialized, over its keys.
    let newer = node.start_peer(region(3, "k", "p", 1, 2, 31), 31, PeerOrigin::RaftMessage).await.unwrap();
    let free = node.start_peer(region(2, "m", "", 1, 1, 21), 21, PeerOrigin::RaftMessage).await.unwrap();

    let r = node.admit_data(&newer, &newer.region(), "raft_message");
    assert!(matches!(r, Err(PeerRefused::Range(RangeConflict::Overlaps { region_id: 3, existing_region: 1, .. }))));
    assert!(!node.is_initialized(3));

    node.admit_data(&free, &free.region(), "raft_message").unwrap();
    assert!(node.is_initialized(2));
    assert_eq!(node.peer_for_key(b"x").map(|p| p.region_id()), Some(2));

    // A snapshot for the now initialized region 2 may not reach into
    // region 1, nor go back in epoch; it changes nothing until installed.
    let r = node.admit_data(&free, &region(2, "l", "", 1, 2, 21), "snapshot");
    assert!(matches!(r, Err(PeerRefused::Range(RangeConflict::Overlaps { existing_region: 1, .. }))), "{r:?}");
    let r = node.admit_data(&free, &region(2, "m", "", 1, 0, 21), "snapshot");
    assert!(matches!(r, Err(PeerRefused::Range(RangeConflict::StaleEpoch { region_id: 2, .. }))), "{r:?}");
    node.admit_data(&free, &region(2, "n", "", 1, 2, 21), "snapshot").unwrap();
    assert_eq!(node.peer_for_key(b"m").map(|p| p.region_id()), Some(2), "not moved before install");

    // The file itself may cover more than the sender's view: a file built
    // before a split reaches back into keys region 1 owns.
    let r = node.admit_snapshot(&free, &region(2, "n", "", 1, 2, 21), &region(2, "a", "", 1, 1, 21));
    assert!(matches!(r, Err(PeerRefused::SnapshotMismatch { region_id: 2, file_version: 1, .. })), "{r:?}");
    // A file from before a member was added: only `conf_ver` differs.
    node.admit_snapshot(&free, &region(2, "n", "", 2, 2, 21), &region(2, "n", "", 1, 2, 21)).unwrap();

    // Installed: the index follows the installed range.
    node.snapshot_installed(&region(2, "n", "", 1, 2, 21)).unwrap();
    assert!(node.peer_for_key(b"m").is_none());
    assert_eq!(node.peer_for_key(b"n").map(|p| p.region_id()), Some(2));
    node.shutdown().await;
}

#[tokio::test]
async fn after_a_restart_only_peers_with_raft_data_own_a_range() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let first = node(engine.clone());
    first.start_peer(region(1, "", "m", 1, 1, 11), 11, BOOTSTRAP).await.unwrap();
    first.start_peer(region(2, "m", "", 1, 1, 21), 21, PeerOrigin::RaftMessage).await.unwrap();
    // Initializing raft wrote the bootstrap membership to region 1's log.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !engine.has_raft_data(1).unwrap() {
        assert!(tokio::time::Instant::now() < deadline, "region 1 has no raft data");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!engine.has_raft_data(2).unwrap());
    first.shutdown().await;
    drop(first);

    let second = node(engine);
    second.start_existing_peers().await.unwrap();
    assert!(second.peer(1).is_some() && second.peer(2).is_some());
    assert!(second.is_initialized(1));
    assert!(!second.is_initialized(2));
    second.shutdown().await;
}

/// A snapshot whose file was chosen before a split the header already
/// shows: the receiver used to check the file's range and claim the
/// header's under two locks, so the split-off region could claim its keys
/// in between, and the install of the file's wider range then cleared
/// them. Now the two must agree, and nothing is claimed when they do not.
#[tokio::test]
async fn a_snapshot_whose_file_and_header_disagree_is_refused_and_claims_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(Engine::open(dir.path()).unwrap());
    // Region 2 split at m (version 2); the sender's file is from before,
    // covering everything at version 1.
    let peer = node.start_peer(region(2, "m", "", 1, 2, 21), 21, PeerOrigin::RaftMessage).await.unwrap();
    let header = region(2, "m", "", 1, 2, 21);
    for file in [region(2, "", "", 1, 1, 21), region(2, "", "", 1, 2, 21), region(2, "m", "", 1, 1, 21)] {
        let r = node.admit_snapshot(&peer, &header, &file);
        assert!(matches!(r, Err(PeerRefused::SnapshotMismatch { region_id: 2, .. })), "{file:?}: {r:?}");
        assert!(!node.is_initialized(2), "a refused snapshot claims nothing");
    }
    // The split-off region may take its keys here.
    let split_off = node.start_peer(region(3, "", "m", 1, 2, 31), 31, PeerOrigin::RaftMessage).await.unwrap();
    node.admit_data(&split_off, &split_off.region(), "raft_message").unwrap();
    // A fresh file, built after the split and before a member was added,
    // is admitted and claims exactly the range its install writes.
    node.admit_snapshot(&peer, &region(2, "m", "", 2, 2, 21), &header).unwrap();
    assert_eq!(node.peer_for_key(b"m").map(|p| p.region_id()), Some(2));
    assert_eq!(node.peer_for_key(b"a").map(|p| p.region_id()), Some(3));
    node.shutdown().await;
}

/// A new replica's first snapshot, built before it was added: the header
/// (the leader's view now) carries the newer `conf_ver`, the file the
/// older one, and the index holds the header's once admitted. Installing
/// the file used to try to take the index back to the older `conf_ver`,
/// was refused as stale, and logged an error and a refusal for an
/// ordinary move.
#[tokio::test]
async fn installing_a_file_older_only_in_conf_ver_keeps_the_admitted_epoch_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(Engine::open(dir.path()).unwrap());
    let peer = node.start_peer(region(2, "m", "", 3, 2, 21), 21, PeerOrigin::RaftMessage).await.unwrap();
    let (header, file) = (region(2, "m", "", 3, 2, 21), region(2, "m", "", 2, 2, 21));
    node.admit_snapshot(&peer, &header, &file).unwrap();
    assert_eq!(node.snapshot_installed(&file), Ok(()), "no refusal for an ordinary move");
    let indexed = node.ranges.lock().unwrap().get(2).cloned().expect("indexed");
    assert_eq!((indexed.epoch.conf_ver, indexed.epoch.version), (3, 2), "conf_ver never goes back");
    assert_eq!(node.peer_for_key(b"m").map(|p| p.region_id()), Some(2));
    node.shutdown().await;
}
