//! Opening a store: raft state that tombstoned regions left in the log
//! file goes.

use std::io;

use prost::Message;
use proto::raftpb;
use redb::{Database, ReadableDatabase, ReadableTable};

use super::{RAFT_LOG, RAFT_META, REGION_STATE, io_err};

/// Deletes whatever raft state tombstoned regions left in the log file. A
/// peer is destroyed data file first (the tombstone is durable before its
/// log goes), so a crash in between leaves its log behind, and a later
/// peer of the same region on this store must not find it.
pub(super) fn clear_tombstones_raft_state(data: &Database, log: &Database) -> io::Result<()> {
    let tombstones: Vec<u64> = {
        let tx = data.begin_read().map_err(io_err)?;
        let t = tx.open_table(REGION_STATE).map_err(io_err)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(io_err)? {
            let (k, v) = row.map_err(io_err)?;
            let state = raftpb::RegionLocalState::decode(v.value()).map_err(io_err)?;
            if state.state == raftpb::PeerState::Tombstone as i32 {
                out.push(k.value());
            }
        }
        out
    };
    let stale: Vec<u64> = {
        let tx = log.begin_read().map_err(io_err)?;
        let entries = tx.open_table(RAFT_LOG).map_err(io_err)?;
        let marks = tx.open_table(RAFT_META).map_err(io_err)?;
        let mut out = Vec::new();
        for r in tombstones {
            let has_entries = entries.range((r, 0)..=(r, u64::MAX)).map_err(io_err)?.next().is_some();
            let has_marks = marks.range((r, 0)..=(r, u8::MAX)).map_err(io_err)?.next().is_some();
            if has_entries || has_marks {
                out.push(r);
            }
        }
        out
    };
    if stale.is_empty() {
        return Ok(());
    }
    let tx = log.begin_write().map_err(io_err)?;
    {
        let mut entries = tx.open_table(RAFT_LOG).map_err(io_err)?;
        let mut marks = tx.open_table(RAFT_META).map_err(io_err)?;
        for &r in &stale {
            entries.retain_in((r, 0)..=(r, u64::MAX), |_, _| false).map_err(io_err)?;
            marks.retain_in((r, 0)..=(r, u8::MAX), |_, _| false).map_err(io_err)?;
        }
    }
    tx.commit().map_err(io_err)?;
    tracing::info!(regions = ?stale, "cleared the raft state tombstoned regions left behind");
    Ok(())
}
