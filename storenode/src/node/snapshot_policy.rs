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
//! One task checks every peer a few times a second: a cheap read of its
//! raft metrics, nothing per write.

use std::sync::{Arc, Weak};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use tokio::sync::watch;

use super::Node;
use super::peer::RegionPeer;

/// How often the peers are checked: a build starts at most this late.
pub const CHECK_EVERY: Duration = Duration::from_millis(250);

/// Checks every peer each [`CHECK_EVERY`] until shutdown.
pub async fn run(node: Weak<Node>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let Some(node) = node.upgrade() else { return };
        let every = node.config.raft.snapshot_logs;
        for peer in node.peers() {
            if snapshot_due(&peer, every) {
                // A build already running makes openraft ignore this.
                let _ = peer.raft.trigger().snapshot().await;
            }
        }
    }
}

/// Whether `peer` should build a snapshot now.
pub fn snapshot_due(peer: &Arc<RegionPeer>, every: u64) -> bool {
    let m = peer.raft.metrics();
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
