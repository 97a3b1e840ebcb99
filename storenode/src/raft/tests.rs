//! openraft's storage conformance suite on a region's log store and state
//! machine over the shared redb engine and group-commit writer.

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use proto::{metapb, raftpb};

use super::TypeConfig;
use super::log_store::RegionLogStore;
use super::state_machine::RegionStateMachine;
use crate::engine::Engine;

struct EngineBuilder;

impl StoreBuilder<TypeConfig, RegionLogStore, RegionStateMachine, tempfile::TempDir> for EngineBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, RegionLogStore, RegionStateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = Engine::open(dir.path()).expect("open engine");
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
    Suite::test_all(EngineBuilder).await
}
