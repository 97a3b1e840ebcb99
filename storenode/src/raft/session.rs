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
//!   time is the largest leader timestamp applied so far
//!   ([`KvCommand::proposed_at_ms`]), never a replica's own clock. A write
//!   repeated after its session expired would apply again; the TTL is many
//!   times the client's retry deadline, so no live client retries that late.

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

/// Applies `cmd` at most once per request id: `apply` runs only for a
/// request this region has not applied before. `now_ms` is the log time.
/// Returns the reply and whether it was a repeat answered from the session.
///
/// # Errors
///
/// Storage or decode failures, and `apply`'s.
pub fn apply_once(
    sessions: &mut SessionTable<'_>,
    region_id: u64,
    cmd: &KvCommand,
    now_ms: u64,
    apply: impl FnOnce(&KvCommand) -> io::Result<KvReply>,
) -> io::Result<(KvReply, bool)> {
    let Some(id) = cmd.request else {
        return Ok((apply(cmd)?, false));
    };
    let key = (region_id, id.client_id);
    let mut session: ClientSession = match sessions.get(key).map_err(io_err)? {
        Some(v) => decode(v.value())?,
        None => ClientSession::default(),
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
    sessions.insert(key, encode(&session)?.as_slice()).map_err(io_err)?;
    Ok((reply, repeat))
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

    use super::*;
    use crate::engine::{Engine, SESSIONS};
    use crate::raft::{KvOp, RequestId};

    fn put(seq: u64, acked_below: u64, at: u64) -> KvCommand {
        KvCommand {
            epoch_version: 1,
            op: KvOp::Put { key: b"k".to_vec(), value: b"v".to_vec() },
            request: Some(RequestId { client_id: 9, seq, acked_below }),
            proposed_at_ms: at,
        }
    }

    /// Runs `cmds` through `apply_once` in one transaction; counts how
    /// often the write itself ran.
    fn run(engine: &Arc<Engine>, cmds: &[(KvCommand, u64)]) -> (Vec<(KvReply, bool)>, usize) {
        let tx = engine.db.begin_write().unwrap();
        let mut applied = 0;
        let mut replies = Vec::new();
        {
            let mut t = tx.open_table(SESSIONS).unwrap();
            for (cmd, now) in cmds {
                let (reply, repeat) = apply_once(&mut t, 1, cmd, *now, |_| {
                    applied += 1;
                    Ok(KvReply::Written)
                })
                .unwrap();
                replies.push((reply, repeat));
            }
        }
        tx.commit().unwrap();
        (replies, applied)
    }

    #[test]
    fn a_repeat_gets_the_first_outcome_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let (replies, applied) = run(&engine, &[(put(1, 1, 10), 10), (put(1, 1, 20), 20), (put(2, 1, 30), 30)]);
        let written = KvReply::Written;
        assert_eq!(replies, vec![(written.clone(), false), (written.clone(), true), (written, false)]);
        assert_eq!(applied, 2, "seq 1 applied once, seq 2 once");
    }

    #[test]
    fn acknowledged_outcomes_are_forgotten_and_never_reapplied() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let (replies, applied) = run(&engine, &[(put(1, 1, 10), 10), (put(2, 2, 20), 20), (put(1, 1, 30), 30)]);
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
            let refused = apply_once(&mut t, 1, &put(1, 1, 10), 10, |_| Ok(KvReply::Forgotten)).unwrap();
            assert_eq!(refused, (KvReply::Forgotten, false));
            let retried = apply_once(&mut t, 1, &put(1, 1, 20), 20, |_| Ok(KvReply::Written)).unwrap();
            assert_eq!(retried, (KvReply::Written, false), "a refused write may apply when retried");
        }
        tx.commit().unwrap();
    }

    #[test]
    fn idle_sessions_expire_by_log_time() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        run(&engine, &[(put(1, 1, 1_000), 1_000)]);
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
