//! A region's raft log, vote and commit/purge marks in the store's raft
//! log file. Every write goes through the group-commit writer, so appends of
//! many regions share one fsync and each region's writes keep their order.
//!
//! An append returns once queued, with its entries readable from the
//! [`LogCache`], and tells openraft from the writer thread when they are on
//! disk: the leader replicates while its own log write runs. Votes,
//! truncations and purges return once durable.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use openraft::OptionalSend;
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use redb::ReadableDatabase;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::log_cache::LogCache;
use super::stage_clock::StageClock;
use super::{Entry, LogId, TypeConfig, Vote, decode, encode};
use crate::engine::{Engine, RAFT_LOG, RAFT_META, Txn, io_err};
use crate::metrics;

const VOTE: u8 = 1;
const COMMITTED: u8 = 2;
const PURGED: u8 = 3;

#[derive(Clone)]
pub struct RegionLogStore {
    region_id: u64,
    engine: Arc<Engine>,
    cache: Arc<Mutex<LogCache>>,
    /// This peer's id and its stage clock: entries of its own terms are
    /// timed from the moment they are queued.
    stages: Option<(u64, Arc<StageClock>)>,
    /// The committed mark last written, and when.
    committed_saved: Option<(u64, Instant)>,
}

/// The committed mark is written once it has moved this many entries, or
/// this long after the last write, not on every commit: each write costs
/// its transaction a page of `RAFT_META`, and the mark may lag anyway.
const COMMITTED_SAVE_ENTRIES: u64 = 256;
const COMMITTED_SAVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

impl RegionLogStore {
    pub fn new(region_id: u64, engine: Arc<Engine>) -> Self {
        RegionLogStore { region_id, engine, cache: Arc::default(), stages: None, committed_saved: None }
    }

    /// Times the appends of entries that peer `peer_id` proposed as leader.
    #[must_use]
    pub fn with_stage_clock(mut self, peer_id: u64, clock: Arc<StageClock>) -> Self {
        self.stages = Some((peer_id, clock));
        self
    }

    fn read_meta<T: DeserializeOwned>(&self, kind: u8) -> io::Result<Option<T>> {
        let tx = self.engine.log_db.begin_read().map_err(io_err)?;
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
}

/// Deletes a region's whole raft state (log and marks) inside `tx`: its
/// peer is being destroyed.
///
/// # Errors
///
/// Storage failures.
pub fn clear(tx: &Txn, region: u64) -> io::Result<()> {
    tx.open_table(RAFT_LOG)
        .map_err(io_err)?
        .retain_in((region, 0)..=(region, u64::MAX), |_, _| false)
        .map_err(io_err)?;
    tx.open_table(RAFT_META)
        .map_err(io_err)?
        .retain_in((region, 0)..=(region, u8::MAX), |_, _| false)
        .map_err(io_err)?;
    Ok(())
}

/// Seeds a split-born region's raft state inside the split's transaction:
/// no entries, the log purged and committed up to `init`, and `vote` unless
/// a peer created for the region's raft traffic already voted at a term not
/// below it (a vote is a promise that must never go back).
///
/// # Errors
///
/// Storage and decode failures.
pub fn seed(tx: &Txn, region: u64, init: LogId, vote: Vote) -> io::Result<()> {
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
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => i.saturating_add(1),
            Bound::Excluded(i) => *i,
            Bound::Unbounded => u64::MAX,
        };
        if start >= end {
            return Ok(Vec::new());
        }
        // The cache first, redb after: an entry evicted in between was
        // durable, so the later redb read sees it (see `log_cache`).
        let (cached, from) = self.cache.lock().unwrap().read(start, end);
        if from <= start {
            return Ok(cached);
        }
        let tx = self.engine.log_db.begin_read().map_err(io_err)?;
        let t = tx.open_table(RAFT_LOG).map_err(io_err)?;
        let mut out = Vec::new();
        for row in t.range::<(u64, u64)>((r, start)..(r, from)).map_err(io_err)? {
            let (_, v) = row.map_err(io_err)?;
            out.push(decode(v.value())?);
        }
        out.extend(cached);
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
        if let Some(last) = self.cache.lock().unwrap().last_log_id() {
            return Ok(LogState { last_purged_log_id: purged, last_log_id: Some(last) });
        }
        let tx = self.engine.log_db.begin_read().map_err(io_err)?;
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

    /// Lazy, not waited for, and not on every call: the committed mark only
    /// saves a restarted peer from waiting for its leader to tell it again,
    /// so it may lag. It rides along with the next durable write, and
    /// openraft goes on to apply without waiting for the writer (which may
    /// be in the middle of an fsync).
    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        let index = committed.as_ref().map_or(0, |l| l.index());
        let now = Instant::now();
        if let Some((saved, at)) = self.committed_saved
            && index >= saved
            && index - saved < COMMITTED_SAVE_ENTRIES
            && now.duration_since(at) < COMMITTED_SAVE_INTERVAL
        {
            return Ok(());
        }
        self.committed_saved = Some((index, now));
        let bytes = encode(&committed)?;
        let region = self.region_id;
        let job = move |tx: &Txn| {
            tx.open_table(RAFT_META).map_err(io_err)?.insert((region, COMMITTED), bytes.as_slice()).map_err(io_err)?;
            Ok(())
        };
        let done = move |res: io::Result<()>| {
            if let Err(e) = res {
                tracing::warn!(region_id = region, error = %e, "saving the committed mark failed");
            }
        };
        self.engine.writer.submit_then(false, job, done).await
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        Ok(self.read_meta::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut rows: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut cached = Vec::new();
        let mut own = Vec::new();
        for e in entries {
            let bytes = encode(&e)?;
            if self.stages.as_ref().is_some_and(|(me, _)| e.log_id().committed_leader_id().node_id == *me) {
                own.push(e.index());
            }
            rows.push((e.index(), bytes));
            cached.push(e);
        }
        let Some(last) = cached.last().map(RaftEntry::log_id) else {
            callback.io_completed(Ok(()));
            return Ok(());
        };
        let n = rows.len() as u64;
        let queued = Instant::now();
        let timed = !own.is_empty();
        if let Some((_, clock)) = self.stages.as_ref().filter(|_| timed) {
            clock.queued(own, queued);
        }
        let sizes: Vec<usize> = rows.iter().map(|(_, b)| b.len()).collect();
        self.cache.lock().unwrap().append(cached.into_iter().zip(sizes));
        let region = self.region_id;
        let job = move |tx: &Txn| {
            let mut t = tx.open_table(RAFT_LOG).map_err(io_err)?;
            for (index, bytes) in &rows {
                t.insert((region, *index), bytes.as_slice()).map_err(io_err)?;
            }
            Ok(())
        };
        let cache = self.cache.clone();
        let done = move |res: io::Result<()>| {
            if res.is_ok() {
                cache.lock().unwrap().flushed(&last);
                if timed {
                    StageClock::flushed(queued);
                }
            }
            callback.io_completed(res);
        };
        metrics::RAFT_APPENDS.inc();
        metrics::RAFT_ENTRIES_APPENDED.inc_by(n);
        self.engine.writer.submit_then(true, job, done).await
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        self.cache.lock().unwrap().truncate_after(last_log_id.as_ref().map(|l| l.index()));
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

    /// Runs once the data file is durable up to every apply queued before
    /// it: the entries it drops must not be needed to replay one.
    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        self.cache.lock().unwrap().purge(log_id.index());
        let r = self.region_id;
        let bytes = encode(&Some(log_id))?;
        let upto = log_id.index();
        self.engine
            .writer
            .write_after_sync(move |tx| {
                tx.open_table(RAFT_META).map_err(io_err)?.insert((r, PURGED), bytes.as_slice()).map_err(io_err)?;
                tx.open_table(RAFT_LOG).map_err(io_err)?.retain_in((r, 0)..=(r, upto), |_, _| false).map_err(io_err)?;
                Ok(())
            })
            .await
    }
}
