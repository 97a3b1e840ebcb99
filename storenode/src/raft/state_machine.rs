//! A region's state machine over the shared engine.
//!
//! Applying a batch of committed entries is one job on the group-commit
//! writer: it checks each command against the region's current range and
//! epoch, answers a repeated request id from the session table
//! ([`super::session`]) or writes the user keys into the shared data table
//! and records the outcome, and records the last applied log id, membership
//! and log clock, all in one transaction. The job is
//! lazy (no fsync of its own): the entries are already durable in the raft
//! log, and after a crash everything past the recorded applied id is
//! applied again.
//!
//! Snapshots are files ([`super::snapshot`]): built by streaming the
//! region's meta, pairs and sessions from one read transaction, so a file is
//! exactly the state at its log id; installed in bounded writer jobs behind
//! a durable `APPLYING` mark, so other regions' writes interleave and a
//! crash mid-install resumes when the region is opened again. Nothing of a
//! snapshot stays in memory: the region remembers only its newest file's
//! path and meta.
//!
//! Storage failures while applying are returned to openraft, which stops
//! the region's raft group rather than let the replica diverge.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Instant;

use futures::future::BoxFuture;
use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use pd::catalog::keys;
use proto::{metapb, raftpb};
use redb::{ReadableDatabase, ReadableTable, Table};

use super::early_replies::EarlyReplies;
use super::fence::Fence;
use super::membership::{self, MembershipApplied};
use super::session::{BatchSessions, SWEEP_INTERVAL_MS};
use super::snapshot::{self, SnapshotFile, build, install};
use super::split::{self, SplitApplied};
use super::{KvCommand, KvOp, KvReply, LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig, decode, encode};
use crate::engine::{APPLY_STATE, DATA, Engine, SESSIONS, data_range, io_err};
use crate::metrics;

pub use super::apply_state::ApplyState;

/// A region's state as the rest of the store sees it.
pub struct RegionShared {
    pub region_id: u64,
    pub peer_id: u64,
    region: RwLock<metapb::Region>,
    applied: Mutex<ApplyState>,
    /// The newest snapshot file: its meta and path, never its contents.
    current_snapshot: Mutex<Option<(SnapshotMeta, PathBuf)>>,
    /// Set while a snapshot install is writing the range: its keys are
    /// partly old and partly new, and stale reads must not see them.
    applying: AtomicBool,
    /// Held by an install for its duration and by a build while it opens
    /// its read transaction, so a build never reads a half-installed range.
    install_lock: tokio::sync::Mutex<()>,
    /// Snapshots of this peer being streamed to other stores now; while
    /// any is, no new snapshot is built ([`crate::node::snapshot_policy`]).
    sending_snapshots: AtomicUsize,
    /// Raised when this peer's destroy begins: its writer jobs fail from
    /// then on, and the destroy waits for the call in progress
    /// ([`super::fence`]).
    pub fence: Fence,
    /// Per-stage timing of the writes this peer proposes as leader.
    pub stages: Arc<super::stage_clock::StageClock>,
    /// Log time as this peer proposes it when it leads.
    pub log_clock: super::log_clock::LeaderClock,
    pub approximate_keys: AtomicU64,
    pub approximate_size: AtomicU64,
    /// Since the last region heartbeat; swapped to zero when reported.
    pub written_bytes: AtomicU64,
    pub written_keys: AtomicU64,
    /// Keys and bytes get, batch get and scan returned since the last
    /// region heartbeat; swapped to zero when reported.
    pub read_bytes: AtomicU64,
    pub read_keys: AtomicU64,
    /// Unix milliseconds of the last region heartbeat, 0 before the first:
    /// the start of the interval the counters cover.
    pub flow_since_ms: AtomicU64,
    /// Told the region's meta after each installed snapshot: the node keeps
    /// its range index in step with the range the data now covers.
    snapshot_installed: OnceLock<SnapshotHook>,
    /// Told each split this replica applies, before the proposer hears of
    /// it: the node indexes the new range and starts the new peer.
    split_applied: OnceLock<SplitHook>,
    /// Told after a batch whose membership entries changed the region's
    /// peers: the node reports the region, or destroys this peer when it
    /// was removed.
    membership_applied: OnceLock<MembershipHook>,
    /// Told after each applied batch how many entries the region has
    /// applied since its current snapshot: the node's snapshot policy
    /// hears of a region only when it has work for it.
    applied_hook: OnceLock<AppliedHook>,
}

/// A snapshot send in flight, counted in its region until dropped.
pub struct SnapshotSend(Arc<RegionShared>);

impl Drop for SnapshotSend {
    fn drop(&mut self) {
        self.0.sending_snapshots.fetch_sub(1, Ordering::AcqRel);
    }
}

type SnapshotHook = Box<dyn Fn(&metapb::Region) + Send + Sync>;
type SplitHook = Box<dyn Fn(SplitApplied) -> BoxFuture<'static, ()> + Send + Sync>;
type MembershipHook = Box<dyn Fn(MembershipApplied, &metapb::Region) + Send + Sync>;
type AppliedHook = Box<dyn Fn(u64) + Send + Sync>;

impl RegionShared {
    /// Counts a read that returned `pairs` for the next region heartbeat.
    pub fn count_read<'a>(&self, pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) {
        let (mut keys, mut bytes) = (0u64, 0u64);
        for (k, v) in pairs {
            keys += 1;
            bytes += (k.len() + v.len()) as u64;
        }
        self.read_keys.fetch_add(keys, Ordering::Relaxed);
        self.read_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn region(&self) -> metapb::Region {
        self.region.read().unwrap().clone()
    }

    pub fn epoch(&self) -> metapb::RegionEpoch {
        self.region.read().unwrap().region_epoch.unwrap_or_default()
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        let r = self.region.read().unwrap();
        keys::contains(&r.start_key, &r.end_key, key)
    }

    /// Snapshots of this peer in flight to other stores.
    pub fn sending_snapshots(&self) -> usize {
        self.sending_snapshots.load(Ordering::Acquire)
    }

    /// Counts a snapshot send until the returned guard drops.
    pub fn snapshot_send(self: &Arc<Self>) -> SnapshotSend {
        self.sending_snapshots.fetch_add(1, Ordering::AcqRel);
        SnapshotSend(self.clone())
    }

    /// Whether a snapshot install is rewriting the region's range now.
    pub fn is_applying_snapshot(&self) -> bool {
        self.applying.load(Ordering::Acquire)
    }

    /// Sets the hook called after each installed snapshot; only the first
    /// call takes effect.
    pub fn on_snapshot_installed(&self, hook: impl Fn(&metapb::Region) + Send + Sync + 'static) {
        let _ = self.snapshot_installed.set(Box::new(hook));
    }

    /// Sets the hook called after a batch whose membership entries changed
    /// the region; only the first call takes effect.
    pub fn on_membership_applied(&self, hook: impl Fn(MembershipApplied, &metapb::Region) + Send + Sync + 'static) {
        let _ = self.membership_applied.set(Box::new(hook));
    }

    /// Sets the hook called after each applied batch with the entries
    /// applied since the current snapshot; only the first call takes
    /// effect.
    pub fn on_applied(&self, hook: impl Fn(u64) + Send + Sync + 'static) {
        let _ = self.applied_hook.set(Box::new(hook));
    }

    /// The log time this replica has applied ([`super::log_clock`]).
    pub fn log_time_ms(&self) -> u64 {
        self.applied.lock().unwrap().clock_ms
    }

    /// The last log index the current snapshot (built or installed) covers.
    pub fn snapshot_index(&self) -> u64 {
        let current = self.current_snapshot.lock().unwrap();
        current.as_ref().and_then(|(m, _)| m.last_log_id).map_or(0, |l| l.index())
    }

    /// Sets the hook awaited after each applied split; only the first call
    /// takes effect.
    pub fn on_split_applied(&self, hook: impl Fn(SplitApplied) -> BoxFuture<'static, ()> + Send + Sync + 'static) {
        let _ = self.split_applied.set(Box::new(hook));
    }
}

#[derive(Clone)]
pub struct RegionStateMachine {
    engine: Arc<Engine>,
    shared: Arc<RegionShared>,
}

impl RegionStateMachine {
    /// Loads the region's applied state; `region` is its current meta. A
    /// region whose snapshot install was interrupted finishes it first.
    ///
    /// # Errors
    ///
    /// Read or decode failures; an interrupted install that cannot resume
    /// ([`install::ResumeFailed`] as `InvalidData`): the peer must not start.
    pub async fn open(engine: Arc<Engine>, region: metapb::Region, peer_id: u64) -> io::Result<Self> {
        Self::open_sized(engine, region, peer_id, None).await
    }

    /// [`RegionStateMachine::open`] with the region's approximate keys and
    /// bytes already known (a split-born region: its parent's counts split
    /// by the leader's measure), so its range is not scanned to count them.
    ///
    /// # Errors
    ///
    /// As [`RegionStateMachine::open`].
    pub async fn open_sized(
        engine: Arc<Engine>,
        mut region: metapb::Region,
        peer_id: u64,
        sizes: Option<(u64, u64)>,
    ) -> io::Result<Self> {
        if let Some(state) = engine.region_state(region.id)?
            && state.state == raftpb::PeerState::Applying as i32
        {
            region = install::resume(&engine, &state).await?.region;
        }
        let tx = engine.db.begin_read().map_err(io_err)?;
        let applied = match tx.open_table(APPLY_STATE).map_err(io_err)?.get(region.id).map_err(io_err)? {
            Some(v) => decode(v.value())?,
            None => ApplyState::default(),
        };
        let (n, size) = match sizes {
            Some(known) => known,
            None => {
                let (mut n, mut size) = (0u64, 0u64);
                let data = tx.open_table(DATA).map_err(io_err)?;
                for row in data_range(&data, &region.start_key, &region.end_key)? {
                    let (k, v) = row.map_err(io_err)?;
                    n += 1;
                    size += (k.value().len() + v.value().len()) as u64;
                }
                (n, size)
            }
        };
        let current = snapshot::latest(&engine.snapshot_dir, region.id)?;
        let shared = Arc::new(RegionShared {
            region_id: region.id,
            peer_id,
            region: RwLock::new(region),
            applied: Mutex::new(applied),
            current_snapshot: Mutex::new(current),
            applying: AtomicBool::new(false),
            install_lock: tokio::sync::Mutex::new(()),
            sending_snapshots: AtomicUsize::new(0),
            fence: Fence::default(),
            stages: Arc::default(),
            log_clock: super::log_clock::LeaderClock::default(),
            approximate_keys: AtomicU64::new(n),
            approximate_size: AtomicU64::new(size),
            written_bytes: AtomicU64::new(0),
            written_keys: AtomicU64::new(0),
            read_bytes: AtomicU64::new(0),
            read_keys: AtomicU64::new(0),
            flow_since_ms: AtomicU64::new(0),
            snapshot_installed: OnceLock::new(),
            split_applied: OnceLock::new(),
            membership_applied: OnceLock::new(),
            applied_hook: OnceLock::new(),
        });
        Ok(RegionStateMachine { engine, shared })
    }

    /// The state machine of a peer whose group restarts in this run (a
    /// dormant peer revived): its applied state is the one `shared` holds,
    /// never older than the engine's.
    pub fn resume(engine: Arc<Engine>, shared: Arc<RegionShared>) -> Self {
        RegionStateMachine { engine, shared }
    }

    /// Records `path` (at `meta`) as the region's current snapshot unless a
    /// newer one is current, and deletes whichever files are older.
    fn set_current_snapshot(&self, meta: &SnapshotMeta, path: PathBuf) {
        let index = |m: &SnapshotMeta| m.last_log_id.map_or(0, |l| l.index());
        let mut current = self.shared.current_snapshot.lock().unwrap();
        if current.as_ref().is_some_and(|(m, _)| index(m) > index(meta)) {
            // Built from an older state while a newer snapshot was
            // installed: the caller still reads it through its handle.
            let _ = crate::disk::current().remove_file(&path);
            return;
        }
        snapshot::remove_older(&self.engine.snapshot_dir, self.shared.region_id, index(meta));
        *current = Some((meta.clone(), path));
    }

    pub fn shared(&self) -> Arc<RegionShared> {
        self.shared.clone()
    }
}

/// Takes up to `n` from a counter; returns how much it took.
fn take(counter: &AtomicU64, n: u64) -> u64 {
    let mut taken = 0;
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cur| {
        taken = n.min(cur);
        Some(cur - taken)
    });
    taken
}

/// Size changes one batch made.
#[derive(Default)]
struct Delta {
    keys: i64,
    size: i64,
    written_bytes: u64,
    written_keys: u64,
    /// Writes answered from the session table.
    repeats: u64,
}

fn apply_op(
    data: &mut Table<&[u8], &[u8]>,
    region: &metapb::Region,
    cmd: &KvCommand,
    d: &mut Delta,
) -> io::Result<KvReply> {
    if cmd.epoch_version != region.region_epoch.unwrap_or_default().version {
        return Ok(KvReply::EpochNotMatch { current: region.clone() });
    }
    if let Some(k) = cmd.op.keys().into_iter().find(|k| !keys::contains(&region.start_key, &region.end_key, k)) {
        return Ok(KvReply::KeyNotInRegion { key: k.to_vec(), region: region.clone() });
    }
    let mut put = |data: &mut Table<&[u8], &[u8]>, key: &[u8], value: &[u8]| -> io::Result<()> {
        let old = data.insert(key, value).map_err(io_err)?.map(|v| v.value().len());
        match old {
            None => {
                d.keys += 1;
                d.size += (key.len() + value.len()) as i64;
            }
            Some(old_len) => d.size += value.len() as i64 - old_len as i64,
        }
        d.written_keys += 1;
        d.written_bytes += (key.len() + value.len()) as u64;
        Ok(())
    };
    Ok(match &cmd.op {
        KvOp::Put { key, value } => {
            put(data, key, value)?;
            KvReply::Written
        }
        KvOp::BatchPut { pairs } => {
            for (k, v) in pairs {
                put(data, k, v)?;
            }
            KvReply::Written
        }
        KvOp::Delete { key } => {
            let old = data.remove(key.as_slice()).map_err(io_err)?.map(|v| v.value().len());
            if let Some(len) = old {
                d.keys -= 1;
                d.size -= (key.len() + len) as i64;
                d.written_keys += 1;
            }
            KvReply::Deleted { existed: old.is_some() }
        }
        KvOp::Cas { key, expected, value } => {
            let current = data.get(key.as_slice()).map_err(io_err)?.map(|v| v.value().to_vec());
            let succeeded = current == *expected;
            if succeeded {
                put(data, key, value)?;
            }
            KvReply::Cas { succeeded, previous: current }
        }
        // Applied by `split::apply`, never through here.
        KvOp::Split(_) => KvReply::Nothing,
    })
}

impl RaftSnapshotBuilder<TypeConfig> for RegionStateMachine {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let started = Instant::now();
        let region_id = self.shared.region_id;
        let tx = {
            let _no_install = self.shared.install_lock.lock().await;
            self.engine.db.begin_read().map_err(io_err)?
        };
        let engine = self.engine.clone();
        // Seconds of file I/O for a large region: off the async workers.
        let built =
            tokio::task::spawn_blocking(move || build::build(&engine, region_id, &tx)).await.map_err(io_err)??;
        self.set_current_snapshot(&built.meta, built.path.clone());
        metrics::SNAPSHOTS.with_label_values(&["built"]).inc();
        metrics::SNAPSHOT_BYTES.with_label_values(&["built"]).inc_by(built.bytes);
        metrics::SNAPSHOT_SECONDS.with_label_values(&["build"]).observe(started.elapsed().as_secs_f64());
        Ok(Snapshot { meta: built.meta, snapshot: SnapshotFile::open_handle(built.path, built.file) })
    }
}

impl RaftStateMachine<TypeConfig> for RegionStateMachine {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        let a = self.shared.applied.lock().unwrap();
        Ok((a.last_applied, a.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        // Held through the hooks too: a destroy waits for all of it.
        let _worker = self.shared.fence.enter().await;
        let fence = self.shared.fence.clone();
        let mut payloads = Vec::new();
        let mut responders = Vec::new();
        let mut indexes = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            if responder.is_some() {
                indexes.push(entry.log_id.index());
            }
            payloads.push((entry.log_id, entry.payload));
            responders.push(responder);
        }
        if payloads.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let region = self.shared.region();
        let applied = self.shared.applied.lock().unwrap().clone();
        let region_id = self.shared.region_id;
        let peer_id = self.shared.peer_id;
        // Writes only: the proposers hear from the writer thread (see
        // `EarlyReplies`). A split's or a membership change's proposer
        // hears after the hooks below have run.
        let early = payloads
            .iter()
            .all(|(_, p)| match p {
                EntryPayload::Blank => true,
                EntryPayload::Normal(cmd) => !matches!(cmd.op, KvOp::Split(_)),
                EntryPayload::Membership(_) => false,
            })
            .then(|| EarlyReplies::new(std::mem::take(&mut responders), indexes.clone(), self.shared.stages.clone()));
        let (replies, delta, state, region, splits, conf) = self
            .engine
            .writer
            .write_lazy(move |tx| {
                // On the writer thread, so no batch of a region being
                // destroyed lands after the destroy's own job.
                fence.check(region_id, "apply")?;
                // The writer may run this job again (a failed job elsewhere
                // in its batch): every run starts from the same state.
                let mut state = applied.clone();
                let mut region = region.clone();
                let mut splits = Vec::new();
                // What the batch's membership entries did, taken together.
                let mut conf = MembershipApplied::default();
                let mut data = tx.open_table(DATA).map_err(io_err)?;
                let mut session_table = tx.open_table(SESSIONS).map_err(io_err)?;
                let mut sessions = BatchSessions::new(&mut session_table, region_id);
                let mut delta = Delta::default();
                let mut replies = Vec::with_capacity(payloads.len());
                for (log_id, payload) in &payloads {
                    state.last_applied = Some(*log_id);
                    replies.push(match payload {
                        EntryPayload::Blank => KvReply::Nothing,
                        EntryPayload::Normal(cmd) => {
                            state.clock_ms = cmd.clock.advance(state.clock_ms, log_id);
                            // Per entry, not per batch: batches differ
                            // between replicas, log positions do not.
                            if state.clock_ms >= state.last_sweep_ms + SWEEP_INTERVAL_MS {
                                sessions.sweep(state.clock_ms)?;
                                state.last_sweep_ms = state.clock_ms;
                            }
                            if let KvOp::Split(cmd) = &cmd.op {
                                // `region` is the shrunk parent afterwards:
                                // later entries are checked against it.
                                match split::apply(tx, &mut data, &mut sessions, &mut region, &state, peer_id, cmd)? {
                                    Ok(done) => {
                                        let reply = KvReply::Split { new_region_id: done.new.id };
                                        splits.push(done);
                                        reply
                                    }
                                    Err(refused) => refused,
                                }
                            } else {
                                let (reply, repeat) = sessions.apply_once(cmd, state.clock_ms, |cmd| {
                                    apply_op(&mut data, &region, cmd, &mut delta)
                                })?;
                                delta.repeats += u64::from(repeat);
                                reply
                            }
                        }
                        EntryPayload::Membership(m) => {
                            let was_member = state.membership.membership().get_node(&peer_id).is_some();
                            state.membership = StoredMembership::new(Some(*log_id), m.clone());
                            let applied = membership::apply(tx, &mut region, m, peer_id, was_member)?;
                            conf.changed |= applied.changed;
                            conf.removed_self = applied.removed_self;
                            KvReply::Nothing
                        }
                    });
                }
                sessions.flush()?;
                tx.open_table(APPLY_STATE)
                    .map_err(io_err)?
                    .insert(region_id, encode(&state)?.as_slice())
                    .map_err(io_err)?;
                if let Some(early) = &early {
                    early.send(&replies, started);
                }
                Ok((replies, delta, state, region, splits, conf))
            })
            .await?;
        let last_applied = state.last_applied.map_or(0, |l| l.index());
        *self.shared.applied.lock().unwrap() = state;
        let s = &self.shared;
        if let Some(hook) = s.applied_hook.get() {
            hook(last_applied.saturating_sub(s.snapshot_index()));
        }
        s.approximate_keys.fetch_add(delta.keys as u64, Ordering::Relaxed);
        s.approximate_size.fetch_add(delta.size as u64, Ordering::Relaxed);
        s.written_bytes.fetch_add(delta.written_bytes, Ordering::Relaxed);
        s.written_keys.fetch_add(delta.written_keys, Ordering::Relaxed);
        metrics::DUPLICATE_WRITES.inc_by(delta.repeats);
        metrics::RAFT_APPLY_SECONDS.observe(started.elapsed().as_secs_f64());
        if !responders.is_empty() {
            self.shared.stages.applied(indexes, started, Instant::now());
        }
        if !splits.is_empty() || conf.changed {
            *s.region.write().unwrap() = region.clone();
        }
        if conf.changed
            && let Some(hook) = s.membership_applied.get()
        {
            hook(conf, &region);
        }
        for mut done in splits {
            // The left part's keys leave the parent's counts.
            done.left_keys = take(&s.approximate_keys, done.left_keys);
            done.left_size = take(&s.approximate_size, done.left_size);
            metrics::SPLITS_APPLIED.inc();
            // The node indexes the new range and starts the new peer before
            // the proposer hears the split applied.
            if let Some(hook) = s.split_applied.get() {
                hook(done).await;
            }
        }
        for (responder, reply) in responders.into_iter().zip(replies) {
            if let Some(r) = responder {
                r.send(reply);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotFile) -> io::Result<()> {
        let started = Instant::now();
        let _worker = self.shared.fence.enter().await;
        let _exclusive = self.shared.install_lock.lock().await;
        self.shared.applying.store(true, Ordering::Release);
        let s = &self.shared;
        let installed =
            install::install(&self.engine, s.region_id, s.peer_id, meta, snapshot, install::STEP, &s.fence).await?;
        // Left set on failure: the range is half written until a restart
        // resumes the install, and the raft group stops on the error.
        *self.shared.region.write().unwrap() = installed.region.clone();
        *self.shared.applied.lock().unwrap() = installed.applied;
        self.shared.approximate_keys.store(installed.keys, Ordering::Relaxed);
        self.shared.approximate_size.store(installed.size, Ordering::Relaxed);
        self.shared.applying.store(false, Ordering::Release);
        self.set_current_snapshot(&installed.meta, installed.path);
        let t = installed.took;
        tracing::info!(
            region_id = self.shared.region_id,
            keys = installed.keys,
            bytes = installed.size,
            jobs = installed.jobs,
            begin_ms = t.begin.as_millis() as u64,
            clear_ms = t.clear.as_millis() as u64,
            write_ms = t.write.as_millis() as u64,
            commit_ms = t.commit.as_millis() as u64,
            "snapshot installed"
        );
        metrics::SNAPSHOTS.with_label_values(&["installed"]).inc();
        metrics::SNAPSHOT_SECONDS.with_label_values(&["install"]).observe(started.elapsed().as_secs_f64());
        if let Some(hook) = self.shared.snapshot_installed.get() {
            hook(&installed.region);
        }
        Ok(())
    }

    /// The newest snapshot file. Should it be gone from disk (deleted by
    /// hand), a fresh one is built: openraft treats a missing snapshot it
    /// knows of as a storage error.
    ///
    /// So is one from before the region's last split. Its range is the
    /// parent's as it was, and the log after it replays writes into keys
    /// the split gave away: a store that installed it would clear and then
    /// overwrite, with old values, the keys of the new region's replica it
    /// may hold. A snapshot sent always carries the region's current range.
    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        let current = self.shared.current_snapshot.lock().unwrap().clone();
        let Some((meta, path)) = current else { return Ok(None) };
        let version = |r: &metapb::Region| r.region_epoch.unwrap_or_default().version;
        match snapshot::region_of(&path) {
            Ok(r) if version(&r) < version(&self.shared.region()) => {
                tracing::info!(
                    region_id = self.shared.region_id,
                    snapshot_version = version(&r),
                    region_version = version(&self.shared.region()),
                    "snapshot predates a split: building a fresh one"
                );
                return Ok(Some(self.build_snapshot().await?));
            }
            _ => {}
        }
        match SnapshotFile::open(path) {
            Ok(file) => Ok(Some(Snapshot { meta, snapshot: file })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                *self.shared.current_snapshot.lock().unwrap() = None;
                Ok(Some(self.build_snapshot().await?))
            }
            Err(e) => Err(e),
        }
    }
}
