//! Runs the split checker on the leader every `split-check-interval-ms`:
//! builds the cluster view (regions, the stats their leaders reported,
//! running and failed operators), asks [`split_checker::check`] which
//! regions to split, and starts a split operator (empty key: the leader
//! picks the middle) for each, as the admin API would, with source
//! `split-checker`. The checker decides; this file only carries out.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, info};

use super::context::PdContext;
use super::operator_driver;
use crate::metrics;
use crate::operator::Source;
use crate::schedule::split_checker::{self, RegionView, SplitDecision};

/// Runs until shutdown; does nothing when the interval is 0 (automatic
/// splitting off).
pub async fn run(ctx: Arc<PdContext>, mut shutdown: watch::Receiver<bool>) {
    let interval_ms = ctx.config.schedule.split_check_interval_ms;
    if interval_ms == 0 {
        info!("automatic region split is off (schedule.split-check-interval-ms is 0)");
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if ctx.is_leader() {
            check_once(&ctx).await;
        }
    }
}

/// One check: decides, then starts the splits. Returns the decisions.
pub async fn check_once(ctx: &PdContext) -> Vec<SplitDecision> {
    let decisions = split_checker::check(&view(ctx), &ctx.config.schedule);
    metrics::SPLIT_CHECKS.inc();
    for d in &decisions {
        match operator_driver::start_split(ctx, d.region_id, Vec::new(), Some(d.epoch), Source::SplitChecker).await {
            Ok(op) => info!(operator = op.id, region_id = d.region_id, reason = %d.reason, "automatic split started"),
            // The region changed or got an operator since the view was taken:
            // the next check looks again.
            Err(e) => debug!(region_id = d.region_id, error = %e, "automatic split not started"),
        }
    }
    decisions
}

/// The regions as the checker needs them. Drops stats the catalog has moved
/// past on the way, so they cannot mislead a later check either.
fn view(ctx: &PdContext) -> Vec<RegionView> {
    let state = ctx.catalog.read();
    ctx.region_stats.prune(&state.catalog);
    let stats = ctx.region_stats.all();
    let (busy, failed): (HashSet<u64>, Vec<_>) = {
        let ops = ctx.operators.lock().unwrap();
        (ops.busy_regions().collect(), ops.failed_checker_splits())
    };
    state
        .catalog
        .regions()
        .map(|rec| {
            let id = rec.region.id;
            RegionView {
                id,
                epoch: rec.epoch(),
                has_leader: rec.leader.is_some(),
                stats: stats.get(&id).map(|s| (s.stats, s.epoch)),
                busy: busy.contains(&id),
                failed_at_epoch: failed.contains(&(id, rec.epoch())),
            }
        })
        .collect()
}
