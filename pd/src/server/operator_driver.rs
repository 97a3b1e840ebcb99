//! The operator driver on the PD leader: starts operators for the admin API
//! and PD's checkers (splits, leader transfers, and the membership changes
//! move, add-peer, remove-peer and leave-joint), moves them along, and
//! answers what stores report about their directives. The decisions are the
//! [`OperatorController`](crate::operator::OperatorController)'s; this file
//! is the I/O around it: id allocation through raft, directives onto store
//! streams, the clock.
//!
//! The driver task wakes every [`TICK`], whenever the catalog changes (a
//! split report applied, a region's leader or peers changed), when a region
//! under an operator reports its peers (a learner caught up), and whenever a store
//! reports stats (its route version may complete a convergence) or opens a
//! stream (a directive may be waiting for it). On a member that stops
//! leading it drops every operator and the region stats: the new leader
//! starts with none, and a directive already sent may still be carried out
//! by its store, whose report the catalog accepts like any other.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use proto::{metapb, pdpb};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::context::PdContext;
use super::store_streams::StoreStreams;
use crate::catalog::RegionRecord;
use crate::catalog::{CatalogCommand, CommandOutcome, RouteCatalog};
use crate::error::{PdError, Result};
use crate::metrics;
use crate::operator::{
    DirectiveSink, Now, Operator, PeerStatus, Source, StoreVersions, add_peer, leave_joint, move_peer, peer_plan,
    remove_peer, split, transfer_leader,
};

/// How often the driver looks at running operators without being woken:
/// deadlines and directive re-sends need no finer grain.
pub const TICK: Duration = Duration::from_millis(500);

impl DirectiveSink for StoreStreams {
    fn send(&self, store_id: u64, directive: pdpb::Directive) -> std::result::Result<(), String> {
        self.send_directive(store_id, directive).map_err(|e| e.to_string())
    }
}

/// Runs on every member; acts only while leading.
pub async fn run(ctx: Arc<PdContext>, mut shutdown: watch::Receiver<bool>) {
    let mut routes = ctx.catalog.subscribe();
    let mut leader = ctx.leader_rx.clone();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen_version = 0;
    loop {
        if *leader.borrow_and_update() {
            drive(&ctx);
            // Stats of regions that split or vanished since are dead weight.
            // Only the regions changed since can have gone stale; the whole
            // map is walked only when the route history no longer says which
            // those are (a walk of 100,000 regions on every change would
            // hold up the route push behind it).
            let version = *routes.borrow_and_update();
            if version != seen_version {
                let changed = ctx.catalog.changed_regions(seen_version, version);
                let state = ctx.catalog.read();
                match changed {
                    Some(ids) => {
                        ctx.region_stats.prune_regions(&state.catalog, &ids);
                        ctx.peer_reports.lock().unwrap().prune_regions(&state.catalog, &ids);
                    }
                    None => {
                        ctx.region_stats.prune(&state.catalog);
                        ctx.peer_reports.lock().unwrap().prune(&state.catalog);
                    }
                }
                seen_version = version;
            }
        } else {
            forget_all(&ctx);
        }
        tokio::select! {
            _ = tick.tick() => {}
            r = routes.changed() => if r.is_err() { return },
            () = ctx.operator_events.notified() => {}
            r = leader.changed() => if r.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

/// One pass of the controller over the running operators.
pub fn drive(ctx: &PdContext) {
    let now = Now::current();
    let state = ctx.catalog.read();
    let stores = store_versions(ctx, &state.catalog);
    // Lock order everywhere: catalog, peer reports, operators.
    let peers = ctx.peer_reports.lock().unwrap();
    ctx.operators.lock().unwrap().tick(now, &state.catalog, &stores, &peers, &ctx.streams);
}

fn forget_all(ctx: &PdContext) {
    let dropped = ctx.operators.lock().unwrap().clear();
    if dropped > 0 {
        info!(dropped, "no longer the PD leader: running operators dropped");
    }
    ctx.region_stats.clear();
    ctx.peer_reports.lock().unwrap().clear();
}

/// The route version each Up store last reported to this leader.
pub fn store_versions(ctx: &PdContext, catalog: &RouteCatalog) -> StoreVersions {
    let runtime = ctx.stores.lock().unwrap();
    let up = catalog
        .stores()
        .filter(|s| s.state == metapb::StoreState::Up as i32)
        .map(|s| (s.id, runtime.get(&s.id).map_or(0, |r| r.stats.route_version)))
        .collect();
    StoreVersions { up }
}

/// The wire form of an operator, with convergence computed now.
fn to_pb(op: &Operator, stores: &StoreVersions) -> pdpb::Operator {
    op.to_pb(stores.converged(op.result_version))
}

/// Starts a split of `region_id` at `split_key` (empty: the leader picks
/// the middle) and sends its directive if the region's leader is connected.
///
/// # Errors
///
/// `NotLeader` on a follower; `NotBootstrapped`; `RegionNotFound`;
/// `StaleEpoch` when `epoch` is given and not the catalog's (or the region
/// changed while ids were being allocated); `InvalidSplitKey`;
/// `OperatorExists`; `Unavailable` when the id allocation cannot commit.
pub async fn start_split(
    ctx: &PdContext,
    region_id: u64,
    split_key: Vec<u8>,
    epoch: Option<metapb::RegionEpoch>,
    source: Source,
) -> Result<pdpb::Operator> {
    ctx.ensure_leader()?;
    if region_id == 0 {
        return Err(PdError::InvalidArgument("region id 0".into()));
    }
    let (seen, count) = {
        let state = ctx.catalog.read();
        if !state.catalog.is_bootstrapped() {
            return Err(PdError::NotBootstrapped);
        }
        let rec = state.catalog.region(region_id).ok_or(PdError::RegionNotFound(region_id))?;
        split::validate(rec, &split_key, epoch.as_ref())?;
        ctx.operators.lock().unwrap().check_free(region_id)?;
        (rec.epoch(), split::ids_needed(&rec.region))
    };
    let first_id = match ctx.propose(CatalogCommand::AllocIds { count }).await? {
        CommandOutcome::Ids { first, .. } => first,
        other => return Err(PdError::Fatal(format!("id allocation answered {other:?}"))),
    };
    let timeout = Duration::from_millis(ctx.config.schedule.split_operator_timeout_ms);
    {
        let state = ctx.catalog.read();
        let rec = state.catalog.region(region_id).ok_or(PdError::RegionNotFound(region_id))?;
        // The ids were allocated for the peers PD saw; a region that changed
        // meanwhile needs a fresh look from the caller.
        split::validate(rec, &split_key, Some(&seen)).map_err(|e| match e {
            PdError::StaleEpoch(m) => PdError::StaleEpoch(format!("{m} (changed while PD prepared the split; retry)")),
            other => other,
        })?;
        let op = split::operator(rec, split_key, first_id, source, Now::current(), timeout);
        info!(operator = op.id, region_id, source = source.as_str(), "split operator created");
        ctx.operators.lock().unwrap().add(op)?;
    }
    drive(ctx);
    get(ctx, first_id)
}

/// Starts moving `region_id`'s leadership to its voter on `to_store_id`
/// and sends the directive if the region's leader is connected.
///
/// # Errors
///
/// `NotLeader` on a follower; `NotBootstrapped`; `InvalidArgument` for a
/// zero id or a store without a voter of the region; `RegionNotFound`;
/// `StoreNotFound`; `StoreConflict` when the store is not Up;
/// `OperatorExists`; `Unavailable` when the id allocation cannot commit.
pub async fn start_transfer_leader(
    ctx: &PdContext,
    region_id: u64,
    to_store_id: u64,
    source: Source,
) -> Result<pdpb::Operator> {
    ctx.ensure_leader()?;
    if region_id == 0 || to_store_id == 0 {
        return Err(PdError::InvalidArgument("region and store ids must not be 0".into()));
    }
    let check = || {
        let state = ctx.catalog.read();
        if !state.catalog.is_bootstrapped() {
            return Err(PdError::NotBootstrapped);
        }
        let rec = state.catalog.region(region_id).ok_or(PdError::RegionNotFound(region_id))?;
        transfer_leader::validate(rec, state.catalog.store(to_store_id), to_store_id)?;
        ctx.operators.lock().unwrap().check_free(region_id)
    };
    check()?;
    let id = match ctx.propose(CatalogCommand::AllocIds { count: 1 }).await? {
        CommandOutcome::Ids { first, .. } => first,
        other => return Err(PdError::Fatal(format!("id allocation answered {other:?}"))),
    };
    {
        let state = ctx.catalog.read();
        let rec = state.catalog.region(region_id).ok_or(PdError::RegionNotFound(region_id))?;
        let to = transfer_leader::validate(rec, state.catalog.store(to_store_id), to_store_id)?;
        let op = transfer_leader::operator(rec, to, id, source, Now::current());
        info!(operator = op.id, region_id, to_store_id, source = source.as_str(), "transfer-leader operator created");
        ctx.operators.lock().unwrap().add(op)?;
    }
    drive(ctx);
    get(ctx, id)
}

/// The region's record in a bootstrapped catalog.
fn bootstrapped_region(catalog: &RouteCatalog, region_id: u64) -> Result<&RegionRecord> {
    if !catalog.is_bootstrapped() {
        return Err(PdError::NotBootstrapped);
    }
    catalog.region(region_id).ok_or(PdError::RegionNotFound(region_id))
}

/// `count` fresh ids from the catalog's allocator; returns the first.
async fn alloc_ids(ctx: &PdContext, count: u32) -> Result<u64> {
    match ctx.propose(CatalogCommand::AllocIds { count }).await? {
        CommandOutcome::Ids { first, .. } => Ok(first),
        other => Err(PdError::Fatal(format!("id allocation answered {other:?}"))),
    }
}

/// A membership operator's timeout: the configured base plus the region's
/// last reported size at the configured rate.
fn peer_timeout(ctx: &PdContext, rec: &RegionRecord) -> Duration {
    let size = ctx.region_stats(rec).map_or(0, |s| s.approximate_size);
    let s = &ctx.config.schedule;
    peer_plan::timeout(s.peer_operator_timeout_ms, s.peer_operator_rate, size)
}

/// The stores PD reports Down (`StoreInfo.down`), which take no new peer
/// and whose voters do not count as healthy.
fn down_stores(ctx: &PdContext, catalog: &RouteCatalog) -> BTreeSet<u64> {
    catalog.stores().filter(|s| ctx.store_info(s, (0, 0)).down).map(|s| s.id).collect()
}

/// Runs `f` on the region's record, its leader's current peer report and
/// the catalog, once the region is checked free of operators (`f` may add
/// one: the controller refuses a second all the same).
fn with_region<T>(
    ctx: &PdContext,
    region_id: u64,
    f: impl FnOnce(&RegionRecord, Option<&PeerStatus>, &RouteCatalog, &BTreeSet<u64>) -> Result<T>,
) -> Result<T> {
    let state = ctx.catalog.read();
    let rec = bootstrapped_region(&state.catalog, region_id)?;
    ctx.operators.lock().unwrap().check_free(region_id)?;
    let down = down_stores(ctx, &state.catalog);
    let peers = ctx.peer_reports.lock().unwrap();
    f(rec, peers.current(region_id, &rec.epoch()), &state.catalog, &down)
}

/// Starts moving `region_id`'s peer on `from_store` to `to_store`: a
/// learner added on `to_store` (its peer id allocated now), caught up,
/// promoted while the old peer is demoted, and the old peer removed;
/// leadership leaves `from_store` first if it is there.
///
/// # Errors
///
/// `NotLeader` on a follower; `NotBootstrapped`; `InvalidArgument` for a
/// zero id or `from_store == to_store`; `RegionNotFound`; `StoreNotFound`;
/// `PeerNotFound` (no peer on `from_store`); `PeerExists` (one on
/// `to_store`); `StoreUnavailable` (`to_store` not Up); `QuorumAtRisk`;
/// `OperatorExists`; `Unavailable` when the id allocation cannot commit.
pub async fn start_move(
    ctx: &PdContext,
    region_id: u64,
    from_store: u64,
    to_store: u64,
    source: Source,
) -> Result<pdpb::Operator> {
    ctx.ensure_leader()?;
    if region_id == 0 || from_store == 0 || to_store == 0 {
        return Err(PdError::InvalidArgument("region and store ids must not be 0".into()));
    }
    with_region(ctx, region_id, |rec, status, catalog, down| {
        move_peer::validate(rec, status, catalog, down, from_store, to_store)
    })?;
    let first = alloc_ids(ctx, 2).await?;
    with_region(ctx, region_id, |rec, status, catalog, down| {
        let moving = move_peer::validate(rec, status, catalog, down, from_store, to_store)?;
        let timeout = peer_timeout(ctx, rec);
        let ids = (first, first + 1);
        let op = move_peer::operator(rec, status, catalog, moving, to_store, ids, source, Now::current(), timeout);
        info!(operator = op.id, region_id, from_store, to_store, source = source.as_str(), "move operator created");
        ctx.operators.lock().unwrap().add(op)
    })?;
    drive(ctx);
    get(ctx, first)
}

/// Starts adding a voter of `region_id` on `store_id`: a learner first (its
/// peer id allocated now), promoted once caught up.
///
/// # Errors
///
/// `NotLeader`; `NotBootstrapped`; `InvalidArgument` for a zero id;
/// `RegionNotFound`; `StoreNotFound`; `PeerExists`; `StoreUnavailable`;
/// `OperatorExists`; `Unavailable` when the id allocation cannot commit.
pub async fn start_add_peer(ctx: &PdContext, region_id: u64, store_id: u64, source: Source) -> Result<pdpb::Operator> {
    ctx.ensure_leader()?;
    if region_id == 0 || store_id == 0 {
        return Err(PdError::InvalidArgument("region and store ids must not be 0".into()));
    }
    with_region(ctx, region_id, |rec, _, catalog, down| add_peer::validate(rec, catalog, down, store_id))?;
    let first = alloc_ids(ctx, 2).await?;
    with_region(ctx, region_id, |rec, status, catalog, down| {
        add_peer::validate(rec, catalog, down, store_id)?;
        let timeout = peer_timeout(ctx, rec);
        let op =
            add_peer::operator(rec, status, catalog, store_id, (first, first + 1), source, Now::current(), timeout);
        info!(operator = op.id, region_id, store_id, source = source.as_str(), "add-peer operator created");
        ctx.operators.lock().unwrap().add(op)
    })?;
    drive(ctx);
    get(ctx, first)
}

/// Starts removing `region_id`'s peer on `store_id`: leadership moves off
/// the store first if it is there, a voter is demoted, then removed.
///
/// # Errors
///
/// `NotLeader`; `NotBootstrapped`; `InvalidArgument` for a zero id;
/// `RegionNotFound`; `StoreNotFound`; `PeerNotFound`; `QuorumAtRisk`;
/// `OperatorExists`; `Unavailable` when the id allocation cannot commit.
pub async fn start_remove_peer(
    ctx: &PdContext,
    region_id: u64,
    store_id: u64,
    source: Source,
) -> Result<pdpb::Operator> {
    ctx.ensure_leader()?;
    if region_id == 0 || store_id == 0 {
        return Err(PdError::InvalidArgument("region and store ids must not be 0".into()));
    }
    with_region(ctx, region_id, |rec, status, catalog, down| {
        remove_peer::validate(rec, status, catalog, down, store_id)
    })?;
    let id = alloc_ids(ctx, 1).await?;
    with_region(ctx, region_id, |rec, status, catalog, down| {
        remove_peer::validate(rec, status, catalog, down, store_id)?;
        let timeout = peer_timeout(ctx, rec);
        let op = remove_peer::operator(rec, status, catalog, store_id, id, source, Now::current(), timeout);
        info!(operator = op.id, region_id, store_id, source = source.as_str(), "remove-peer operator created");
        ctx.operators.lock().unwrap().add(op)
    })?;
    drive(ctx);
    get(ctx, id)
}

/// Starts driving `region_id` out of a joint configuration.
///
/// # Errors
///
/// `NotLeader`; `NotBootstrapped`; `InvalidArgument` for a zero id or a
/// region that is not joint; `RegionNotFound`; `OperatorExists`;
/// `Unavailable` when the id allocation cannot commit.
pub async fn start_leave_joint(ctx: &PdContext, region_id: u64, source: Source) -> Result<pdpb::Operator> {
    ctx.ensure_leader()?;
    if region_id == 0 {
        return Err(PdError::InvalidArgument("region id 0".into()));
    }
    with_region(ctx, region_id, |rec, _, _, _| leave_joint::validate(rec))?;
    let id = alloc_ids(ctx, 1).await?;
    with_region(ctx, region_id, |rec, status, catalog, _| {
        leave_joint::validate(rec)?;
        let timeout = peer_timeout(ctx, rec);
        let op = leave_joint::operator(rec, status, catalog, id, source, Now::current(), timeout);
        info!(operator = op.id, region_id, source = source.as_str(), "leave-joint operator created");
        ctx.operators.lock().unwrap().add(op)
    })?;
    drive(ctx);
    get(ctx, id)
}

/// # Errors
///
/// `NotLeader` on a follower, `OperatorNotFound`.
pub fn get(ctx: &PdContext, id: u64) -> Result<pdpb::Operator> {
    ctx.ensure_leader()?;
    let stores = {
        let state = ctx.catalog.read();
        store_versions(ctx, &state.catalog)
    };
    let ops = ctx.operators.lock().unwrap();
    ops.get(id).map(|op| to_pb(op, &stores)).ok_or(PdError::OperatorNotFound(id))
}

/// # Errors
///
/// `NotLeader` on a follower.
pub fn list(ctx: &PdContext, include_finished: bool) -> Result<Vec<pdpb::Operator>> {
    ctx.ensure_leader()?;
    let stores = {
        let state = ctx.catalog.read();
        store_versions(ctx, &state.catalog)
    };
    let ops = ctx.operators.lock().unwrap();
    Ok(ops.list(include_finished).into_iter().map(|op| to_pb(op, &stores)).collect())
}

/// # Errors
///
/// `NotLeader` on a follower, `OperatorNotFound`.
pub fn cancel(ctx: &PdContext, id: u64) -> Result<pdpb::Operator> {
    ctx.ensure_leader()?;
    let op = ctx.operators.lock().unwrap().cancel(id, Now::current())?;
    info!(operator = id, status = ?op.status, "operator cancel requested");
    get(ctx, id)
}

/// The catalog accepted a split report that named `directive_id`.
pub fn split_applied(ctx: &PdContext, directive_id: u64, version: u64) {
    if directive_id == 0 {
        return;
    }
    {
        let state = ctx.catalog.read();
        ctx.operators.lock().unwrap().split_applied(directive_id, version, &state.catalog, Now::current());
    }
    ctx.operator_events.notify_one();
}

/// A store could not carry out a directive.
pub fn directive_failed(ctx: &PdContext, store_id: u64, f: pdpb::DirectiveFailed) {
    let error = f.error.unwrap_or_else(|| pdpb::Error {
        r#type: pdpb::ErrorType::Unavailable as i32,
        message: "store gave no reason".into(),
        leader: None,
    });
    let ty = error.r#type().as_str_name();
    metrics::DIRECTIVES_FAILED.with_label_values(&[ty]).inc();
    let known = ctx.operators.lock().unwrap().directive_failed(f.directive_id, store_id, error.clone(), Now::current());
    if known {
        warn!(store_id, directive_id = f.directive_id, region_id = f.region_id, r#type = ty, message = %error.message, "directive failed");
    } else {
        debug!(
            store_id,
            directive_id = f.directive_id,
            region_id = f.region_id,
            r#type = ty,
            "failure of a directive no operator runs"
        );
    }
}
