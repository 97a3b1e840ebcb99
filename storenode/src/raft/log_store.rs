//! A region's raft log, vote and commit/purge marks in the store's raft
//! log ([`crate::engine::log_engine`]). Every write goes through the group-commit writer, so appends of
//! many regions share one fsync and each region's writes keep their order.
//!
//! An append returns once queued, with its entries readable from the
//! [`LogCache`], and tells openraft from the writer thread when they are on
//! disk: the leader replicates while its own log write runs. Votes,
//! truncations and purges return once durable.
//!
//! Every write job checks the peer's fence ([`super::fence`]) on the writer
//! thread, as the state machine's do. A destroy waits for the raft core to
//! stop only so long ([`crate::node`]'s `stop_peer`); a core that outlives
//! that wait must not write a vote or entries after the destroy cleared the
//! region's raft state, where a later peer of the region on this store
//! would take them for its own log.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use openraft::OptionalSend;
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::fence::Fence;
use super::log_cache::LogCache;
use super::stage_clock::StageClock;
use super::{Entry, LogId, TypeConfig, Vote, decode, encode};
use crate::engine::{Engine, Txn};
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
    /// The peer's fence: raised, it refuses every write.
    fence: Fence,
}

/// The committed mark is written once it has moved this many entries, or
/// this long after the last write, not on every commit: each write costs
/// the log record bytes and the mark may lag anyway.
const COMMITTED_SAVE_ENTRIES: u64 = 256;
const COMMITTED_SAVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

impl RegionLogStore {
    pub fn new(region_id: u64, engine: Arc<Engine>) -> Self {
        RegionLogStore {
            region_id,
            engine,
            cache: Arc::default(),
            stages: None,
            committed_saved: None,
            fence: Fence::default(),
        }
    }

    /// Puts the log's writes behind the peer's fence: once a destroy
    /// raises it, every write is refused.
    #[must_use]
    pub fn with_fence(mut self, fence: Fence) -> Self {
        self.fence = fence;
        self
    }

    /// Times the appends of entries that peer `peer_id` proposed as leader.
    #[must_use]
    pub fn with_stage_clock(mut self, peer_id: u64, clock: Arc<StageClock>) -> Self {
        self.stages = Some((peer_id, clock));
        self
    }

    fn read_meta<T: DeserializeOwned>(&self, kind: u8) -> io::Result<Option<T>> {
        self.engine.log.meta(self.region_id, kind).map(|v| decode(&v)).transpose()
    }

    async fn write_meta<T: Serialize>(&self, kind: u8, v: &T) -> io::Result<()> {
        let bytes = encode(v)?;
        let region = self.region_id;
        let fence = self.fence.clone();
        self.engine
            .writer
            .write(move |tx| {
                fence.check(region, "log")?;
                tx.log().put_meta(region, kind, &bytes);
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
/// None yet: the result keeps the shape of a job's writes.
pub fn clear(tx: &Txn, region: u64) -> io::Result<()> {
    tx.log().clear(region);
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
    let log = tx.log();
    log.truncate(region, 0);
    let voted: Option<Vote> = log.meta(region, VOTE).map(|v| decode(&v)).transpose()?;
    if voted.is_none_or(|v| v.leader_id().term < vote.leader_id().term) {
        log.put_meta(region, VOTE, &encode(&vote)?);
    }
    let init = encode(&Some(init))?;
    log.put_meta(region, COMMITTED, &init);
    log.put_meta(region, PURGED, &init);
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
        // The cache first, the log after: an entry evicted in between was
        // durable, so the later log read sees it (see `log_cache`).
        let (cached, from) = self.cache.lock().unwrap().read(start, end);
        if from <= start {
            return Ok(cached);
        }
        let mut out = Vec::new();
        for (_, bytes) in self.engine.log.entries(r, start, from)? {
            out.push(decode(&bytes)?);
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
        let last = match self.engine.log.last_entry(self.region_id)? {
            Some((_, bytes)) => Some(decode::<Entry>(&bytes)?.log_id()),
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
        let fence = self.fence.clone();
        let job = move |tx: &Txn| {
            fence.check(region, "log")?;
            tx.log().put_meta(region, COMMITTED, &bytes);
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
        let fence = self.fence.clone();
        let job = move |tx: &Txn| {
            fence.check(region, "log")?;
            let log = tx.log();
            for (index, bytes) in &rows {
                log.append(region, *index, bytes);
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
        let from = last_log_id.map_or(0, |l| l.index() + 1);
        let fence = self.fence.clone();
        self.engine
            .writer
            .write(move |tx| {
                fence.check(r, "log")?;
                tx.log().truncate(r, from);
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
        let fence = self.fence.clone();
        self.engine
            .writer
            .write_after_sync(move |tx| {
                fence.check(r, "log")?;
                let log = tx.log();
                log.put_meta(r, PURGED, &bytes);
                log.purge(r, upto);
                Ok(())
            })
            .await
    }
}
