//! Opening a store written by an older build, whose raft tables lived in
//! the data file: they move to the raft log file.

use std::io;

use redb::{
    Database, Key, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, TableHandle, WriteTransaction,
};

use super::{DATA_FILE, LOG_FILE, RAFT_LOG, RAFT_META, io_err, txn};

/// Moves the raft tables of an older layout, where they lived in the data
/// file, into the log file: copies them (durably), then deletes them from
/// the data file. A crash in between copies them again on the next open.
pub(super) fn move_log_tables(data: &Database, log: &Database) -> io::Result<()> {
    let present: Vec<String> = {
        let tx = data.begin_read().map_err(io_err)?;
        tx.list_tables().map_err(io_err)?.map(|t| t.name().to_string()).collect()
    };
    if !present.iter().any(|n| txn::is_log_table(n)) {
        return Ok(());
    }
    {
        let from = data.begin_read().map_err(io_err)?;
        let to = log.begin_write().map_err(io_err)?;
        let has = |def: &str| present.iter().any(|n| n == def);
        if has(RAFT_LOG.name()) {
            copy(&from, &to, RAFT_LOG)?;
        }
        if has(RAFT_META.name()) {
            copy(&from, &to, RAFT_META)?;
        }
        to.commit().map_err(io_err)?;
    }
    let tx = data.begin_write().map_err(io_err)?;
    tx.delete_table(RAFT_LOG).map_err(io_err)?;
    tx.delete_table(RAFT_META).map_err(io_err)?;
    tx.commit().map_err(io_err)?;
    tracing::info!("moved the raft log from {DATA_FILE} to {LOG_FILE}");
    Ok(())
}

/// Copies every row of `def` from `from` into the same table of `to`.
fn copy<K: Key + 'static>(
    from: &ReadTransaction,
    to: &WriteTransaction,
    def: TableDefinition<K, &'static [u8]>,
) -> io::Result<()> {
    let src = from.open_table(def).map_err(io_err)?;
    let mut dst = to.open_table(def).map_err(io_err)?;
    for row in src.iter().map_err(io_err)? {
        let (k, v) = row.map_err(io_err)?;
        dst.insert(k.value(), v.value()).map_err(io_err)?;
    }
    Ok(())
}
