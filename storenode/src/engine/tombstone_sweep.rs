//! Opening a store: raft state that tombstoned regions left in the log
//! goes.

use std::io;
use std::sync::Arc;

use prost::Message;
use proto::raftpb;
use redb::{Database, ReadableDatabase, ReadableTable};

use super::log_engine::LogEngine;
use super::{REGION_STATE, io_err};

/// Deletes whatever raft state tombstoned regions left in the log. A peer
/// is destroyed data file first (the tombstone is durable before its log
/// goes), so a crash in between leaves its log behind, and a later peer of
/// the same region on this store must not find it.
pub(super) fn clear_tombstones_raft_state(data: &Database, log: &Arc<LogEngine>) -> io::Result<()> {
    let tx = data.begin_read().map_err(io_err)?;
    let t = tx.open_table(REGION_STATE).map_err(io_err)?;
    let mut stale = Vec::new();
    for row in t.iter().map_err(io_err)? {
        let (k, v) = row.map_err(io_err)?;
        let state = raftpb::RegionLocalState::decode(v.value()).map_err(io_err)?;
        if state.state == raftpb::PeerState::Tombstone as i32 && log.has_state(k.value()) {
            stale.push(k.value());
        }
    }
    if stale.is_empty() {
        return Ok(());
    }
    let batch = log.batch();
    for &r in &stale {
        batch.clear(r);
    }
    batch.commit(true)?;
    tracing::info!(regions = ?stale, "cleared the raft state tombstoned regions left behind");
    Ok(())
}
