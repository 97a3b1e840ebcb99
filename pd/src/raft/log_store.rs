//! The PD raft log in redb: entries by index, and the vote, last purged and
//! committed log ids in a meta table.
//!
//! Every write is one redb transaction with immediate durability (one
//! fsync), committed on a blocking thread, and completes before the next
//! write starts: openraft requires vote and log writes to land in submission
//! order. PD's write rate is low (store registrations, region changes), so
//! there is no group commit here; the storage nodes have one.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{OptionalSend, entry::RaftEntry};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Entry, LogId, TypeConfig, Vote, io_err};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
const LOG_META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_log_meta");
const VOTE: &str = "vote";
const PURGED: &str = "last_purged";
const COMMITTED: &str = "committed";

#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

impl LogStore {
    /// Opens (creating if needed) the log tables in `db`.
    ///
    /// # Errors
    ///
    /// When the tables cannot be created.
    pub fn open(db: Arc<Database>) -> io::Result<Self> {
        let tx = db.begin_write().map_err(io_err)?;
        tx.open_table(LOG).map_err(io_err)?;
        tx.open_table(LOG_META).map_err(io_err)?;
        tx.commit().map_err(io_err)?;
        Ok(LogStore { db })
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &str) -> io::Result<Option<T>> {
        let tx = self.db.begin_read().map_err(io_err)?;
        let table = tx.open_table(LOG_META).map_err(io_err)?;
        match table.get(key).map_err(io_err)? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(v.value()).map(Some).map_err(io_err),
        }
    }

    /// Runs one write transaction on a blocking thread and waits for its
    /// durable commit.
    async fn write(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> io::Result<()> + Send + 'static,
    ) -> io::Result<()> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let tx = db.begin_write().map_err(io_err)?;
            f(&tx)?;
            tx.commit().map_err(io_err)
        })
        .await
        .map_err(io_err)?
    }

    async fn write_meta<T: Serialize>(&self, key: &'static str, value: &T) -> io::Result<()> {
        let bytes = serde_json::to_vec(value).map_err(io_err)?;
        self.write(move |tx| {
            tx.open_table(LOG_META).map_err(io_err)?.insert(key, bytes.as_slice()).map_err(io_err)?;
            Ok(())
        })
        .await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        let tx = self.db.begin_read().map_err(io_err)?;
        let table = tx.open_table(LOG).map_err(io_err)?;
        let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
        let mut out = Vec::new();
        for row in table.range::<u64>(bounds).map_err(io_err)? {
            let (_, v) = row.map_err(io_err)?;
            out.push(serde_json::from_slice(v.value()).map_err(io_err)?);
        }
        Ok(out)
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        self.read_meta(VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let purged: Option<LogId> = self.read_meta(PURGED)?;
        let tx = self.db.begin_read().map_err(io_err)?;
        let table = tx.open_table(LOG).map_err(io_err)?;
        let last = match table.last().map_err(io_err)? {
            Some((_, v)) => Some(serde_json::from_slice::<Entry>(v.value()).map_err(io_err)?.log_id()),
            None => purged,
        };
        Ok(LogState { last_purged_log_id: purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        self.write_meta(VOTE, vote).await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        self.write_meta(COMMITTED, &committed).await
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        Ok(self.read_meta::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let rows: Vec<(u64, Vec<u8>)> = entries
            .into_iter()
            .map(|e| Ok((e.index(), serde_json::to_vec(&e).map_err(io_err)?)))
            .collect::<io::Result<_>>()?;
        let res = self
            .write(move |tx| {
                let mut table = tx.open_table(LOG).map_err(io_err)?;
                for (index, bytes) in &rows {
                    table.insert(*index, bytes.as_slice()).map_err(io_err)?;
                }
                Ok(())
            })
            .await;
        // The commit above was durable (one fsync): report it, failure
        // included, since a failed log write must stop this member.
        match res {
            Ok(()) => {
                callback.io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.io_completed(Err(io::Error::new(e.kind(), e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        let from = last_log_id.map_or(Bound::Unbounded, |l| Bound::Excluded(l.index()));
        self.write(move |tx| {
            let mut table = tx.open_table(LOG).map_err(io_err)?;
            table.retain_in::<u64, _>((from, Bound::Unbounded), |_, _| false).map_err(io_err)?;
            Ok(())
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        let bytes = serde_json::to_vec(&Some(log_id)).map_err(io_err)?;
        let upto = log_id.index();
        self.write(move |tx| {
            tx.open_table(LOG_META).map_err(io_err)?.insert(PURGED, bytes.as_slice()).map_err(io_err)?;
            let mut table = tx.open_table(LOG).map_err(io_err)?;
            table.retain_in::<u64, _>(..=upto, |_, _| false).map_err(io_err)?;
            Ok(())
        })
        .await
    }
}
