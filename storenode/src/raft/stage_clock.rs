//! Where a replicated write spends its time, per stage, on the leader.
//!
//! The log store notes when each entry the leader itself proposed was
//! queued for its log, the state machine when it started and finished
//! applying it, and the proposer when openraft handed back the reply; each
//! gap is observed in `store_raft_stage_seconds{stage}`:
//!
//! - `leader_append`: queued for the leader's log until that write is on disk;
//! - `commit`: queued until the state machine starts applying it (the
//!   leader's append and a quorum's, over the network);
//! - `apply`: the apply batch that carried it;
//! - `reply`: applied until the proposer has the reply.
//!
//! `replicate` (an append RPC's round trip) and `follower_append` (a
//! follower handling it) are observed by the transport, `propose` (the
//! whole `client_write`) by the proposer. Followers note nothing: their
//! entries were proposed elsewhere.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use crate::metrics;

/// Entries remembered at most: a stall (no quorum) must not grow it.
const MAX_TRACKED: usize = 4096;

#[derive(Default)]
pub struct StageClock {
    /// (index, queued for the log, applied), oldest first.
    entries: Mutex<VecDeque<(u64, Instant, Option<Instant>)>>,
}

impl StageClock {
    /// Entries `indexes` of this leader's term were queued for its log now.
    pub fn queued(&self, indexes: impl IntoIterator<Item = u64>, now: Instant) {
        let mut e = self.entries.lock().unwrap();
        for i in indexes {
            // A re-proposed index (after a truncation) replaces the older.
            while e.back().is_some_and(|(j, _, _)| *j >= i) {
                e.pop_back();
            }
            e.push_back((i, now, None));
        }
        while e.len() > MAX_TRACKED {
            e.pop_front();
        }
    }

    /// The leader's log write of entries up to `last`, queued at `queued`,
    /// is on disk.
    pub fn flushed(queued: Instant) {
        metrics::RAFT_STAGE_SECONDS.with_label_values(&["leader_append"]).observe(queued.elapsed().as_secs_f64());
    }

    /// The state machine applied `indexes` between `started` and `done`.
    pub fn applied(&self, indexes: impl IntoIterator<Item = u64>, started: Instant, done: Instant) {
        let mut e = self.entries.lock().unwrap();
        let mut any = false;
        for i in indexes {
            // Entries below the first tracked one were proposed before
            // this peer led, or forgotten: nothing to observe.
            let Some(first) = e.front().map(|(j, _, _)| *j) else { break };
            let Some(slot) = i.checked_sub(first).and_then(|k| e.get_mut(k as usize)) else { continue };
            if slot.0 != i {
                continue;
            }
            any = true;
            let commit = started.saturating_duration_since(slot.1);
            metrics::RAFT_STAGE_SECONDS.with_label_values(&["commit"]).observe(commit.as_secs_f64());
            slot.2 = Some(done);
        }
        if any {
            let apply = done.saturating_duration_since(started);
            metrics::RAFT_STAGE_SECONDS.with_label_values(&["apply"]).observe(apply.as_secs_f64());
        }
    }

    /// The proposer of `index` has its reply: observes `reply` and forgets
    /// the entry and every older one.
    pub fn replied(&self, index: u64) {
        let mut e = self.entries.lock().unwrap();
        let mut applied = None;
        while e.front().is_some_and(|(j, _, _)| *j <= index) {
            let (j, _, at) = e.pop_front().expect("checked non-empty");
            if j == index {
                applied = at;
            }
        }
        if let Some(at) = applied {
            metrics::RAFT_STAGE_SECONDS.with_label_values(&["reply"]).observe(at.elapsed().as_secs_f64());
        }
    }
}
