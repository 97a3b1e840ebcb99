//! One region's raft peer on this store.
//!
//! A peer is live (its openraft group runs), dormant (it slept long enough
//! that its group was shut down, see [`super::dormancy`]) or stopped (its
//! region was destroyed or split away here). What the store asks of every
//! peer (leader, term, region) a dormant one answers from what it knew when
//! it went dormant, which nothing can change while it sleeps: anything that
//! could revives it first.

use std::sync::{Arc, RwLock};

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use proto::metapb;

use crate::engine::Engine;
use crate::raft::RegionRaft;
use crate::raft::log_store::RegionLogStore;
use crate::raft::network::RegionNetwork;
use crate::raft::state_machine::{RegionShared, RegionStateMachine};
use crate::transport::client::Transport;

/// A peer this many entries behind the leader's log (or that has matched
/// nothing yet: a new learner waiting for its snapshot) is pending.
const PENDING_LAG: u64 = 256;
/// A peer that has not acknowledged the leader for this long is down.
const DOWN_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether the leader whose metrics are `m` counts peer `id` as pending.
pub fn is_pending(m: &openraft::RaftMetrics<crate::raft::TypeConfig>, id: u64) -> bool {
    let last = m.last_log_index.unwrap_or(0);
    let matched = m.replication.as_ref().and_then(|r| r.get(&id)).cloned().flatten();
    matched.is_none_or(|l| last.saturating_sub(l.index()) > PENDING_LAG)
}

pub struct RegionPeer {
    raft: RwLock<Incarnation>,
    /// Serializes going dormant, reviving and stopping: a revived group
    /// never opens the region's log while the previous one still runs.
    pub(super) transition: tokio::sync::Mutex<()>,
    pub shared: Arc<RegionShared>,
    /// Whether its raft timers run: see [`super::hibernation`].
    pub hibernation: super::hibernation::Hibernation,
}

/// Whether the peer's openraft group runs.
pub(super) enum Incarnation {
    Live(RegionRaft),
    Dormant(DormantView),
    Stopped,
}

/// What a peer knew of its group when it went dormant.
#[derive(Debug, Clone)]
pub(super) struct DormantView {
    pub leader: Option<metapb::Peer>,
    pub term: u64,
    pub leading: bool,
}

impl RegionPeer {
    /// Opens the region's stores and starts its raft node. With
    /// `initialize`, a pristine group's raft state is seeded with the
    /// region's voters ([`crate::raft::bootstrap`]; every replica of a
    /// bootstrap region seeds the same state).
    ///
    /// A region whose snapshot install was interrupted by a restart finishes
    /// it before its raft starts. `sizes` are its approximate keys and bytes
    /// when already known (a split-born region), else counted.
    ///
    /// # Errors
    ///
    /// Storage failures, an interrupted install that cannot resume, or raft
    /// refusing to start.
    pub async fn start(
        engine: Arc<Engine>,
        transport: Arc<Transport>,
        config: Arc<openraft::Config>,
        region: metapb::Region,
        peer_id: u64,
        initialize: bool,
        sizes: Option<(u64, u64)>,
    ) -> std::io::Result<Arc<RegionPeer>> {
        if initialize {
            crate::raft::bootstrap::seed(&engine, &region).await?;
        }
        let sm = RegionStateMachine::open_sized(engine.clone(), region.clone(), peer_id, sizes).await?;
        // An interrupted snapshot install, now finished, may have moved the range.
        let region = sm.shared().region();
        let shared = sm.shared();
        let raft = launch(engine, transport, config, sm).await?;
        // No election timeout of silence at bootstrap: the voter with the
        // lowest id campaigns at once (the others' seeded logs match).
        let first_voter = region.peers.iter().filter(|p| p.role == metapb::PeerRole::Voter as i32).map(|p| p.id).min();
        if initialize && first_voter == Some(peer_id) {
            let m = raft.metrics().borrow_watched().clone();
            if m.current_leader.is_none()
                && let Err(e) = raft.trigger().elect(false).await
            {
                tracing::debug!(region_id = region.id, error = %e, "bootstrap campaign skipped");
            }
        }
        Ok(Arc::new(RegionPeer {
            raft: RwLock::new(Incarnation::Live(raft)),
            transition: tokio::sync::Mutex::new(()),
            shared,
            hibernation: Default::default(),
        }))
    }

    pub fn region_id(&self) -> u64 {
        self.shared.region_id
    }

    /// The peer's openraft group; `None` while dormant or once stopped
    /// (wake it first: [`super::Node::wake`]).
    pub fn raft(&self) -> Option<RegionRaft> {
        match &*self.raft.read().unwrap() {
            Incarnation::Live(raft) => Some(raft.clone()),
            Incarnation::Dormant(_) | Incarnation::Stopped => None,
        }
    }

    /// Whether the peer's group is shut down while it sleeps.
    pub fn is_dormant(&self) -> bool {
        matches!(&*self.raft.read().unwrap(), Incarnation::Dormant(_))
    }

    /// The dormant peer's view of its group; `None` unless dormant.
    pub(super) fn dormant_view(&self) -> Option<DormantView> {
        match &*self.raft.read().unwrap() {
            Incarnation::Dormant(v) => Some(v.clone()),
            Incarnation::Live(_) | Incarnation::Stopped => None,
        }
    }

    /// Replaces the incarnation, returning the one it had.
    pub(super) fn set_incarnation(&self, next: Incarnation) -> Incarnation {
        std::mem::replace(&mut *self.raft.write().unwrap(), next)
    }

    /// Whether this peer leads its region. A dormant leader still does: no
    /// member can have elected another without waking it.
    pub fn is_leader(&self) -> bool {
        match &*self.raft.read().unwrap() {
            Incarnation::Live(raft) => {
                let m = raft.metrics();
                let m = m.borrow_watched();
                m.state == ServerState::Leader && m.current_leader == Some(self.shared.peer_id)
            }
            Incarnation::Dormant(v) => v.leading,
            Incarnation::Stopped => false,
        }
    }

    /// The leader as this peer knows it: peer and store.
    pub fn leader(&self) -> Option<metapb::Peer> {
        let raft = match &*self.raft.read().unwrap() {
            Incarnation::Live(raft) => raft.clone(),
            Incarnation::Dormant(v) => return v.leader,
            Incarnation::Stopped => return None,
        };
        let m = raft.metrics().borrow_watched().clone();
        let id = m.current_leader?;
        let node = m.membership_config.membership().get_node(&id)?;
        Some(metapb::Peer { id, store_id: node.store_id, role: metapb::PeerRole::Voter as i32 })
    }

    pub fn term(&self) -> u64 {
        match &*self.raft.read().unwrap() {
            Incarnation::Live(raft) => raft.metrics().borrow_watched().current_term,
            Incarnation::Dormant(v) => v.term,
            Incarnation::Stopped => 0,
        }
    }

    /// The region's pending and down peers, from this leader's replication
    /// and heartbeat metrics (empty on a follower, and on a dormant leader:
    /// its members matched its whole log when they went to sleep).
    pub fn lagging_peers(&self, region: &metapb::Region) -> (Vec<metapb::Peer>, Vec<metapb::Peer>) {
        let Some(raft) = self.raft() else { return (Vec::new(), Vec::new()) };
        let m = raft.metrics().borrow_watched().clone();
        let (mut pending, mut down) = (Vec::new(), Vec::new());
        if m.replication.is_none() {
            return (pending, down);
        }
        // A hibernated leader hears no acknowledgements, and one just woken
        // has not heard them yet: its members agreed to sleep, and a member
        // whose store dies is PD's to see from the store's heartbeats.
        let heard_long_enough = self.awake_for().is_some_and(|d| d > DOWN_AFTER);
        for p in region.peers.iter().filter(|p| p.id != self.shared.peer_id) {
            if is_pending(&m, p.id) {
                pending.push(*p);
            }
            let acked = m.heartbeat.as_ref().and_then(|h| h.get(&p.id)).cloned().flatten();
            if heard_long_enough && acked.is_none_or(|t| openraft::Instant::elapsed(&*t) > DOWN_AFTER) {
                down.push(*p);
            }
        }
        (pending, down)
    }

    /// The region as raft membership says it is: the stored meta with its
    /// peers' roles taken from the current membership.
    pub fn region(&self) -> metapb::Region {
        self.shared.region()
    }
}

/// Starts an openraft group over the region's log and `sm`.
///
/// # Errors
///
/// Raft refusing to start (storage failures reading the log or vote).
pub(super) async fn launch(
    engine: Arc<Engine>,
    transport: Arc<Transport>,
    config: Arc<openraft::Config>,
    sm: RegionStateMachine,
) -> std::io::Result<RegionRaft> {
    let shared = sm.shared();
    let log = RegionLogStore::new(shared.region_id, engine)
        .with_stage_clock(shared.peer_id, shared.stages.clone())
        .with_fence(shared.fence.clone());
    let network = RegionNetwork { shared: shared.clone(), transport };
    RegionRaft::new(shared.peer_id, config, network, log, sm)
        .await
        .map_err(|e| std::io::Error::other(format!("region {} raft failed to start: {e}", shared.region_id)))
}
