//! `pdbench`: PD at scale, against a running PD, with simulated stores.
//!
//! The stores are heartbeat streams and nothing else: no data, no raft.
//! A run registers them, lets PD bootstrap, creates the regions by split
//! reports as stores would (the bootstrap region split into chunks, each
//! chunk split into its regions by the store leading it), then measures:
//!
//! 1. **Unchanged reports.** Every region's leader reports it as the
//!    catalog has it, `rounds` times over, as fast as the streams take
//!    them; the rate is PD's count of region messages handled over the
//!    time it took. PD's raft log index, proposal count and catalog
//!    version before and after show whether any report cost a raft write.
//! 2. **Route change latency.** One region at a time changes leader (the
//!    new leader's store reports it at a higher term, as after a leader
//!    transfer); the time from that report until every simulated store has
//!    the new version, over `trials` changes.
//!
//! Finally each store's routes are compared with PD's `ListRoutes`.
//!
//! The bench needs a fresh PD (not bootstrapped) whose `max-replicas` is at
//! most `--stores`; `deploy/bench/pd_scale.sh` starts one. It does not
//! measure stores' own costs (a real store applies a route delta to a
//! vector of all its routes), nor several PD members.

mod config;
mod layout;
mod pd_metrics;
mod percentiles;
mod route_map;
mod sim_store;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use config::BenchConfig;
use pd_metrics::PdMetrics;
pub use percentiles::Percentiles;
use proto::pdpb;
use sim_store::SimStore;

use crate::client::PdClient;
use crate::error::{PdError, Result};

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub stores: usize,
    pub regions: usize,
    pub setup: Duration,
    pub reports: u64,
    pub reports_elapsed: Duration,
    /// (before, after) across the unchanged reports.
    pub raft_log_index: (f64, f64),
    pub proposals: (f64, f64),
    pub catalog_version: (f64, f64),
    pub change_latency: Percentiles,
    /// Routes PD pushed on heartbeat streams during the route changes.
    pub deltas_pushed: f64,
    pub full_pushed: f64,
    /// PD's mean propose-to-apply time over the route changes: the part of
    /// their latency spent committing and applying through raft.
    pub propose_mean: Duration,
}

impl Report {
    pub fn reports_per_second(&self) -> f64 {
        self.reports as f64 / self.reports_elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Whether the unchanged reports left PD's raft log and catalog as they
    /// were.
    pub fn no_raft_writes(&self) -> bool {
        self.raft_log_index.0 == self.raft_log_index.1
            && self.proposals.0 == self.proposals.1
            && self.catalog_version.0 == self.catalog_version.1
    }

    /// The report as `key value` lines.
    pub fn lines(&self) -> Vec<String> {
        let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1_000.0);
        vec![
            format!("stores {}", self.stores),
            format!("regions {}", self.regions),
            format!("setup_s {:.1}", self.setup.as_secs_f64()),
            format!("unchanged_reports {}", self.reports),
            format!("unchanged_reports_s {:.2}", self.reports_elapsed.as_secs_f64()),
            format!("unchanged_reports_per_s {:.0}", self.reports_per_second()),
            format!("raft_log_index_before_after {} {}", self.raft_log_index.0, self.raft_log_index.1),
            format!("raft_proposals_before_after {} {}", self.proposals.0, self.proposals.1),
            format!("catalog_version_before_after {} {}", self.catalog_version.0, self.catalog_version.1),
            format!("raft_writes_for_unchanged_reports {}", if self.no_raft_writes() { 0 } else { 1 }),
            format!("route_changes {}", self.change_latency.len()),
            format!("route_change_to_all_stores_p50_ms {}", ms(self.change_latency.quantile(0.5))),
            format!("route_change_to_all_stores_p99_ms {}", ms(self.change_latency.quantile(0.99))),
            format!("route_change_to_all_stores_max_ms {}", ms(self.change_latency.quantile(1.0))),
            format!("heartbeat_pushes_delta_full {} {}", self.deltas_pushed, self.full_pushed),
            format!("pd_propose_to_apply_mean_ms {}", ms(self.propose_mean)),
        ]
    }
}

const REGION_MESSAGES: &str = "pd_heartbeat_messages_total{kind=\"region\"}";

/// Runs the bench; `progress` hears each phase.
///
/// # Errors
///
/// A bad config, PD refusing a step, a wait timing out, or a store's
/// routes differing from PD's at the end.
pub async fn run(cfg: &BenchConfig, progress: impl Fn(&str)) -> Result<Report> {
    cfg.validate()?;
    let pd = PdClient::new(&cfg.pd)?.with_deadline(cfg.timeout);
    if pd.is_bootstrapped().await? {
        return Err(PdError::InvalidArgument("PD is bootstrapped already; the bench needs a fresh one".into()));
    }
    let started = Instant::now();
    progress(&format!("registering {} simulated stores", cfg.stores));
    let mut stores = Vec::with_capacity(cfg.stores);
    for i in 0..cfg.stores {
        stores.push(Arc::new(SimStore::start(&pd, cfg.base_port + 2 * i as u16).await?));
    }
    let bootstrap = wait_bootstrap(&pd, cfg.timeout).await?;
    let holders: Vec<Arc<SimStore>> =
        bootstrap.peers.iter().filter_map(|p| stores.iter().find(|s| s.id == p.store_id).cloned()).collect();
    if holders.len() != bootstrap.peers.len() {
        return Err(PdError::InvalidArgument("PD bootstrapped on stores this bench did not register".into()));
    }
    progress(&format!("creating {} regions by split reports, {} per report", cfg.regions, cfg.chunk));
    let holder_refs: Vec<&SimStore> = holders.iter().map(|s| s.as_ref()).collect();
    let mut regions =
        layout::create(&pd, &cfg.pd_http, &holder_refs, &bootstrap, cfg.regions, cfg.chunk, cfg.timeout).await?;
    let version = PdMetrics::scrape(&cfg.pd_http).await?.get("pd_catalog_version") as u64;
    for s in &stores {
        s.arrival_of(version, cfg.timeout).await?;
    }
    let setup = started.elapsed();

    progress(&format!("{} rounds of unchanged reports for every region", cfg.rounds));
    let before = PdMetrics::scrape(&cfg.pd_http).await?;
    let mut batches: Vec<Vec<pdpb::StoreHeartbeatRequest>> = vec![Vec::new(); holders.len()];
    for r in &regions {
        let store = &holders[r.leader];
        let payload = layout::region_heartbeat(&r.region, r.leader_peer(store.id), r.term);
        batches[r.leader].push(pdpb::StoreHeartbeatRequest {
            store_id: store.id,
            payload: Some(payload),
            route_deltas: true,
        });
    }
    let total = (regions.len() * cfg.rounds) as u64;
    let t0 = Instant::now();
    let mut senders = Vec::new();
    for (store, batch) in holders.iter().zip(batches) {
        let (store, rounds) = (store.clone(), cfg.rounds);
        senders.push(tokio::spawn(async move {
            for _ in 0..rounds {
                for msg in &batch {
                    store.send_raw(msg.clone()).await?;
                }
            }
            Ok::<(), PdError>(())
        }));
    }
    let target = before.get(REGION_MESSAGES) + total as f64;
    let give_up = t0 + cfg.timeout;
    let reports_elapsed = loop {
        let m = PdMetrics::scrape(&cfg.pd_http).await?;
        if m.get(REGION_MESSAGES) >= target {
            break t0.elapsed();
        }
        if Instant::now() > give_up {
            return Err(PdError::Unavailable(format!(
                "PD handled {} of {total} reports in time",
                m.get(REGION_MESSAGES) - before.get(REGION_MESSAGES)
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for s in senders {
        s.await.map_err(|e| PdError::Fatal(e.to_string()))??;
    }
    let after = PdMetrics::scrape(&cfg.pd_http).await?;
    let pair = |name: &str| (before.get(name), after.get(name));

    progress(&format!("{} leader changes, each timed until every store has it", cfg.trials));
    let pushes =
        |m: &PdMetrics, kind: &str| m.get(&format!("pd_route_pushes_total{{kind=\"{kind}\",stream=\"heartbeat\"}}"));
    let mut version = after.get("pd_catalog_version") as u64;
    let mut latency = Percentiles::default();
    let n = regions.len();
    for trial in 0..cfg.trials {
        let r = &mut regions[(trial * 7_919 + 13) % n];
        r.leader = (r.leader + 1) % holders.len();
        r.term += 1;
        let store = &holders[r.leader];
        let payload = layout::region_heartbeat(&r.region, r.leader_peer(store.id), r.term);
        version += 1;
        let sent = Instant::now();
        store.send(payload).await?;
        let mut last = sent;
        for s in &stores {
            last = last.max(s.arrival_of(version, cfg.timeout).await?);
        }
        latency.record(last - sent);
    }
    let end = PdMetrics::scrape(&cfg.pd_http).await?;

    progress("comparing every store's routes with PD's");
    let routes = pd.list_routes().await?;
    if routes.version != version {
        return Err(PdError::Fatal(format!("PD is at version {}, the bench expected {version}", routes.version)));
    }
    for s in &stores {
        if s.version() != routes.version || s.routes() != routes {
            return Err(PdError::Fatal(format!("store {}'s routes differ from PD's", s.id)));
        }
    }
    Ok(Report {
        stores: stores.len(),
        regions: routes.regions.len(),
        setup,
        reports: total,
        reports_elapsed,
        raft_log_index: pair("pd_raft_last_log_index"),
        proposals: pair("pd_raft_propose_seconds_count"),
        catalog_version: pair("pd_catalog_version"),
        change_latency: latency,
        deltas_pushed: pushes(&end, "delta") - pushes(&after, "delta"),
        full_pushed: pushes(&end, "full") - pushes(&after, "full"),
        propose_mean: {
            let sum = end.get("pd_raft_propose_seconds_sum") - after.get("pd_raft_propose_seconds_sum");
            let count = end.get("pd_raft_propose_seconds_count") - after.get("pd_raft_propose_seconds_count");
            Duration::from_secs_f64(if count > 0.0 { sum / count } else { 0.0 })
        },
    })
}

async fn wait_bootstrap(pd: &PdClient, timeout: Duration) -> Result<proto::metapb::Region> {
    let give_up = Instant::now() + timeout;
    loop {
        if let Some(r) = pd.list_routes().await?.regions.first().and_then(|r| r.region.clone()) {
            return Ok(r);
        }
        if Instant::now() > give_up {
            return Err(PdError::Unavailable("PD did not bootstrap; is max-replicas above --stores?".into()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
