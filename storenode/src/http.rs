//! The storage node's HTTP API: KV by key, scans, health, metrics, status.
//!
//! | route | what |
//! |---|---|
//! | `GET /kv/{key}` | the value (raw bytes), 404 if absent |
//! | `PUT /kv/{key}` | body is the value |
//! | `DELETE /kv/{key}` | 200 whether or not it existed (`{"existed": bool}`) |
//! | `GET /scan?start=&end=&limit=` | `{pairs: [{key, value}], next}` as UTF-8 (lossy) strings |
//! | `GET /health` | 200 once registered and holding routes from PD; 503 with `error` once the writer has died |
//! | `GET /metrics` | Prometheus text |
//! | `GET /status` | store id, route version, hosted regions with role and leader |
//! | `GET/PUT/DELETE /debug/partition` | only with `fault-injection: true`: show, set, heal a simulated partition ([`crate::fault`]) |
//!
//! Requests run through the same handlers as gRPC, so any store serves any
//! key. Unlike the gRPC API, whose callers (the client library) retry region
//! errors themselves, an HTTP request is retried here with backoff for up to
//! three maximum election timeouts — long enough to outlast a leader
//! election, which waits out the dead leader's lease first — so
//! `curl` users see success across a leader's death. The HTTP API is one
//! client of the regions: every write gets a request id from this process's
//! [`RequestIds`] and keeps it across retries, so a retried write whose first
//! attempt did apply is not applied again ([`crate::retry`] decides what is
//! retried). What still fails comes back as 503 with the error in JSON; bad
//! input as 400.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use pd::catalog::keys;
use proto::kvpb;
use serde_json::json;

use crate::client::KvErrors;
use crate::error::StoreError;
use crate::fault::PartitionSpec;
use crate::metrics;
use crate::node::Node;
use crate::request_id::RequestIds;
use crate::retry;

/// This process's identity as a client of the regions, for HTTP writes.
static HTTP_CLIENT: std::sync::LazyLock<RequestIds> = std::sync::LazyLock::new(RequestIds::new);

/// A write's routing context: no region (routed by key), a fresh request
/// id shared by every retry.
fn write_context(id: kvpb::RequestId) -> Option<kvpb::Context> {
    Some(kvpb::Context { request_id: Some(id), ..Default::default() })
}

/// How long an HTTP KV request keeps retrying region errors: followers
/// wait out the dead leader's lease (one maximum election timeout), then an
/// election takes up to another; three leave room for a split vote.
fn retry_deadline(node: &Node) -> Duration {
    Duration::from_millis(3 * node.config.raft.election_timeout_max_ms)
}

/// Retries `f` while [`retry::may_retry`] allows: every call here is a read
/// or a write carrying its request id, so unknown outcomes repeat safely.
async fn retried<R, F, Fut>(node: &Node, mut f: F) -> R
where
    R: KvErrors,
    F: FnMut() -> Fut,
    Fut: Future<Output = R>,
{
    let give_up = tokio::time::Instant::now() + retry_deadline(node);
    let mut backoff = Duration::from_millis(50);
    loop {
        let r = f().await;
        match r.errors() {
            Some(e) if retry::may_retry(&e, true) => {
                if tokio::time::Instant::now() + backoff >= give_up {
                    return r;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
            _ => return r,
        }
    }
}

pub fn router(node: Arc<Node>) -> Router {
    let mut router = Router::new()
        .route("/kv/{key}", get(get_key).put(put_key).delete(delete_key))
        .route("/scan", get(scan))
        .route("/health", get(health))
        .route("/metrics", get(|| async { metrics::render() }))
        .route("/status", get(status))
        .route("/routes", get(routes));
    if node.config.fault_injection {
        router = router.route("/debug/partition", get(partition).put(set_partition).delete(heal_partition));
    }
    router.with_state(node)
}

/// The current fault-injection partition.
async fn partition(State(node): State<Arc<Node>>) -> Json<PartitionSpec> {
    Json(node.partition.spec())
}

/// Cuts this store off from the stores and PD the body names
/// (`{"stores": [2, 3], "pd": true}`; any content type, so plain `curl -d`
/// works).
async fn set_partition(State(node): State<Arc<Node>>, body: Bytes) -> Response {
    let spec: PartitionSpec = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return error(StoreError::InvalidArgument(format!("partition spec: {e}"))),
    };
    tracing::warn!(stores = ?spec.stores, pd = spec.pd, "fault injection: partition set");
    node.partition.set(spec);
    Json(node.partition.spec()).into_response()
}

async fn heal_partition(State(node): State<Arc<Node>>) -> Json<PartitionSpec> {
    tracing::warn!("fault injection: partition healed");
    node.partition.heal();
    Json(node.partition.spec())
}

fn error(e: StoreError) -> Response {
    let code = match e {
        StoreError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    (code, Json(json!({"error": e.to_string(), "type": e.label()}))).into_response()
}

/// The error a KV response carries, as an HTTP response.
fn failure(re: Option<&kvpb::RegionError>, e: Option<&kvpb::Error>) -> Option<Response> {
    StoreError::from_pb(re, e).map(error)
}

async fn get_key(State(node): State<Arc<Node>>, Path(key): Path<String>) -> Response {
    let key = key.into_bytes();
    let resp = retried(&node, || node.get(kvpb::GetRequest { context: None, key: key.clone() })).await;
    if let Some(r) = failure(resp.region_error.as_ref(), resp.error.as_ref()) {
        return r;
    }
    if resp.found { (StatusCode::OK, resp.value).into_response() } else { StatusCode::NOT_FOUND.into_response() }
}

async fn put_key(State(node): State<Arc<Node>>, Path(key): Path<String>, body: Bytes) -> Response {
    let key = key.into_bytes();
    let write = HTTP_CLIENT.begin();
    let resp = retried(&node, || {
        node.put(kvpb::PutRequest { context: write_context(write.id()), key: key.clone(), value: body.to_vec() })
    })
    .await;
    failure(resp.region_error.as_ref(), resp.error.as_ref()).unwrap_or_else(|| StatusCode::NO_CONTENT.into_response())
}

async fn delete_key(State(node): State<Arc<Node>>, Path(key): Path<String>) -> Response {
    let key = key.into_bytes();
    let write = HTTP_CLIENT.begin();
    let resp =
        retried(&node, || node.delete(kvpb::DeleteRequest { context: write_context(write.id()), key: key.clone() }))
            .await;
    failure(resp.region_error.as_ref(), resp.error.as_ref())
        .unwrap_or_else(|| Json(json!({"existed": resp.existed})).into_response())
}

/// Scans across regions, page by page, until `limit` pairs or the end.
async fn scan(State(node): State<Arc<Node>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut start = q.get("start").cloned().unwrap_or_default().into_bytes();
    let end = q.get("end").cloned().unwrap_or_default().into_bytes();
    let limit: usize = match q.get("limit").map(|l| l.parse()) {
        None => 100,
        Some(Ok(n)) => n,
        Some(Err(_)) => return error(StoreError::InvalidArgument("limit is not a number".into())),
    };
    let mut pairs = Vec::new();
    loop {
        let want = (limit - pairs.len()).min(crate::config::MAX_SCAN_LIMIT) as u32;
        let req = kvpb::ScanRequest { context: None, start_key: start.clone(), end_key: end.clone(), limit: want };
        let resp = retried(&node, || node.scan(req.clone())).await;
        if let Some(r) = failure(resp.region_error.as_ref(), resp.error.as_ref()) {
            return r;
        }
        let full = resp.pairs.len() >= want as usize;
        if let Some(last) = resp.pairs.last() {
            start = last.key.clone();
            start.push(0);
        }
        pairs.extend(resp.pairs);
        let done_range = resp.region_end_key.is_empty() || (!end.is_empty() && resp.region_end_key >= end);
        if pairs.len() >= limit || (!full && done_range) {
            break;
        }
        if !full {
            start = resp.region_end_key;
        }
    }
    let list: Vec<_> = pairs
        .iter()
        .map(|p| json!({"key": String::from_utf8_lossy(&p.key), "value": String::from_utf8_lossy(&p.value)}))
        .collect();
    Json(json!({"count": list.len(), "pairs": list})).into_response()
}

async fn health(State(node): State<Arc<Node>>) -> Response {
    let (status, body) = health_report(node.store_id, node.routes.version(), node.engine.writer.failure());
    (status, Json(body)).into_response()
}

/// 200 once the store has routes from PD (it can place any request), and
/// 503 for good once its group-commit writer has died (it can write
/// nothing), with the reason in `error`.
fn health_report(store_id: u64, route_version: u64, writer_failure: Option<String>) -> (StatusCode, serde_json::Value) {
    if let Some(reason) = writer_failure {
        let error = format!("group-commit writer died: {reason}");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"store_id": store_id, "route_version": route_version, "error": error}),
        );
    }
    let status = if route_version > 0 { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, json!({"store_id": store_id, "route_version": route_version}))
}

/// The routes this store holds, in the shape of PD's `/api/v1/routes`, so
/// the two compare as they are.
async fn routes(State(node): State<Arc<Node>>) -> Json<serde_json::Value> {
    Json(pd::view::routes(&node.routes.snapshot()))
}

async fn status(State(node): State<Arc<Node>>) -> Json<serde_json::Value> {
    let mut peers = node.peers();
    peers.sort_by(|a, b| a.region().start_key.cmp(&b.region().start_key));
    let regions: Vec<_> = peers
        .iter()
        .map(|p| {
            let r = p.region();
            let epoch = r.region_epoch.unwrap_or_default();
            json!({
                "id": r.id,
                "peer_id": p.shared.peer_id,
                "start_key": keys::hex(&r.start_key),
                "end_key": keys::hex(&r.end_key),
                "epoch": {"conf_ver": epoch.conf_ver, "version": epoch.version},
                "role": if p.is_leader() { "leader" } else { "follower" },
                "leader": p.leader().map(|l| json!({"peer_id": l.id, "store_id": l.store_id})),
                "hibernated": p.is_hibernated(),
                "dormant": p.is_dormant(),
                "term": p.term(),
                "approximate_keys": p.shared.approximate_keys.load(std::sync::atomic::Ordering::Relaxed),
            })
        })
        .collect();
    Json(json!({
        "store_id": node.store_id,
        "address": node.advertise_grpc_addr,
        "route_version": node.routes.version(),
        "region_count": regions.len(),
        "hibernated_region_count": node.hibernated_count(),
        "dormant_region_count": node.dormant_count(),
        "regions": regions,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_is_503_with_the_reason_once_the_writer_died() {
        assert_eq!(health_report(4, 0, None).0, StatusCode::SERVICE_UNAVAILABLE);
        let (status, body) = health_report(4, 9, None);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"store_id": 4, "route_version": 9}));
        let (status, body) = health_report(4, 9, Some("a write job panicked: boom".into()));
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"], "group-commit writer died: a write job panicked: boom");
        assert_eq!(body["route_version"], 9);
    }
}
