//! The leader's writes carry its reading of log time: on a real
//! single-voter region, log time counts the leader's elapsed time, not the
//! wall clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pd::client::PdClient;
use proto::{kvpb, metapb};
use tokio::sync::mpsc;

use crate::config::StoreConfig;
use crate::engine::Engine;
use crate::node::{Node, PeerOrigin};
use crate::routes::RouteTable;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_time_counts_the_leaders_elapsed_time_from_its_anchor() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing here talks to PD; the client connects lazily.
    let pd = Arc::new(PdClient::new(&["127.0.0.1:1".to_string()]).expect("pd client"));
    let (events, _) = mpsc::unbounded_channel();
    let engine = Engine::open(dir.path()).unwrap();
    let node =
        Node::new(1, StoreConfig::default(), "127.0.0.1:0".into(), engine, Arc::new(RouteTable::default()), pd, events)
            .expect("node");
    let region = metapb::Region {
        id: 1,
        region_epoch: Some(metapb::RegionEpoch { conf_ver: 1, version: 1 }),
        peers: vec![metapb::Peer { id: 11, store_id: 1, role: metapb::PeerRole::Voter as i32 }],
        ..Default::default()
    };
    node.start_peer(region, 11, PeerOrigin::Route { bootstrap: true }).await.expect("start");
    let peer = node.peer(1).expect("peer");

    // Writes until one lands a measurable time after the leader's first
    // proposal anchored it.
    let deadline = Instant::now() + WAIT;
    let mut seq = 1;
    while peer.shared.log_time_ms() == 0 {
        assert!(Instant::now() < deadline, "log time never moved");
        let ctx = kvpb::Context {
            request_id: Some(kvpb::RequestId { client_id: 5, seq, acked_below: seq }),
            ..Default::default()
        };
        let reply = node.put(kvpb::PutRequest { context: Some(ctx), key: b"k".to_vec(), value: b"v".to_vec() }).await;
        if reply.region_error.is_none() && reply.error.is_none() {
            seq += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(seq > 2, "the first write anchors: it moves nothing");
    let elapsed = peer.shared.log_time_ms();
    assert!(elapsed < WAIT.as_millis() as u64, "log time is the leader's elapsed time, not its wall clock: {elapsed}");
    node.shutdown().await;
}
