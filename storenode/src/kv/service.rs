//! The `kvpb.Kv` gRPC service: a thin shell over [`Node`]'s handlers.

use std::sync::Arc;

use proto::kvpb::{self, kv_server::Kv};
use tokio::sync::watch;
use tonic::{Request, Response, Status, Streaming};

use super::batch;
use crate::node::Node;

pub struct KvService {
    node: Arc<Node>,
    /// Ends the batch streams when the store shuts down.
    shutdown: watch::Receiver<bool>,
}

impl KvService {
    pub fn new(node: Arc<Node>, shutdown: watch::Receiver<bool>) -> Self {
        KvService { node, shutdown }
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    type BatchCommandsStream = batch::Replies;

    async fn batch_commands(
        &self,
        req: Request<Streaming<kvpb::BatchCommandsRequest>>,
    ) -> Result<Response<Self::BatchCommandsStream>, Status> {
        Ok(Response::new(batch::serve(self.node.clone(), req.into_inner(), self.shutdown.clone())))
    }

    async fn get(&self, req: Request<kvpb::GetRequest>) -> Result<Response<kvpb::GetResponse>, Status> {
        Ok(Response::new(self.node.get(req.into_inner()).await))
    }

    async fn put(&self, req: Request<kvpb::PutRequest>) -> Result<Response<kvpb::PutResponse>, Status> {
        Ok(Response::new(self.node.put(req.into_inner()).await))
    }

    async fn delete(&self, req: Request<kvpb::DeleteRequest>) -> Result<Response<kvpb::DeleteResponse>, Status> {
        Ok(Response::new(self.node.delete(req.into_inner()).await))
    }

    async fn scan(&self, req: Request<kvpb::ScanRequest>) -> Result<Response<kvpb::ScanResponse>, Status> {
        Ok(Response::new(self.node.scan(req.into_inner()).await))
    }

    async fn batch_get(&self, req: Request<kvpb::BatchGetRequest>) -> Result<Response<kvpb::BatchGetResponse>, Status> {
        Ok(Response::new(self.node.batch_get(req.into_inner()).await))
    }

    async fn batch_put(&self, req: Request<kvpb::BatchPutRequest>) -> Result<Response<kvpb::BatchPutResponse>, Status> {
        Ok(Response::new(self.node.batch_put(req.into_inner()).await))
    }

    async fn compare_and_swap(&self, req: Request<kvpb::CasRequest>) -> Result<Response<kvpb::CasResponse>, Status> {
        Ok(Response::new(self.node.compare_and_swap(req.into_inner()).await))
    }
}
