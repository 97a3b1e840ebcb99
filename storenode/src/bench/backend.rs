//! Where the load goes: this store through its client library, or an etcd
//! cluster through its v3 KV API, each operation as one request.

use std::sync::Arc;

use proto::etcdserverpb::{self, kv_client::KvClient as EtcdKv};
use tonic::transport::Channel;

use crate::client::Client;

/// What the load is sent to.
pub enum Backend {
    Store(Arc<Client>),
    /// One channel per endpoint; clients are spread over them.
    Etcd(Vec<EtcdKv<Channel>>),
}

impl Backend {
    pub async fn put(&self, client: usize, k: Vec<u8>, v: Vec<u8>) -> Result<(), String> {
        match self {
            Backend::Store(c) => c.put(&k, &v).await.map_err(|e| e.to_string()),
            Backend::Etcd(eps) => {
                let mut c = eps[client % eps.len()].clone();
                c.put(etcdserverpb::PutRequest { key: k, value: v, ..Default::default() })
                    .await
                    .map(drop)
                    .map_err(|s| s.message().to_string())
            }
        }
    }

    /// Whether the key has a value.
    pub async fn get(&self, client: usize, k: Vec<u8>) -> Result<bool, String> {
        match self {
            Backend::Store(c) => c.get(&k).await.map(|v| v.is_some()).map_err(|e| e.to_string()),
            Backend::Etcd(eps) => {
                let mut c = eps[client % eps.len()].clone();
                // serializable = false: a linearizable read, like the store's.
                c.range(etcdserverpb::RangeRequest { key: k, ..Default::default() })
                    .await
                    .map(|r| !r.into_inner().kvs.is_empty())
                    .map_err(|s| s.message().to_string())
            }
        }
    }

    /// How many pairs came back: at most `limit`, from `start` on.
    pub async fn scan(&self, client: usize, start: Vec<u8>, limit: u32) -> Result<usize, String> {
        match self {
            Backend::Store(c) => c.scan(&start, b"", limit as usize).await.map(|v| v.len()).map_err(|e| e.to_string()),
            Backend::Etcd(eps) => {
                let mut c = eps[client % eps.len()].clone();
                let req = etcdserverpb::RangeRequest {
                    key: start,
                    // "\0": every key at or after `key`.
                    range_end: vec![0],
                    limit: i64::from(limit),
                    ..Default::default()
                };
                c.range(req).await.map(|r| r.into_inner().kvs.len()).map_err(|s| s.message().to_string())
            }
        }
    }
}
