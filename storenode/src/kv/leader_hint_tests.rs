//! Routing by PD's route table follows what a `NotLeader` answer taught:
//! a store outside a region sends the next request to the leader the
//! region's store named, not to PD's stale leader again.

use std::sync::Arc;

use pd::client::PdClient;
use proto::{kvpb, metapb, pdpb};
use tokio::sync::mpsc;

use super::Route;
use crate::config::StoreConfig;
use crate::engine::Engine;
use crate::error::StoreError;
use crate::node::Node;
use crate::routes::RouteTable;

const REGION: u64 = 7;

fn store(id: u64) -> metapb::Store {
    metapb::Store { id, address: format!("127.0.0.1:{}", 30000 + id), ..Default::default() }
}

/// Routes with one region on stores 2, 3 and 4, PD naming store 2 leader.
fn routes() -> pdpb::RouteSnapshot {
    let peer = |id, store_id| metapb::Peer { id, store_id, role: metapb::PeerRole::Voter as i32 };
    let region = metapb::Region {
        id: REGION,
        region_epoch: Some(metapb::RegionEpoch { conf_ver: 1, version: 1 }),
        peers: vec![peer(72, 2), peer(73, 3), peer(74, 4)],
        ..Default::default()
    };
    pdpb::RouteSnapshot {
        version: 3,
        stores: (1..=4).map(store).collect(),
        regions: vec![pdpb::RegionRoute { region: Some(region), leader: Some(peer(72, 2)) }],
    }
}

/// Where a request for key `a` goes from store 1, which hosts no peer.
fn target(node: &Node) -> (String, u64) {
    match node.locate(&kvpb::Context::default(), b"a") {
        Ok(Route::Remote { address, store_id, region_id }) => {
            assert_eq!(region_id, REGION);
            (address, store_id)
        }
        Ok(Route::Local(_)) => panic!("routed locally"),
        Err(e) => panic!("not routed: {e}"),
    }
}

fn not_leader(leader_store: u64) -> kvpb::GetResponse {
    let leader = metapb::Peer { id: 70 + leader_store, store_id: leader_store, role: 0 };
    let (region_error, error) =
        StoreError::NotLeader { region_id: REGION, leader: Some(leader), address: store(leader_store).address }.to_pb();
    kvpb::GetResponse { region_error, error, ..Default::default() }
}

#[tokio::test]
async fn a_not_leader_answer_redirects_the_next_request_until_its_store_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let pd = Arc::new(PdClient::new(&["127.0.0.1:1".to_string()]).expect("pd client"));
    let (events, _) = mpsc::unbounded_channel();
    let table = Arc::new(RouteTable::default());
    assert!(table.apply_if_newer(routes()));
    let node = Node::new(
        1,
        StoreConfig::default(),
        "127.0.0.1:0".into(),
        Engine::open(dir.path()).unwrap(),
        table,
        pd,
        events,
    )
    .expect("node");

    assert_eq!(target(&node), (store(2).address, 2), "PD's leader");
    // Store 2 follows store 3 now; PD has not heard.
    node.learn_leader(REGION, 2, &Ok(not_leader(3)));
    assert_eq!(target(&node), (store(3).address, 3), "the leader store 2 named");
    // An answer naming the store it came from teaches nothing new.
    node.learn_leader(REGION, 3, &Ok(not_leader(3)));
    assert_eq!(target(&node).1, 3);
    // Other errors keep the hint; an unreachable hinted store loses it.
    node.learn_leader::<kvpb::GetResponse>(REGION, 3, &Err(StoreError::ServerBusy("busy".into())));
    assert_eq!(target(&node).1, 3);
    node.learn_leader::<kvpb::GetResponse>(REGION, 3, &Err(StoreError::Unavailable("down".into())));
    assert_eq!(target(&node).1, 2, "back to PD's leader");
}

/// A hinted store whose peer no longer knows a leader (cut off from the
/// rest of its region, or its peer gone) must not keep every request:
/// PD's route stays as it is while the region is led fine elsewhere, so
/// only the answer can clear the hint.
#[tokio::test]
async fn a_hinted_store_that_knows_no_leader_loses_its_hint() {
    let dir = tempfile::tempdir().unwrap();
    let pd = Arc::new(PdClient::new(&["127.0.0.1:1".to_string()]).expect("pd client"));
    let (events, _) = mpsc::unbounded_channel();
    let table = Arc::new(RouteTable::default());
    assert!(table.apply_if_newer(routes()));
    let node = Node::new(
        1,
        StoreConfig::default(),
        "127.0.0.1:0".into(),
        Engine::open(dir.path()).unwrap(),
        table,
        pd,
        events,
    )
    .expect("node");
    let answer = |e: StoreError| {
        let (region_error, error) = e.to_pb();
        Ok(kvpb::GetResponse { region_error, error, ..Default::default() })
    };

    node.learn_leader(REGION, 2, &Ok(not_leader(3)));
    assert_eq!(target(&node).1, 3);
    node.learn_leader(
        REGION,
        3,
        &answer(StoreError::NotLeader { region_id: REGION, leader: None, address: String::new() }),
    );
    assert_eq!(target(&node).1, 2, "a hinted store that knows no leader: back to PD's leader");

    node.learn_leader(REGION, 2, &Ok(not_leader(4)));
    assert_eq!(target(&node).1, 4);
    node.learn_leader(REGION, 4, &answer(StoreError::RegionNotFound(REGION)));
    assert_eq!(target(&node).1, 2, "a hinted store without the region: back to PD's leader");
    // PD's leader answering so leaves no hint to forget, and sets none.
    node.learn_leader(REGION, 2, &answer(StoreError::RegionNotFound(REGION)));
    assert_eq!(target(&node).1, 2);
}
