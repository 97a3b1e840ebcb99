//! What every PD request handler shares: the raft handle, the applied
//! catalog, leadership, and the leader's in-memory view of store and region
//! statistics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openraft::TryAsRef;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ForwardToLeader, RaftError};
use openraft::{ReadPolicy, ServerState};
use proto::pdpb;
use tokio::sync::{Notify, watch};

use super::region_stats::RegionStatsMap;
use super::report_queue::ReportQueue;
use super::store_streams::StoreStreams;
use crate::catalog::{CatalogCommand, CommandOutcome, RegionRecord};
use crate::config::PdConfig;
use crate::error::{LeaderHint, PdError, Result};
use crate::metrics;
use crate::operator::{OperatorController, PeerReports};
use crate::raft::PdRaft;
use crate::raft::state_machine::SharedCatalog;
use crate::schedule::replica_checks::CheckedPlan;

/// How long a proposal may wait for commit and apply before the caller is
/// told to retry: a leader that lost its quorum must not hang clients.
pub const PROPOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the leader learned from a store's heartbeats.
#[derive(Debug, Clone, Default)]
pub struct StoreRuntime {
    pub stats: pdpb::StoreStats,
    pub last_heartbeat_ms: u64,
}

pub struct PdContext {
    pub node_id: u64,
    pub config: PdConfig,
    pub raft: PdRaft,
    pub catalog: Arc<SharedCatalog>,
    /// True while this member leads; streams end when it turns false.
    pub leader_rx: watch::Receiver<bool>,
    pub stores: Mutex<HashMap<u64, StoreRuntime>>,
    /// What region leaders last reported about their regions' sizes.
    pub region_stats: RegionStatsMap,
    /// What region leaders last reported about their peers (pending, down).
    pub peer_reports: Mutex<PeerReports>,
    /// Running and recently finished operators (leader only).
    pub operators: Mutex<OperatorController>,
    /// Open store heartbeat streams, for sending directives.
    pub streams: StoreStreams,
    /// Region reports waiting for, or in, a catalog proposal.
    pub reports: ReportQueue,
    /// Wakes the operator driver: a store reported stats or opened a stream.
    pub operator_events: Notify,
    /// Unix ms at which this member last became leader; 0 while it does not
    /// lead. Store liveness counts from here for stores not heard since.
    pub leader_since_ms: AtomicU64,
    /// The replica checkers' plans from their last run on this leader.
    pub checker_plans: Mutex<Vec<CheckedPlan>>,
}

/// Resolves once this member is no longer the leader.
pub async fn until_not_leader(rx: &mut watch::Receiver<bool>) {
    // The guard wait_for returns is not Send: drop it before returning.
    let _ = rx.wait_for(|is_leader| !*is_leader).await.is_ok();
}

/// Whether a store last heard at `last_heartbeat_ms` (0: never) by a
/// leader leading since `leader_since_ms` has been silent for more than
/// `max_down_ms` at `now_ms`.
pub fn silent_too_long(last_heartbeat_ms: u64, leader_since_ms: u64, now_ms: u64, max_down_ms: u64) -> bool {
    now_ms.saturating_sub(last_heartbeat_ms.max(leader_since_ms)) > max_down_ms
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl PdContext {
    /// The leader as this member knows it.
    pub fn leader_hint(&self) -> Option<LeaderHint> {
        let m = self.raft.metrics().borrow_watched().clone();
        let id = m.current_leader?;
        let node = m.membership_config.membership().get_node(&id)?.clone();
        Some(LeaderHint { id, address: node.address })
    }

    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        m.state == ServerState::Leader && m.current_leader == Some(self.node_id)
    }

    /// Fails with `NotLeader` (naming the leader if known) on a follower.
    pub fn ensure_leader(&self) -> Result<()> {
        if self.is_leader() { Ok(()) } else { Err(PdError::NotLeader(self.leader_hint())) }
    }

    /// Waits until this member's applied catalog reflects every write
    /// committed before the call (read index), so a read right after a write
    /// sees it.
    pub async fn linearizable(&self) -> Result<()> {
        self.ensure_leader()?;
        match tokio::time::timeout(PROPOSE_TIMEOUT, self.raft.ensure_linearizable(ReadPolicy::ReadIndex)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.raft_error(&e)),
            Err(_) => Err(PdError::Unavailable("read index timed out (no quorum?)".into())),
        }
    }

    /// Proposes a catalog command and waits until it is applied here.
    ///
    /// # Errors
    ///
    /// `NotLeader` on a follower; `Unavailable` when the group cannot commit
    /// in time; otherwise the catalog's own refusal.
    pub async fn propose(&self, cmd: CatalogCommand) -> Result<CommandOutcome> {
        self.ensure_leader()?;
        let started = Instant::now();
        let res = tokio::time::timeout(PROPOSE_TIMEOUT, self.raft.client_write(cmd)).await;
        metrics::PROPOSE_SECONDS.observe(started.elapsed().as_secs_f64());
        match res {
            Err(_) => Err(PdError::Unavailable("proposal not committed in time (no quorum?)".into())),
            Ok(Err(e)) => Err(self.raft_error(&e)),
            Ok(Ok(resp)) => match resp.data {
                Ok(Some(outcome)) => Ok(outcome),
                Ok(None) => Err(PdError::Fatal("catalog command applied without an outcome".into())),
                Err(e) => Err(e),
            },
        }
    }

    /// Sorts a raft API failure: lost leadership is retryable elsewhere, a
    /// fatal raft error means this member is broken.
    fn raft_error<E>(&self, e: &RaftError<crate::raft::TypeConfig, E>) -> PdError
    where
        E: std::error::Error + TryAsRef<ForwardToLeader<crate::raft::TypeConfig>>,
    {
        if e.forward_to_leader().is_some() {
            return PdError::NotLeader(self.leader_hint());
        }
        match e {
            RaftError::Fatal(f) => PdError::Fatal(f.to_string()),
            RaftError::APIError(api) => PdError::Unavailable(api.to_string()),
        }
    }

    /// The members of the PD group and the leader.
    pub fn members(&self) -> pdpb::GetMembersResponse {
        let m = self.raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        let member = |id: u64| {
            membership.get_node(&id).map(|n| pdpb::Member {
                id,
                address: n.address.clone(),
                http_address: n.http_address.clone(),
            })
        };
        let mut ids: Vec<u64> = membership.nodes().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        pdpb::GetMembersResponse {
            header: None,
            members: ids.into_iter().filter_map(member).collect(),
            leader: m.current_leader.and_then(member),
            term: m.current_term,
            member_id: self.node_id,
        }
    }

    pub fn store_info(&self, store: &proto::metapb::Store, counts: (u64, u64)) -> pdpb::StoreInfo {
        let runtime = self.stores.lock().unwrap().get(&store.id).cloned().unwrap_or_default();
        let down = self.is_store_down(store, now_ms());
        pdpb::StoreInfo {
            store: Some(store.clone()),
            stats: Some(runtime.stats),
            last_heartbeat_ms: runtime.last_heartbeat_ms,
            region_count: counts.0,
            leader_count: counts.1,
            down,
        }
    }

    /// Records leadership starting (now) or ending.
    pub fn set_leading(&self, leading: bool) {
        if !leading {
            self.leader_since_ms.store(0, Ordering::Release);
        } else if self.leader_since_ms.load(Ordering::Acquire) == 0 {
            self.leader_since_ms.store(now_ms().max(1), Ordering::Release);
        }
    }

    /// Whether the store is Down at `now_ms`: Up or Offline, and silent
    /// towards this leader for longer than `schedule.max-store-down-time`.
    /// Silence counts from the store's last heartbeat here or from when this
    /// member took over, whichever is later, so a new leader gives every
    /// store a full period to reach it instead of declaring them all Down.
    /// Only the leader hears heartbeats: elsewhere no store is Down.
    /// Tombstone stores are gone, not Down.
    pub fn is_store_down(&self, store: &proto::metapb::Store, now_ms: u64) -> bool {
        let since = self.leader_since_ms.load(Ordering::Acquire);
        if since == 0 || store.state == proto::metapb::StoreState::Tombstone as i32 {
            return false;
        }
        let last = self.stores.lock().unwrap().get(&store.id).map_or(0, |r| r.last_heartbeat_ms);
        silent_too_long(last, since, now_ms, self.config.schedule.max_store_down_time.as_millis())
    }

    /// The region's last reported stats, unless they describe an older
    /// epoch than the catalog's record.
    pub fn region_stats(&self, rec: &RegionRecord) -> Option<pdpb::RegionStats> {
        self.region_stats.get(rec.region.id, &rec.epoch())
    }

    /// The pending and down peers the region's leader last reported, unless
    /// the report is older than the catalog's record.
    pub fn peer_report(&self, rec: &RegionRecord) -> (Vec<proto::metapb::Peer>, Vec<proto::metapb::Peer>) {
        let reports = self.peer_reports.lock().unwrap();
        reports.current(rec.region.id, &rec.epoch()).map(|s| (s.pending.clone(), s.down.clone())).unwrap_or_default()
    }

    /// Refreshes the gauges derived from the catalog.
    pub fn update_catalog_metrics(&self) {
        self.update_catalog_counts();
        self.update_replica_metrics();
    }

    /// The gauges that cost nothing to read: version, region and store
    /// counts.
    pub fn update_catalog_counts(&self) {
        let state = self.catalog.read();
        let c = &state.catalog;
        metrics::CATALOG_VERSION.set(c.version() as i64);
        metrics::REGIONS.set(c.region_count() as i64);
        for (state_name, state) in [
            ("up", proto::metapb::StoreState::Up),
            ("offline", proto::metapb::StoreState::Offline),
            ("tombstone", proto::metapb::StoreState::Tombstone),
        ] {
            let n = c.stores().filter(|s| s.state == state as i32).count();
            metrics::STORES.with_label_values(&[state_name]).set(n as i64);
        }
    }

    /// The gauge that walks every region: those missing replicas.
    pub fn update_replica_metrics(&self) {
        let state = self.catalog.read();
        let c = &state.catalog;
        let want = self.config.replication.max_replicas as usize;
        let missing = c
            .regions()
            .filter(|r| {
                r.region.peers.iter().filter(|p| p.role == proto::metapb::PeerRole::Voter as i32).count() < want
            })
            .count();
        metrics::REGIONS_MISSING_REPLICAS.set(missing as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::silent_too_long;

    #[test]
    fn silence_counts_from_the_last_heartbeat_or_the_takeover_whichever_is_later() {
        let max = 1_000;
        // Heard 1.5 s ago by a leader of long standing: Down.
        assert!(silent_too_long(8_500, 1, 10_000, max));
        // Heard 0.5 s ago: not Down.
        assert!(!silent_too_long(9_500, 1, 10_000, max));
        // Never heard, but this leader took over 0.5 s ago: not Down yet.
        assert!(!silent_too_long(0, 9_500, 10_000, max));
        // Never heard since a takeover 2 s ago: Down.
        assert!(silent_too_long(0, 8_000, 10_000, max));
        // Heard by an earlier leadership long ago: counts from the takeover.
        assert!(!silent_too_long(100, 9_900, 10_000, max));
        // Exactly at the limit is not past it; a clock step back is not Down.
        assert!(!silent_too_long(9_000, 1, 10_000, max));
        assert!(!silent_too_long(20_000, 1, 10_000, max));
    }
}
