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
//! A snapshot is the region's meta, its sessions and every pair in its key
//! range, read in one read transaction together with the applied state, so
//! it is exactly the state at its log id. Installing one replaces the keys
//! of the range and the region's sessions.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Instant;

use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use pd::catalog::keys;
use prost::Message;
use proto::{metapb, raftpb};
use redb::{ReadableDatabase, ReadableTable, Table};
use serde::{Deserialize, Serialize};

use super::session::{self, SWEEP_INTERVAL_MS};
use super::{KvCommand, KvOp, KvReply, LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig, decode, encode};
use crate::engine::{APPLY_STATE, DATA, Engine, REGION_STATE, SESSIONS, io_err};
use crate::metrics;

/// What the engine records per region next to its data.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ApplyState {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    /// Log time: the largest leader timestamp applied. Sessions expire by
    /// it, so every replica expires them at the same log position.
    clock_ms: u64,
    /// Log time of the last sweep for expired sessions.
    last_sweep_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct SnapshotPayload {
    /// `metapb.Region`, protobuf-encoded.
    region: Vec<u8>,
    clock_ms: u64,
    last_sweep_ms: u64,
    /// (client id, encoded session).
    sessions: Vec<(u64, Vec<u8>)>,
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A region's state as the rest of the store sees it.
pub struct RegionShared {
    pub region_id: u64,
    pub peer_id: u64,
    region: RwLock<metapb::Region>,
    applied: Mutex<ApplyState>,
    snapshot: Mutex<Option<Snapshot>>,
    pub approximate_keys: AtomicU64,
    pub approximate_size: AtomicU64,
    /// Since the last region heartbeat; swapped to zero when reported.
    pub written_bytes: AtomicU64,
    pub written_keys: AtomicU64,
    /// Told the region's meta after each installed snapshot: the node keeps
    /// its range index in step with the range the data now covers.
    snapshot_installed: OnceLock<SnapshotHook>,
}

type SnapshotHook = Box<dyn Fn(&metapb::Region) + Send + Sync>;

impl RegionShared {
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

    /// Sets the hook called after each installed snapshot; only the first
    /// call takes effect.
    pub fn on_snapshot_installed(&self, hook: impl Fn(&metapb::Region) + Send + Sync + 'static) {
        let _ = self.snapshot_installed.set(Box::new(hook));
    }
}

#[derive(Clone)]
pub struct RegionStateMachine {
    engine: Arc<Engine>,
    shared: Arc<RegionShared>,
}

impl RegionStateMachine {
    /// Loads the region's applied state; `region` is its current meta.
    ///
    /// # Errors
    ///
    /// Read or decode failures.
    pub fn open(engine: Arc<Engine>, region: metapb::Region, peer_id: u64) -> io::Result<Self> {
        let tx = engine.db.begin_read().map_err(io_err)?;
        let applied = match tx.open_table(APPLY_STATE).map_err(io_err)?.get(region.id).map_err(io_err)? {
            Some(v) => decode(v.value())?,
            None => ApplyState::default(),
        };
        let (mut n, mut size) = (0u64, 0u64);
        let data = tx.open_table(DATA).map_err(io_err)?;
        let range = if region.end_key.is_empty() {
            data.range(region.start_key.as_slice()..)
        } else {
            data.range(region.start_key.as_slice()..region.end_key.as_slice())
        }
        .map_err(io_err)?;
        for row in range {
            let (k, v) = row.map_err(io_err)?;
            n += 1;
            size += (k.value().len() + v.value().len()) as u64;
        }
        let shared = Arc::new(RegionShared {
            region_id: region.id,
            peer_id,
            region: RwLock::new(region),
            applied: Mutex::new(applied),
            snapshot: Mutex::new(None),
            approximate_keys: AtomicU64::new(n),
            approximate_size: AtomicU64::new(size),
            written_bytes: AtomicU64::new(0),
            written_keys: AtomicU64::new(0),
            snapshot_installed: OnceLock::new(),
        });
        Ok(RegionStateMachine { engine, shared })
    }

    pub fn shared(&self) -> Arc<RegionShared> {
        self.shared.clone()
    }
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
    })
}

impl RaftSnapshotBuilder<TypeConfig> for RegionStateMachine {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let region_id = self.shared.region_id;
        let tx = self.engine.db.begin_read().map_err(io_err)?;
        // Applied state, region meta and data from one read transaction:
        // they were written together, so they agree.
        let applied: ApplyState = match tx.open_table(APPLY_STATE).map_err(io_err)?.get(region_id).map_err(io_err)? {
            Some(v) => decode(v.value())?,
            None => ApplyState::default(),
        };
        let state = match tx.open_table(REGION_STATE).map_err(io_err)?.get(region_id).map_err(io_err)? {
            Some(v) => raftpb::RegionLocalState::decode(v.value()).map_err(io_err)?,
            None => return Err(io_err(format!("region {region_id} has no local state"))),
        };
        let region = state.region.unwrap_or_default();
        let data = tx.open_table(DATA).map_err(io_err)?;
        let range = if region.end_key.is_empty() {
            data.range(region.start_key.as_slice()..)
        } else {
            data.range(region.start_key.as_slice()..region.end_key.as_slice())
        }
        .map_err(io_err)?;
        let mut pairs = Vec::new();
        for row in range {
            let (k, v) = row.map_err(io_err)?;
            pairs.push((k.value().to_vec(), v.value().to_vec()));
        }
        let sessions = session::export(&tx.open_table(SESSIONS).map_err(io_err)?, region_id)?;
        let payload = encode(&SnapshotPayload {
            region: region.encode_to_vec(),
            clock_ms: applied.clock_ms,
            last_sweep_ms: applied.last_sweep_ms,
            sessions,
            pairs,
        })?;
        let snapshot = Snapshot {
            meta: SnapshotMeta { last_log_id: applied.last_applied, last_membership: applied.membership },
            snapshot: payload,
        };
        *self.shared.snapshot.lock().unwrap() = Some(snapshot.clone());
        Ok(snapshot)
    }
}

impl RaftStateMachine<TypeConfig> for RegionStateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        let a = self.shared.applied.lock().unwrap();
        Ok((a.last_applied, a.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        let mut payloads = Vec::new();
        let mut responders = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
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
        let (replies, delta, state) = self
            .engine
            .writer
            .write_lazy(move |tx| {
                // The writer may run this job again (a failed job elsewhere
                // in its batch): every run starts from the same state.
                let mut state = applied.clone();
                let mut data = tx.open_table(DATA).map_err(io_err)?;
                let mut sessions = tx.open_table(SESSIONS).map_err(io_err)?;
                let mut delta = Delta::default();
                let mut replies = Vec::with_capacity(payloads.len());
                for (log_id, payload) in &payloads {
                    state.last_applied = Some(*log_id);
                    replies.push(match payload {
                        EntryPayload::Blank => KvReply::Nothing,
                        EntryPayload::Normal(cmd) => {
                            state.clock_ms = state.clock_ms.max(cmd.proposed_at_ms);
                            // Per entry, not per batch: batches differ
                            // between replicas, log positions do not.
                            if state.clock_ms >= state.last_sweep_ms + SWEEP_INTERVAL_MS {
                                session::sweep(&mut sessions, region_id, state.clock_ms)?;
                                state.last_sweep_ms = state.clock_ms;
                            }
                            let (reply, repeat) =
                                session::apply_once(&mut sessions, region_id, cmd, state.clock_ms, |cmd| {
                                    apply_op(&mut data, &region, cmd, &mut delta)
                                })?;
                            delta.repeats += u64::from(repeat);
                            reply
                        }
                        EntryPayload::Membership(m) => {
                            state.membership = StoredMembership::new(Some(*log_id), m.clone());
                            KvReply::Nothing
                        }
                    });
                }
                tx.open_table(APPLY_STATE)
                    .map_err(io_err)?
                    .insert(region_id, encode(&state)?.as_slice())
                    .map_err(io_err)?;
                Ok((replies, delta, state))
            })
            .await?;
        *self.shared.applied.lock().unwrap() = state;
        let s = &self.shared;
        s.approximate_keys.fetch_add(delta.keys as u64, Ordering::Relaxed);
        s.approximate_size.fetch_add(delta.size as u64, Ordering::Relaxed);
        s.written_bytes.fetch_add(delta.written_bytes, Ordering::Relaxed);
        s.written_keys.fetch_add(delta.written_keys, Ordering::Relaxed);
        metrics::DUPLICATE_WRITES.inc_by(delta.repeats);
        metrics::RAFT_APPLY_SECONDS.observe(started.elapsed().as_secs_f64());
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

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: Vec<u8>) -> io::Result<()> {
        let started = Instant::now();
        let payload: SnapshotPayload = decode(&snapshot)?;
        let region = metapb::Region::decode(payload.region.as_slice()).map_err(io_err)?;
        if region.id != self.shared.region_id {
            return Err(io_err(format!("snapshot of region {} sent to region {}", region.id, self.shared.region_id)));
        }
        let state = ApplyState {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            clock_ms: payload.clock_ms,
            last_sweep_ms: payload.last_sweep_ms,
        };
        let local = raftpb::RegionLocalState {
            region: Some(region.clone()),
            state: raftpb::PeerState::Normal as i32,
            peer_id: self.shared.peer_id,
        };
        let (n, size) =
            payload.pairs.iter().fold((0u64, 0u64), |(n, s), (k, v)| (n + 1, s + (k.len() + v.len()) as u64));
        let apply_bytes = encode(&state)?;
        let region_for_job = region.clone();
        self.engine
            .writer
            .write(move |tx| {
                let r = &region_for_job;
                let mut data = tx.open_table(DATA).map_err(io_err)?;
                if r.end_key.is_empty() {
                    data.retain_in(r.start_key.as_slice().., |_, _| false).map_err(io_err)?;
                } else {
                    data.retain_in(r.start_key.as_slice()..r.end_key.as_slice(), |_, _| false).map_err(io_err)?;
                }
                for (k, v) in &payload.pairs {
                    data.insert(k.as_slice(), v.as_slice()).map_err(io_err)?;
                }
                session::replace(&mut tx.open_table(SESSIONS).map_err(io_err)?, r.id, &payload.sessions)?;
                tx.open_table(APPLY_STATE).map_err(io_err)?.insert(r.id, apply_bytes.as_slice()).map_err(io_err)?;
                tx.open_table(REGION_STATE)
                    .map_err(io_err)?
                    .insert(r.id, local.encode_to_vec().as_slice())
                    .map_err(io_err)?;
                Ok(())
            })
            .await?;
        *self.shared.region.write().unwrap() = region;
        *self.shared.applied.lock().unwrap() = state;
        self.shared.approximate_keys.store(n, Ordering::Relaxed);
        self.shared.approximate_size.store(size, Ordering::Relaxed);
        *self.shared.snapshot.lock().unwrap() = Some(Snapshot { meta: meta.clone(), snapshot });
        metrics::SNAPSHOTS.with_label_values(&["installed"]).inc();
        metrics::SNAPSHOT_SECONDS.with_label_values(&["install"]).observe(started.elapsed().as_secs_f64());
        if let Some(hook) = self.shared.snapshot_installed.get() {
            hook(&self.shared.region());
        }
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        Ok(self.shared.snapshot.lock().unwrap().clone())
    }
}
