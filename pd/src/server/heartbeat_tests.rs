//! Region reports through the heartbeat handler of a real one-member PD:
//! a split-born region's leader is the one its own group elects, at its
//! own term, whatever term the region it was split from is at.

use std::sync::Arc;
use std::time::Duration;

use proto::{metapb, pdpb};
use tokio::time::Instant;

use super::context::PdContext;
use super::heartbeat::handle;
use super::test_member::{self, DEADLINE, add_store};
use crate::catalog::RegionRecord;
use crate::metrics;

/// How often a condition is looked at while waiting for it.
const POLL: Duration = Duration::from_millis(20);

/// Polls the catalog's record of `region_id` until `cond` holds for it.
async fn wait_record(ctx: &PdContext, region_id: u64, what: &str, cond: impl Fn(&RegionRecord) -> bool) {
    let give_up = Instant::now() + DEADLINE;
    loop {
        if ctx.catalog.read().catalog.region(region_id).is_some_and(&cond) {
            return;
        }
        assert!(Instant::now() < give_up, "timed out waiting until {what}");
        tokio::time::sleep(POLL).await;
    }
}

fn send(ctx: &Arc<PdContext>, store_id: u64, payload: pdpb::store_heartbeat_request::Payload) {
    let msg = pdpb::StoreHeartbeatRequest { store_id, payload: Some(payload), route_deltas: false };
    handle(ctx, store_id, msg).expect("message handled");
}

fn heartbeat(region: &metapb::Region, store_id: u64, term: u64) -> pdpb::store_heartbeat_request::Payload {
    let leader = region.peers.iter().find(|p| p.store_id == store_id).copied();
    pdpb::store_heartbeat_request::Payload::Region(pdpb::RegionHeartbeat {
        region: Some(region.clone()),
        leader,
        term,
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_born_regions_leader_at_a_lower_term_than_its_parents_is_taken() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, pd) = test_member::start(test_member::config(&dir)).await;
    let ctx = server.context().clone();
    let stores = [add_store(&pd).await, add_store(&pd).await, add_store(&pd).await];
    let mut routes = ctx.catalog.subscribe();
    tokio::time::timeout(DEADLINE, routes.wait_for(|_| ctx.catalog.read().catalog.region_count() > 0))
        .await
        .expect("bootstrapped in time")
        .expect("routes channel open");
    let parent = ctx.catalog.read().catalog.regions().next().expect("region").region.clone();

    // The region's leader on the first store reaches term 9.
    send(&ctx, stores[0], heartbeat(&parent, stores[0], 9));
    wait_record(&ctx, parent.id, "the parent's leader is at term 9", |r| r.term == 9).await;

    // It splits the region at "k" and reports, as a store that does not lead
    // the new region (yet) does.
    let mut right = parent.clone();
    right.start_key = b"k".to_vec();
    right.region_epoch.as_mut().expect("epoch").version += 1;
    let mut left = right.clone();
    left.id = pd.alloc_id().await.expect("alloc id");
    (left.start_key, left.end_key) = (parent.start_key.clone(), b"k".to_vec());
    for p in &mut left.peers {
        p.id = pd.alloc_id().await.expect("alloc id");
    }
    let parent_leader = *right.peers.iter().find(|p| p.store_id == stores[0]).expect("peer");
    send(
        &ctx,
        stores[0],
        pdpb::store_heartbeat_request::Payload::Split(pdpb::SplitReport {
            regions: vec![left.clone(), right.clone()],
            leader: Some(parent_leader),
            term: 9,
            ..Default::default()
        }),
    );
    wait_record(&ctx, left.id, "the split is in the catalog", |_| true).await;

    // The new region's group (born at its own initial term) elects the
    // second store's peer at term 7: PD names it.
    send(&ctx, stores[1], heartbeat(&left, stores[1], 7));
    wait_record(&ctx, left.id, "the second store leads the new region at term 7", |r| {
        r.leader.map(|l| l.store_id) == Some(stores[1]) && r.term == 7
    })
    .await;

    // A leader of an older term of that region is refused, and counted as
    // PD and a store disagreeing on the leader.
    let mismatches = metrics::REGION_LEADER_MISMATCHES.get();
    let stale = metrics::REGION_REPORTS_REFUSED.with_label_values(&["stale_term"]).get();
    send(&ctx, stores[0], heartbeat(&left, stores[0], 6));
    assert!(metrics::REGION_LEADER_MISMATCHES.get() > mismatches);
    assert!(metrics::REGION_REPORTS_REFUSED.with_label_values(&["stale_term"]).get() > stale);
    let rec = ctx.catalog.read().catalog.region(left.id).cloned().expect("record");
    assert_eq!((rec.leader.map(|l| l.store_id), rec.term), (Some(stores[1]), 7));

    server.shutdown().await;
}
