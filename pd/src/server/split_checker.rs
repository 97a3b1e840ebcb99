//! Runs the split checker ([`crate::operator::split_checker`]) on the PD
//! leader every `schedule.split-check-interval-ms`, and starts a split
//! operator (at the middle, chosen by the region's leader) for each region
//! it picks.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, info};

use super::context::PdContext;
use crate::operator::split_checker::{RegionView, check};

pub async fn run(ctx: Arc<PdContext>, mut shutdown: watch::Receiver<bool>) {
    let interval = ctx.config.schedule.split_check_interval_ms;
    if interval == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(interval));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if !ctx.is_leader() {
            continue;
        }
        let view: Vec<RegionView> = {
            let state = ctx.catalog.read();
            let stats = ctx.regions.lock().unwrap();
            state
                .catalog
                .regions()
                .map(|r| RegionView {
                    region_id: r.region.id,
                    stats: stats.get(&r.region.id).copied(),
                    busy: ctx.operators.is_busy(r.region.id),
                })
                .collect()
        };
        for region_id in check(&view, &ctx.config.schedule) {
            match crate::operator::split::start(&ctx, region_id, Vec::new(), None, "split-checker").await {
                Ok(op) => info!(operator = op.id, region_id, "split checker started a split"),
                Err(e) => debug!(region_id, error = %e, "split checker could not start a split"),
            }
        }
    }
}
