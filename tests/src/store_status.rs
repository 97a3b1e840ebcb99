//! A store's view of its regions, read over its HTTP API: `/status` and
//! the hibernation counters, and the leader the live stores agree on.

use crate::cluster::Cluster;
use crate::{http_get, metric_value};

/// A store's `/status`, if it answers 200 with JSON.
pub async fn status(http: &str) -> Option<serde_json::Value> {
    let (code, body) = http_get(http, "/status").await.ok()?;
    if code != 200 {
        return None;
    }
    serde_json::from_str(&body).ok()
}

/// The first region's entry (by start key) in a store's `/status`.
pub async fn first_region(http: &str) -> Option<serde_json::Value> {
    status(http).await?["regions"].as_array()?.first().cloned()
}

/// `store_hibernation_events_total{event}` on a store (0 when absent).
///
/// # Panics
///
/// When the store does not answer `/metrics`.
pub async fn hibernation_events(http: &str, event: &str) -> f64 {
    let (_, body) = http_get(http, "/metrics").await.expect("metrics");
    metric_value(&body, &format!("store_hibernation_events_total{{event=\"{event}\"}}")).unwrap_or(0.0)
}

/// The (term, leader store) of the first region that every running store
/// agrees on, if they do.
pub async fn agreed_leader(cluster: &Cluster) -> Option<(u64, u64)> {
    let mut seen = None;
    for s in cluster.stores.iter().filter(|s| s.is_running()) {
        let r = first_region(&s.http()).await?;
        let here = (r["term"].as_u64()?, r["leader"]["store_id"].as_u64()?);
        if seen.is_some_and(|v| v != here) {
            return None;
        }
        seen = Some(here);
    }
    seen
}
