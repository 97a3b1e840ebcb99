//! A region's raft log, vote and commit/purge marks in the store's shared
//! engine. Reads go straight to redb; every write goes through the
//! group-commit writer and returns once durable, so appends of many regions
//! share one fsync and each region's writes keep their order.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::OptionalSend;
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use redb::ReadableDatabase;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Entry, LogId, TypeConfig, Vote, decode, encode};
use crate::engine::{Engine, RAFT_LOG, RAFT_META, io_err};
use crate::metrics;

const VOTE: u8 = 1;
const COMMITTED: u8 = 2;
const PURGED: u8 = 3;

#[derive(Clone)]
pub struct RegionLogStore {
    region_id: u64,
    engine: Arc<Engine>,
}

impl RegionLogStore {
    pub fn new(region_id: u64, engine: Arc<Engine>) -> Self {
        RegionLogStore { region_id, engine }
    }

    fn read_meta<T: DeserializeOwned>(&self, kind: u8) -> io::Result<Option<T>> {
        let tx = self.engine.db.begin_read().map_err(io_err)?;
        let t = tx.open_table(RAFT_META).map_err(io_err)?;
        match t.get((self.region_id, kind)).map_err(io_err)? {
            None => Ok(None),
            Some(v) => decode(v.value()).map(Some),
        }
    }

    async fn write_meta<T: Serialize>(&self, kind: u8, v: &T) -> io::Result<()> {
        let bytes = encode(v)?;
        let region = self.region_id;
        self.engine
            .writer
            .write(move |tx| {
                tx.open_table(RAFT_META).map_err(io_err)?.insert((region, kind), bytes.as_slice()).map_err(io_err)?;
                Ok(())
            })
            .await
    }

    /// Deletes the region's whole raft state (log and marks): the peer is
    /// being destroyed.
    ///
    /// # Errors
    ///
    /// Write failures.
    pub async fn destroy(&self) -> io::Result<()> {
        let region = self.region_id;
        self.engine
            .writer
            .write(move |tx| {
                tx.open_table(RAFT_LOG)
                    .map_err(io_err)?
                    .retain_in((region, 0)..=(region, u64::MAX), |_, _| false)
                    .map_err(io_err)?;
                tx.open_table(RAFT_META)
                    .map_err(io_err)?
                    .retain_in((region, 0)..=(region, u8::MAX), |_, _| false)
                    .map_err(io_err)?;
                Ok(())
            })
            .await
    }
}

/// Seeds a split-born region's raft state inside the split's transaction:
/// no entries, the log purged and committed up to `init`, and `vote` unless
/// a peer created for the region's raft traffic already voted at a term not
/// below it (a vote is a promise that must never go back).
///
/// # Errors
///
/// Storage and decode failures.
pub fn seed(tx: &redb::WriteTransaction, region: u64, init: LogId, vote: Vote) -> io::Result<()> {
    use redb::ReadableTable;
    tx.open_table(RAFT_LOG)
        .map_err(io_err)?
        .retain_in((region, 0)..=(region, u64::MAX), |_, _| false)
        .map_err(io_err)?;
    let mut meta = tx.open_table(RAFT_META).map_err(io_err)?;
    let voted: Option<Vote> = match meta.get((region, VOTE)).map_err(io_err)? {
        Some(v) => Some(decode(v.value())?),
        None => None,
    };
    if voted.is_none_or(|v| v.leader_id().term < vote.leader_id().term) {
        meta.insert((region, VOTE), encode(&vote)?.as_slice()).map_err(io_err)?;
    }
    let init = encode(&Some(init))?;
    meta.insert((region, COMMITTED), init.as_slice()).map_err(io_err)?;
    meta.insert((region, PURGED), init.as_slice()).map_err(io_err)?;
    Ok(())
}

impl RaftLogReader<TypeConfig> for RegionLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        let r = self.region_id;
        let start = match range.start_bound() {
            Bound::Included(i) => Bound::Included((r, *i)),
            Bound::Excluded(i) => Bound::Excluded((r, *i)),
            Bound::Unbounded => Bound::Included((r, 0)),
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Bound::Included((r, *i)),
            Bound::Excluded(i) => Bound::Excluded((r, *i)),
            Bound::Unbounded => Bound::Included((r, u64::MAX)),
        };
        let tx = self.engine.db.begin_read().map_err(io_err)?;
        let t = tx.open_table(RAFT_LOG).map_err(io_err)?;
        let mut out = Vec::new();
        for row in t.range::<(u64, u64)>((start, end)).map_err(io_err)? {
            let (_, v) = row.map_err(io_err)?;
            out.push(decode(v.value())?);
        }
        Ok(out)
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        self.read_meta(VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for RegionLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let purged: Option<LogId> = self.read_meta::<Option<LogId>>(PURGED)?.flatten();
        let tx = self.engine.db.begin_read().map_err(io_err)?;
        let t = tx.open_table(RAFT_LOG).map_err(io_err)?;
        let r = self.region_id;
        let last = match t.range((r, 0)..=(r, u64::MAX)).map_err(io_err)?.next_back() {
            Some(row) => Some(decode::<Entry>(row.map_err(io_err)?.1.value())?.log_id()),
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

    /// Lazy: the committed mark only saves a restarted peer from waiting
    /// for its leader to tell it again, so it rides along with the next
    /// durable write instead of costing an fsync of its own.
    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        let bytes = encode(&committed)?;
        let region = self.region_id;
        self.engine
            .writer
            .write_lazy(move |tx| {
                tx.open_table(RAFT_META)
                    .map_err(io_err)?
                    .insert((region, COMMITTED), bytes.as_slice())
                    .map_err(io_err)?;
                Ok(())
            })
            .await
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        Ok(self.read_meta::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let rows: Vec<(u64, Vec<u8>)> =
            entries.into_iter().map(|e| Ok((e.index(), encode(&e)?))).collect::<io::Result<_>>()?;
        let n = rows.len() as u64;
        let region = self.region_id;
        let res = self
            .engine
            .writer
            .write(move |tx| {
                let mut t = tx.open_table(RAFT_LOG).map_err(io_err)?;
                for (index, bytes) in &rows {
                    t.insert((region, *index), bytes.as_slice()).map_err(io_err)?;
                }
                Ok(())
            })
            .await;
        metrics::RAFT_APPENDS.inc();
        metrics::RAFT_ENTRIES_APPENDED.inc_by(n);
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
        let r = self.region_id;
        let from = last_log_id.map_or(Bound::Included((r, 0)), |l| Bound::Excluded((r, l.index())));
        self.engine
            .writer
            .write(move |tx| {
                tx.open_table(RAFT_LOG)
                    .map_err(io_err)?
                    .retain_in::<(u64, u64), _>((from, Bound::Included((r, u64::MAX))), |_, _| false)
                    .map_err(io_err)?;
                Ok(())
            })
            .await
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        let r = self.region_id;
        let bytes = encode(&Some(log_id))?;
        let upto = log_id.index();
        self.engine
            .writer
            .write(move |tx| {
                tx.open_table(RAFT_META).map_err(io_err)?.insert((r, PURGED), bytes.as_slice()).map_err(io_err)?;
                tx.open_table(RAFT_LOG).map_err(io_err)?.retain_in((r, 0)..=(r, upto), |_, _| false).map_err(io_err)?;
                Ok(())
            })
            .await
    }
}
