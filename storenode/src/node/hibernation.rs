//! Hibernation: a region with no traffic stops its raft timers, so an idle
//! region costs no ticks, heartbeats or elections.
//!
//! The leader decides. Once the region has seen no request for
//! `raft.hibernate-after-ms`, every member has matched the leader's whole
//! log and no membership change is half done, the leader asks each other
//! member to hibernate (`HIBERNATE`, naming its term and last log index);
//! a member agrees only if it follows that leader in that term with the
//! same log, and stops its ticker. When all have agreed, the leader stops
//! its own. A member that refuses, or cannot be reached, keeps the region
//! awake: the leader's heartbeats go on and wake any member that agreed.
//!
//! Any of these wakes a peer (its ticker runs again):
//! - a request or directive for the region on this store; a follower
//!   woken so holds its elections back for one election timeout and asks
//!   its leader to wake (`WAKE`), whose heartbeats then reach everyone;
//! - raft traffic from another member (appends with entries, votes, a
//!   transfer, a snapshot, a `WAKE`), delivered before the ticker restarts
//!   so a follower's first tick already sees its leader's message. Bare
//!   heartbeats are answered without waking: a follower asleep under an
//!   awake leader cannot campaign against it, while one woken by the
//!   heartbeat its leader sent just before hibernating would;
//! - the leader's store answering none of the liveness probes hibernated
//!   followers send (one per leader store, not per region, every half
//!   election timeout) for an election timeout, or answering that the
//!   region's peer there stopped on a fatal error: the followers then
//!   campaign as after any leader loss.
//!
//! Lease safety needs nothing new: a leader's lease runs from the last
//! quorum acknowledgement of its heartbeats, which stop when it
//! hibernates, so a woken leader's lease has long expired and its first
//! reads take a read index. A hibernated follower has not heard from its
//! leader for as long, so it grants a vote to a candidate only after the
//! old leader's lease could have run out, exactly as without hibernation.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use serde::{Deserialize, Serialize};

use super::RegionPeer;
use super::sleepers::Sleepers;
use crate::metrics;

/// What a leader asks of each member before it hibernates.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HibernateRequest {
    pub term: u64,
    pub leader: u64,
    pub last_log_index: u64,
}

/// A leader's ask to hibernate, with what it saw when it checked the
/// region idle: it sleeps only if no request arrived since that check.
#[derive(Debug, Clone)]
pub struct HibernationAsk {
    pub req: HibernateRequest,
    /// The peer's request count at the idleness check.
    requests_seen: u64,
}

/// Why a peer wakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeCause {
    /// A request or directive for the region reached this store.
    Request,
    /// Raft traffic from another member of the region.
    RaftMessage,
    /// The leader's store did not answer the liveness probe.
    LeaderLost,
}

impl WakeCause {
    fn label(self) -> &'static str {
        match self {
            WakeCause::Request => "request",
            WakeCause::RaftMessage => "raft_message",
            WakeCause::LeaderLost => "leader_lost",
        }
    }
}

/// What a wake did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// The peer was awake already.
    Awake,
    /// It was hibernated and runs again.
    Resumed,
    /// A follower woken by a request: its elections are held back until
    /// [`RegionPeer::release_election_hold`] with this generation, and its
    /// leader should be asked to wake.
    HoldingElections { generation: u64 },
}

/// One peer's hibernation state.
pub struct Hibernation {
    state: Mutex<State>,
    /// The store's count this peer is kept in, once the node set it.
    sleepers: OnceLock<Arc<Sleepers>>,
}

struct State {
    /// The last request or directive for the region on this store.
    last_request: Instant,
    /// Requests and directives noted so far: a leader's ask to hibernate
    /// holds only while this has not moved since its idleness check
    /// (an instant taken after the check could miss one in between).
    requests: u64,
    hibernated: bool,
    /// The store of the leader a hibernated follower agreed to sleep
    /// under: fixed while it sleeps, since anything that could change it
    /// (entries, votes) wakes the peer first. `None` on a leader.
    leader_store: Option<u64>,
    /// When the peer last woke (or started).
    woke_at: Instant,
    /// Bumped by each wake that holds elections back, so that only the
    /// latest hold's release turns elections back on.
    election_hold: u64,
    /// When the peer last fell asleep.
    asleep_since: Instant,
    /// When raft traffic last reached the peer (answered asleep or not).
    last_heard: Instant,
}

impl Default for Hibernation {
    fn default() -> Self {
        let now = Instant::now();
        Hibernation {
            state: Mutex::new(State {
                last_request: now,
                requests: 0,
                hibernated: false,
                leader_store: None,
                woke_at: now,
                election_hold: 0,
                asleep_since: now,
                last_heard: now,
            }),
            sleepers: OnceLock::new(),
        }
    }
}

impl State {
    fn note_request(&mut self) {
        self.last_request = Instant::now();
        self.requests += 1;
    }
}

impl Hibernation {
    /// Counts this peer in `sleepers` while it sleeps; only the first call
    /// takes effect, and it must come before the peer can first sleep.
    pub fn count_in(&self, sleepers: Arc<Sleepers>) {
        let _ = self.sleepers.set(sleepers);
    }

    fn fell_asleep(&self, leader_store: Option<u64>) {
        if let Some(s) = self.sleepers.get() {
            s.fell_asleep(leader_store);
        }
        metrics::HIBERNATION_EVENTS.with_label_values(&["hibernated"]).inc();
    }

    fn woke(&self, leader_store: Option<u64>) {
        if let Some(s) = self.sleepers.get() {
            s.woke(leader_store);
        }
    }
}

impl Drop for Hibernation {
    fn drop(&mut self) {
        let s = self.state.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (hibernated, leader_store) = (s.hibernated, s.leader_store);
        if hibernated {
            self.woke(leader_store);
        }
    }
}

impl RegionPeer {
    /// Whether the peer's raft timers are stopped.
    pub fn is_hibernated(&self) -> bool {
        self.hibernation.state.lock().unwrap().hibernated
    }

    /// The store whose leader this hibernated follower sleeps under;
    /// `None` while awake or on the leader. Read without touching raft, so
    /// the liveness probes cost nothing per sleeping region.
    pub fn asleep_under(&self) -> Option<u64> {
        let s = self.hibernation.state.lock().unwrap();
        if s.hibernated { s.leader_store } else { None }
    }

    /// How long the peer has been awake; `None` while hibernated.
    pub fn awake_for(&self) -> Option<Duration> {
        let s = self.hibernation.state.lock().unwrap();
        (!s.hibernated).then(|| s.woke_at.elapsed())
    }

    /// Puts a peer started after a restart (its timers stopped from the
    /// start) to sleep under the leader it last voted for, as if that
    /// leader had asked: until raft traffic, a request or a failed probe
    /// of that leader's store wakes it, like any hibernated follower.
    ///
    /// Waking every region a store holds when it restarts would make every
    /// one campaign at once or wake its sleeping leader, and with
    /// thousands of regions the elections starve each other (votes time
    /// out, terms climb, no leader emerges). A region with traffic wakes
    /// its restarted peer with its first append. A peer that led before
    /// the restart sleeps with no leader to probe: a crashed leader does
    /// not resume its term, its followers elect another once their probes
    /// of this store fail, and a request here wakes it to campaign.
    pub fn sleep_after_restart(&self) {
        let Some(raft) = self.raft() else { return };
        let m = raft.metrics().borrow_watched().clone();
        let voted_for = *openraft::vote::RaftLeaderId::node_id(m.vote.leader_id());
        let leader_store = (voted_for != self.shared.peer_id)
            .then(|| m.membership_config.membership().get_node(&voted_for).map(|n| n.store_id))
            .flatten();
        let mut s = self.hibernation.state.lock().unwrap();
        if s.hibernated {
            return;
        }
        s.hibernated = true;
        s.leader_store = leader_store;
        s.asleep_since = Instant::now();
        self.hibernation.fell_asleep(leader_store);
    }

    /// Notes raft traffic reaching the peer, before it is delivered.
    pub fn heard(&self) {
        self.hibernation.state.lock().unwrap().last_heard = Instant::now();
    }

    /// Whether the peer has slept, without requests or raft traffic, for
    /// `quiet`: then its group may go dormant ([`super::dormancy`]).
    pub(super) fn quiet_for(&self, quiet: Duration) -> bool {
        self.while_quiet(quiet, || ()).is_some()
    }

    /// Runs `f` while no wake can change the hibernation state, if the peer
    /// is still [`RegionPeer::quiet_for`] `quiet`.
    pub(super) fn while_quiet<T>(&self, quiet: Duration, f: impl FnOnce() -> T) -> Option<T> {
        let s = self.hibernation.state.lock().unwrap();
        let still = s.hibernated
            && s.asleep_since.elapsed() >= quiet
            && s.last_heard.elapsed() >= quiet
            && s.last_request.elapsed() >= quiet;
        still.then(f)
    }

    /// Notes `cause` (a request counts as traffic) and restarts the raft
    /// timers if they were stopped.
    ///
    /// A dormant peer must be revived first ([`super::Node::wake`]); on
    /// one not live this only notes the request.
    pub(super) fn wake(&self, cause: WakeCause) -> Woken {
        let hold_elections = cause == WakeCause::Request && !self.is_leader();
        let Some(raft) = self.raft() else {
            if cause == WakeCause::Request {
                self.hibernation.state.lock().unwrap().note_request();
            }
            return Woken::Awake;
        };
        let mut s = self.hibernation.state.lock().unwrap();
        if cause == WakeCause::Request {
            s.note_request();
        }
        if !s.hibernated {
            return Woken::Awake;
        }
        s.hibernated = false;
        self.hibernation.woke(s.leader_store.take());
        s.woke_at = Instant::now();
        let rc = raft.runtime_config();
        let woken = if hold_elections {
            // Its leader may be alive and asleep: campaigning at the first
            // tick (its leader's last heartbeat is long past) would depose
            // it for nothing. The leader is asked to wake instead.
            s.election_hold += 1;
            rc.elect(false);
            Woken::HoldingElections { generation: s.election_hold }
        } else {
            rc.elect(true);
            Woken::Resumed
        };
        rc.tick(true);
        metrics::HIBERNATION_EVENTS.with_label_values(&[cause.label()]).inc();
        woken
    }

    /// Lets a follower woken by a request campaign again, unless a later
    /// wake holds its elections back anew.
    pub fn release_election_hold(&self, generation: u64) {
        let s = self.hibernation.state.lock().unwrap();
        if s.election_hold == generation
            && let Some(raft) = self.raft()
        {
            raft.runtime_config().elect(true);
        }
    }

    /// The request this leader would send its members to hibernate, if the
    /// region is ready: no request for `idle`, every member matched the
    /// whole log, which is committed and applied, one membership config in
    /// force, and no snapshot being sent.
    pub fn hibernation_request(&self, idle: Duration) -> Option<HibernationAsk> {
        let requests_seen = {
            let s = self.hibernation.state.lock().unwrap();
            if s.hibernated || s.last_request.elapsed() < idle {
                return None;
            }
            s.requests
        };
        if self.shared.sending_snapshots() > 0 {
            return None;
        }
        let m = self.raft()?.metrics().borrow_watched().clone();
        if m.state != ServerState::Leader || m.current_leader != Some(self.shared.peer_id) {
            return None;
        }
        let last = m.last_log_index?;
        let caught_up = |l: Option<&crate::raft::LogId>| l.is_some_and(|l| l.index() == last);
        if !caught_up(m.cluster_committed.as_ref()) || !caught_up(m.last_applied.as_ref()) {
            return None;
        }
        let membership = m.membership_config.membership();
        if membership.get_joint_config().len() != 1 {
            return None;
        }
        let replication = m.replication.as_ref()?;
        for (id, _) in membership.nodes() {
            if !caught_up(replication.get(id).and_then(|l| l.as_ref())) {
                return None;
            }
        }
        let req = HibernateRequest { term: m.current_term, leader: self.shared.peer_id, last_log_index: last };
        Some(HibernationAsk { req, requests_seen })
    }

    /// Stops a follower's timers at its leader's request.
    ///
    /// # Errors
    ///
    /// Why it stays awake: it does not follow that leader in that term, its
    /// log differs, or requests reached it within `idle`.
    pub fn hibernate_follower(&self, req: &HibernateRequest, idle: Duration) -> Result<(), String> {
        let raft = self.raft().ok_or_else(|| format!("peer {} is not running", self.shared.peer_id))?;
        let m = raft.metrics().borrow_watched().clone();
        if m.state == ServerState::Leader || m.current_leader != Some(req.leader) || m.current_term != req.term {
            return Err(format!(
                "peer {} follows {:?} in term {}, not {} in term {}",
                self.shared.peer_id, m.current_leader, m.current_term, req.leader, req.term
            ));
        }
        if m.last_log_index != Some(req.last_log_index) {
            return Err(format!(
                "peer {} has log up to {:?}, the leader {}",
                self.shared.peer_id, m.last_log_index, req.last_log_index
            ));
        }
        let Some(leader_store) = m.membership_config.membership().get_node(&req.leader).map(|n| n.store_id) else {
            return Err(format!("leader {} is not a member of peer {}'s config", req.leader, self.shared.peer_id));
        };
        let mut s = self.hibernation.state.lock().unwrap();
        if s.last_request.elapsed() < idle {
            return Err(format!("peer {} had requests within {idle:?}", self.shared.peer_id));
        }
        if !s.hibernated {
            s.hibernated = true;
            s.leader_store = Some(leader_store);
            s.asleep_since = Instant::now();
            raft.runtime_config().tick(false);
            self.hibernation.fell_asleep(Some(leader_store));
        }
        Ok(())
    }

    /// Stops the leader's timers once every member agreed to `ask`, unless
    /// a request arrived since its idleness check or the log moved on:
    /// then the region stays awake, and the leader's heartbeats wake the
    /// members.
    pub fn hibernate_leader(&self, ask: &HibernationAsk) -> bool {
        let req = &ask.req;
        let Some(raft) = self.raft() else { return false };
        let m = raft.metrics().borrow_watched().clone();
        if m.state != ServerState::Leader || m.current_term != req.term || m.last_log_index != Some(req.last_log_index)
        {
            return false;
        }
        let mut s = self.hibernation.state.lock().unwrap();
        if s.hibernated || s.requests != ask.requests_seen {
            return false;
        }
        s.hibernated = true;
        s.asleep_since = Instant::now();
        raft.runtime_config().tick(false);
        self.hibernation.fell_asleep(None);
        true
    }
}

#[cfg(test)]
mod tests;
