//! Log time: the clock client sessions expire by ([`super::session`]).
//!
//! Every replica must expire the same sessions at the same log position, so
//! log time is carried in the log, not read from a replica's clock. It is
//! also the only thing standing between a retried write and its second
//! application: a session that expires early lets a write the client is
//! still retrying apply twice. So no single machine's clock may move it
//! far.
//!
//! A wall clock can jump by minutes (an NTP step, a VM resumed, an operator
//! setting the date), forward or back, and one leader whose clock jumped
//! would expire every session at once. Log time is therefore driven by
//! each leader's *monotonic* clock, which is never stepped, and anchored on
//! the log itself:
//! - when a peer first proposes in a term it leads, it anchors: it notes
//!   the log time it has applied (`base_ms`) and its monotonic clock;
//! - every write it proposes in that term carries a [`ClockStamp`]: the
//!   term and its peer id, `base_ms`, and the monotonic time elapsed since
//!   the anchor;
//! - applying the entry moves log time to `base_ms + elapsed_ms` if that is
//!   later, never back. A stamp counts only in an entry whose log id names
//!   the same term and leader (a proposal stamped just before a leadership
//!   change and appended by a later leadership moves nothing), and `base_ms`
//!   is clamped to the log time at the entry, so one entry advances log
//!   time by at most the leader's monotonic time since it anchored.
//!
//! Why that never expires a session early: the anchor's base is log time
//! the leader had applied, so everything that moved log time up to `base_ms`
//! was proposed before the anchor; and every entry in the leader's log when
//! it was elected was proposed before it could anchor. So between any
//! earlier entry and this one, log time grows by no more than the real time
//! between their proposals, as measured by one machine's monotonic clock.
//! Different machines' clocks never meet: a new leader whose clock reads
//! hours ahead (or behind) of the old one's starts from the log time it
//! applied, not from its own reading.
//!
//! What log time gives up: the time between the last entry of one
//! leadership and the anchor of the next (a region idle across a leader
//! change, a store down) does not count, so a session may outlive its TTL
//! by such gaps. It never lives forever: every leadership that proposes
//! moves log time at the pace of real time.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::LogId;

/// A leader's reading of log time, carried by each command it proposes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockStamp {
    /// The term the reading belongs to.
    pub term: u64,
    /// The peer that proposed: with `term`, the leadership whose anchor
    /// the reading counts from.
    pub leader: u64,
    /// Log time the leader had applied when it anchored in `term`.
    pub base_ms: u64,
    /// The leader's monotonic time since it anchored.
    pub elapsed_ms: u64,
}

impl ClockStamp {
    /// Log time after an entry carrying this stamp, at `log_id`, applies
    /// at log time `log_ms`. Deterministic: every replica computes the same
    /// from the same log.
    pub fn advance(&self, log_ms: u64, log_id: &LogId) -> u64 {
        let proposer = log_id.committed_leader_id();
        if (proposer.term, proposer.node_id) != (self.term, self.leader) {
            return log_ms;
        }
        log_ms.max(self.base_ms.min(log_ms).saturating_add(self.elapsed_ms))
    }
}

/// A clock that never goes back or jumps: elapsed time on one machine.
pub trait MonotonicClock: Send + Sync {
    /// Milliseconds since an arbitrary origin fixed for the clock's life.
    fn now_ms(&self) -> u64;
}

/// The process's monotonic clock (`CLOCK_MONOTONIC` on Linux: slewed by
/// NTP, never stepped).
struct ProcessClock(Instant);

impl MonotonicClock for ProcessClock {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Where a leadership counts its elapsed time from.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    term: u64,
    base_ms: u64,
    at_ms: u64,
}

/// One peer's side of log time as a leader: its anchor, per term.
pub struct LeaderClock {
    clock: Arc<dyn MonotonicClock>,
    anchor: Mutex<Option<Anchor>>,
}

impl Default for LeaderClock {
    fn default() -> Self {
        LeaderClock::new(Arc::new(ProcessClock(Instant::now())))
    }
}

impl LeaderClock {
    pub fn new(clock: Arc<dyn MonotonicClock>) -> Self {
        LeaderClock { clock, anchor: Mutex::new(None) }
    }

    /// The stamp for a command peer `leader` proposes in `term`.
    /// `applied_log_ms` is the log time this peer has applied, read
    /// before the call: the anchor's base must not be later than its
    /// monotonic reading.
    pub fn stamp(&self, term: u64, leader: u64, applied_log_ms: u64) -> ClockStamp {
        let now = self.clock.now_ms();
        let mut anchor = self.anchor.lock().unwrap();
        let a = match *anchor {
            Some(a) if a.term == term => a,
            _ => *anchor.insert(Anchor { term, base_ms: applied_log_ms, at_ms: now }),
        };
        ClockStamp { term, leader, base_ms: a.base_ms, elapsed_ms: now.saturating_sub(a.at_ms) }
    }
}

#[cfg(test)]
mod tests;
