//! The `pdpb.PD` gRPC service: catalog reads and writes, members, store
//! deletion, the admin operations on operators (split, transfer leader,
//! move, add and remove peers; list, get, cancel), and the entry
//! points of the heartbeat and watch streams.
//!
//! Errors PD means for the caller travel in the response header as a typed
//! `pdpb.Error`; a gRPC status is reserved for transport problems and
//! malformed streams.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use proto::pdpb::{self, pd_server};
use tonic::{Request, Response, Status, Streaming};
use tracing::instrument;

use super::context::PdContext;
use super::stream_status::{BoxStream, refusal};
use super::{delete_store, heartbeat, operator_driver, watch};
use crate::catalog::{CatalogCommand, CommandOutcome, keys};
use crate::error::{PdError, Result};
use crate::metrics;
use crate::operator::Source;

/// Responses whose header can carry an error.
trait WithHeader: Default {
    fn set_header(&mut self, h: Option<pdpb::ResponseHeader>);
}

macro_rules! with_header {
    ($($t:ty),*) => {$(
        impl WithHeader for $t {
            fn set_header(&mut self, h: Option<pdpb::ResponseHeader>) { self.header = h; }
        }
    )*};
}
with_header!(
    pdpb::GetMembersResponse,
    pdpb::IsBootstrappedResponse,
    pdpb::BootstrapResponse,
    pdpb::AllocIdResponse,
    pdpb::PutStoreResponse,
    pdpb::GetStoreResponse,
    pdpb::ListStoresResponse,
    pdpb::GetRegionResponse,
    pdpb::ScanRegionsResponse,
    pdpb::ListRoutesResponse,
    pdpb::SplitRegionResponse,
    pdpb::TransferLeaderResponse,
    pdpb::MoveRegionResponse,
    pdpb::AddRegionPeerResponse,
    pdpb::RemoveRegionPeerResponse,
    pdpb::ListOperatorsResponse,
    pdpb::GetOperatorResponse,
    pdpb::CancelOperatorResponse,
    pdpb::DeleteStoreResponse
);

/// Runs a handler, records its latency, and turns its error into a header.
async fn handle<R: WithHeader>(
    method: &'static str,
    f: impl Future<Output = Result<R>>,
) -> std::result::Result<Response<R>, Status> {
    let started = Instant::now();
    let res = f.await;
    metrics::GRPC_SECONDS.with_label_values(&[method]).observe(started.elapsed().as_secs_f64());
    Ok(Response::new(match res {
        Ok(r) => r,
        Err(e) => {
            let pb = e.to_pb();
            metrics::GRPC_ERRORS.with_label_values(&[method, pb.r#type().as_str_name()]).inc();
            let mut r = R::default();
            r.set_header(e.header());
            r
        }
    }))
}

pub struct PdService {
    ctx: Arc<PdContext>,
}

impl PdService {
    pub fn new(ctx: Arc<PdContext>) -> Self {
        PdService { ctx }
    }
}

/// Validates a `[start, end)` request range: an empty end is unbounded.
pub fn check_range(start: &[u8], end: &[u8]) -> Result<()> {
    if keys::is_valid_range(start, end) {
        Ok(())
    } else {
        Err(PdError::InvalidArgument(format!(
            "start key {:?} is not below end key {:?}",
            keys::display(start),
            keys::display(end)
        )))
    }
}

#[tonic::async_trait]
impl pd_server::Pd for PdService {
    type StoreHeartbeatStream = BoxStream<pdpb::StoreHeartbeatResponse>;
    type WatchRoutesStream = BoxStream<pdpb::WatchRoutesResponse>;

    async fn get_members(
        &self,
        _req: Request<pdpb::GetMembersRequest>,
    ) -> std::result::Result<Response<pdpb::GetMembersResponse>, Status> {
        handle("get_members", async { Ok(self.ctx.members()) }).await
    }

    async fn is_bootstrapped(
        &self,
        _req: Request<pdpb::IsBootstrappedRequest>,
    ) -> std::result::Result<Response<pdpb::IsBootstrappedResponse>, Status> {
        handle("is_bootstrapped", async {
            self.ctx.linearizable().await?;
            let bootstrapped = self.ctx.catalog.read().catalog.is_bootstrapped();
            Ok(pdpb::IsBootstrappedResponse { header: None, bootstrapped })
        })
        .await
    }

    #[instrument(skip_all)]
    async fn bootstrap(
        &self,
        _req: Request<pdpb::BootstrapRequest>,
    ) -> std::result::Result<Response<pdpb::BootstrapResponse>, Status> {
        handle("bootstrap", async {
            self.ctx.linearizable().await?;
            let cmd = super::bootstrap::bootstrap_command(&self.ctx)?;
            match self.ctx.propose(cmd).await? {
                CommandOutcome::Bootstrapped { regions, version } => {
                    Ok(pdpb::BootstrapResponse { header: None, regions, version })
                }
                other => Err(PdError::Fatal(format!("bootstrap answered {other:?}"))),
            }
        })
        .await
    }

    async fn alloc_id(
        &self,
        req: Request<pdpb::AllocIdRequest>,
    ) -> std::result::Result<Response<pdpb::AllocIdResponse>, Status> {
        handle("alloc_id", async {
            let count = req.into_inner().count.max(1);
            match self.ctx.propose(CatalogCommand::AllocIds { count }).await? {
                CommandOutcome::Ids { first, count } => {
                    Ok(pdpb::AllocIdResponse { header: None, first_id: first, count })
                }
                other => Err(PdError::Fatal(format!("alloc answered {other:?}"))),
            }
        })
        .await
    }

    #[instrument(skip_all)]
    async fn put_store(
        &self,
        req: Request<pdpb::PutStoreRequest>,
    ) -> std::result::Result<Response<pdpb::PutStoreResponse>, Status> {
        handle("put_store", async {
            let store = req.into_inner().store.ok_or_else(|| PdError::InvalidArgument("missing store".into()))?;
            match self.ctx.propose(CatalogCommand::PutStore { store }).await? {
                CommandOutcome::StorePut { version } => Ok(pdpb::PutStoreResponse { header: None, version }),
                other => Err(PdError::Fatal(format!("put store answered {other:?}"))),
            }
        })
        .await
    }

    async fn get_store(
        &self,
        req: Request<pdpb::GetStoreRequest>,
    ) -> std::result::Result<Response<pdpb::GetStoreResponse>, Status> {
        handle("get_store", async {
            let id = req.into_inner().store_id;
            if id == 0 {
                return Err(PdError::InvalidArgument("store id 0".into()));
            }
            self.ctx.linearizable().await?;
            let state = self.ctx.catalog.read();
            let store = state.catalog.store(id).ok_or(PdError::StoreNotFound(id))?;
            let counts = state.catalog.counts_by_store().get(&id).copied().unwrap_or_default();
            Ok(pdpb::GetStoreResponse { header: None, store: Some(self.ctx.store_info(store, counts)) })
        })
        .await
    }

    async fn list_stores(
        &self,
        _req: Request<pdpb::ListStoresRequest>,
    ) -> std::result::Result<Response<pdpb::ListStoresResponse>, Status> {
        handle("list_stores", async {
            self.ctx.linearizable().await?;
            let state = self.ctx.catalog.read();
            let counts = state.catalog.counts_by_store();
            let stores = state
                .catalog
                .stores()
                .map(|s| self.ctx.store_info(s, counts.get(&s.id).copied().unwrap_or_default()))
                .collect();
            Ok(pdpb::ListStoresResponse { header: None, stores })
        })
        .await
    }

    async fn get_region(
        &self,
        req: Request<pdpb::GetRegionRequest>,
    ) -> std::result::Result<Response<pdpb::GetRegionResponse>, Status> {
        handle("get_region", async {
            let key = req.into_inner().key;
            self.ctx.linearizable().await?;
            let state = self.ctx.catalog.read();
            if !state.catalog.is_bootstrapped() {
                return Err(PdError::NotBootstrapped);
            }
            let rec = state.catalog.region_by_key(&key).ok_or_else(|| PdError::KeyNotCovered(keys::display(&key)))?;
            let stats = self.ctx.region_stats(rec);
            let (pending_peers, down_peers) = self.ctx.peer_report(rec);
            Ok(pdpb::GetRegionResponse { header: None, route: Some(rec.route()), stats, pending_peers, down_peers })
        })
        .await
    }

    async fn get_region_by_id(
        &self,
        req: Request<pdpb::GetRegionByIdRequest>,
    ) -> std::result::Result<Response<pdpb::GetRegionResponse>, Status> {
        handle("get_region_by_id", async {
            let id = req.into_inner().region_id;
            if id == 0 {
                return Err(PdError::InvalidArgument("region id 0".into()));
            }
            self.ctx.linearizable().await?;
            let state = self.ctx.catalog.read();
            let rec = state.catalog.region(id).ok_or(PdError::RegionNotFound(id))?;
            let (pending_peers, down_peers) = self.ctx.peer_report(rec);
            Ok(pdpb::GetRegionResponse {
                header: None,
                route: Some(rec.route()),
                stats: self.ctx.region_stats(rec),
                pending_peers,
                down_peers,
            })
        })
        .await
    }

    async fn scan_regions(
        &self,
        req: Request<pdpb::ScanRegionsRequest>,
    ) -> std::result::Result<Response<pdpb::ScanRegionsResponse>, Status> {
        handle("scan_regions", async {
            let req = req.into_inner();
            check_range(&req.start_key, &req.end_key)?;
            self.ctx.linearizable().await?;
            let state = self.ctx.catalog.read();
            let found = state.catalog.scan(&req.start_key, &req.end_key, req.limit as usize);
            let routes = found.iter().map(|r| r.route()).collect();
            let stats = found.iter().map(|r| self.ctx.region_stats(r).unwrap_or_default()).collect();
            Ok(pdpb::ScanRegionsResponse { header: None, routes, stats })
        })
        .await
    }

    async fn list_routes(
        &self,
        _req: Request<pdpb::ListRoutesRequest>,
    ) -> std::result::Result<Response<pdpb::ListRoutesResponse>, Status> {
        handle("list_routes", async {
            self.ctx.linearizable().await?;
            let routes = (*self.ctx.catalog.routes()).clone();
            Ok(pdpb::ListRoutesResponse { header: None, routes: Some(routes) })
        })
        .await
    }

    async fn store_heartbeat(
        &self,
        req: Request<Streaming<pdpb::StoreHeartbeatRequest>>,
    ) -> std::result::Result<Response<Self::StoreHeartbeatStream>, Status> {
        Ok(Response::new(heartbeat::open(self.ctx.clone(), req.into_inner())))
    }

    async fn watch_routes(
        &self,
        req: Request<pdpb::WatchRoutesRequest>,
    ) -> std::result::Result<Response<Self::WatchRoutesStream>, Status> {
        let stream = watch::open(self.ctx.clone(), req.into_inner()).map_err(|e| refusal(&e))?;
        Ok(Response::new(stream))
    }

    #[instrument(skip_all)]
    async fn transfer_leader(
        &self,
        req: Request<pdpb::TransferLeaderRequest>,
    ) -> std::result::Result<Response<pdpb::TransferLeaderResponse>, Status> {
        handle("transfer_leader", async {
            let req = req.into_inner();
            self.ctx.linearizable().await?;
            let op = operator_driver::start_transfer_leader(&self.ctx, req.region_id, req.to_store_id, Source::Admin)
                .await?;
            Ok(pdpb::TransferLeaderResponse { header: None, operator: Some(op) })
        })
        .await
    }

    #[instrument(skip_all)]
    async fn move_region(
        &self,
        req: Request<pdpb::MoveRegionRequest>,
    ) -> std::result::Result<Response<pdpb::MoveRegionResponse>, Status> {
        handle("move_region", async {
            let req = req.into_inner();
            self.ctx.linearizable().await?;
            let op = operator_driver::start_move(
                &self.ctx,
                req.region_id,
                req.from_store_id,
                req.to_store_id,
                Source::Admin,
            )
            .await?;
            Ok(pdpb::MoveRegionResponse { header: None, operator: Some(op) })
        })
        .await
    }

    #[instrument(skip_all)]
    async fn add_region_peer(
        &self,
        req: Request<pdpb::AddRegionPeerRequest>,
    ) -> std::result::Result<Response<pdpb::AddRegionPeerResponse>, Status> {
        handle("add_region_peer", async {
            let req = req.into_inner();
            self.ctx.linearizable().await?;
            let op = operator_driver::start_add_peer(&self.ctx, req.region_id, req.store_id, Source::Admin).await?;
            Ok(pdpb::AddRegionPeerResponse { header: None, operator: Some(op) })
        })
        .await
    }

    #[instrument(skip_all)]
    async fn remove_region_peer(
        &self,
        req: Request<pdpb::RemoveRegionPeerRequest>,
    ) -> std::result::Result<Response<pdpb::RemoveRegionPeerResponse>, Status> {
        handle("remove_region_peer", async {
            let req = req.into_inner();
            self.ctx.linearizable().await?;
            let op = operator_driver::start_remove_peer(&self.ctx, req.region_id, req.store_id, Source::Admin).await?;
            Ok(pdpb::RemoveRegionPeerResponse { header: None, operator: Some(op) })
        })
        .await
    }

    #[instrument(skip_all)]
    async fn delete_store(
        &self,
        req: Request<pdpb::DeleteStoreRequest>,
    ) -> std::result::Result<Response<pdpb::DeleteStoreResponse>, Status> {
        handle("delete_store", async {
            let store = delete_store::delete_store(&self.ctx, req.into_inner().store_id).await?;
            Ok(pdpb::DeleteStoreResponse { header: None, store: Some(store) })
        })
        .await
    }

    async fn split_region(
        &self,
        req: Request<pdpb::SplitRegionRequest>,
    ) -> std::result::Result<Response<pdpb::SplitRegionResponse>, Status> {
        handle("split_region", async {
            let req = req.into_inner();
            if req.region_id == 0 {
                return Err(PdError::InvalidArgument("region id 0".into()));
            }
            self.ctx.linearizable().await?;
            let op =
                operator_driver::start_split(&self.ctx, req.region_id, req.split_key, req.region_epoch, Source::Admin)
                    .await?;
            Ok(pdpb::SplitRegionResponse { header: None, operator: Some(op) })
        })
        .await
    }

    async fn list_operators(
        &self,
        req: Request<pdpb::ListOperatorsRequest>,
    ) -> std::result::Result<Response<pdpb::ListOperatorsResponse>, Status> {
        handle("list_operators", async {
            let operators = operator_driver::list(&self.ctx, req.into_inner().include_finished)?;
            Ok(pdpb::ListOperatorsResponse { header: None, operators })
        })
        .await
    }

    async fn get_operator(
        &self,
        req: Request<pdpb::GetOperatorRequest>,
    ) -> std::result::Result<Response<pdpb::GetOperatorResponse>, Status> {
        handle("get_operator", async {
            let id = operator_id(req.into_inner().operator_id)?;
            Ok(pdpb::GetOperatorResponse { header: None, operator: Some(operator_driver::get(&self.ctx, id)?) })
        })
        .await
    }

    #[instrument(skip_all)]
    async fn cancel_operator(
        &self,
        req: Request<pdpb::CancelOperatorRequest>,
    ) -> std::result::Result<Response<pdpb::CancelOperatorResponse>, Status> {
        handle("cancel_operator", async {
            let id = operator_id(req.into_inner().operator_id)?;
            Ok(pdpb::CancelOperatorResponse { header: None, operator: Some(operator_driver::cancel(&self.ctx, id)?) })
        })
        .await
    }
}

fn operator_id(id: u64) -> Result<u64> {
    if id == 0 { Err(PdError::InvalidArgument("operator id 0".into())) } else { Ok(id) }
}
