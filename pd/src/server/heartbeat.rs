//! The store heartbeat stream: one per storage node, to the PD leader.
//!
//! Protocol: the store's first message names it (`store_id`, registered
//! with `PutStore` beforehand). PD answers with the current routes, then
//! pushes new ones whenever the catalog version moves, and directives
//! whenever an operator needs this store to act. A store that sets
//! `route_deltas` gets deltas (`crate::routes`): PD tracks the version the
//! stream has brought it to, starting from the route version in its first
//! stats (a reconnecting store gets only what it missed) and sends what
//! changed since, or a full snapshot when its history no longer reaches
//! back that far. A store that cannot apply a delta (it does not start at
//! the version the store holds) sends `RoutesWanted`, and PD answers with
//! a full snapshot. Other stores get a full snapshot every time. Up the stream
//! come store stats (kept in the leader's memory, with the route version the
//! store has applied), region heartbeats and split reports (their stats kept
//! too, their routes proposed to the catalog), and directive failures.
//!
//! The read loop never waits for raft: a report that changes routes goes to
//! the [`report_driver`], which proposes it in the
//! background in the [`report_queue`](super::report_queue)'s order, one proposal per region at a time; one whose epoch is older
//! than the catalog's, or whose leader's term is older than the one the
//! catalog has for that region at the same epoch, is ignored, counted and
//! logged (at most once per [`LOG_EVERY`](super::log_limit::LOG_EVERY)).
//! Directives reach the stream
//! through the [`store_streams`](super::store_streams) registry, so sending
//! one does not depend on any proposal either. When this member stops
//! leading, the stream ends with a `NOT_LEADER` header naming the new
//! leader, and the store reconnects there. A Tombstone store's stream is
//! refused with `STORE_CONFLICT`, and a connected store that becomes
//! Tombstone gets the routes saying so, then the same refusal.

use std::sync::Arc;
use std::time::Instant;

use proto::pdpb::{self, store_heartbeat_request::Payload};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tracing::{debug, info, warn};

use super::context::{PdContext, StoreRuntime, now_ms, until_not_leader};
use super::log_limit::REFUSALS_LOG;
use super::report_driver;
use super::report_queue::Report;
use super::store_streams::{Registration, Tx};
use super::stream_status::BoxStream;
use super::watch::GaugeGuard;
use crate::catalog::CatalogCommand;
use crate::catalog::region_report::{Lead, epoch_is_stale, superseded};
use crate::error::{PdError, Result};
use crate::metrics;
use crate::operator::PeerStatus;
use crate::routes::RoutePush;

/// Messages queued towards one store: route snapshots are large, so keep
/// few; the sender waits rather than skip, since deltas must arrive in
/// order. Directives are small and re-sent when the queue is full.
const DOWN_QUEUE: usize = 16;

pub fn open(
    ctx: Arc<PdContext>,
    inbound: Streaming<pdpb::StoreHeartbeatRequest>,
) -> BoxStream<pdpb::StoreHeartbeatResponse> {
    let (tx, rx) = mpsc::channel(DOWN_QUEUE);
    tokio::spawn(async move {
        let _open = GaugeGuard::new(&metrics::HEARTBEAT_STREAMS);
        if let Err(e) = run(&ctx, inbound, &tx).await {
            debug!(error = %e, "heartbeat stream refused or ended");
            let _ = tx.send(Ok(pdpb::StoreHeartbeatResponse { header: e.header(), payload: None })).await;
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

/// Serves one stream until the store hangs up (`Ok`) or PD must refuse it
/// (`Err`, sent to the store as a header).
async fn run(ctx: &Arc<PdContext>, mut inbound: Streaming<pdpb::StoreHeartbeatRequest>, tx: &Tx) -> Result<()> {
    ctx.ensure_leader()?;
    let Some(first) = next(&mut inbound).await? else {
        return Ok(());
    };
    let store_id = first.store_id;
    check_store(ctx, store_id)?;
    let deltas = first.route_deltas;
    // The version the store holds once it has applied everything sent so
    // far. It starts from what the store says it holds, when it applies
    // deltas: versions mean the same routes on every PD member.
    let mut held = match &first.payload {
        Some(Payload::Store(stats)) if deltas && stats.route_version > 0 => Some(stats.route_version),
        _ => None,
    };
    info!(store_id, deltas, ?held, "store heartbeat stream open");
    handle(ctx, store_id, first)?;
    let mut versions = ctx.catalog.subscribe();
    let mut leader = ctx.leader_rx.clone();
    // Registered once the store has routes, so it hears them before any
    // directive.
    let mut registration: Option<Registration<'_>> = None;
    loop {
        versions.borrow_and_update();
        if let Some(push) = ctx.catalog.push_since(held, deltas) {
            let payload = match &push {
                RoutePush::Full(s) => pdpb::store_heartbeat_response::Payload::Routes((**s).clone()),
                RoutePush::Delta(d) => pdpb::store_heartbeat_response::Payload::RouteDelta(d.clone()),
            };
            let resp = pdpb::StoreHeartbeatResponse { header: None, payload: Some(payload) };
            if tx.send(Ok(resp)).await.is_err() {
                return Ok(());
            }
            metrics::route_pushed("heartbeat", &push);
            held = Some(push.version());
            // A store tombstoned while connected has now been told so in
            // its routes; its stream ends, and it may not open another.
            check_store(ctx, store_id)?;
        }
        if registration.is_none() {
            registration = Some(ctx.streams.register(store_id, tx.clone()));
            // Directives waiting for this store go out now, not on the next tick.
            ctx.operator_events.notify_one();
        }
        tokio::select! {
            msg = next(&mut inbound) => match msg? {
                Some(m) => {
                    if handle(ctx, store_id, m)? == Handled::RoutesWanted {
                        // Whatever it holds, a full snapshot puts it right.
                        held = None;
                    }
                }
                None => {
                    info!(store_id, "store closed its heartbeat stream");
                    return Ok(());
                }
            },
            changed = versions.changed() => if changed.is_err() { return Ok(()) },
            () = until_not_leader(&mut leader) => return Err(PdError::NotLeader(ctx.leader_hint())),
            () = tx.closed() => return Ok(()),
        }
    }
}

async fn next(inbound: &mut Streaming<pdpb::StoreHeartbeatRequest>) -> Result<Option<pdpb::StoreHeartbeatRequest>> {
    inbound.message().await.map_err(|status| {
        metrics::HEARTBEAT_STREAM_ERRORS.inc();
        PdError::Unavailable(format!("heartbeat stream broke: {}", status.message()))
    })
}

fn check_store(ctx: &PdContext, store_id: u64) -> Result<()> {
    let state = ctx.catalog.read();
    match state.catalog.store(store_id) {
        None => Err(PdError::StoreNotFound(store_id)),
        Some(s) if s.state == proto::metapb::StoreState::Tombstone as i32 => {
            Err(PdError::StoreConflict(format!("store {store_id} is tombstoned")))
        }
        Some(_) => Ok(()),
    }
}

/// What the stream must do after a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Handled {
    Done,
    /// The store cannot apply the deltas it was sent: send a full snapshot.
    RoutesWanted,
}

/// Handles one message without waiting on anything. Only errors that must
/// end the stream are returned; a refused report is counted and the stream
/// goes on.
pub(super) fn handle(ctx: &Arc<PdContext>, store_id: u64, msg: pdpb::StoreHeartbeatRequest) -> Result<Handled> {
    if msg.store_id != store_id {
        return Err(PdError::InvalidArgument(format!(
            "stream opened by store {store_id} carried a message from store {}",
            msg.store_id
        )));
    }
    let Some(payload) = msg.payload else {
        return Ok(Handled::Done);
    };
    let started = Instant::now();
    let mut handled = Handled::Done;
    let kind = match payload {
        Payload::Store(stats) => {
            ctx.stores.lock().unwrap().insert(store_id, StoreRuntime { stats, last_heartbeat_ms: now_ms() });
            // A new route version may complete an operator's convergence.
            ctx.operator_events.notify_one();
            "store"
        }
        Payload::Region(hb) => {
            region_heartbeat(ctx, store_id, hb)?;
            "region"
        }
        Payload::Split(split) => {
            split_report(ctx, store_id, split)?;
            "split"
        }
        Payload::DirectiveFailed(f) => {
            super::operator_driver::directive_failed(ctx, store_id, f);
            "directive_failed"
        }
        Payload::RoutesWanted(w) => {
            info!(store_id, have_version = w.have_version, "store asked for a full route snapshot");
            metrics::ROUTE_RESYNCS.inc();
            handled = Handled::RoutesWanted;
            "routes_wanted"
        }
    };
    metrics::HEARTBEAT_MESSAGES.with_label_values(&[kind]).inc();
    metrics::HEARTBEAT_HANDLE_SECONDS.with_label_values(&[kind]).observe(started.elapsed().as_secs_f64());
    Ok(handled)
}

/// Only a region's leader reports it, from its own store.
fn check_leader_store(store_id: u64, leader: Option<&proto::metapb::Peer>) -> Result<()> {
    match leader {
        Some(l) if l.store_id == store_id => Ok(()),
        _ => {
            metrics::REGION_REPORTS_REFUSED.with_label_values(&["invalid"]).inc();
            Err(PdError::InvalidArgument(format!("store {store_id} reported a region it does not lead")))
        }
    }
}

fn region_heartbeat(ctx: &Arc<PdContext>, store_id: u64, hb: pdpb::RegionHeartbeat) -> Result<()> {
    let Some(region) = hb.region else {
        return Err(PdError::InvalidArgument("region heartbeat without a region".into()));
    };
    check_leader_store(store_id, hb.leader.as_ref())?;
    if let Some(stats) = hb.stats {
        ctx.region_stats.record(region.id, region.region_epoch.unwrap_or_default(), stats);
    }
    let status =
        PeerStatus { epoch: region.region_epoch.unwrap_or_default(), pending: hb.pending_peers, down: hb.down_peers };
    ctx.peer_reports.lock().unwrap().record(region.id, status);
    // A learner that caught up may let the region's operator go on.
    if ctx.operators.lock().unwrap().is_busy(region.id) {
        ctx.operator_events.notify_one();
    }
    // Most heartbeats repeat what the catalog has: no raft write for those.
    {
        let state = ctx.catalog.read();
        if let Some(rec) = state.catalog.region(region.id) {
            let epoch = region.region_epoch.unwrap_or_default();
            // The term is the region's own group's, as is the one recorded.
            let stale_epoch = epoch_is_stale(&epoch, &rec.epoch());
            let lead = hb.leader.map(|peer| Lead { peer, term: hb.term });
            if stale_epoch || (epoch == rec.epoch() && lead.is_some_and(|l| superseded(l, rec))) {
                let reason = if stale_epoch { "stale" } else { "stale_term" };
                metrics::REGION_REPORTS_REFUSED.with_label_values(&[reason]).inc();
                if rec.leader.is_some_and(|l| l.store_id != store_id) {
                    metrics::REGION_LEADER_MISMATCHES.inc();
                }
                if let Some(held_back) = REFUSALS_LOG.admit(Instant::now()) {
                    info!(
                        store_id,
                        region_id = region.id,
                        reason,
                        ?epoch,
                        term = hb.term,
                        catalog_epoch = ?rec.epoch(),
                        catalog_term = rec.term,
                        catalog_leader_store = rec.leader.map_or(0, |l| l.store_id),
                        held_back,
                        "region heartbeat refused: the catalog has a newer epoch or term"
                    );
                }
                return Ok(());
            }
            // (A lower term from the recorded leader itself goes on: it
            // heals a record whose term was not its own.)
            if rec.region == region && rec.leader == hb.leader && hb.term >= rec.term {
                return Ok(());
            }
        }
    }
    let id = region.id;
    let cmd = CatalogCommand::ReportRegions {
        regions: vec![region],
        leader: hb.leader,
        term: hb.term,
        leaderships: Vec::new(),
    };
    report_driver::submit(ctx, id, Report::heartbeat(cmd));
    Ok(())
}

/// A split's regions go to the catalog as one report, keyed by the region
/// that was split so it queues behind that region's own reports. The
/// report's leader and term are the original region's; each region's own
/// leader, where the store leads it, comes in `leaderships`. Their
/// stats are recorded at once: the split checker must see the shrunk
/// region's new size, not its old one.
fn split_report(ctx: &Arc<PdContext>, store_id: u64, split: pdpb::SplitReport) -> Result<()> {
    check_leader_store(store_id, split.leader.as_ref())?;
    if !split.stats.is_empty() && split.stats.len() != split.regions.len() {
        metrics::REGION_REPORTS_REFUSED.with_label_values(&["invalid"]).inc();
        warn!(
            store_id,
            regions = split.regions.len(),
            stats = split.stats.len(),
            "split report refused: one stats entry per region expected"
        );
        return Ok(());
    }
    // A store knows only its own peers' leadership.
    let foreign = split.leaderships.iter().filter_map(|l| l.leader).find(|l| l.store_id != store_id);
    if (!split.leaderships.is_empty() && split.leaderships.len() != split.regions.len()) || foreign.is_some() {
        metrics::REGION_REPORTS_REFUSED.with_label_values(&["invalid"]).inc();
        warn!(
            store_id,
            regions = split.regions.len(),
            leaderships = split.leaderships.len(),
            foreign_leader_store = foreign.map_or(0, |l| l.store_id),
            "split report refused: one leadership per region, of this store's peers, expected"
        );
        return Ok(());
    }
    for (region, stats) in split.regions.iter().zip(&split.stats) {
        ctx.region_stats.record(region.id, region.region_epoch.unwrap_or_default(), *stats);
    }
    let key = {
        let state = ctx.catalog.read();
        split.regions.iter().find(|r| state.catalog.region(r.id).is_some()).or(split.regions.last()).map(|r| r.id)
    };
    let Some(key) = key else {
        metrics::REGION_REPORTS_REFUSED.with_label_values(&["invalid"]).inc();
        warn!(store_id, "split report refused: it carries no region");
        return Ok(());
    };
    let cmd = CatalogCommand::ReportRegions {
        regions: split.regions,
        leader: split.leader,
        term: split.term,
        leaderships: split.leaderships,
    };
    report_driver::submit(ctx, key, Report::split(cmd, split.directive_id));
    Ok(())
}
