//! PD's HTTP API: health, metrics, and JSON views of the catalog.
//!
//! Any member answers from its own applied catalog (a follower may trail the
//! leader by a few entries); `/health` says whether this member leads.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::context::PdContext;
use crate::error::PdError;
use crate::{metrics, view};

pub fn router(ctx: Arc<PdContext>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(|| async { metrics::render() }))
        .route("/api/v1/members", get(members))
        .route("/api/v1/stores", get(stores))
        .route("/api/v1/stores/{id}", get(store))
        .route("/api/v1/regions", get(regions))
        .route("/api/v1/regions/id/{id}", get(region_by_id))
        .route("/api/v1/regions/key/{key}", get(region_by_key))
        .route("/api/v1/routes", get(routes))
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
            | PdError::OperatorNotFound(_) => StatusCode::NOT_FOUND,
            PdError::NotBootstrapped
            | PdError::AlreadyBootstrapped
            | PdError::StoreConflict(_)
            | PdError::StaleEpoch(_)
            | PdError::RouteConflict(_)
            | PdError::OperatorExists(_)
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

async fn regions(State(ctx): State<Arc<PdContext>>) -> Json<serde_json::Value> {
    let state = ctx.catalog.read();
    let routes: Vec<_> = state.catalog.regions().map(|r| (r.route(), ctx.region_stats(r.region.id))).collect();
    Json(view::regions(routes.iter().map(|(r, s)| (r, *s))))
}

async fn region_by_id(
    State(ctx): State<Arc<PdContext>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id, "region")?;
    let state = ctx.catalog.read();
    let rec = state.catalog.region(id).ok_or(ApiError(PdError::RegionNotFound(id)))?;
    Ok(Json(view::region(&rec.route(), ctx.region_stats(id).as_ref())))
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
    Ok(Json(view::region(&rec.route(), ctx.region_stats(rec.region.id).as_ref())))
}

async fn routes(State(ctx): State<Arc<PdContext>>) -> Json<serde_json::Value> {
    Json(view::routes(&ctx.catalog.routes()))
}
