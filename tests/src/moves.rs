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

/// The user keys in `[start, end)` (empty end: unbounded) that the engine
/// in `data_dir` holds, read with the store stopped.
pub fn engine_keys(data_dir: &Path, start: &[u8], end: &[u8]) -> Vec<Vec<u8>> {
    let engine = storenode::engine::Engine::open(data_dir).expect("open a stopped store's engine");
    engine.scan(start, end, usize::MAX).expect("scan the engine").into_iter().map(|(k, _)| k).collect()
}

/// The engine's local state row of `region_id` in `data_dir`, read with the
/// store stopped.
pub fn engine_region_state(data_dir: &Path, region_id: u64) -> Option<raftpb::RegionLocalState> {
    let engine = storenode::engine::Engine::open(data_dir).expect("open a stopped store's engine");
    engine.region_state(region_id).expect("read the region state")
}
