//! The split operator: validate, allocate the new region's ids, send the
//! split directive to the region's leader (again when the leader moves or a
//! while passes without news), succeed once the catalog holds the new
//! region, then watch every Up store's route version reach the catalog
//! version that holds it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proto::{metapb, pdpb};
use tracing::{info, warn};

use crate::catalog::{CatalogCommand, CommandOutcome, keys};
use crate::error::{PdError, Result};
use crate::metrics;
use crate::server::context::{PdContext, now_ms};

/// A directive with no news for this long goes again (to whichever store
/// leads the region then).
const RESEND_AFTER: Duration = Duration::from_secs(3);
/// How often a running split looks at the catalog and the stores.
const TICK: Duration = Duration::from_millis(10);
/// How long convergence is watched after success.
const CONVERGE_WATCH: Duration = Duration::from_secs(60);

/// Starts a split of `region_id` at `split_key` (empty: the leader picks
/// the middle by size), if `epoch` (when given) is still the region's.
///
/// # Errors
///
/// `NotLeader`, `NotBootstrapped`, `RegionNotFound`, `InvalidSplitKey`
/// (outside the region or at its start), `StaleEpoch`, `OperatorExists`, or
/// the id allocation's failure.
pub async fn start(
    ctx: &Arc<PdContext>,
    region_id: u64,
    split_key: Vec<u8>,
    epoch: Option<metapb::RegionEpoch>,
    source: &str,
) -> Result<pdpb::Operator> {
    ctx.ensure_leader()?;
    let region = {
        let state = ctx.catalog.read();
        if !state.catalog.is_bootstrapped() {
            return Err(PdError::NotBootstrapped);
        }
        state.catalog.region(region_id).ok_or(PdError::RegionNotFound(region_id))?.region.clone()
    };
    let current = region.region_epoch.unwrap_or_default();
    if !split_key.is_empty()
        && (split_key <= region.start_key || !keys::contains(&region.start_key, &region.end_key, &split_key))
    {
        return Err(PdError::InvalidSplitKey(format!(
            "key {} is not strictly inside region {region_id} [{}, {})",
            keys::display(&split_key),
            keys::display(&region.start_key),
            keys::display(&region.end_key)
        )));
    }
    if let Some(e) = epoch
        && e != current
    {
        return Err(PdError::StaleEpoch(format!(
            "region {region_id} is at (conf_ver {}, version {}), the request names (conf_ver {}, version {})",
            current.conf_ver, current.version, e.conf_ver, e.version
        )));
    }
    // Checked again when added; this spares an id allocation.
    ctx.operators.ensure_free(region_id)?;
    // One id for the operator, one for the new region, one per new peer.
    let count = 2 + region.peers.len() as u32;
    let first = match ctx.propose(CatalogCommand::AllocIds { count }).await? {
        CommandOutcome::Ids { first, .. } => first,
        other => return Err(PdError::Fatal(format!("id allocation answered {other:?}"))),
    };
    let id = first;
    let new_ids = pdpb::SplitIds { region_id: first + 1, peer_ids: (first + 2..first + u64::from(count)).collect() };
    let op = pdpb::Operator {
        id,
        region_id,
        kind: pdpb::OperatorKind::Split as i32,
        status: pdpb::OperatorStatus::Running as i32,
        step: "allocated ids; waiting for the region's leader".into(),
        source: source.into(),
        region_epoch: Some(current),
        split_key: split_key.clone(),
        new_region_id: new_ids.region_id,
        created_ms: now_ms(),
        ..Default::default()
    };
    let timeout = Duration::from_millis(ctx.config.schedule.split_operator_timeout_ms);
    ctx.operators.add(op.clone(), Instant::now() + timeout)?;
    let directive = pdpb::Directive {
        id,
        region_id,
        region_epoch: Some(current),
        kind: Some(pdpb::directive::Kind::Split(pdpb::SplitRegion { split_key, new_ids: Some(new_ids) })),
    };
    info!(operator = id, region_id, source, "split operator created");
    tokio::spawn(drive(ctx.clone(), id, directive));
    Ok(op)
}

/// Runs operator `id` to its end, then watches convergence.
async fn drive(ctx: Arc<PdContext>, id: u64, directive: pdpb::Directive) {
    let mut sent: Option<(u64, Instant)> = None;
    let mut catalog = ctx.catalog.subscribe();
    let result_version = loop {
        if !ctx.is_leader() {
            let error = pdpb::Error {
                r#type: pdpb::ErrorType::NotLeader as i32,
                message: "this PD member stopped leading".into(),
                leader: None,
            };
            ctx.operators.finish(id, pdpb::OperatorStatus::Failed, Some(error));
            return;
        }
        let Some(t) = ctx.operators.get(id) else { return };
        if t.op.status != pdpb::OperatorStatus::Running as i32 {
            return;
        }
        // The catalog holds the new region: done.
        let done = {
            let state = ctx.catalog.read();
            let c = &state.catalog;
            c.region(t.op.new_region_id).map(|new| {
                let parent = c.region(t.op.region_id).map(|r| r.region.clone());
                (c.version(), std::iter::once(new.region.clone()).chain(parent).collect::<Vec<_>>())
            })
        };
        if let Some((version, result)) = done {
            ctx.operators.update(id, |op| {
                op.result_version = version;
                op.result = result;
                op.step = "split in the catalog; waiting for stores to converge".into();
            });
            ctx.operators.finish(id, pdpb::OperatorStatus::Succeeded, None);
            break version;
        }
        if Instant::now() > t.deadline {
            let error = pdpb::Error {
                r#type: pdpb::ErrorType::Unavailable as i32,
                message: format!("split not done in time; last step: {}", t.op.step),
                leader: None,
            };
            ctx.operators.finish(id, pdpb::OperatorStatus::TimedOut, Some(error));
            warn!(operator = id, "split operator timed out");
            return;
        }
        if let Some(refusal) = ctx.operators.take_refusal(id) {
            let retry = matches!(
                pdpb::ErrorType::try_from(refusal.r#type),
                Ok(pdpb::ErrorType::NotLeader | pdpb::ErrorType::Unavailable | pdpb::ErrorType::RegionNotFound)
            );
            if !retry {
                warn!(operator = id, error = %refusal.message, "split refused by the store");
                ctx.operators.finish(id, pdpb::OperatorStatus::Failed, Some(refusal));
                return;
            }
            ctx.operators.update(id, |op| op.step = format!("store refused, will retry: {}", refusal.message));
        }
        let leader = ctx.catalog.read().catalog.region(directive.region_id).and_then(|r| r.leader).map(|l| l.store_id);
        if let Some(store) = leader {
            let due = sent.is_none_or(|(to, at)| to != store || at.elapsed() > RESEND_AFTER);
            if due && ctx.operators.send(store, directive.clone()) {
                sent = Some((store, Instant::now()));
                ctx.operators.update(id, |op| op.step = format!("split directive sent to store {store}"));
            }
        }
        tokio::select! {
            _ = catalog.changed() => {}
            () = tokio::time::sleep(TICK) => {}
        }
    };
    converge(&ctx, id, result_version).await;
}

/// Counts the Up stores whose routes reached `version` until all have.
async fn converge(ctx: &PdContext, id: u64, version: u64) {
    let started = Instant::now();
    while started.elapsed() < CONVERGE_WATCH {
        let up: Vec<u64> = {
            let state = ctx.catalog.read();
            state.catalog.stores().filter(|s| s.state == metapb::StoreState::Up as i32).map(|s| s.id).collect()
        };
        let converged = {
            let stores = ctx.stores.lock().unwrap();
            up.iter().filter(|s| stores.get(s).is_some_and(|r| r.stats.route_version >= version)).count()
        };
        let all = converged == up.len();
        let mut created = 0;
        ctx.operators.update_finished(id, |op| {
            op.converged_stores = converged as u32;
            op.total_stores = up.len() as u32;
            created = op.created_ms;
            if all {
                op.converged_ms = now_ms();
                op.step = format!("converged on {converged}/{} stores", up.len());
            } else {
                op.step = format!("split in the catalog; converged on {converged}/{} stores", up.len());
            }
        });
        if all {
            let secs = now_ms().saturating_sub(created) as f64 / 1000.0;
            metrics::SPLIT_CONVERGE_SECONDS.observe(secs);
            info!(operator = id, secs, "split converged on every store");
            return;
        }
        tokio::time::sleep(TICK).await;
    }
}
