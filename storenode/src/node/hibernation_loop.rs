//! The node's side of hibernation (see [`super::hibernation`]): the loop
//! that puts idle regions to sleep, puts long-sleeping ones to rest
//! ([`super::dormancy`]) and probes the stores hibernated followers'
//! leaders live on, and the handling of requests that wake a follower.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures::StreamExt;
use openraft::async_runtime::WatchReceiver;
use proto::raftpb;
use tokio::sync::watch;
use tracing::debug;

use super::hibernation::{HibernateRequest, HibernationAsk, WakeCause, Woken};
use super::{Node, RegionPeer};
use crate::metrics;
use crate::raft::encode;

/// Regions asked to hibernate at once.
const CONCURRENT_HIBERNATIONS: usize = 32;

/// Runs until shutdown: every quarter of the idle time, asks the idle
/// regions this store leads to hibernate and puts the peers quiet for
/// [`Node::dormant_after`] to rest; every half election timeout,
/// probes the stores whose leaders hibernated followers here wait on.
pub async fn run(node: Weak<Node>, mut shutdown: watch::Receiver<bool>) {
    let Some((idle, quiet)) = node.upgrade().and_then(|n| Some((n.hibernate_after()?, n.dormant_after()?))) else {
        return;
    };
    let (probe_every, hibernate_every, mut probes) = {
        let Some(n) = node.upgrade() else { return };
        let r = &n.config.raft;
        let probe = Duration::from_millis(r.election_timeout_min_ms / 2).max(Duration::from_millis(50));
        let probes = Probes::new(
            Duration::from_millis(r.election_timeout_max_ms),
            Duration::from_millis(r.election_timeout_min_ms),
        );
        (probe, (idle / 4).max(Duration::from_millis(50)), probes)
    };
    let mut tick = tokio::time::interval(probe_every.min(hibernate_every));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut last_hibernate, mut last_probe) = (Instant::now(), Instant::now());
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let Some(node) = node.upgrade() else { return };
        if last_hibernate.elapsed() >= hibernate_every {
            last_hibernate = Instant::now();
            node.hibernate_idle_regions(idle).await;
            node.rest_quiet_regions(quiet).await;
        }
        if last_probe.elapsed() >= probe_every {
            last_probe = Instant::now();
            node.probe_leader_stores(&mut probes).await;
        }
        metrics::HIBERNATED_REGIONS.set(node.hibernated_count() as i64);
        metrics::DORMANT_REGIONS.set(node.dormant_count() as i64);
    }
}

impl Node {
    /// Regions whose raft timers are stopped here.
    pub fn hibernated_count(&self) -> usize {
        self.sleepers.count()
    }

    /// How long a region must go without requests before it hibernates;
    /// `None` when hibernation is off.
    pub fn hibernate_after(&self) -> Option<Duration> {
        let ms = self.config.raft.hibernate_after_ms;
        (ms > 0).then(|| Duration::from_millis(ms))
    }

    async fn hibernate_idle_regions(&self, idle: Duration) {
        let ready: Vec<(Arc<RegionPeer>, HibernationAsk)> =
            self.peers().into_iter().filter_map(|p| p.hibernation_request(idle).map(|r| (p, r))).collect();
        futures::stream::iter(ready)
            .for_each_concurrent(CONCURRENT_HIBERNATIONS, |(peer, req)| self.hibernate_region(peer, req))
            .await;
    }

    /// Asks every other member of the region to hibernate, then the leader
    /// itself once all agreed and no request arrived since `ask` found the
    /// region idle.
    pub(super) async fn hibernate_region(&self, peer: Arc<RegionPeer>, ask: HibernationAsk) {
        let Ok(payload) = encode(&ask.req) else { return };
        let Some(raft) = peer.raft() else { return };
        let members: Vec<(u64, u64)> = {
            let m = raft.metrics().borrow_watched().clone();
            m.membership_config.membership().nodes().map(|(id, n)| (*id, n.store_id)).collect()
        };
        // Generous: a slow answer only delays the region's sleep.
        let timeout = Duration::from_millis(self.config.raft.election_timeout_min_ms);
        for (id, store_id) in members.into_iter().filter(|(id, _)| *id != peer.shared.peer_id) {
            let msg = raftpb::RaftRequest {
                region_id: peer.region_id(),
                from_peer: peer.shared.peer_id,
                to_peer: id,
                to_store: store_id,
                region: None,
                kind: raftpb::RaftCallKind::Hibernate as i32,
                payload: payload.clone(),
            };
            if let Err(e) = self.transport.call(msg, timeout).await {
                debug!(region_id = peer.region_id(), peer_id = id, error = %e, "member stays awake");
                metrics::HIBERNATION_EVENTS.with_label_values(&["refused"]).inc();
                return;
            }
        }
        peer.hibernate_leader(&ask);
    }

    /// One probe per store that leads regions whose followers here
    /// hibernate; the followers of a store that has not answered for
    /// `probes.dead_after` wake and, their leader's heartbeats long past,
    /// campaign. One slow answer is not a death: a busy store that misses
    /// a probe must not have every region it leads campaigned against.
    ///
    /// The stores to probe come from [`Node::sleepers`]; the sleeping
    /// peers themselves are looked at only when one of those stores dies.
    async fn probe_leader_stores(&self, probes: &mut Probes) {
        let timeout = probes.timeout;
        let calls = self.sleepers.leader_stores().into_iter().map(|store_id| async move {
            let probe = raftpb::RaftRequest {
                to_store: store_id,
                kind: raftpb::RaftCallKind::Wake as i32,
                ..Default::default()
            };
            (store_id, self.transport.call(probe, timeout).await)
        });
        for (store_id, answer) in futures::future::join_all(calls).await {
            match answer {
                Ok(payload) => {
                    probes.answered(store_id);
                    self.wake_under_failed_leaders(store_id, &payload).await;
                }
                Err(e) if probes.failed(store_id) => {
                    let followers: Vec<Arc<RegionPeer>> =
                        self.peers().into_iter().filter(|p| p.asleep_under() == Some(store_id)).collect();
                    debug!(store_id, error = %e, followers = followers.len(), "leader store unreachable: waking its followers");
                    for peer in followers {
                        self.wake(&peer, WakeCause::LeaderLost).await;
                    }
                }
                Err(e) => debug!(store_id, error = %e, "leader store missed a probe"),
            }
        }
        probes.forget_others();
    }

    /// Wakes the followers here sleeping under `store_id` whose region's
    /// peer there stopped for good (`payload`, the probe's answer, names
    /// those regions): the store answers, their leader never will.
    pub(super) async fn wake_under_failed_leaders(&self, store_id: u64, payload: &[u8]) {
        if payload.is_empty() {
            return;
        }
        let failed: Vec<u64> = match crate::raft::decode(payload) {
            Ok(f) => f,
            Err(e) => {
                debug!(store_id, error = %e, "bad probe answer");
                return;
            }
        };
        for region_id in failed {
            let Some(peer) = self.peer(region_id).filter(|p| p.asleep_under() == Some(store_id)) else { continue };
            debug!(store_id, region_id, "leader's peer stopped on its store: waking to campaign");
            self.wake(&peer, WakeCause::LeaderLost).await;
        }
    }

    /// Notes a request for `peer`'s region. A follower woken by it asks its
    /// leader to wake, and campaigns only if the leader stays silent for
    /// an election timeout.
    pub async fn wake_for_request(&self, peer: &Arc<RegionPeer>) {
        // Read before the wake: a dormant follower's revived group knows
        // no leader until its leader's first heartbeat, while its view
        // kept the one it slept under.
        let slept_under = peer.leader();
        let Woken::HoldingElections { generation } = self.wake(peer, WakeCause::Request).await else { return };
        let (transport, store_id, peer) = (self.transport.clone(), self.store_id, peer.clone());
        let (wake_timeout, hold) = (
            Duration::from_millis(self.config.raft.election_timeout_min_ms),
            Duration::from_millis(self.config.raft.election_timeout_max_ms),
        );
        tokio::spawn(async move {
            if let Some(leader) = peer.leader().or(slept_under).filter(|l| l.store_id != store_id) {
                let msg = raftpb::RaftRequest {
                    region_id: peer.region_id(),
                    from_peer: peer.shared.peer_id,
                    to_peer: leader.id,
                    to_store: leader.store_id,
                    region: None,
                    kind: raftpb::RaftCallKind::Wake as i32,
                    payload: Vec::new(),
                };
                if let Err(e) = transport.call(msg, wake_timeout).await {
                    debug!(region_id = peer.region_id(), error = %e, "leader did not answer the wake");
                    peer.release_election_hold(generation);
                    return;
                }
                tokio::time::sleep(hold).await;
            }
            peer.release_election_hold(generation);
        });
    }

    /// A `HIBERNATE` or `WAKE` message from another store; the answer's
    /// payload, for a liveness probe (a `WAKE` for no region), names the
    /// regions whose peer here stopped for good.
    ///
    /// # Errors
    ///
    /// Why the message was not acted on: no such peer, a bad payload, or
    /// the follower stays awake.
    pub async fn on_hibernation_message(&self, req: &raftpb::RaftRequest) -> Result<Vec<u8>, String> {
        let is_wake = req.kind == raftpb::RaftCallKind::Wake as i32;
        if is_wake && req.region_id == 0 {
            let failed = self.failed_peers.regions();
            if failed.is_empty() {
                return Ok(Vec::new());
            }
            return encode(&failed).map_err(|e| format!("cannot encode the probe's answer: {e}"));
        }
        let peer = self
            .peer(req.region_id)
            .filter(|p| p.shared.peer_id == req.to_peer)
            .ok_or_else(|| format!("no peer {} of region {} here", req.to_peer, req.region_id))?;
        peer.heard();
        if is_wake {
            self.wake(&peer, WakeCause::RaftMessage).await;
            return Ok(Vec::new());
        }
        let Some(idle) = self.hibernate_after() else {
            return Err("hibernation is off on this store".into());
        };
        let hib: HibernateRequest =
            crate::raft::decode(&req.payload).map_err(|e| format!("bad hibernate payload: {e}"))?;
        self.revive(&peer).await.map_err(|e| format!("region {} failed to revive: {e}", req.region_id))?;
        peer.hibernate_follower(&hib, idle).map(|()| Vec::new())
    }
}

/// The liveness probes' memory: since when each probed store has failed
/// to answer.
struct Probes {
    /// How long one probe may take.
    timeout: Duration,
    /// How long a store must go unanswering before its followers wake.
    dead_after: Duration,
    failing_since: HashMap<u64, Instant>,
    probed: Vec<u64>,
}

impl Probes {
    fn new(timeout: Duration, dead_after: Duration) -> Self {
        Probes { timeout, dead_after, failing_since: HashMap::new(), probed: Vec::new() }
    }

    fn answered(&mut self, store_id: u64) {
        self.failing_since.remove(&store_id);
        self.probed.push(store_id);
    }

    /// Notes a failed probe; whether the store now counts as dead.
    fn failed(&mut self, store_id: u64) -> bool {
        self.probed.push(store_id);
        let since = *self.failing_since.entry(store_id).or_insert_with(Instant::now);
        since.elapsed() >= self.dead_after
    }

    /// Drops the failure streaks of stores no longer probed.
    fn forget_others(&mut self) {
        let probed = std::mem::take(&mut self.probed);
        self.failing_since.retain(|s, _| probed.contains(s));
    }
}
