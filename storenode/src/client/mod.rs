//! The Rust client library: read and write keys without knowing about
//! regions.
//!
//! The client keeps a route cache fed by PD's watch-routes stream, sends each
//! request to the leader of the key's region with the region id and epoch it
//! believes in, and on a region error (not leader, epoch mismatch, key not in
//! region, server busy, store unreachable) refreshes what it knows and
//! retries with backoff until its deadline. Users see success or a final
//! typed [`ClientError`].
//!
//! Every write carries a request id ([`crate::request_id`]) that all its
//! attempts share, so an attempt whose outcome is unknown (the leader died
//! before answering, the reply was lost) is retried safely: the region
//! applies it at most once and answers a repeat with the first outcome.
//! Which errors are retried is [`crate::retry`]'s decision.
//!
//! Batches are split by region; each region's part is atomic.

pub mod route_cache;
pub mod store_conn;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use pd::client::PdClient;
use pd::error::PdError;
use pd::routes::DeltaRefusal;
use proto::kvpb::{self, kv_client::KvClient};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::debug;

use crate::error::StoreError;
use crate::request_id::{InFlight, RequestIds};
use crate::retry;
use route_cache::RouteCache;
use store_conn::StoreConn;

/// How long one call may take, retries included: enough for a region to
/// replace a dead leader even with slow raft timing (a 1 s heartbeat: a
/// lease of 10 s, then an election of up to 10 s; 2 s by default).
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);
const BACKOFF_MIN: Duration = Duration::from_millis(20);
/// Retries while a region has no leader come this often at most, so a
/// write lands within this long of a new leader taking over.
const BACKOFF_MAX: Duration = Duration::from_millis(200);
/// Reopening PD's watch stream backs off further: routes held meanwhile
/// still route, and NotLeader answers correct them.
const WATCH_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Per-attempt timeout: a dead store must not eat the whole deadline.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// Fix the request.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Retries ran out; `last` is the last problem seen.
    #[error("deadline exceeded; last error: {last}")]
    Timeout { last: String },
    /// A store answered with an error retrying cannot fix.
    #[error(transparent)]
    Store(StoreError),
    /// PD refused or could not be reached while setting up.
    #[error("PD: {0}")]
    Pd(PdError),
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Responses that carry a region error and a plain error.
pub trait KvErrors {
    fn errors(&self) -> Option<StoreError>;
}

macro_rules! kv_errors {
    ($($t:ty),*) => {$(
        impl KvErrors for $t {
            fn errors(&self) -> Option<StoreError> {
                StoreError::from_pb(self.region_error.as_ref(), self.error.as_ref())
            }
        }
    )*};
}
kv_errors!(
    kvpb::GetResponse,
    kvpb::PutResponse,
    kvpb::DeleteResponse,
    kvpb::ScanResponse,
    kvpb::BatchGetResponse,
    kvpb::BatchPutResponse,
    kvpb::CasResponse
);

pub struct Client {
    pd: Arc<PdClient>,
    cache: Arc<RwLock<RouteCache>>,
    channels: Mutex<BTreeMap<String, StoreConn>>,
    deadline: Duration,
    watcher: JoinHandle<()>,
    ids: RequestIds,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl Client {
    /// Connects to PD (any members), loads the routes and starts following
    /// them.
    ///
    /// # Errors
    ///
    /// Malformed endpoints, or PD unreachable within the default deadline.
    pub async fn connect(pd_endpoints: &[String]) -> Result<Client> {
        let pd = Arc::new(PdClient::new(pd_endpoints).map_err(ClientError::Pd)?);
        let cache = Arc::new(RwLock::new(RouteCache::default()));
        let routes = pd.list_routes().await.map_err(ClientError::Pd)?;
        cache.write().unwrap().update(routes);
        let watcher = tokio::spawn(follow_routes(pd.clone(), cache.clone()));
        Ok(Client {
            pd,
            cache,
            channels: Mutex::new(BTreeMap::new()),
            deadline: DEFAULT_DEADLINE,
            watcher,
            ids: RequestIds::new(),
        })
    }

    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The catalog version of the routes in use.
    pub fn route_version(&self) -> u64 {
        self.cache.read().unwrap().version()
    }

    fn channel(&self, address: &str) -> Result<StoreConn> {
        let mut channels = self.channels.lock().unwrap();
        if let Some(c) = channels.get(address) {
            return Ok(c.clone());
        }
        let c = StoreConn::new(
            KvClient::new(pd::client::channel(address).map_err(ClientError::Pd)?)
                .max_decoding_message_size(crate::transport::MAX_MESSAGE),
        );
        channels.insert(address.to_string(), c.clone());
        Ok(c)
    }

    async fn refresh_routes(&self) {
        if let Ok(r) = self.pd.list_routes().await {
            self.cache.write().unwrap().update(r);
        }
    }

    /// This client's id in the regions' session tables.
    pub fn client_id(&self) -> u64 {
        self.ids.client_id()
    }

    /// Runs `call` against the region holding `key`, retrying what
    /// [`retry::may_retry`] allows until the deadline. A write passes its
    /// request id (`write`), which every attempt carries.
    ///
    /// With `regroup`, a key-range mismatch is returned (after refreshing the
    /// routes) instead of retried, so a batch can be split again.
    async fn execute<R, F, Fut>(&self, key: &[u8], write: Option<&InFlight>, regroup: bool, mut call: F) -> Result<R>
    where
        R: KvErrors,
        F: FnMut(StoreConn, kvpb::Context) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<R>, tonic::Status>>,
    {
        let give_up = Instant::now() + self.deadline;
        let mut backoff = BACKOFF_MIN;
        let mut attempt = 0usize;
        let mut last = String::from("no attempt made");
        loop {
            if Instant::now() >= give_up {
                return Err(ClientError::Timeout { last });
            }
            let target = self.cache.read().unwrap().target(key, attempt);
            let Some(target) = target else {
                last = "no route for the key".into();
                self.refresh_routes().await;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            };
            let ctx = kvpb::Context {
                region_id: target.region.id,
                region_epoch: target.region.region_epoch,
                request_id: write.map(InFlight::id),
                ..Default::default()
            };
            let res = tokio::time::timeout(ATTEMPT_TIMEOUT, call(self.channel(&target.address)?, ctx)).await;
            let err = match res {
                Ok(Ok(resp)) => {
                    let resp = resp.into_inner();
                    match resp.errors() {
                        None => return Ok(resp),
                        Some(e) => e,
                    }
                }
                Ok(Err(status)) => StoreError::Unavailable(format!("store {}: {}", target.address, status.message())),
                Err(_) => StoreError::Unavailable(format!("store {} did not answer in time", target.address)),
            };
            // Reads repeat harmlessly; writes carry their request id.
            if !retry::may_retry(&err, true) {
                return Err(match err {
                    StoreError::InvalidArgument(m) => ClientError::InvalidArgument(m),
                    other => ClientError::Store(other),
                });
            }
            debug!(error = %err, region_id = target.region.id, "retrying");
            last = err.to_string();
            attempt += 1;
            let mut pause = true;
            match &err {
                StoreError::NotLeader { leader: Some(l), .. } => {
                    self.cache.write().unwrap().set_leader(target.region.id, l.store_id);
                    attempt = 0;
                    pause = false;
                }
                StoreError::NotLeader { leader: None, .. } | StoreError::Unavailable(_) => {
                    self.cache.write().unwrap().forget_leader(target.region.id);
                }
                // The store named newer regions than the cache has (a split
                // PD may not know of yet): taken in, and routed by at once.
                StoreError::EpochNotMatch(current)
                    if self.cache.write().unwrap().apply_regions(current, target.store_id) =>
                {
                    if regroup {
                        return Err(ClientError::Store(err));
                    }
                    attempt = 0;
                    pause = false;
                }
                StoreError::EpochNotMatch(_) | StoreError::KeyNotInRegion { .. } | StoreError::RegionNotFound(_) => {
                    self.cache.write().unwrap().forget_leader(target.region.id);
                    self.refresh_routes().await;
                    if regroup && matches!(err, StoreError::KeyNotInRegion { .. } | StoreError::EpochNotMatch(_)) {
                        return Err(ClientError::Store(err));
                    }
                    attempt = 0;
                }
                StoreError::ServerBusy(_) | StoreError::StaleCommand | StoreError::InvalidArgument(_) => {}
            }
            if pause {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }

    /// # Errors
    ///
    /// `InvalidArgument` for a bad key; `Timeout` when retries run out.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let resp = self
            .execute(key, None, false, |mut c, ctx| {
                let req = kvpb::GetRequest { context: Some(ctx), key: key.to_vec() };
                async move { c.get(req).await }
            })
            .await?;
        Ok(resp.found.then_some(resp.value))
    }

    /// # Errors
    ///
    /// As [`Client::get`].
    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let write = self.ids.begin();
        self.execute(key, Some(&write), false, |mut c, ctx| {
            let req = kvpb::PutRequest { context: Some(ctx), key: key.to_vec(), value: value.to_vec() };
            async move { c.put(req).await }
        })
        .await?;
        Ok(())
    }

    /// Returns whether the key existed.
    ///
    /// # Errors
    ///
    /// As [`Client::get`].
    pub async fn delete(&self, key: &[u8]) -> Result<bool> {
        let write = self.ids.begin();
        let resp = self
            .execute(key, Some(&write), false, |mut c, ctx| {
                let req = kvpb::DeleteRequest { context: Some(ctx), key: key.to_vec() };
                async move { c.delete(req).await }
            })
            .await?;
        Ok(resp.existed)
    }

    /// Sets `key` to `value` if its current value is `expected` (`None`:
    /// absent). Returns whether it did, and the value before.
    ///
    /// # Errors
    ///
    /// As [`Client::get`].
    pub async fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<(bool, Option<Vec<u8>>)> {
        let write = self.ids.begin();
        let resp = self
            .execute(key, Some(&write), false, |mut c, ctx| {
                let req = kvpb::CasRequest {
                    context: Some(ctx),
                    key: key.to_vec(),
                    expected_exists: expected.is_some(),
                    expected: expected.unwrap_or_default().to_vec(),
                    value: value.to_vec(),
                };
                async move { c.compare_and_swap(req).await }
            })
            .await?;
        Ok((resp.succeeded, resp.previous_exists.then_some(resp.previous)))
    }

    /// Keys in `[start, end)` (empty end: to the end), at most `limit`,
    /// across regions.
    ///
    /// # Errors
    ///
    /// As [`Client::get`]; `InvalidArgument` when start is not below end.
    pub async fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if !end.is_empty() && start >= end {
            return Err(ClientError::InvalidArgument("scan start key must be below its end key".into()));
        }
        let mut out = Vec::new();
        let mut from = start.to_vec();
        while out.len() < limit {
            let want = (limit - out.len()).min(crate::config::MAX_SCAN_LIMIT) as u32;
            let resp = self
                .execute(&from, None, false, |mut c, ctx| {
                    let req = kvpb::ScanRequest {
                        context: Some(ctx),
                        start_key: from.clone(),
                        end_key: end.to_vec(),
                        limit: want,
                    };
                    async move { c.scan(req).await }
                })
                .await?;
            let full = resp.pairs.len() >= want as usize;
            let region_end = resp.region_end_key;
            if let Some(last) = resp.pairs.last() {
                from = last.key.clone();
                from.push(0);
            }
            out.extend(resp.pairs.into_iter().map(|p| (p.key, p.value)));
            if full {
                continue;
            }
            if region_end.is_empty() || (!end.is_empty() && region_end.as_slice() >= end) {
                break;
            }
            from = region_end;
        }
        Ok(out)
    }

    /// Groups keys by the region that holds them now.
    fn by_region<T>(&self, items: Vec<T>, key: impl Fn(&T) -> &[u8]) -> Vec<Vec<T>> {
        let cache = self.cache.read().unwrap();
        let mut groups: BTreeMap<u64, Vec<T>> = BTreeMap::new();
        for item in items {
            let id = cache.region_for(key(&item)).and_then(|r| r.region.as_ref()).map_or(0, |r| r.id);
            groups.entry(id).or_default().push(item);
        }
        groups.into_values().collect()
    }

    /// The values of the keys that exist.
    ///
    /// # Errors
    ///
    /// As [`Client::get`].
    pub async fn batch_get(&self, keys: &[Vec<u8>]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        self.batched(
            keys.to_vec(),
            |k| k.as_slice(),
            async |group: &Vec<Vec<u8>>| {
                let resp = self
                    .execute(&group[0], None, true, |mut c, ctx| {
                        let req = kvpb::BatchGetRequest { context: Some(ctx), keys: group.clone() };
                        async move { c.batch_get(req).await }
                    })
                    .await?;
                out.extend(resp.pairs.into_iter().map(|p| (p.key, p.value)));
                Ok(())
            },
        )
        .await?;
        Ok(out)
    }

    /// Writes every pair; each region's share is atomic.
    ///
    /// # Errors
    ///
    /// As [`Client::get`].
    pub async fn batch_put(&self, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
        self.batched(
            pairs,
            |p| p.0.as_slice(),
            async |group: &Vec<(Vec<u8>, Vec<u8>)>| {
                let kv: Vec<kvpb::KvPair> =
                    group.iter().map(|(key, value)| kvpb::KvPair { key: key.clone(), value: value.clone() }).collect();
                let write = self.ids.begin();
                self.execute(&group[0].0, Some(&write), true, |mut c, ctx| {
                    let req = kvpb::BatchPutRequest { context: Some(ctx), pairs: kv.clone() };
                    async move { c.batch_put(req).await }
                })
                .await?;
                Ok(())
            },
        )
        .await
    }

    /// Runs `each` once per region's share of `items`, splitting again when
    /// a region's range changed under it, until done or the deadline.
    async fn batched<T>(
        &self,
        items: Vec<T>,
        key: impl Fn(&T) -> &[u8] + Copy,
        mut each: impl AsyncFnMut(&Vec<T>) -> Result<()>,
    ) -> Result<()> {
        let give_up = Instant::now() + self.deadline;
        let mut pending = items;
        while !pending.is_empty() {
            let groups = self.by_region(std::mem::take(&mut pending), key);
            for group in groups {
                match each(&group).await {
                    Ok(()) => {}
                    Err(ClientError::Store(e @ (StoreError::KeyNotInRegion { .. } | StoreError::EpochNotMatch(_)))) => {
                        if Instant::now() >= give_up {
                            return Err(ClientError::Timeout { last: e.to_string() });
                        }
                        pending.extend(group);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

/// Keeps the cache current from PD's watch-routes stream (deltas from the
/// version held), reopening it on the new PD leader after a failover, and
/// from version 0 (a full snapshot) after a delta it could not apply.
async fn follow_routes(pd: Arc<PdClient>, cache: Arc<RwLock<RouteCache>>) {
    let mut backoff = BACKOFF_MIN;
    let mut resync = false;
    loop {
        let since = if std::mem::take(&mut resync) { 0 } else { cache.read().unwrap().version() };
        match pd.watch_route_deltas(since).await {
            Ok(mut stream) => {
                backoff = BACKOFF_MIN;
                while let Ok(Some(msg)) = stream.message().await {
                    if let Some(r) = msg.routes {
                        cache.write().unwrap().update(r);
                    }
                    if let Some(d) = msg.delta {
                        match cache.write().unwrap().apply_delta(&d) {
                            Ok(()) | Err(DeltaRefusal::Stale { .. }) => {}
                            Err(e) => {
                                debug!(error = %e, "route delta refused; watching again from a full snapshot");
                                resync = true;
                            }
                        }
                    }
                    if resync {
                        break;
                    }
                }
                if resync {
                    continue;
                }
                pd.leader_failed(&PdError::Unavailable("watch stream ended".into()));
            }
            Err(e) => pd.leader_failed(&e),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(WATCH_BACKOFF_MAX);
    }
}
