//! Building a region's snapshot file from one redb read transaction.
//!
//! The applied state, region meta, pairs and sessions all come from the
//! same read transaction, so the file is exactly the region's state at its
//! log id, while applies go on. Rows stream into the file through the
//! writer's bounded buffer: memory does not grow with the region.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use prost::Message;
use proto::raftpb;
use redb::ReadTransaction;

use super::format::{SnapshotHead, SnapshotWriter, WRITE_BUFFER};
use super::{file_name, sync_dir, temp_path};
use crate::disk::{self, Open};
use crate::engine::{APPLY_STATE, DATA, Engine, REGION_STATE, SESSIONS, data_range, io_err};
use crate::raft::apply_state::ApplyState;
use crate::raft::{SnapshotMeta, decode};

/// A snapshot just built: its meta, final path, an open handle to it, and
/// its size.
pub struct Built {
    pub meta: SnapshotMeta,
    pub path: PathBuf,
    pub file: File,
    pub bytes: u64,
}

/// Writes region `region_id`'s snapshot as of `tx` to its final name in the
/// engine's snapshot directory. Blocking: run it off the async workers.
///
/// # Errors
///
/// Read, decode or file failures; a region whose local state is missing or
/// says a snapshot is being installed (its keys are half old, half new).
pub fn build(engine: &Engine, region_id: u64, tx: &ReadTransaction) -> io::Result<Built> {
    let applied: ApplyState = match tx.open_table(APPLY_STATE).map_err(io_err)?.get(region_id).map_err(io_err)? {
        Some(v) => decode(v.value())?,
        None => ApplyState::default(),
    };
    let state = match tx.open_table(REGION_STATE).map_err(io_err)?.get(region_id).map_err(io_err)? {
        Some(v) => raftpb::RegionLocalState::decode(v.value()).map_err(io_err)?,
        None => return Err(io_err(format!("region {region_id} has no local state"))),
    };
    if state.state == raftpb::PeerState::Applying as i32 {
        return Err(io_err(format!(
            "region {region_id} is installing a snapshot: its keys are not a state to build from"
        )));
    }
    let region = state.region.unwrap_or_default();
    let meta = SnapshotMeta { last_log_id: applied.last_applied, last_membership: applied.membership };
    let head = SnapshotHead {
        meta: meta.clone(),
        region: region.encode_to_vec(),
        clock_ms: applied.clock_ms,
        last_sweep_ms: applied.last_sweep_ms,
    };
    let tmp = temp_path(&engine.snapshot_dir, &format!("region-{region_id}-build"));
    let disk = disk::current();
    let res = (|| {
        // Written through the store's disk: on the write-back disk a power
        // cut loses whatever the sync below has not covered.
        let file = disk.open(&tmp, Open::Create)?;
        let mut w = SnapshotWriter::new(file, &head, WRITE_BUFFER)?;
        let data = tx.open_table(DATA).map_err(io_err)?;
        let range = data_range(&data, &region.start_key, &region.end_key)?;
        for row in range {
            let (k, v) = row.map_err(io_err)?;
            w.pair(k.value(), v.value())?;
        }
        let sessions = tx.open_table(SESSIONS).map_err(io_err)?;
        for row in sessions.range((region_id, 0)..=(region_id, u64::MAX)).map_err(io_err)? {
            let (k, v) = row.map_err(io_err)?;
            w.session(k.value().1, v.value())?;
        }
        let (file, bytes) = w.finish()?;
        // Durable before it has its final name: a name always means a whole
        // file.
        file.sync_all()?;
        // The handle callers read the snapshot through, whatever happens
        // to its name later; every byte is on disk by now.
        let file = File::open(&tmp)?;
        Ok((file, bytes))
    })();
    let (file, bytes) = match res {
        Ok(v) => v,
        Err(e) => {
            let _ = disk.remove_file(&tmp);
            return Err(e);
        }
    };
    let index = meta.last_log_id.map_or(0, |l| l.index());
    let path = engine.snapshot_dir.join(file_name(region_id, index));
    disk.rename(&tmp, &path)?;
    sync_dir(&engine.snapshot_dir)?;
    Ok(Built { meta, path, file, bytes })
}
