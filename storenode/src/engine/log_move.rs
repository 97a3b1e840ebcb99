//! Opening a store written by an older build, whose raft log lived in a
//! redb file (its own `raft.redb`, or earlier the data file): its entries
//! and marks move into the log engine.

use std::io;
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableHandle};

use super::log_engine::LogEngine;
use super::{DATA_FILE, LOG_DIR, RAFT_LOG, RAFT_META, io_err};

/// Moves the raft tables of the layout where they lived in the data file:
/// copies them into the log (durably), then deletes them from the data
/// file. A crash in between copies them again on the next open.
pub(super) fn move_log_tables(data: &Database, log: &Arc<LogEngine>) -> io::Result<()> {
    if !copy_raft_tables(data, log)? {
        return Ok(());
    }
    let tx = data.begin_write().map_err(io_err)?;
    tx.delete_table(RAFT_LOG).map_err(io_err)?;
    tx.delete_table(RAFT_META).map_err(io_err)?;
    tx.commit().map_err(io_err)?;
    tracing::info!("moved the raft log from {DATA_FILE} to {LOG_DIR}/");
    Ok(())
}

/// Moves the raft log of the layout with a `raft.redb` at `path`: copies
/// it into the log (durably), then deletes the file.
pub(super) fn move_old_log_file(path: &Path, log: &Arc<LogEngine>) -> io::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    {
        let old = Database::open(path).map_err(|e| io_err(format!("{}: {e}", path.display())))?;
        copy_raft_tables(&old, log)?;
    }
    let disk = crate::disk::current();
    disk.remove_file(path)?;
    if let Some(dir) = path.parent() {
        disk.sync_dir(dir)?;
    }
    tracing::info!("moved the raft log from {} to {LOG_DIR}/", path.display());
    Ok(())
}

/// Copies every raft entry and mark of `db` into `log` as one durable
/// record. Returns whether `db` had raft tables at all.
fn copy_raft_tables(db: &Database, log: &Arc<LogEngine>) -> io::Result<bool> {
    let tx = db.begin_read().map_err(io_err)?;
    let present: Vec<String> = tx.list_tables().map_err(io_err)?.map(|t| t.name().to_string()).collect();
    let has = |name: &str| present.iter().any(|n| n == name);
    if !has(RAFT_LOG.name()) && !has(RAFT_META.name()) {
        return Ok(false);
    }
    let batch = log.batch();
    if has(RAFT_LOG.name()) {
        for row in tx.open_table(RAFT_LOG).map_err(io_err)?.iter().map_err(io_err)? {
            let (k, v) = row.map_err(io_err)?;
            let (region, index) = k.value();
            batch.append(region, index, v.value());
        }
    }
    if has(RAFT_META.name()) {
        for row in tx.open_table(RAFT_META).map_err(io_err)?.iter().map_err(io_err)? {
            let (k, v) = row.map_err(io_err)?;
            let (region, kind) = k.value();
            batch.put_meta(region, kind, v.value());
        }
    }
    batch.commit(true)?;
    Ok(true)
}
