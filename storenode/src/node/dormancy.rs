//! Dormancy: a region that has slept long enough gives up its openraft
//! group, so an idle region costs its meta and little else.
//!
//! A hibernated region still holds a whole openraft group per peer: its
//! core task, channels and the fixed-size queues openraft reserves at
//! start, about 400 KiB each. A peer that has been hibernated, and has
//! heard neither a request nor raft traffic, for
//! [`Node::dormant_after`] shuts its group down and keeps only what the
//! store asks of every peer (its region, leader and term, see
//! [`super::peer::DormantView`]). Its raft state is all in the engine: a
//! region hibernates only once every member has matched the whole log, and
//! the applied state lives on in the peer's [`RegionShared`].
//!
//! Anything that would wake a hibernated peer revives a dormant one first
//! ([`Node::wake`], [`Node::revive`]): a request or directive, raft traffic
//! (a bare heartbeat too, since only a running group can answer it), a
//! hibernation message, a failed liveness probe of its leader's store. The
//! group restarts from the engine with its timers stopped, so it is
//! exactly a hibernated peer again, and the wake goes on as for one.
//!
//! A leader's group restarts as the leader of the same term, without an
//! election (openraft's leader restore, which a store restart does not
//! use, nor does a follower's revive, whose vote on disk may still name
//! itself from before a restart: there, the lazily written applied state may lag what the leader
//! acknowledged; here the state machine is the one the peer kept in
//! memory, and every entry was committed and applied before it slept).
//! Lease safety holds: the restored leader has no lease (no quorum has
//! acknowledged it since it restarted), so its first reads take a read
//! index; and a follower goes dormant only after hearing nothing for
//! longer than a lease, so the vote lease its revived group forgets (a
//! restarted group grants votes at once) had run out.
//!
//! [`RegionShared`]: crate::raft::state_machine::RegionShared

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use tracing::{debug, warn};

use super::hibernation::{WakeCause, Woken};
use super::peer::{DormantView, Incarnation, launch};
use super::{Node, RegionPeer, watch_leadership};
use crate::metrics;
use crate::raft::state_machine::RegionStateMachine;

/// Regions put to rest at once.
const CONCURRENT_RESTS: usize = 32;

impl Node {
    /// How long a hibernated peer must go without requests or raft traffic
    /// before its group goes dormant: the hibernation idle time, and at
    /// least two maximum election timeouts (longer than any lease).
    /// `None` when hibernation is off.
    pub fn dormant_after(&self) -> Option<Duration> {
        let idle = self.hibernate_after()?;
        Some(idle.max(Duration::from_millis(2 * self.config.raft.election_timeout_max_ms)))
    }

    /// Regions whose groups are shut down while they sleep.
    pub fn dormant_count(&self) -> usize {
        self.dormant.load(Ordering::Relaxed)
    }

    /// Puts every peer that has been quiet for `quiet` to rest.
    pub(super) async fn rest_quiet_regions(&self, quiet: Duration) {
        let ready: Vec<Arc<RegionPeer>> =
            self.peers().into_iter().filter(|p| !p.is_dormant() && p.quiet_for(quiet)).collect();
        let rested = std::sync::atomic::AtomicUsize::new(0);
        futures::stream::iter(ready)
            .for_each_concurrent(CONCURRENT_RESTS, |peer| {
                let rested = &rested;
                async move {
                    if self.put_to_rest(&peer, quiet).await {
                        rested.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .await;
        if rested.into_inner() > 0 {
            // What the groups held sits in the allocator's free lists.
            let _ = tokio::task::spawn_blocking(crate::memory::release_free_memory).await;
        }
    }

    /// Shuts the peer's group down if it is still quiet for `quiet`;
    /// whether it did.
    async fn put_to_rest(&self, peer: &RegionPeer, quiet: Duration) -> bool {
        // A revive or stop under way: not now.
        let Ok(_transition) = peer.transition.try_lock() else { return false };
        let Some(raft) = peer.raft() else { return false };
        if peer.shared.sending_snapshots() > 0 || peer.shared.is_applying_snapshot() {
            return false;
        }
        let view = {
            let m = raft.metrics().borrow_watched().clone();
            let leading = m.state == ServerState::Leader && m.current_leader == Some(peer.shared.peer_id);
            let leader = m.current_leader.and_then(|id| {
                let node = m.membership_config.membership().get_node(&id)?;
                Some(proto::metapb::Peer { id, store_id: node.store_id, role: proto::metapb::PeerRole::Voter as i32 })
            });
            DormantView { leader, term: m.current_term, leading }
        };
        // Checked and swapped under the hibernation lock, so a wake that
        // comes now finds the peer dormant and revives it.
        let swapped = peer.while_quiet(quiet, || peer.set_incarnation(Incarnation::Dormant(view)));
        let Some(Incarnation::Live(raft)) = swapped else { return false };
        self.dormant.fetch_add(1, Ordering::Relaxed);
        metrics::HIBERNATION_EVENTS.with_label_values(&["dormant"]).inc();
        if tokio::time::timeout(Duration::from_secs(5), raft.shutdown()).await.is_err() {
            warn!(region_id = peer.region_id(), "dormant region's raft took over 5 s to stop");
        }
        debug!(region_id = peer.region_id(), "region dormant");
        true
    }

    /// Restarts a dormant peer's group from the engine, timers stopped (a
    /// hibernated peer again); whether this call revived it. A peer that
    /// led its region leads it again, in the same term.
    ///
    /// # Errors
    ///
    /// Raft failing to start; the peer stays dormant.
    pub async fn revive(&self, peer: &Arc<RegionPeer>) -> std::io::Result<bool> {
        if !peer.is_dormant() {
            return Ok(false);
        }
        let _transition = peer.transition.lock().await;
        let Some(view) = peer.dormant_view() else { return Ok(false) };
        let sm = RegionStateMachine::resume(self.engine.clone(), peer.shared.clone());
        let raft = launch(self.engine.clone(), self.transport.clone(), self.revive_config(&view), sm).await?;
        if view.leading {
            // Restored as leader in its term, once its core has started.
            let deadline = Duration::from_millis(self.config.raft.election_timeout_max_ms);
            if let Err(e) = raft.wait(Some(deadline)).state(ServerState::Leader, "revived leader restored").await {
                debug!(region_id = peer.region_id(), error = %e, "revived leader not restored in time");
            }
        }
        peer.set_incarnation(Incarnation::Live(raft));
        self.dormant.fetch_sub(1, Ordering::Relaxed);
        metrics::HIBERNATION_EVENTS.with_label_values(&["revived"]).inc();
        tokio::spawn(watch_leadership(self.me.clone(), peer.clone()));
        debug!(region_id = peer.region_id(), leading = view.leading, "region revived");
        Ok(true)
    }

    /// The config a dormant peer's group restarts with: timers stopped,
    /// and leader restore only for a peer that led when it went dormant.
    /// openraft restores leadership from the vote on disk, which does not
    /// say whether the group led in this process: a peer that led before a
    /// restart and went dormant as a follower since (a restart does not
    /// restore) would come back leading on state that may lag what it
    /// acknowledged before the restart.
    pub(super) fn revive_config(&self, view: &DormantView) -> Arc<openraft::Config> {
        if view.leading { self.revive_config.clone() } else { self.asleep_config.clone() }
    }

    /// Wakes `peer` for `cause`, reviving it first if dormant. A leader
    /// woken by a request has it wait for one heartbeat round: its lease
    /// ran out while it slept, and openraft takes no write from a leader
    /// without one.
    pub async fn wake(&self, peer: &Arc<RegionPeer>, cause: WakeCause) -> Woken {
        if let Err(e) = self.revive(peer).await {
            warn!(region_id = peer.region_id(), error = %e, "dormant region failed to revive");
            return Woken::Awake;
        }
        let woken = peer.wake(cause);
        if cause == WakeCause::Request
            && woken != Woken::Awake
            && peer.is_leader()
            && let Some(raft) = peer.raft()
        {
            let deadline = Duration::from_millis(self.config.raft.election_timeout_max_ms);
            let round = raft.ensure_linearizable(openraft::LinearizerOption::new(None, true));
            match tokio::time::timeout(deadline, round).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => debug!(region_id = peer.region_id(), error = %e, "woken leader not confirmed"),
                Err(_) => debug!(region_id = peer.region_id(), "woken leader not confirmed in time"),
            }
        }
        woken
    }

    /// Stops the peer's group for good (its region destroyed or replaced
    /// here), whether live or dormant.
    pub(super) async fn stop_peer(&self, peer: &RegionPeer) {
        let _transition = peer.transition.lock().await;
        match peer.set_incarnation(Incarnation::Stopped) {
            Incarnation::Live(raft) => {
                let _ = tokio::time::timeout(Duration::from_secs(5), raft.shutdown()).await;
            }
            Incarnation::Dormant(_) => {
                self.dormant.fetch_sub(1, Ordering::Relaxed);
            }
            Incarnation::Stopped => {}
        }
    }
}
