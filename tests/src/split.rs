//! Splitting regions the way an operator does, and checking that every
//! store has converged on the result.

use std::time::{Duration, Instant};

use pd::client::PdClient;
use pd::error::{PdError, check_header};
use proto::kvpb::{self, kv_client::KvClient};
use proto::pdpb;

use crate::cluster::Cluster;
use crate::{http_get, metric_value, wait_for};

/// Asks PD to split `region_id` at `key` (empty: the middle) and waits until
/// the operator succeeded and every Up store's routes show the result.
///
/// # Errors
///
/// PD's refusal, or the operator failing, timing out or being cancelled.
pub async fn split_region(
    pd: &PdClient,
    region_id: u64,
    key: &[u8],
    deadline: Duration,
) -> Result<pdpb::Operator, PdError> {
    let req = pdpb::SplitRegionRequest { region_id, split_key: key.to_vec(), region_epoch: None };
    let op = pd
        .call(|mut c| {
            let req = req.clone();
            async move { c.split_region(req).await }
        })
        .await?
        .operator
        .ok_or_else(|| PdError::Fatal("split answered without an operator".into()))?;
    wait_operator(pd, op.id, deadline).await
}

/// Waits until operator `id` has succeeded and converged on every Up store.
///
/// # Errors
///
/// The operator failing, timing out or being cancelled, or `deadline`.
pub async fn wait_operator(pd: &PdClient, id: u64, deadline: Duration) -> Result<pdpb::Operator, PdError> {
    let give_up = Instant::now() + deadline;
    loop {
        let op = pd
            .call(|mut c| async move { c.get_operator(pdpb::GetOperatorRequest { operator_id: id }).await })
            .await?
            .operator
            .ok_or_else(|| PdError::Fatal("operator answered without an operator".into()))?;
        match pdpb::OperatorStatus::try_from(op.status) {
            Ok(pdpb::OperatorStatus::Succeeded) if op.converged_ms != 0 => return Ok(op),
            Ok(pdpb::OperatorStatus::Running | pdpb::OperatorStatus::Succeeded) => {}
            _ => {
                let err = op.error.clone().unwrap_or_default();
                check_header(&Some(pdpb::ResponseHeader { error: Some(err) }))?;
                return Err(PdError::Fatal(format!("operator {id} ended as {:?}", op.status)));
            }
        }
        if Instant::now() > give_up {
            return Err(PdError::Unavailable(format!("operator {id} still at step {:?}", op.step)));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The route catalog version a store has applied, from its metrics.
pub async fn store_route_version(http: &str) -> Option<u64> {
    let (_, body) = http_get(http, "/metrics").await.ok()?;
    metric_value(&body, "store_route_version").map(|v| v as u64)
}

/// Waits until every region PD knows has all its peers and a leader, and
/// every running store has applied PD's route version. Returns the routes.
pub async fn wait_converged(cluster: &Cluster, replicas: usize, deadline: Duration) -> pdpb::RouteSnapshot {
    let pd = PdClient::new(&cluster.pd_endpoints()).expect("pd client");
    let https: Vec<String> = cluster.stores.iter().filter(|s| s.is_running()).map(|s| s.http()).collect();
    wait_for("every region led and every store on PD's route version", deadline, || async {
        let routes = pd.list_routes().await.ok()?;
        for r in &routes.regions {
            let region = r.region.as_ref()?;
            if region.peers.len() != replicas || r.leader.is_none() {
                return None;
            }
        }
        for http in &https {
            if store_route_version(http).await? != routes.version {
                return None;
            }
        }
        Some(routes)
    })
    .await
}

/// Every key of `region_id` in `[start, end)` as the store at `grpc` holds
/// it locally (a stale read of its own replica).
pub async fn local_scan(grpc: &str, region_id: u64, start: &[u8], end: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut kv = KvClient::new(pd::client::channel(grpc).ok()?);
    let ctx = kvpb::Context { region_id, stale_read: true, ..Default::default() };
    let r = kv
        .scan(kvpb::ScanRequest { context: Some(ctx), start_key: start.to_vec(), end_key: end.to_vec(), limit: 1_000 })
        .await
        .ok()?
        .into_inner();
    if r.region_error.is_some() || r.error.is_some() {
        return None;
    }
    Some(r.pairs.into_iter().map(|p| (p.key, p.value)).collect())
}
