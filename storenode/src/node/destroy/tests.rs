//! A destroy racing its peer's state-machine worker: a lagging replica of
//! region 7 has 7's split (creating region 9) queued to apply when PD's
//! routes remove it from 7.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, Membership};
use pd::client::PdClient;
use proto::{metapb, raftpb};
use redb::ReadableDatabase;
use tokio::sync::mpsc;

use super::DestroyReason;
use crate::config::StoreConfig;
use crate::engine::{APPLY_STATE, DATA, Engine, SESSIONS, io_err};
use crate::metrics;
use crate::node::{Node, PeerOrigin, PeerRefused};
use crate::raft::fence;
use crate::raft::split::{SplitCommand, split_regions};
use crate::raft::state_machine::RegionStateMachine;
use crate::raft::{Entry, KvCommand, KvOp, PeerNode, TypeConfig, Vote, log_store};

const STORE: u64 = 1;
const WAIT: Duration = Duration::from_secs(10);

/// Region 7, everything, with voters 1 (this store), 2 and 3.
fn parent() -> metapb::Region {
    metapb::Region {
        id: 7,
        start_key: Vec::new(),
        end_key: Vec::new(),
        region_epoch: Some(metapb::RegionEpoch { conf_ver: 2, version: 4 }),
        peers: (1..=3).map(|i| metapb::Peer { id: i, store_id: i, role: 0 }).collect(),
    }
}

/// 7 splits at `m`: region 9 takes `["", m)`.
fn split() -> SplitCommand {
    SplitCommand {
        split_key: b"m".to_vec(),
        new_region_id: 9,
        new_peer_ids: vec![11, 12, 13],
        conf_ver: 2,
        version: 4,
        left_keys: 2,
        left_size: 8,
        directive_id: 0,
    }
}

type Payload = openraft::type_config::alias::EntryPayloadOf<TypeConfig>;

fn entry(index: u64, payload: Payload) -> Entry {
    Entry { log_id: openraft::testing::log_id::<TypeConfig>(3, 1, index), payload }
}

fn split_entry() -> Entry {
    let cmd = KvCommand { epoch_version: 4, op: KvOp::Split(split()), request: None, clock: Default::default() };
    entry(2, EntryPayload::Normal(cmd))
}

async fn apply(sm: &mut RegionStateMachine, entries: Vec<Entry>) -> std::io::Result<()> {
    sm.apply(futures::stream::iter(entries.into_iter().map(|e| Ok((e, None))))).await
}

/// A store's engine holding region 7 (peer 1) applied to index 1, with
/// keys on both sides of `m` and a session.
async fn engine_with_parent(dir: &std::path::Path) -> Arc<Engine> {
    let engine = Engine::open(dir).unwrap();
    engine
        .save_region_state(raftpb::RegionLocalState {
            region: Some(parent()),
            state: raftpb::PeerState::Normal as i32,
            peer_id: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    engine
        .writer
        .write(|tx| {
            let mut data = tx.open_table(DATA).map_err(io_err)?;
            for k in ["a1", "b1", "x1"] {
                data.insert(k.as_bytes(), format!("v-{k}").as_bytes()).map_err(io_err)?;
            }
            tx.open_table(SESSIONS).map_err(io_err)?.insert((7, 5), b"session-5".as_slice()).map_err(io_err)?;
            // The log purged up to what the state machine applied, as after
            // a snapshot: the group starts consistent.
            log_store::seed(tx, 7, openraft::testing::log_id::<TypeConfig>(3, 1, 1), Vote::new(3, 0))
        })
        .await
        .unwrap();
    let mut sm = RegionStateMachine::open(engine.clone(), parent(), 1).await.unwrap();
    let voters: BTreeMap<u64, PeerNode> = (1..=3).map(|i| (i, PeerNode { store_id: i })).collect();
    let membership = Membership::new(vec![voters.keys().copied().collect()], voters).unwrap();
    apply(&mut sm, vec![entry(1, EntryPayload::Membership(membership))]).await.unwrap();
    engine
}

fn node(engine: Arc<Engine>) -> Arc<Node> {
    // Nothing here talks to PD; the client connects lazily.
    let pd = Arc::new(PdClient::new(&["127.0.0.1:1".to_string()]).expect("pd client"));
    let (events, _) = mpsc::unbounded_channel();
    let routes = Arc::new(crate::routes::RouteTable::default());
    Node::new(STORE, StoreConfig::default(), "127.0.0.1:0".into(), engine, routes, pd, events).expect("node")
}

/// Region 7's rows that a destroy must leave gone: its applied state and
/// sessions.
fn parent_rows(engine: &Engine) -> (bool, usize) {
    let tx = engine.db.begin_read().unwrap();
    let applied = tx.open_table(APPLY_STATE).unwrap().get(7).unwrap().is_some();
    let sessions = tx.open_table(SESSIONS).unwrap().range((7, 0)..=(7, u64::MAX)).unwrap().count();
    (applied, sessions)
}

async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_queued_behind_a_destroy_neither_seeds_over_deleted_keys_nor_leaves_a_ghost() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_parent(dir.path()).await;
    let node = node(engine.clone());
    node.start_existing_peers().await.unwrap();
    let peer = node.peer(7).expect("region 7 started");
    assert!(node.is_initialized(7));
    let fenced_before = metrics::FENCED_JOBS.with_label_values(&["apply"]).get();

    // The split reaches the state machine while the writer is busy: its
    // job waits in the queue, as on a lagging replica.
    let hold = engine.writer.hold().await;
    let mut sm = RegionStateMachine::resume(engine.clone(), peer.shared.clone());
    let applying = tokio::spawn(async move { apply(&mut sm, vec![split_entry()]).await });
    until("the split's job is queued", || engine.writer.pending_jobs() == 1).await;

    // PD's routes remove this store's replica of 7.
    let destroying = {
        let node = node.clone();
        tokio::spawn(async move { node.destroy_peer(7, 1, DestroyReason::Routes).await })
    };
    until("the destroy raised the fence", || peer.shared.fence.is_raised()).await;
    // It waits for the worker's call: nothing looked at, nothing queued.
    assert!(node.is_initialized(7), "region 7 still indexed while the worker runs");
    assert_eq!(engine.writer.pending_jobs(), 1);
    hold.release().await;

    let e = tokio::time::timeout(WAIT, applying).await.unwrap().unwrap().expect_err("the split is fenced");
    assert!(fence::is_fenced(&e), "{e}");
    tokio::time::timeout(WAIT, destroying).await.unwrap().unwrap().expect("destroyed");
    assert!(metrics::FENCED_JOBS.with_label_values(&["apply"]).get() > fenced_before);

    // No ghost range, and nothing of 7 but its tombstone.
    assert!(node.peer(7).is_none());
    assert_eq!(node.ranges.lock().unwrap().len(), 0, "no range left in the index");
    assert_eq!(parent_rows(&engine), (false, 0), "no applied state or session of region 7");
    let row = engine.region_state(7).unwrap().unwrap();
    assert_eq!(row.state, raftpb::PeerState::Tombstone as i32);
    // Region 9 was not seeded here over keys the destroy deleted: no
    // initialized voter without data can start from it.
    assert!(engine.region_state(9).unwrap().is_none(), "region 9 not seeded");
    assert!(!engine.has_raft_data(9).unwrap());
    assert_eq!(engine.get(b"x1").unwrap(), None, "region 7's keys are gone");
    // An apply the worker still had queued behind the split rewrites
    // nothing after the tombstone.
    let put = KvCommand {
        epoch_version: 4,
        op: KvOp::Put { key: b"x2".to_vec(), value: b"late".to_vec() },
        request: None,
        clock: Default::default(),
    };
    let mut late = RegionStateMachine::resume(engine.clone(), peer.shared.clone());
    let e = apply(&mut late, vec![entry(3, EntryPayload::Normal(put))]).await.expect_err("fenced");
    assert!(fence::is_fenced(&e), "{e}");
    assert_eq!(parent_rows(&engine), (false, 0), "still no applied state or session of region 7");
    assert_eq!(engine.get(b"x2").unwrap(), None);

    // Region 9's replica here catches up from its leader, by snapshot: a
    // store that applied the split in time builds it.
    let src_dir = tempfile::tempdir().unwrap();
    let src = engine_with_parent(src_dir.path()).await;
    let mut src_parent = RegionStateMachine::open(src.clone(), parent(), 1).await.unwrap();
    apply(&mut src_parent, vec![split_entry()]).await.unwrap();
    let (x, _) = split_regions(&parent(), &split());
    let snap = RegionStateMachine::open(src.clone(), x.clone(), 11).await.unwrap().build_snapshot().await.unwrap();

    let x_peer = node.start_peer(x.clone(), 11, PeerOrigin::RaftMessage).await.expect("a later peer of region 9");
    let file = crate::raft::snapshot::region_of(&snap.snapshot.path).unwrap();
    node.admit_snapshot(&x_peer, &x, &file).expect("region 9's keys are free here");
    let raft = x_peer.raft().expect("live");
    tokio::time::timeout(WAIT, raft.install_full_snapshot(Vote::new_committed(6, 12), snap))
        .await
        .expect("installed in time")
        .expect("installed");

    assert_eq!(node.peer_for_key(b"a1").map(|p| p.region_id()), Some(9), "region 9 serves its keys here");
    for k in ["a1", "b1"] {
        assert_eq!(engine.get(k.as_bytes()).unwrap().as_deref(), Some(format!("v-{k}").as_bytes()), "{k}");
    }
    assert_eq!(node.ranges.lock().unwrap().len(), 1, "only region 9 is indexed");
    node.shutdown().await;
}

/// Raft traffic for region 7 that found its peer before the destroy (a
/// snapshot still streaming in, an append in flight) claims data for it
/// only after the destroy took 7 out of the index. The claim used to
/// insert 7's range again: a ghost range no peer serves, refusing the
/// regions that own those keys until a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_for_a_peer_being_destroyed_leaves_no_ghost_range() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_parent(dir.path()).await;
    let node = node(engine.clone());
    node.start_existing_peers().await.unwrap();
    // What the transport holds once it found the peer.
    let peer = node.peer(7).expect("region 7 started");
    tokio::time::timeout(WAIT, node.destroy_peer(7, 1, DestroyReason::Routes))
        .await
        .expect("destroyed in time")
        .expect("destroyed");
    assert_eq!(node.ranges.lock().unwrap().len(), 0);

    let before = metrics::PEER_REFUSALS.with_label_values(&["snapshot", "destroyed"]).get();
    let r = node.admit_snapshot(&peer, &parent(), &parent());
    assert!(matches!(r, Err(PeerRefused::Destroyed { region_id: 7, peer_id: 1 })), "{r:?}");
    assert_eq!(metrics::PEER_REFUSALS.with_label_values(&["snapshot", "destroyed"]).get(), before + 1);
    let r = node.admit_data(&peer, &parent(), "raft_message");
    assert!(matches!(r, Err(PeerRefused::Destroyed { region_id: 7, peer_id: 1 })), "{r:?}");
    assert_eq!(node.ranges.lock().unwrap().len(), 0, "no ghost range of region 7");

    // The keys are free for the region that owns them now.
    let (x, _) = split_regions(&parent(), &split());
    let x_peer = node.start_peer(x.clone(), 11, PeerOrigin::RaftMessage).await.expect("a peer of region 9");
    node.admit_data(&x_peer, &x, "raft_message").expect("region 9's keys are free here");
    node.shutdown().await;
}

/// A raft core that outlives the destroy's wait for it to stop (a stalled
/// disk) writes a vote and entries after the destroy cleared region 7's
/// raft state. They used to land: a later peer of region 7 on this store
/// would have found raft data it never wrote, started initialized on it,
/// and (its row `Normal` again) kept it across restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_log_writes_after_the_destroy_leave_no_raft_state() {
    use openraft::AsyncRuntime;
    use openraft::async_runtime::Oneshot;
    use openraft::storage::{IOFlushed, RaftLogStorage};

    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_parent(dir.path()).await;
    let node = node(engine.clone());
    node.start_existing_peers().await.unwrap();
    let peer = node.peer(7).expect("region 7 started");
    // The log store the peer's raft core writes through.
    let mut log =
        log_store::RegionLogStore::new(peer.shared.region_id, engine.clone()).with_fence(peer.shared.fence.clone());
    tokio::time::timeout(WAIT, node.destroy_peer(7, 1, DestroyReason::Routes))
        .await
        .expect("destroyed in time")
        .expect("destroyed");
    assert!(!engine.log.has_state(7) && !engine.has_raft_data(7).unwrap(), "the destroy cleared 7's raft state");

    let before = metrics::FENCED_JOBS.with_label_values(&["log"]).get();
    let e = log.save_vote(&Vote::new(4, 1)).await.expect_err("a vote after the destroy is fenced");
    assert!(fence::is_fenced(&e), "{e}");
    let (tx, flushed) = <<openraft::impls::TokioRuntime as AsyncRuntime>::Oneshot as Oneshot>::channel();
    let put = KvCommand {
        epoch_version: 4,
        op: KvOp::Put { key: b"x3".to_vec(), value: b"late".to_vec() },
        request: None,
        clock: Default::default(),
    };
    log.append(vec![entry(2, EntryPayload::Normal(put))], IOFlushed::signal(tx)).await.expect("queued");
    let e = tokio::time::timeout(WAIT, flushed).await.unwrap().unwrap().expect_err("an append after the destroy");
    assert!(fence::is_fenced(&e), "{e}");
    assert_eq!(metrics::FENCED_JOBS.with_label_values(&["log"]).get(), before + 2);
    assert!(!engine.log.has_state(7), "no vote or entry of region 7 written");
    assert!(!engine.has_raft_data(7).unwrap(), "a later peer of region 7 would start uninitialized");
    node.shutdown().await;
}
