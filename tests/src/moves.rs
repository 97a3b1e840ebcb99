//! Moving replicas the way an operator does, and checking what a store's
//! engine holds afterwards.

use std::path::Path;
use std::time::Duration;

use pd::client::PdClient;
use pd::error::PdError;
use proto::{pdpb, raftpb};

use crate::split::wait_operator;

/// Asks PD to move `region_id`'s replica from store `from` to store `to`
/// and waits until the operator succeeded and every Up store has the
/// result.
///
/// # Errors
///
/// PD's refusal, or the operator failing, timing out or being cancelled.
pub async fn move_region(
    pd: &PdClient,
    region_id: u64,
    from: u64,
    to: u64,
    deadline: Duration,
) -> Result<pdpb::Operator, PdError> {
    let op = start_move(pd, region_id, from, to).await?;
    wait_operator(pd, op.id, deadline).await
}

/// Asks PD to move a replica and returns the new operator at once.
///
/// # Errors
///
/// PD's refusal.
pub async fn start_move(pd: &PdClient, region_id: u64, from: u64, to: u64) -> Result<pdpb::Operator, PdError> {
    let req = pdpb::MoveRegionRequest { region_id, from_store_id: from, to_store_id: to };
    pd.call(|mut c| async move { c.move_region(req).await })
        .await?
        .operator
        .ok_or_else(|| PdError::Fatal("move answered without an operator".into()))
}

/// What the engine in `data_dir` holds of a region, read with the store
/// stopped: its local state row and the user keys in `[start, end)` (an
/// empty end is unbounded). The file is opened (and repaired, if the store
/// was killed) and closed again before this returns, so the store can
/// start on it again.
pub fn engine_contents(
    data_dir: &Path,
    region_id: u64,
    start: &[u8],
    end: &[u8],
) -> (Option<raftpb::RegionLocalState>, Vec<Vec<u8>>) {
    use prost::Message;
    use redb::ReadableDatabase;
    let db = redb::Database::open(data_dir.join("store.redb")).expect("open a stopped store's engine");
    let tx = db.begin_read().expect("read transaction");
    let states = tx.open_table(storenode::engine::REGION_STATE).expect("region states");
    let state = states
        .get(region_id)
        .expect("read the region state")
        .map(|v| raftpb::RegionLocalState::decode(v.value()).expect("decode the region state"));
    let data = tx.open_table(storenode::engine::DATA).expect("data");
    let keys = storenode::engine::data_range(&data, start, end)
        .expect("scan the engine")
        .map(|row| row.expect("read a row").0.value().to_vec())
        .collect();
    (state, keys)
}
