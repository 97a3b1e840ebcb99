//! PD's HTTP API: health, metrics, JSON views of the catalog, store
//! deletion (`DELETE /api/v1/stores/{id}`, leader only), the replica
//! checkers' last plans (`GET /api/v1/checker/plans`, leader only), and the
//! admin operations on operators.
//!
//! Any member answers catalog reads from its own applied catalog (a follower
//! may trail the leader by a few entries); `/health` says whether this
//! member leads. Operators live on the leader: a follower answers their
//! endpoints with `NOT_LEADER` (503), naming the leader.
//!
//! `POST /api/v1/regions/{id}/split` takes an optional JSON body:
//! `{"key": "<UTF-8>"}` or `{"key_hex": "<hex>"}` (at most one; neither, or
//! an empty body, asks the region's leader to split at its middle by size),
//! and optionally `"region_epoch": {"conf_ver": N, "version": N}` to refuse
//! the split with `STALE_EPOCH` if the region moved on. Unknown fields are
//! refused.
//!
//! Membership changes: `POST /api/v1/regions/{id}/move` with
//! `{"from_store_id": N, "to_store_id": M}`, `POST .../add-peer` and
//! `POST .../remove-peer` with `{"store_id": N}`; each answers 201 with the
//! new operator. Region views list the pending and down peers the region's
//! leader last reported.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use proto::metapb;
use serde::Deserialize;
use serde_json::json;

use super::context::PdContext;
use super::operator_driver;
use crate::catalog::keys;
use crate::error::PdError;
use crate::operator::Source;
use crate::{metrics, view};

pub fn router(ctx: Arc<PdContext>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(|| async { metrics::render() }))
        .route("/api/v1/members", get(members))
        .route("/api/v1/stores", get(stores))
        .route("/api/v1/stores/{id}", get(store).delete(delete_store))
        .route("/api/v1/regions", get(regions))
        .route("/api/v1/regions/id/{id}", get(region_by_id))
        .route("/api/v1/regions/key/{key}", get(region_by_key))
        .route("/api/v1/regions/{id}/split", post(split_region))
        .route("/api/v1/regions/{id}/transfer-leader", post(transfer_leader))
        .route("/api/v1/regions/{id}/move", post(move_region))
        .route("/api/v1/regions/{id}/add-peer", post(add_peer))
        .route("/api/v1/regions/{id}/remove-peer", post(remove_peer))
        .route("/api/v1/operators", get(list_operators))
        .route("/api/v1/operators/{id}", get(get_operator).delete(cancel_operator))
        .route("/api/v1/routes", get(routes))
        .route("/api/v1/checker/plans", get(checker_plans))
        .with_state(ctx)
}

struct ApiError(PdError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let pb = self.0.to_pb();
        let status = match &self.0 {
            PdError::InvalidArgument(_) | PdError::InvalidSplitKey(_) => StatusCode::BAD_REQUEST,
            PdError::StoreNotFound(_)
            | PdError::RegionNotFound(_)
            | PdError::KeyNotCovered(_)
            | PdError::OperatorNotFound(_)
            | PdError::PeerNotFound(_) => StatusCode::NOT_FOUND,
            PdError::NotBootstrapped
            | PdError::AlreadyBootstrapped
            | PdError::StoreConflict(_)
            | PdError::StaleEpoch(_)
            | PdError::RouteConflict(_)
            | PdError::OperatorExists(_)
            | PdError::PeerExists(_)
            | PdError::StoreUnavailable(_)
            | PdError::QuorumAtRisk(_)
            | PdError::NotEnoughStores { .. } => StatusCode::CONFLICT,
            // PD's own bug, not the caller's: the catalog refused a change it had validated.
            PdError::InvariantViolation(_) => StatusCode::INTERNAL_SERVER_ERROR,
            PdError::NotLeader(_) | PdError::Unavailable(_) | PdError::Storage(_) | PdError::Fatal(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        (status, Json(json!({"error": pb.message, "type": pb.r#type().as_str_name()}))).into_response()
    }
}

async fn health(State(ctx): State<Arc<PdContext>>) -> Response {
    let members = ctx.members();
    let body = json!({
        "id": ctx.node_id,
        "leader": members.leader.as_ref().map(|l| l.id),
        "is_leader": ctx.is_leader(),
        "catalog_version": ctx.catalog.read().catalog.version(),
    });
    // Healthy means this member is part of a group that has a leader.
    let status = if members.leader.is_some() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

async fn members(State(ctx): State<Arc<PdContext>>) -> Json<serde_json::Value> {
    Json(view::members(&ctx.members()))
}

async fn stores(State(ctx): State<Arc<PdContext>>) -> Json<serde_json::Value> {
    let state = ctx.catalog.read();
    let counts = state.catalog.counts_by_store();
    let list: Vec<_> = state
        .catalog
        .stores()
        .map(|s| view::store_info(&ctx.store_info(s, counts.get(&s.id).copied().unwrap_or_default())))
        .collect();
    Json(json!({"count": list.len(), "stores": list}))
}

fn parse_id(raw: &str, what: &str) -> Result<u64, ApiError> {
    match raw.parse::<u64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError(PdError::InvalidArgument(format!("{what} id {raw:?} is not a positive integer")))),
    }
}

async fn store(State(ctx): State<Arc<PdContext>>, Path(id): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id, "store")?;
    let state = ctx.catalog.read();
    let s = state.catalog.store(id).ok_or(ApiError(PdError::StoreNotFound(id)))?;
    let counts = state.catalog.counts_by_store().get(&id).copied().unwrap_or_default();
    Ok(Json(view::store_info(&ctx.store_info(s, counts))))
}

/// `DELETE /api/v1/stores/{id}`: starts the store's decommission (see
/// [`super::delete_store`]) and answers the store as it is then.
async fn delete_store(
    State(ctx): State<Arc<PdContext>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id, "store")?;
    let info = super::delete_store::delete_store(&ctx, id).await.map_err(ApiError)?;
    Ok(Json(view::store_info(&info)))
}

async fn regions(State(ctx): State<Arc<PdContext>>) -> Json<serde_json::Value> {
    let state = ctx.catalog.read();
    let routes: Vec<_> = state.catalog.regions().map(|r| (r.route(), ctx.region_stats(r))).collect();
    Json(view::regions(routes.iter().map(|(r, s)| (r, *s))))
}

async fn region_by_id(
    State(ctx): State<Arc<PdContext>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id, "region")?;
    let state = ctx.catalog.read();
    let rec = state.catalog.region(id).ok_or(ApiError(PdError::RegionNotFound(id)))?;
    Ok(Json(region_view(&ctx, rec)))
}

async fn region_by_key(
    State(ctx): State<Arc<PdContext>>,
    Path(key): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let state = ctx.catalog.read();
    if !state.catalog.is_bootstrapped() {
        return Err(ApiError(PdError::NotBootstrapped));
    }
    let rec =
        state.catalog.region_by_key(key.as_bytes()).ok_or_else(|| ApiError(PdError::KeyNotCovered(key.clone())))?;
    Ok(Json(region_view(&ctx, rec)))
}

/// One region with its stats and the pending and down peers its leader
/// last reported.
fn region_view(ctx: &PdContext, rec: &crate::catalog::RegionRecord) -> serde_json::Value {
    let (pending, down) = ctx.peer_report(rec);
    view::region_health(view::region(&rec.route(), ctx.region_stats(rec).as_ref()), &pending, &down)
}

/// The replica checkers' plans from their last run on this leader.
async fn checker_plans(State(ctx): State<Arc<PdContext>>) -> Result<Json<serde_json::Value>, ApiError> {
    ctx.ensure_leader().map_err(ApiError)?;
    let plans = ctx.checker_plans.lock().unwrap().clone();
    Ok(Json(view::checker_plans(&plans)))
}

async fn routes(State(ctx): State<Arc<PdContext>>) -> Json<serde_json::Value> {
    Json(view::routes(&ctx.catalog.routes()))
}

/// The body of `POST /api/v1/regions/{id}/split`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SplitBody {
    /// The split key as UTF-8 text.
    key: Option<String>,
    /// Or as hex, for keys that are not text.
    key_hex: Option<String>,
    region_epoch: Option<EpochBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EpochBody {
    conf_ver: u64,
    version: u64,
}

/// The split key and expected epoch a request body asks for.
fn parse_split_body(body: &[u8]) -> Result<(Vec<u8>, Option<metapb::RegionEpoch>), PdError> {
    let body: SplitBody = if body.iter().all(u8::is_ascii_whitespace) {
        SplitBody::default()
    } else {
        serde_json::from_slice(body).map_err(|e| PdError::InvalidArgument(format!("split request body: {e}")))?
    };
    let key = match (body.key, body.key_hex) {
        (Some(_), Some(_)) => {
            return Err(PdError::InvalidArgument("give the split key as key or key_hex, not both".into()));
        }
        (Some(text), None) => text.into_bytes(),
        (None, Some(hex)) => keys::from_hex(&hex)
            .ok_or_else(|| PdError::InvalidArgument(format!("key_hex {hex:?} is not an even number of hex digits")))?,
        (None, None) => Vec::new(),
    };
    let epoch = body.region_epoch.map(|e| metapb::RegionEpoch { conf_ver: e.conf_ver, version: e.version });
    Ok((key, epoch))
}

async fn split_region(
    State(ctx): State<Arc<PdContext>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let id = parse_id(&id, "region")?;
    let (key, epoch) = parse_split_body(&body).map_err(ApiError)?;
    ctx.linearizable().await.map_err(ApiError)?;
    let op = operator_driver::start_split(&ctx, id, key, epoch, Source::Admin).await.map_err(ApiError)?;
    Ok((StatusCode::CREATED, Json(view::operator(&op))))
}

/// The body of `POST /api/v1/regions/{id}/transfer-leader`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferLeaderBody {
    store_id: u64,
}

async fn transfer_leader(
    State(ctx): State<Arc<PdContext>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let id = parse_id(&id, "region")?;
    let body: TransferLeaderBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError(PdError::InvalidArgument(format!("transfer-leader request body: {e}"))))?;
    ctx.linearizable().await.map_err(ApiError)?;
    let op = operator_driver::start_transfer_leader(&ctx, id, body.store_id, Source::Admin).await.map_err(ApiError)?;
    Ok((StatusCode::CREATED, Json(view::operator(&op))))
}

/// The body of `POST /api/v1/regions/{id}/move`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveBody {
    from_store_id: u64,
    to_store_id: u64,
}

/// The body of `POST /api/v1/regions/{id}/add-peer` and `.../remove-peer`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreBody {
    store_id: u64,
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError(PdError::InvalidArgument(format!("{what} request body: {e}"))))
}

async fn move_region(
    State(ctx): State<Arc<PdContext>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let id = parse_id(&id, "region")?;
    let body: MoveBody = parse_body(&body, "move")?;
    ctx.linearizable().await.map_err(ApiError)?;
    let op = operator_driver::start_move(&ctx, id, body.from_store_id, body.to_store_id, Source::Admin)
        .await
        .map_err(ApiError)?;
    Ok((StatusCode::CREATED, Json(view::operator(&op))))
}

async fn add_peer(
    State(ctx): State<Arc<PdContext>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let id = parse_id(&id, "region")?;
    let body: StoreBody = parse_body(&body, "add-peer")?;
    ctx.linearizable().await.map_err(ApiError)?;
    let op = operator_driver::start_add_peer(&ctx, id, body.store_id, Source::Admin).await.map_err(ApiError)?;
    Ok((StatusCode::CREATED, Json(view::operator(&op))))
}

async fn remove_peer(
    State(ctx): State<Arc<PdContext>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let id = parse_id(&id, "region")?;
    let body: StoreBody = parse_body(&body, "remove-peer")?;
    ctx.linearizable().await.map_err(ApiError)?;
    let op = operator_driver::start_remove_peer(&ctx, id, body.store_id, Source::Admin).await.map_err(ApiError)?;
    Ok((StatusCode::CREATED, Json(view::operator(&op))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Include finished operators.
    #[serde(default)]
    all: bool,
}

async fn list_operators(
    State(ctx): State<Arc<PdContext>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError(PdError::InvalidArgument(e.body_text())))?;
    let ops = operator_driver::list(&ctx, q.all).map_err(ApiError)?;
    Ok(Json(view::operators(&ops)))
}

async fn get_operator(
    State(ctx): State<Arc<PdContext>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id, "operator")?;
    Ok(Json(view::operator(&operator_driver::get(&ctx, id).map_err(ApiError)?)))
}

async fn cancel_operator(
    State(ctx): State<Arc<PdContext>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id, "operator")?;
    Ok(Json(view::operator(&operator_driver::cancel(&ctx, id).map_err(ApiError)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_bodies_name_a_key_one_way_at_most() {
        assert_eq!(parse_split_body(b"").unwrap(), (Vec::new(), None));
        assert_eq!(parse_split_body(b" {} ").unwrap(), (Vec::new(), None));
        assert_eq!(parse_split_body(br#"{"key": "user42"}"#).unwrap().0, b"user42");
        assert_eq!(parse_split_body(br#"{"key_hex": "00ff"}"#).unwrap().0, b"\x00\xff");
        let (_, epoch) = parse_split_body(br#"{"region_epoch": {"conf_ver": 1, "version": 4}}"#).unwrap();
        assert_eq!(epoch, Some(metapb::RegionEpoch { conf_ver: 1, version: 4 }));
        for bad in
            [&br#"{"key": "a", "key_hex": "61"}"#[..], br#"{"key_hex": "6"}"#, br#"{"splitkey": "a"}"#, b"not json"]
        {
            assert!(
                matches!(parse_split_body(bad), Err(PdError::InvalidArgument(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
