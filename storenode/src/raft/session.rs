//! The session table: exactly-once writes (Raft dissertation, section 6.3).
//!
//! A client retries a write whose outcome it does not know (its leader died,
//! the reply was lost) with the same request id. Both copies may end up in
//! the log; the first to apply takes effect and its outcome is stored in the
//! client's session, in the same engine transaction as the write itself.
//! Every later copy is answered with that stored outcome and changes nothing.
//!
//! Sessions live in the engine's `sessions` table, one row per (region,
//! client), and travel in snapshots, so a replica that catches up by
//! snapshot deduplicates exactly like one that applied the log.
//!
//! Outcomes are forgotten two ways, both deterministic so every replica
//! forgets the same ones at the same log position:
//! - a request carries `acked_below`: its client finished every write below
//!   that sequence number, so their outcomes are dropped. A copy of such a
//!   write that still arrives is answered [`KvReply::Forgotten`] and not
//!   applied (nobody waits for it).
//! - a session with no write for [`SESSION_TTL_MS`] of log time expires. Log
//!   time is carried in the log ([`KvCommand::clock`]), never a replica's
//!   own clock, and moves with each leader's monotonic clock from the log
//!   time it applied ([`super::log_clock`]): no wall clock, stepped or
//!   wrong, can expire sessions early. A write repeated after its session
//!   expired would apply again; the TTL is many times the client's retry
//!   deadline, so no live client retries that late.

use std::collections::BTreeMap;
use std::io;

use redb::{ReadableTable, Table};
use serde::{Deserialize, Serialize};

use super::{KvCommand, KvReply, decode, encode};
use crate::engine::io_err;

/// A session outlives its client's last write by this much log time: far
/// beyond the client library's 30 s deadline and the HTTP API's retries.
pub const SESSION_TTL_MS: u64 = 10 * 60 * 1000;
/// Log time between sweeps for expired sessions: a sweep reads every session
/// of the region, so it must not run on every write.
pub const SWEEP_INTERVAL_MS: u64 = 60 * 1000;

/// One client's writes to one region.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientSession {
    /// Log time of the client's latest write here.
    pub last_active_ms: u64,
    /// Writes below this sequence number are finished at the client.
    pub acked_below: u64,
    /// Outcomes of applied writes the client may still retry.
    pub replies: BTreeMap<u64, KvReply>,
}

/// What the session knows about a sequence number.
#[derive(Debug, PartialEq)]
pub enum Seen {
    New,
    /// Applied before: answer with this.
    Applied(KvReply),
    /// Finished at the client long ago.
    Forgotten,
}

impl ClientSession {
    pub fn seen(&self, seq: u64) -> Seen {
        if let Some(r) = self.replies.get(&seq) {
            return Seen::Applied(r.clone());
        }
        if seq < self.acked_below { Seen::Forgotten } else { Seen::New }
    }

    /// Drops the outcomes the client will not ask for again.
    pub fn acknowledge(&mut self, acked_below: u64) {
        if acked_below > self.acked_below {
            self.acked_below = acked_below;
            self.replies = self.replies.split_off(&acked_below);
        }
    }
}

pub type SessionTable<'txn> = Table<'txn, (u64, u64), &'static [u8]>;

/// One apply batch's view of a region's sessions. A session is read from
/// the table the first time the batch meets its client, changed in memory
/// by each of the batch's writes, and written back once when the batch
/// ends: a batch of many writes from one client costs one read and one
/// write of its session, not one per write. The table after [`flush`]
/// is the same however the log was cut into batches.
///
/// [`flush`]: BatchSessions::flush
pub struct BatchSessions<'a, 'txn> {
    table: &'a mut SessionTable<'txn>,
    region_id: u64,
    touched: BTreeMap<u64, ClientSession>,
}

impl<'a, 'txn> BatchSessions<'a, 'txn> {
    pub fn new(table: &'a mut SessionTable<'txn>, region_id: u64) -> Self {
        BatchSessions { table, region_id, touched: BTreeMap::new() }
    }

    /// Applies `cmd` at most once per request id: `apply` runs only for a
    /// request this region has not applied before. `now_ms` is the log
    /// time. Returns the reply and whether it was a repeat answered from
    /// the session.
    ///
    /// # Errors
    ///
    /// Storage or decode failures, and `apply`'s.
    pub fn apply_once(
        &mut self,
        cmd: &KvCommand,
        now_ms: u64,
        apply: impl FnOnce(&KvCommand) -> io::Result<KvReply>,
    ) -> io::Result<(KvReply, bool)> {
        let Some(id) = cmd.request else {
            return Ok((apply(cmd)?, false));
        };
        let session = match self.touched.entry(id.client_id) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let stored = match self.table.get((self.region_id, id.client_id)).map_err(io_err)? {
                    Some(v) => decode(v.value())?,
                    None => ClientSession::default(),
                };
                e.insert(stored)
            }
        };
        let (reply, repeat) = match session.seen(id.seq) {
            Seen::Applied(reply) => (reply, true),
            Seen::Forgotten => (KvReply::Forgotten, false),
            Seen::New => {
                let reply = apply(cmd)?;
                if reply.applied() {
                    session.replies.insert(id.seq, reply.clone());
                }
                (reply, false)
            }
        };
        session.acknowledge(id.acked_below);
        session.last_active_ms = session.last_active_ms.max(now_ms);
        Ok((reply, repeat))
    }

    /// Removes the region's sessions idle for longer than
    /// [`SESSION_TTL_MS`] at log time `now_ms`; returns how many.
    ///
    /// # Errors
    ///
    /// Storage or decode failures.
    pub fn sweep(&mut self, now_ms: u64) -> io::Result<usize> {
        self.flush()?;
        sweep(self.table, self.region_id, now_ms)
    }

    /// Gives region `new_region_id` a copy of this region's sessions as they
    /// stand at this point of the batch (a split: a write retried against
    /// either part is still answered once).
    ///
    /// # Errors
    ///
    /// Storage failures.
    pub fn copy_to(&mut self, new_region_id: u64) -> io::Result<()> {
        self.flush()?;
        let rows = export(self.table, self.region_id)?;
        replace(self.table, new_region_id, &rows)
    }

    /// Writes the sessions this batch changed.
    ///
    /// # Errors
    ///
    /// Storage failures.
    pub fn flush(&mut self) -> io::Result<()> {
        for (client_id, session) in std::mem::take(&mut self.touched) {
            self.table.insert((self.region_id, client_id), encode(&session)?.as_slice()).map_err(io_err)?;
        }
        Ok(())
    }
}

/// Removes the region's sessions idle for longer than [`SESSION_TTL_MS`] at
/// log time `now_ms`; returns how many.
///
/// # Errors
///
/// Storage or decode failures.
pub fn sweep(sessions: &mut SessionTable<'_>, region_id: u64, now_ms: u64) -> io::Result<usize> {
    let mut expired = Vec::new();
    for row in sessions.range((region_id, 0)..=(region_id, u64::MAX)).map_err(io_err)? {
        let (k, v) = row.map_err(io_err)?;
        let s: ClientSession = decode(v.value())?;
        if s.last_active_ms.saturating_add(SESSION_TTL_MS) < now_ms {
            expired.push(k.value());
        }
    }
    for k in &expired {
        sessions.remove(*k).map_err(io_err)?;
    }
    Ok(expired.len())
}

/// Every session row of a region, encoded, for a snapshot.
///
/// # Errors
///
/// Storage failures.
pub fn export(
    sessions: &impl ReadableTable<(u64, u64), &'static [u8]>,
    region_id: u64,
) -> io::Result<Vec<(u64, Vec<u8>)>> {
    let mut out = Vec::new();
    for row in sessions.range((region_id, 0)..=(region_id, u64::MAX)).map_err(io_err)? {
        let (k, v) = row.map_err(io_err)?;
        out.push((k.value().1, v.value().to_vec()));
    }
    Ok(out)
}

/// Replaces a region's sessions with a snapshot's.
///
/// # Errors
///
/// Storage failures.
pub fn replace(sessions: &mut SessionTable<'_>, region_id: u64, rows: &[(u64, Vec<u8>)]) -> io::Result<()> {
    sessions.retain_in((region_id, 0)..=(region_id, u64::MAX), |_, _| false).map_err(io_err)?;
    for (client_id, bytes) in rows {
        sessions.insert((region_id, *client_id), bytes.as_slice()).map_err(io_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use redb::ReadableDatabase;

    use super::*;
    use crate::engine::{Engine, SESSIONS};
    use crate::raft::{KvOp, RequestId};

    /// Log time is passed to `apply_once` by the caller, as the state
    /// machine does; the command's own stamp is not read here.
    fn put(seq: u64, acked_below: u64) -> KvCommand {
        KvCommand {
            epoch_version: 1,
            op: KvOp::Put { key: b"k".to_vec(), value: b"v".to_vec() },
            request: Some(RequestId { client_id: 9, seq, acked_below }),
            clock: Default::default(),
        }
    }

    /// Runs `cmds` through `apply_once`, `per_batch` commands to a batch,
    /// in one transaction; counts how often the write itself ran.
    fn run_batched(engine: &Arc<Engine>, cmds: &[(KvCommand, u64)], per_batch: usize) -> (Vec<(KvReply, bool)>, usize) {
        let tx = engine.db.begin_write().unwrap();
        let mut applied = 0;
        let mut replies = Vec::new();
        {
            let mut t = tx.open_table(SESSIONS).unwrap();
            for batch in cmds.chunks(per_batch) {
                let mut sessions = BatchSessions::new(&mut t, 1);
                for (cmd, now) in batch {
                    let (reply, repeat) = sessions
                        .apply_once(cmd, *now, |_| {
                            applied += 1;
                            Ok(KvReply::Written)
                        })
                        .unwrap();
                    replies.push((reply, repeat));
                }
                sessions.flush().unwrap();
            }
        }
        tx.commit().unwrap();
        (replies, applied)
    }

    fn run(engine: &Arc<Engine>, cmds: &[(KvCommand, u64)]) -> (Vec<(KvReply, bool)>, usize) {
        run_batched(engine, cmds, 1)
    }

    fn table(engine: &Arc<Engine>) -> Vec<(u64, Vec<u8>)> {
        let tx = engine.db.begin_read().unwrap();
        export(&tx.open_table(SESSIONS).unwrap(), 1).unwrap()
    }

    #[test]
    fn batching_does_not_change_outcomes_or_the_table() {
        let cmds: Vec<(KvCommand, u64)> = [(1, 1), (2, 1), (1, 1), (3, 2), (2, 2), (4, 4), (1, 4)]
            .iter()
            .map(|&(s, a)| (put(s, a), s * 10))
            .collect();
        let results: Vec<_> = [1, 3, 7]
            .iter()
            .map(|&n| {
                let dir = tempfile::tempdir().unwrap();
                let engine = Engine::open(dir.path()).unwrap();
                let out = run_batched(&engine, &cmds, n);
                (out, table(&engine))
            })
            .collect();
        assert_eq!(results[0], results[1]);
        assert_eq!(results[0], results[2]);
    }

    #[test]
    fn a_repeat_gets_the_first_outcome_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let (replies, applied) = run(&engine, &[(put(1, 1), 10), (put(1, 1), 20), (put(2, 1), 30)]);
        let written = KvReply::Written;
        assert_eq!(replies, vec![(written.clone(), false), (written.clone(), true), (written, false)]);
        assert_eq!(applied, 2, "seq 1 applied once, seq 2 once");
    }

    #[test]
    fn acknowledged_outcomes_are_forgotten_and_never_reapplied() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let (replies, applied) = run(&engine, &[(put(1, 1), 10), (put(2, 2), 20), (put(1, 1), 30)]);
        assert_eq!(replies[2], (KvReply::Forgotten, false));
        assert_eq!(applied, 2);
    }

    #[test]
    fn refusals_are_not_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let tx = engine.db.begin_write().unwrap();
        {
            let mut t = tx.open_table(SESSIONS).unwrap();
            let mut sessions = BatchSessions::new(&mut t, 1);
            let refused = sessions.apply_once(&put(1, 1), 10, |_| Ok(KvReply::Forgotten)).unwrap();
            assert_eq!(refused, (KvReply::Forgotten, false));
            let retried = sessions.apply_once(&put(1, 1), 20, |_| Ok(KvReply::Written)).unwrap();
            assert_eq!(retried, (KvReply::Written, false), "a refused write may apply when retried");
        }
        tx.commit().unwrap();
    }

    #[test]
    fn idle_sessions_expire_by_log_time() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        run(&engine, &[(put(1, 1), 1_000)]);
        let tx = engine.db.begin_write().unwrap();
        {
            let mut t = tx.open_table(SESSIONS).unwrap();
            assert_eq!(sweep(&mut t, 1, 1_000 + SESSION_TTL_MS).unwrap(), 0, "not idle long enough");
            assert_eq!(sweep(&mut t, 2, 1_000 + SESSION_TTL_MS + 1).unwrap(), 0, "other regions untouched");
            assert_eq!(sweep(&mut t, 1, 1_000 + SESSION_TTL_MS + 1).unwrap(), 1);
            assert!(export(&t, 1).unwrap().is_empty());
        }
        tx.commit().unwrap();
    }
}
