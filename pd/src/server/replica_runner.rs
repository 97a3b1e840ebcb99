//! Runs the replica checkers on the leader every
//! `schedule.replica-check-interval-ms`: builds the cluster view (stores
//! with their state and whether they are Down, regions with their peers,
//! regions under an operator, max-replicas), asks
//! [`replica_checks::check_all`] for plans, and
//!
//! - proposes **Tombstone** for every Offline store the decommission checker
//!   reports empty (the catalog checks again that no peer is left);
//! - logs each plan the first time it is made (a plan repeated by the next
//!   run is logged at debug and not counted again) and counts it in
//!   `pd_checker_plans_total{checker,kind}`; regions skipped for want of a
//!   candidate store go to `pd_checker_no_candidate_total`;
//! - hands the run's plans, as one `Vec`, to the **plan sink** it was
//!   started with.
//!
//! # Plans become operators
//!
//! The server starts this loop with [`start_operators`] as the sink: the
//! plans are kept on the context (served at `GET /api/v1/checker/plans`)
//! and each starts one operator, with the source named after its checker
//! (`replica-repair`, `decommission`, `joint-checker`):
//!
//! ```text
//! Move { from, to }    -> operator_driver::start_move(ctx, region_id, from, to, source)
//! AddPeer { store }    -> operator_driver::start_add_peer(ctx, region_id, store, source)
//! RemovePeer { store } -> operator_driver::start_remove_peer(ctx, region_id, store, source)
//! LeaveJoint           -> operator_driver::start_leave_joint(ctx, region_id, source)
//! ```
//!
//! A plan whose operator is refused (the region changed since the view was
//! taken, another operator got there first) is simply made again, or not,
//! by the next run.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use proto::metapb::{PeerRole, StoreState};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::context::{PdContext, now_ms};
use super::delete_store::set_state;
use super::operator_driver;
use crate::metrics;
use crate::operator::state::Source;
use crate::schedule::cluster::{ClusterView, PeerView, RegionView, StoreView};
use crate::schedule::plan::{PlanKind, Skip};
use crate::schedule::replica_checks::{self, CheckedPlan, Checker, ReplicaChecks};

/// Runs until shutdown; does nothing when the interval is 0 (replica
/// checking off). Each run's plans go to `sink`.
pub async fn run<F, Fut>(ctx: Arc<PdContext>, mut shutdown: watch::Receiver<bool>, sink: F)
where
    F: Fn(Arc<PdContext>, Vec<CheckedPlan>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let interval_ms = ctx.config.schedule.replica_check_interval_ms;
    if interval_ms == 0 {
        info!("replica checking is off (schedule.replica-check-interval-ms is 0)");
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen: HashSet<(u64, PlanKind)> = HashSet::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if !ctx.is_leader() {
            // A later leadership starts afresh: its first plans are new.
            seen.clear();
            ctx.checker_plans.lock().unwrap().clear();
            continue;
        }
        let checks = check_once(&ctx).await;
        let mut now_seen = HashSet::with_capacity(checks.plans.len());
        for p in &checks.plans {
            let key = (p.plan.region_id, p.plan.kind);
            if seen.contains(&key) {
                debug!(checker = p.checker.as_str(), plan = %p.plan, "plan made again");
            } else {
                info!(checker = p.checker.as_str(), plan = %p.plan, "replica checker plan");
                metrics::CHECKER_PLANS.with_label_values(&[p.checker.as_str(), p.plan.kind.label()]).inc();
            }
            now_seen.insert(key);
        }
        seen = now_seen;
        sink(ctx.clone(), checks.plans).await;
    }
}

/// One run: decides, tombstones drained Offline stores, and returns what
/// the checkers decided.
pub async fn check_once(ctx: &PdContext) -> ReplicaChecks {
    let view = view(ctx);
    let max_plans = ctx.config.schedule.max_replica_plans_per_check as usize;
    let checks = replica_checks::check_all(&view, max_plans);
    for (checker, s) in &checks.skipped {
        if s.why == Skip::NoCandidate {
            metrics::CHECKER_NO_CANDIDATE.with_label_values(&[checker.as_str()]).inc();
        }
        debug!(checker = checker.as_str(), skipped = %s, "replica checker left a region as it is");
    }
    for &store_id in &checks.ready_for_tombstone {
        match set_state(ctx, store_id, StoreState::Tombstone, ctx.config.replication.max_replicas).await {
            Ok(()) => {
                metrics::STORES_TOMBSTONED.inc();
                info!(store_id, "Offline store holds no replica any more: it is Tombstone");
            }
            // The next run looks again.
            Err(e) => warn!(store_id, error = %e, "could not mark the drained store Tombstone"),
        }
    }
    checks
}

/// The plan sink the server starts with: keeps the run's plans on the
/// context, where `GET /api/v1/checker/plans` shows them.
pub async fn publish_plans(ctx: Arc<PdContext>, plans: Vec<CheckedPlan>) {
    *ctx.checker_plans.lock().unwrap() = plans;
}

/// The server's sink: publishes the plans, then starts one operator per
/// plan.
pub async fn start_operators(ctx: Arc<PdContext>, plans: Vec<CheckedPlan>) {
    publish_plans(ctx.clone(), plans.clone()).await;
    for CheckedPlan { checker, plan } in plans {
        let source = match checker {
            Checker::Joint => Source::JointChecker,
            Checker::ReplicaRepair => Source::ReplicaRepair,
            Checker::Decommission => Source::Decommission,
        };
        let region_id = plan.region_id;
        let started = match plan.kind {
            PlanKind::Move { from, to } => operator_driver::start_move(&ctx, region_id, from, to, source).await,
            PlanKind::AddPeer { store } => operator_driver::start_add_peer(&ctx, region_id, store, source).await,
            PlanKind::RemovePeer { store } => operator_driver::start_remove_peer(&ctx, region_id, store, source).await,
            PlanKind::LeaveJoint => operator_driver::start_leave_joint(&ctx, region_id, source).await,
        };
        match started {
            Ok(op) => info!(operator = op.id, region_id, %plan, "checker started an operator"),
            Err(e) => debug!(region_id, %plan, error = %e, "checker plan not started; the next run decides again"),
        }
    }
}

/// The cluster as the checkers need it, now. Also refreshes the Down
/// stores gauge.
pub fn view(ctx: &PdContext) -> ClusterView {
    let now = now_ms();
    let busy = ctx.operators.lock().unwrap().busy_regions().collect();
    let state = ctx.catalog.read();
    let stores: std::collections::BTreeMap<u64, StoreView> = state
        .catalog
        .stores()
        .map(|s| {
            let st = StoreState::try_from(s.state).unwrap_or(StoreState::Tombstone);
            (s.id, StoreView { id: s.id, state: st, down: ctx.is_store_down(s, now) })
        })
        .collect();
    metrics::STORES_DOWN.set(stores.values().filter(|s| s.down).count() as i64);
    let regions = state
        .catalog
        .regions()
        .map(|rec| {
            let peers = rec
                .region
                .peers
                .iter()
                .map(|p| PeerView { store_id: p.store_id, role: PeerRole::try_from(p.role).unwrap_or(PeerRole::Voter) })
                .collect();
            (rec.region.id, RegionView { id: rec.region.id, peers })
        })
        .collect();
    ClusterView { stores, regions, busy, max_replicas: ctx.config.replication.max_replicas as usize }
}
