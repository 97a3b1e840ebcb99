//! Who leads each region, as PD's routes say and as the stores say, and
//! waiting until the two agree.
//!
//! A store says it leads a region in its `/status` (`role: leader`, with
//! the term). Several may say so for a moment (a deposed leader that has
//! not heard of its successor yet): the highest term is the region's
//! leader. A region no running store leads (an election under way, or
//! every replica asleep after a restart) has no leader to compare with and
//! is skipped.

use std::collections::BTreeMap;
use std::time::Duration;

use pd::client::PdClient;

use crate::cluster::{Cluster, TEST_REGION_HEARTBEAT_MS};
use crate::store_status::status;

/// How long PD may take to name the leader the stores have: a leader
/// reports its region at once when it is elected and again every region
/// heartbeat interval, so three intervals cover a lost or refused report
/// and the next one.
pub fn agree_deadline() -> Duration {
    Duration::from_millis(3 * TEST_REGION_HEARTBEAT_MS)
}

/// A region's leader as the stores report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLeader {
    pub store_id: u64,
    pub term: u64,
}

/// Region id -> the leader with the highest term among the running stores
/// that say they lead it.
///
/// # Errors
///
/// A running store that does not answer `/status`.
pub async fn store_leaders(cluster: &Cluster) -> Result<BTreeMap<u64, StoreLeader>, String> {
    let mut out: BTreeMap<u64, StoreLeader> = BTreeMap::new();
    for s in cluster.stores.iter().filter(|s| s.is_running()) {
        let st = status(&s.http()).await.ok_or_else(|| format!("store {} does not answer /status", s.store_id))?;
        for r in st["regions"].as_array().into_iter().flatten() {
            if r["role"] != "leader" {
                continue;
            }
            let (Some(id), Some(term)) = (r["id"].as_u64(), r["term"].as_u64()) else { continue };
            let here = StoreLeader { store_id: s.store_id, term };
            let best = out.entry(id).or_insert(here);
            if term > best.term {
                *best = here;
            }
        }
    }
    Ok(out)
}

/// Every region whose leader PD's routes name differently from the stores
/// (one line each), or why they could not be compared.
pub async fn leader_mismatches(cluster: &Cluster, pd: &PdClient) -> Vec<String> {
    let routes = match pd.list_routes().await {
        Ok(r) => r,
        Err(e) => return vec![format!("no routes from PD: {e}")],
    };
    let leaders = match store_leaders(cluster).await {
        Ok(l) => l,
        Err(e) => return vec![e],
    };
    let mut out = Vec::new();
    for route in &routes.regions {
        let Some(region) = &route.region else { continue };
        let Some(led) = leaders.get(&region.id) else { continue };
        let named = route.leader.map(|l| l.store_id);
        if named != Some(led.store_id) {
            out.push(format!(
                "region {}: PD names store {:?}, store {} leads it at term {}",
                region.id, named, led.store_id, led.term
            ));
        }
    }
    out
}

/// Waits until PD names, for every region, the leader the stores have, for
/// at most `deadline`.
///
/// # Panics
///
/// With the regions still misnamed at the deadline.
pub async fn wait_leaders_agree(cluster: &Cluster, deadline: Duration) {
    let pd = PdClient::new(&cluster.pd_endpoints()).expect("pd client");
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        let mismatches = leader_mismatches(cluster, &pd).await;
        if mismatches.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "PD's leaders still differ from the stores' after {deadline:?}:\n{}",
            mismatches.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
