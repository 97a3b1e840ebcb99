//! A split applied through a region's state machine: the parent shrinks,
//! the new region's raft state is seeded so openraft starts it at the
//! synthetic initial log id with the parent's membership, and refusals
//! change nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use openraft::storage::{RaftLogReader, RaftLogStorage, RaftStateMachine};
use openraft::{EntryPayload, Membership, StorageHelper};
use proto::{metapb, raftpb};
use redb::ReadableDatabase;

use super::*;
use crate::engine::{Engine, SESSIONS, io_err};
use crate::raft::log_store::RegionLogStore;
use crate::raft::state_machine::RegionStateMachine;
use crate::raft::{Entry, KvCommand, KvOp, PeerNode};

type Payload = openraft::type_config::alias::EntryPayloadOf<crate::raft::TypeConfig>;

fn parent() -> metapb::Region {
    metapb::Region {
        id: 7,
        start_key: Vec::new(),
        end_key: Vec::new(),
        region_epoch: Some(metapb::RegionEpoch { conf_ver: 2, version: 4 }),
        peers: (1..=3).map(|i| metapb::Peer { id: i, store_id: i * 100, role: 0 }).collect(),
    }
}

fn split_at(key: &str) -> SplitCommand {
    SplitCommand {
        split_key: key.as_bytes().to_vec(),
        new_region_id: 9,
        new_peer_ids: vec![11, 12, 13],
        conf_ver: 2,
        version: 4,
        left_keys: 1,
        left_size: 10,
        directive_id: 42,
    }
}

fn entry(index: u64, payload: Payload) -> Entry {
    Entry { log_id: openraft::testing::log_id::<crate::raft::TypeConfig>(3, 1, index), payload }
}

fn cmd(op: KvOp) -> KvCommand {
    KvCommand { epoch_version: 4, op, request: None, clock: Default::default() }
}

/// Region 7 on store 100 (peer 1), with voters 1, 2, 3 applied at index 1,
/// and a session of client 5.
async fn parent_engine(dir: &std::path::Path) -> (Arc<Engine>, RegionStateMachine) {
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
            tx.open_table(SESSIONS).map_err(io_err)?.insert((7, 5), b"session-5".as_slice()).map_err(io_err)?;
            Ok(())
        })
        .await
        .unwrap();
    let mut sm = RegionStateMachine::open(engine.clone(), parent(), 1).await.unwrap();
    let voters: BTreeMap<u64, PeerNode> = (1..=3).map(|i| (i, PeerNode { store_id: i * 100 })).collect();
    let membership = Membership::new(vec![voters.keys().copied().collect()], voters).unwrap();
    apply(&mut sm, vec![entry(1, EntryPayload::Membership(membership))]).await;
    (engine, sm)
}

async fn apply(sm: &mut RegionStateMachine, entries: Vec<Entry>) {
    let stream = futures::stream::iter(entries.into_iter().map(|e| Ok((e, None))));
    sm.apply(stream).await.unwrap();
}

#[tokio::test]
async fn a_split_seeds_the_new_region_for_openraft() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, mut sm) = parent_engine(dir.path()).await;
    apply(
        &mut sm,
        vec![
            entry(2, EntryPayload::Normal(cmd(KvOp::Put { key: b"b".to_vec(), value: b"1".to_vec() }))),
            entry(3, EntryPayload::Normal(cmd(KvOp::Split(split_at("m"))))),
            // Proposed before the split, applied after it: refused, since
            // the parent's range changed under it.
            entry(4, EntryPayload::Normal(cmd(KvOp::Put { key: b"c".to_vec(), value: b"2".to_vec() }))),
        ],
    )
    .await;
    assert_eq!(engine.get(b"c").unwrap(), None, "a write checked against the pre-split range must not apply");

    // The parent shrank to [m, ) with version + 1, in memory and on disk.
    let shrunk = sm.shared().region();
    assert_eq!((shrunk.start_key.as_slice(), shrunk.end_key.as_slice()), (b"m".as_slice(), b"".as_slice()));
    assert_eq!(shrunk.region_epoch, Some(metapb::RegionEpoch { conf_ver: 2, version: 5 }));
    assert_eq!(engine.region_state(7).unwrap().unwrap().region, Some(shrunk));

    // The new region [, m): the same stores under the new peer ids.
    let row = engine.region_state(9).unwrap().unwrap();
    assert_eq!(row.peer_id, 11);
    assert_eq!(row.state, raftpb::PeerState::Normal as i32);
    let new = row.region.unwrap();
    assert_eq!((new.start_key.as_slice(), new.end_key.as_slice()), (b"".as_slice(), b"m".as_slice()));
    assert_eq!(new.region_epoch, Some(metapb::RegionEpoch { conf_ver: 2, version: 5 }));
    assert_eq!(new.peers.iter().map(|p| (p.id, p.store_id)).collect::<Vec<_>>(), vec![(11, 100), (12, 200), (13, 300)]);

    // Its sessions are the parent's.
    let tx = engine.db.begin_read().unwrap();
    let sessions = tx.open_table(SESSIONS).unwrap();
    assert_eq!(sessions.get((9, 5)).unwrap().unwrap().value(), b"session-5");
    drop(sessions);
    drop(tx);

    // What openraft reads at startup: log purged and committed at the init
    // id, nothing to replay, the vote at the init term, and the parent's
    // voters mapped to the new peers, effective at the init id.
    let mut log = RegionLogStore::new(9, engine.clone());
    let mut new_sm = RegionStateMachine::open(engine.clone(), new.clone(), 11).await.unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(init_log_id()));
    assert_eq!(state.last_log_id, Some(init_log_id()));
    assert_eq!(log.read_vote().await.unwrap(), Some(init_vote()));
    assert_eq!(log.read_committed().await.unwrap(), Some(init_log_id()));
    let raft_state = StorageHelper::new(&mut log, &mut new_sm).get_initial_state().await.unwrap();
    assert_eq!(raft_state.log_ids.purged(), Some(&init_log_id()));
    assert_eq!(raft_state.log_ids.last(), Some(&init_log_id()));
    assert_eq!(raft_state.local_committed(), Some(&init_log_id()));
    assert_eq!(raft_state.vote_ref(), &init_vote());
    let membership = raft_state.membership_state.effective();
    assert_eq!(membership.log_id(), &Some(init_log_id()));
    assert_eq!(membership.voter_ids().collect::<BTreeSet<_>>(), BTreeSet::from([11, 12, 13]));
    // Nothing below the init index can be read or appended over: a replica
    // without the split needs a snapshot.
    assert!(log.try_get_log_entries(0..=RAFT_INIT_INDEX).await.unwrap().is_empty());
    let (applied, stored) = new_sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(init_log_id()));
    assert_eq!(stored.log_id(), &Some(init_log_id()));
}

#[tokio::test]
async fn refused_splits_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, mut sm) = parent_engine(dir.path()).await;
    let stale = SplitCommand { version: 3, ..split_at("m") };
    let outside = metapb::Region { start_key: b"c".to_vec(), ..parent() };
    assert!(matches!(refusal(&parent(), &stale), Some(KvReply::EpochNotMatch { .. })));
    assert!(matches!(refusal(&outside, &split_at("c")), Some(KvReply::KeyNotInRegion { .. })));
    assert!(matches!(refusal(&outside, &split_at("a")), Some(KvReply::KeyNotInRegion { .. })));
    let short = SplitCommand { new_peer_ids: vec![11], ..split_at("m") };
    assert!(refusal(&parent(), &short).is_some());
    apply(&mut sm, vec![entry(2, EntryPayload::Normal(cmd(KvOp::Split(stale))))]).await;
    assert_eq!(sm.shared().region(), parent());
    assert_eq!(engine.region_state(9).unwrap(), None);
    assert_eq!(engine.region_state(7).unwrap().unwrap().region, Some(parent()));
}

#[tokio::test]
async fn a_destroyed_new_region_is_not_seeded_again_and_a_later_vote_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, mut sm) = parent_engine(dir.path()).await;
    // A peer created for region 9's traffic voted at term 8 already.
    let mut log = RegionLogStore::new(9, engine.clone());
    let later = Vote::new(8, 12);
    log.save_vote(&later).await.unwrap();
    apply(&mut sm, vec![entry(2, EntryPayload::Normal(cmd(KvOp::Split(split_at("m")))))]).await;
    assert_eq!(log.read_vote().await.unwrap(), Some(later), "a vote never goes back");

    // On another store region 9's peer was destroyed before its parent split.
    let dir2 = tempfile::tempdir().unwrap();
    let (engine2, mut sm2) = parent_engine(dir2.path()).await;
    let tomb = raftpb::RegionLocalState {
        region: Some(metapb::Region { id: 9, ..Default::default() }),
        state: raftpb::PeerState::Tombstone as i32,
        peer_id: 11,
        ..Default::default()
    };
    engine2.save_region_state(tomb.clone()).await.unwrap();
    let put = |k: &str| cmd(KvOp::Put { key: k.as_bytes().to_vec(), value: b"v".to_vec() });
    apply(&mut sm2, vec![entry(2, EntryPayload::Normal(put("a"))), entry(3, EntryPayload::Normal(put("x")))]).await;
    apply(&mut sm2, vec![entry(4, EntryPayload::Normal(cmd(KvOp::Split(split_at("m")))))]).await;
    assert_eq!(engine2.region_state(9).unwrap(), Some(tomb));
    assert_eq!(engine2.get(b"a").unwrap(), None, "the destroyed region's keys have no owner here: deleted");
    assert_eq!(engine2.get(b"x").unwrap(), Some(b"v".to_vec()), "the parent's keys stay");
    assert!(!engine2.has_raft_data(9).unwrap());
    assert_eq!(sm2.shared().region().start_key, b"m".to_vec(), "the parent shrinks all the same");
}
