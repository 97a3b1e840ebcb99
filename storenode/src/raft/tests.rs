//! openraft's storage conformance suite on a region's log store and state
//! machine over the shared redb engine and group-commit writer.

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use proto::{metapb, raftpb};

use super::TypeConfig;
use super::log_store::RegionLogStore;
use super::state_machine::RegionStateMachine;
use crate::engine::Engine;

/// Region 7's stores in a fresh engine; with `seeded`, the engine also
/// holds region 3, split into region 4 whose raft state the split seeded,
/// so the suite runs next to seeded rows of other groups.
struct EngineBuilder {
    seeded: bool,
}

/// Splits region 3 (three voters) at `m`, seeding region 4, through its
/// state machine.
async fn seed_a_split(engine: &std::sync::Arc<Engine>) {
    use openraft::storage::RaftStateMachine;
    let parent = metapb::Region {
        id: 3,
        region_epoch: Some(metapb::RegionEpoch { conf_ver: 1, version: 1 }),
        peers: (1..=3).map(|i| metapb::Peer { id: 10 + i, store_id: i, role: 0 }).collect(),
        ..Default::default()
    };
    engine
        .save_region_state(raftpb::RegionLocalState { region: Some(parent.clone()), peer_id: 11, ..Default::default() })
        .await
        .expect("save region state");
    let mut sm = RegionStateMachine::open(engine.clone(), parent, 11).await.expect("open parent");
    let nodes: std::collections::BTreeMap<u64, super::PeerNode> =
        (1..=3).map(|i| (10 + i, super::PeerNode { store_id: i })).collect();
    let membership = openraft::Membership::new(vec![nodes.keys().copied().collect()], nodes).expect("membership");
    let log_id = |i| openraft::testing::log_id::<TypeConfig>(1, 11, i);
    let split = super::split::SplitCommand {
        split_key: b"m".to_vec(),
        new_region_id: 4,
        new_peer_ids: vec![21, 22, 23],
        conf_ver: 1,
        version: 1,
        left_keys: 0,
        left_size: 0,
        directive_id: 0,
    };
    let cmd =
        super::KvCommand { epoch_version: 1, op: super::KvOp::Split(split), request: None, clock: Default::default() };
    let entries = vec![
        super::Entry { log_id: log_id(1), payload: openraft::EntryPayload::Membership(membership) },
        super::Entry { log_id: log_id(2), payload: openraft::EntryPayload::Normal(cmd) },
    ];
    sm.apply(futures::stream::iter(entries.into_iter().map(|e| Ok((e, None))))).await.expect("apply split");
    assert!(engine.has_raft_data(4).expect("read"), "the split seeded region 4");
}

impl StoreBuilder<TypeConfig, RegionLogStore, RegionStateMachine, tempfile::TempDir> for EngineBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, RegionLogStore, RegionStateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = Engine::open(dir.path()).expect("open engine");
        if self.seeded {
            seed_a_split(&engine).await;
        }
        let region = metapb::Region {
            id: 7,
            region_epoch: Some(metapb::RegionEpoch { conf_ver: 1, version: 1 }),
            peers: vec![metapb::Peer { id: 1, store_id: 1, role: 0 }],
            ..Default::default()
        };
        engine
            .save_region_state(raftpb::RegionLocalState {
                region: Some(region.clone()),
                state: 0,
                peer_id: 1,
                ..Default::default()
            })
            .await
            .expect("save region state");
        let log = RegionLogStore::new(7, engine.clone());
        let sm = RegionStateMachine::open(engine, region, 1).await.expect("open state machine");
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_passes() -> Result<(), StorageError<TypeConfig>> {
    Suite::test_all(EngineBuilder { seeded: false }).await
}

/// The same suite with a split-seeded group in the engine: seeding writes
/// only the new region's rows, and every other group's storage behaves as
/// openraft requires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_passes_next_to_a_seeded_group() -> Result<(), StorageError<TypeConfig>> {
    Suite::test_all(EngineBuilder { seeded: true }).await
}
