//! When each region builds a snapshot (and so truncates its log): after
//! `raft.snapshot-logs` applied entries since its last one, as openraft's
//! own `LogsSinceLast` policy would, but never while the peer is sending a
//! snapshot to another store.
//!
//! The reason is the peer receiving it. openraft purges a leader's log
//! after each snapshot it builds, down to `max_in_snapshot_log_to_keep`
//! entries behind it, and a snapshot in flight does not hold that purge
//! back. A large region's snapshot takes seconds to stream; under writes,
//! the leader could build a newer snapshot meanwhile and purge past the
//! one being sent, so the new replica, once installed, would find the log
//! it must continue from gone and need a second snapshot of the whole
//! region. With builds held back while a send runs, the log after the sent
//! snapshot stays until the receiver has caught up from it.
//!
//! A region's state machine tells the node once it has applied a
//! snapshot's worth of entries since its current snapshot; one task looks
//! at those regions a few times a second, and at no other. An idle
//! region, asleep or not, costs the policy nothing.

use std::sync::{Arc, Weak};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use tokio::sync::watch;

use super::Node;
use super::peer::RegionPeer;

/// How often the peers are checked: a build starts at most this late.
pub const CHECK_EVERY: Duration = Duration::from_millis(250);

/// Each [`CHECK_EVERY`] until shutdown, builds the snapshots due among
/// the candidate regions; at the first check, every peer is a candidate
/// (a restart may find some due).
pub async fn run(node: Weak<Node>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = true;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let Some(node) = node.upgrade() else { return };
        let every = node.config.raft.snapshot_logs;
        let candidates = if std::mem::take(&mut first) { node.peers() } else { node.take_snapshot_candidates() };
        for peer in candidates {
            if peer.shared.sending_snapshots() > 0 {
                // Held back, not forgotten: looked at again next time.
                node.add_snapshot_candidate(peer.region_id());
            } else if snapshot_due(&peer, every)
                && let Some(raft) = peer.raft()
            {
                // A build already running makes openraft ignore this; if
                // it leaves the region due, its next apply says so again.
                let _ = raft.trigger().snapshot().await;
            }
        }
    }
}

impl Node {
    /// The live peers that reported a snapshot's worth of entries since
    /// the last check, forgotten as they are taken.
    fn take_snapshot_candidates(&self) -> Vec<Arc<RegionPeer>> {
        let ids = std::mem::take(&mut *self.snapshot_candidates.lock().unwrap());
        ids.into_iter().filter_map(|id| self.peer(id)).collect()
    }

    /// Marks `region_id` for the next check.
    pub(super) fn add_snapshot_candidate(&self, region_id: u64) {
        self.snapshot_candidates.lock().unwrap().insert(region_id);
    }
}

/// Whether `peer` should build a snapshot now (never while dormant: it
/// applied nothing since it slept).
pub fn snapshot_due(peer: &Arc<RegionPeer>, every: u64) -> bool {
    let Some(raft) = peer.raft() else { return false };
    let m = raft.metrics();
    let m = m.borrow_watched();
    let applied = m.last_applied.as_ref().map_or(0, |l| l.index());
    let snapshot = m.snapshot.as_ref().map_or(0, |l| l.index());
    policy(applied, snapshot, every, peer.shared.sending_snapshots())
}

/// The policy itself: `every` applied entries past the last snapshot, and
/// no snapshot of this peer in flight to another store.
pub fn policy(applied: u64, snapshot: u64, every: u64, sending: usize) -> bool {
    sending == 0 && applied.saturating_sub(snapshot) >= every
}

#[cfg(test)]
mod tests {
    use super::policy;

    #[test]
    fn a_snapshot_is_due_every_n_entries_unless_one_is_being_sent() {
        assert!(!policy(9_999, 0, 10_000, 0));
        assert!(policy(10_000, 0, 10_000, 0));
        assert!(!policy(15_000, 10_000, 10_000, 0));
        assert!(policy(20_500, 10_000, 10_000, 0));
        assert!(!policy(20_500, 10_000, 10_000, 1), "held back while a send runs");
        assert!(!policy(5, 10, 10_000, 0), "an installed snapshot ahead of the applied mark");
    }
}
