//! The store heartbeat stream: one per storage node, to the PD leader.
//!
//! Protocol: the store's first message names it (`store_id`, registered
//! with `PutStore` beforehand). PD answers with the current route snapshot,
//! then pushes a new snapshot whenever the catalog version moves. Up the
//! stream come store stats (kept in the leader's memory), region heartbeats
//! and split reports. A region report that changes routes is proposed to the
//! catalog; one whose epoch is older than the catalog's is ignored and
//! counted. When this member stops leading, the stream ends with a
//! `NOT_LEADER` header naming the new leader, and the store reconnects there.
//!
//! Directives from operators ([`crate::operator`]) go down the stream of
//! the store they are for; a store's refusal comes back up as
//! `DirectiveFailed`. Reports that propose to the catalog (region
//! heartbeats, split reports) are handled in order by a worker of their
//! own, so a proposal in flight never holds up route pushes, directives or
//! the store's next stats.

use std::sync::Arc;
use std::time::Instant;

use proto::pdpb::{self, store_heartbeat_request::Payload};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tracing::{debug, info, warn};

use super::context::{PdContext, StoreRuntime, now_ms, until_not_leader};
use super::grpc::BoxStream;
use super::watch::GaugeGuard;
use crate::catalog::{CatalogCommand, region_report::epoch_is_stale};
use crate::error::{PdError, Result};
use crate::metrics;

/// Messages queued towards one store: route snapshots are large, so keep
/// few; the newest snapshot supersedes older ones anyway.
const DOWN_QUEUE: usize = 16;
/// Reports queued for the stream's proposal worker before reading from the
/// store waits.
const REPORT_QUEUE: usize = 1024;

type Tx = mpsc::Sender<Result<pdpb::StoreHeartbeatResponse, tonic::Status>>;

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
    info!(store_id, "store heartbeat stream open");
    handle(ctx, store_id, first).await?;
    ctx.operators.stream_opened(store_id, tx.clone());
    let res = serve(ctx, store_id, inbound, tx).await;
    ctx.operators.stream_closed(store_id, tx);
    res
}

/// The stream's life after its first message. Reports that need a raft
/// proposal queue for a worker, which handles them in order, so a slow
/// proposal never holds up route pushes, directives or the next store
/// stats.
async fn serve(
    ctx: &Arc<PdContext>,
    store_id: u64,
    mut inbound: Streaming<pdpb::StoreHeartbeatRequest>,
    tx: &Tx,
) -> Result<()> {
    let (work_tx, mut work_rx) = mpsc::channel::<pdpb::StoreHeartbeatRequest>(REPORT_QUEUE);
    let worker_ctx = ctx.clone();
    let mut worker = tokio::spawn(async move {
        while let Some(m) = work_rx.recv().await {
            handle(&worker_ctx, store_id, m).await?;
        }
        Ok::<(), PdError>(())
    });
    let res = async {
        let mut routes = ctx.catalog.subscribe();
        let mut leader = ctx.leader_rx.clone();
        let mut sent = None;
        loop {
            let snapshot = routes.borrow_and_update().clone();
            if sent.is_none_or(|v| snapshot.version > v) {
                let resp = pdpb::StoreHeartbeatResponse {
                    header: None,
                    payload: Some(pdpb::store_heartbeat_response::Payload::Routes((*snapshot).clone())),
                };
                if tx.send(Ok(resp)).await.is_err() {
                    return Ok(());
                }
                metrics::ROUTE_PUSHES.inc();
                sent = Some(snapshot.version);
            }
            tokio::select! {
                msg = next(&mut inbound) => match msg? {
                    Some(m) if needs_proposal(&m) => {
                        if work_tx.send(m).await.is_err() {
                            return Ok(());
                        }
                    }
                    Some(m) => handle(ctx, store_id, m).await?,
                    None => {
                        info!(store_id, "store closed its heartbeat stream");
                        return Ok(());
                    }
                },
                done = &mut worker => return done.unwrap_or_else(|e| Err(PdError::Fatal(format!("report worker: {e}")))),
                changed = routes.changed() => if changed.is_err() { return Ok(()) },
                () = until_not_leader(&mut leader) => return Err(PdError::NotLeader(ctx.leader_hint())),
                () = tx.closed() => return Ok(()),
            }
        }
    }
    .await;
    worker.abort();
    res
}

/// Region heartbeats and split reports may propose to the catalog.
fn needs_proposal(m: &pdpb::StoreHeartbeatRequest) -> bool {
    matches!(m.payload, Some(Payload::Region(_) | Payload::Split(_)))
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

/// Handles one message. Only errors that must end the stream are returned;
/// a refused report is counted and the stream goes on.
async fn handle(ctx: &PdContext, store_id: u64, msg: pdpb::StoreHeartbeatRequest) -> Result<()> {
    if msg.store_id != store_id {
        return Err(PdError::InvalidArgument(format!(
            "stream opened by store {store_id} carried a message from store {}",
            msg.store_id
        )));
    }
    let Some(payload) = msg.payload else {
        return Ok(());
    };
    let started = Instant::now();
    let kind = match payload {
        Payload::Store(stats) => {
            ctx.stores.lock().unwrap().insert(store_id, StoreRuntime { stats, last_heartbeat_ms: now_ms() });
            "store"
        }
        Payload::Region(hb) => {
            region_heartbeat(ctx, store_id, hb).await?;
            "region"
        }
        Payload::Split(split) => {
            let ids: Vec<u64> = split.regions.iter().map(|r| r.id).collect();
            let cmd = CatalogCommand::ReportRegions { regions: split.regions, leader: split.leader, term: split.term };
            check_leader_store(store_id, cmd_leader(&cmd))?;
            propose_report(ctx, cmd).await?;
            // The parent's size from before the split must not make the
            // checker split it again: the report's sizes replace it.
            let mut regions = ctx.regions.lock().unwrap();
            for (i, id) in ids.iter().enumerate() {
                match split.stats.get(i) {
                    Some(s) => regions.insert(*id, *s),
                    None => regions.remove(id),
                };
            }
            "split"
        }
        Payload::DirectiveFailed(f) => {
            let error = f.error.unwrap_or_default();
            warn!(store_id, directive_id = f.directive_id, region_id = f.region_id, error = %error.message, "directive refused by the store");
            ctx.operators.refused(f.directive_id, error);
            "directive_failed"
        }
    };
    metrics::HEARTBEAT_MESSAGES.with_label_values(&[kind]).inc();
    metrics::HEARTBEAT_HANDLE_SECONDS.with_label_values(&[kind]).observe(started.elapsed().as_secs_f64());
    Ok(())
}

fn cmd_leader(cmd: &CatalogCommand) -> Option<&proto::metapb::Peer> {
    match cmd {
        CatalogCommand::ReportRegions { leader, .. } => leader.as_ref(),
        _ => None,
    }
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

async fn region_heartbeat(ctx: &PdContext, store_id: u64, hb: pdpb::RegionHeartbeat) -> Result<()> {
    let Some(region) = hb.region else {
        return Err(PdError::InvalidArgument("region heartbeat without a region".into()));
    };
    check_leader_store(store_id, hb.leader.as_ref())?;
    if let Some(stats) = hb.stats {
        ctx.regions.lock().unwrap().insert(region.id, stats);
    }
    // Most heartbeats repeat what the catalog has: no raft write for those.
    {
        let state = ctx.catalog.read();
        if let Some(rec) = state.catalog.region(region.id) {
            let epoch = region.region_epoch.unwrap_or_default();
            if epoch_is_stale(&epoch, &rec.epoch()) || (epoch == rec.epoch() && hb.term < rec.term) {
                metrics::REGION_REPORTS_REFUSED.with_label_values(&["stale"]).inc();
                debug!(region_id = region.id, ?epoch, "stale region report ignored");
                return Ok(());
            }
            if rec.region == region && rec.leader == hb.leader {
                return Ok(());
            }
        }
    }
    propose_report(ctx, CatalogCommand::ReportRegions { regions: vec![region], leader: hb.leader, term: hb.term }).await
}

/// Proposes a report. Refusals by the catalog are counted, not fatal to the
/// stream; losing leadership or quorum is.
async fn propose_report(ctx: &PdContext, cmd: CatalogCommand) -> Result<()> {
    match ctx.propose(cmd).await {
        Ok(_) => Ok(()),
        Err(PdError::StaleEpoch(m)) => {
            metrics::REGION_REPORTS_REFUSED.with_label_values(&["stale"]).inc();
            debug!(reason = %m, "stale region report ignored");
            Ok(())
        }
        Err(e @ (PdError::NotLeader(_) | PdError::Unavailable(_) | PdError::Fatal(_) | PdError::Storage(_))) => Err(e),
        Err(e) => {
            let reason = if matches!(e, PdError::RouteConflict(_) | PdError::InvariantViolation(_)) {
                "conflict"
            } else {
                "invalid"
            };
            metrics::REGION_REPORTS_REFUSED.with_label_values(&[reason]).inc();
            warn!(error = %e, "region report refused");
            Ok(())
        }
    }
}
