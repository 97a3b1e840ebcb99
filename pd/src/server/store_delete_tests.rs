//! A store's decommission on a real one-member PD: `DeleteStore`'s answers
//! and refusals, the replica check loop planning the moves off an Offline
//! store and marking it Tombstone once the catalog lists no peer on it, and
//! stores turning Down when they stay silent.

use std::time::Duration;

use proto::{metapb, pdpb};
use tokio::time::Instant;

use super::PdServer;
use super::context::{StoreRuntime, now_ms};
use super::test_member::{self, DEADLINE, add_store};
use crate::catalog::CatalogCommand;
use crate::client::PdClient;
use crate::config::PdConfig;
use crate::duration_text::DurationText;
use crate::error::PdError;

/// How often a condition is looked at while waiting for it.
const POLL: Duration = Duration::from_millis(20);

async fn start(dir: &tempfile::TempDir, max_store_down_time: DurationText) -> (PdServer, PdClient) {
    let mut config = test_member::config(dir);
    config.schedule.replica_check_interval_ms = 50;
    config.schedule.max_store_down_time = max_store_down_time;
    test_member::start(config).await
}

/// Polls `cond` until it holds or the deadline passes.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let give_up = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < give_up, "timed out waiting until {what}");
        tokio::time::sleep(POLL).await;
    }
}

fn state(info: &pdpb::StoreInfo) -> i32 {
    info.store.as_ref().expect("store").state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_store_goes_offline_then_tombstone_once_drained() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, pd) = start(&dir, PdConfig::default().schedule.max_store_down_time).await;
    let ctx = server.context().clone();
    let stores = [add_store(&pd).await, add_store(&pd).await, add_store(&pd).await];
    let mut routes = ctx.catalog.subscribe();
    tokio::time::timeout(DEADLINE, routes.wait_for(|_| ctx.catalog.read().catalog.region_count() > 0))
        .await
        .expect("bootstrapped in time")
        .expect("routes channel open");

    // Bad and unknown ids.
    assert!(matches!(pd.delete_store(0).await, Err(PdError::InvalidArgument(_))));
    assert_eq!(pd.delete_store(9_999).await.unwrap_err(), PdError::StoreNotFound(9_999));

    // A store holding no replica goes straight to Tombstone, once.
    let empty = add_store(&pd).await;
    let info = pd.delete_store(empty).await.expect("delete empty store");
    assert_eq!(state(&info), metapb::StoreState::Tombstone as i32);
    assert!(matches!(pd.delete_store(empty).await, Err(PdError::StoreConflict(_))));
    let again = metapb::Store { id: empty, address: "127.0.0.1:30000".into(), ..Default::default() };
    assert!(matches!(pd.put_store(again).await, Err(PdError::StoreConflict(_))), "a tombstoned id is never reused");

    // Three Up stores and three replicas: none may go.
    let err = pd.delete_store(stores[0]).await.unwrap_err();
    assert_eq!(err, PdError::NotEnoughStores { need: 3, have: 2 });

    // With a fourth, one may: it is Offline with its region still on it, and
    // asking again answers the same.
    let spare = add_store(&pd).await;
    let info = pd.delete_store(stores[0]).await.expect("delete store");
    assert_eq!(state(&info), metapb::StoreState::Offline as i32);
    assert_eq!(info.region_count, 1);
    let info = pd.delete_store(stores[0]).await.expect("delete again");
    assert_eq!(state(&info), metapb::StoreState::Offline as i32);

    // The decommission checker plans the move to the spare store and starts
    // it: a MOVE operator from the decommission source.
    let region_id = ctx.catalog.read().catalog.regions().next().expect("region").region.id;
    let started = || {
        ctx.operators.lock().unwrap().list(false).into_iter().map(|o| o.to_pb((0, 0))).find(|o| {
            o.source == "decommission"
                && o.kind == pdpb::OperatorKind::Move as i32
                && (o.region_id, o.source_store_id, o.target_store_id) == (region_id, stores[0], spare)
        })
    };
    wait_until("the decommission checker starts the move", || started().is_some()).await;
    let peer_id = started().expect("the move operator").new_peer_id;
    assert_ne!(peer_id, 0);

    // Carry the move out as the region's leader would report it, under the
    // peer id PD allocated; the loop then marks the drained store Tombstone.
    let mut region = ctx.catalog.read().catalog.region(region_id).expect("region").region.clone();
    let old = region.peers.iter_mut().find(|p| p.store_id == stores[0]).expect("peer on the Offline store");
    *old = metapb::Peer { id: peer_id, store_id: spare, role: metapb::PeerRole::Voter as i32 };
    region.region_epoch.as_mut().expect("epoch").conf_ver += 1;
    let leader = *region.peers.iter().find(|p| p.store_id == stores[1]).expect("peer on store 2");
    ctx.propose(CatalogCommand::ReportRegions {
        regions: vec![region],
        leader: Some(leader),
        term: 1,
        leaderships: Vec::new(),
    })
    .await
    .expect("report applied");
    let gone = stores[0];
    tokio::time::timeout(
        DEADLINE,
        routes.wait_for(|_| {
            ctx.catalog.read().catalog.store(gone).is_some_and(|s| s.state == metapb::StoreState::Tombstone as i32)
        }),
    )
    .await
    .expect("tombstoned in time")
    .expect("routes channel open");
    let info = pd.get_store(gone).await.expect("get store");
    assert_eq!((state(&info), info.region_count), (metapb::StoreState::Tombstone as i32, 0));

    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_stores_turn_down_and_a_heartbeat_brings_them_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, pd) = start(&dir, "1s".parse().expect("duration")).await;
    let ctx = server.context().clone();
    let stores = [add_store(&pd).await, add_store(&pd).await, add_store(&pd).await];
    // One store keeps heartbeating; the others stay silent past 1 s.
    let heard = stores[0];
    let beat = || {
        ctx.stores.lock().unwrap().insert(heard, StoreRuntime { last_heartbeat_ms: now_ms(), ..Default::default() });
    };
    let give_up = Instant::now() + DEADLINE;
    loop {
        beat();
        let listed = pd.list_stores().await.expect("list stores");
        let down: Vec<u64> = listed.iter().filter(|i| i.down).map(|i| i.store.as_ref().expect("store").id).collect();
        if down == stores[1..] {
            break;
        }
        assert!(Instant::now() < give_up, "stores never turned Down: {down:?}");
        tokio::time::sleep(POLL).await;
    }
    // Two of three voters Down: the region has no quorum, so no plan.
    assert!(ctx.checker_plans.lock().unwrap().is_empty());
    server.shutdown().await;
}
