//! A PD client: finds the PD leader among a list of endpoints, follows
//! `NOT_LEADER` hints, and retries retryable errors until a deadline. Used by
//! `pdctl`, storage nodes and tests.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use proto::pdpb::{self, pd_client::PdClient as PdGrpc};
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::error::{PdError, Result, check_header};
use crate::net::MAX_GRPC_MESSAGE;
/// Re-exported where callers have always found them: storage nodes, tools
/// and tests open channels through `pd::client`.
pub use crate::net::{channel, endpoint_url};

/// How long one call may spend finding the leader and retrying.
pub const DEFAULT_CALL_DEADLINE: Duration = Duration::from_secs(10);
/// Per-attempt RPC timeout: a partitioned member must not eat the deadline.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause between rounds over all endpoints when none answered usefully.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Responses that carry a [`pdpb::ResponseHeader`].
pub trait HasHeader {
    fn header(&self) -> &Option<pdpb::ResponseHeader>;
}

macro_rules! has_header {
    ($($t:ty),*) => {$(
        impl HasHeader for $t {
            fn header(&self) -> &Option<pdpb::ResponseHeader> { &self.header }
        }
    )*};
}
has_header!(
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

/// A PD gRPC client on `ch` that takes messages as large as PD sends: a
/// full route snapshot of 100,000 regions is about 10 MB, past tonic's
/// 4 MiB default.
fn pd_grpc(ch: Channel) -> PdGrpc<Channel> {
    PdGrpc::new(ch).max_decoding_message_size(MAX_GRPC_MESSAGE).max_encoding_message_size(MAX_GRPC_MESSAGE)
}

pub struct PdClient {
    endpoints: Vec<String>,
    /// The member believed to lead, and a channel to it.
    leader: Mutex<Option<(String, Channel)>>,
    deadline: Duration,
}

impl PdClient {
    /// A client over `endpoints` (gRPC `host:port` of any PD members). No
    /// connection is made until the first call.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` when the list is empty or an address is malformed.
    pub fn new(endpoints: &[String]) -> Result<Self> {
        if endpoints.is_empty() {
            return Err(PdError::InvalidArgument("no PD endpoints given".into()));
        }
        for e in endpoints {
            channel(e)?;
        }
        Ok(PdClient { endpoints: endpoints.to_vec(), leader: Mutex::new(None), deadline: DEFAULT_CALL_DEADLINE })
    }

    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The address of the member last seen leading.
    pub fn leader_address(&self) -> Option<String> {
        self.leader.lock().unwrap().as_ref().map(|(a, _)| a.clone())
    }

    /// Calls the leader with `f`, following leader hints and retrying
    /// retryable failures until the deadline.
    ///
    /// # Errors
    ///
    /// The first non-retryable error, or the last retryable one once the
    /// deadline passes.
    pub async fn call<R, F, Fut>(&self, mut f: F) -> Result<R>
    where
        R: HasHeader,
        F: FnMut(PdGrpc<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        let give_up = Instant::now() + self.deadline;
        loop {
            let (addr, ch) = match self.current_leader().await {
                Ok(l) => l,
                Err(e) => {
                    if Instant::now() >= give_up {
                        return Err(e);
                    }
                    tokio::time::sleep(RETRY_BACKOFF).await;
                    continue;
                }
            };
            let attempt = tokio::time::timeout(ATTEMPT_TIMEOUT, f(pd_grpc(ch))).await;
            let err = match attempt {
                Ok(Ok(resp)) => {
                    let resp = resp.into_inner();
                    match check_header(resp.header()) {
                        Ok(()) => return Ok(resp),
                        Err(e) => e,
                    }
                }
                Ok(Err(status)) => status_error(&addr, &status),
                Err(_) => PdError::Unavailable(format!("PD at {addr} did not answer in {ATTEMPT_TIMEOUT:?}")),
            };
            if !err.is_retryable() || Instant::now() >= give_up {
                return Err(err);
            }
            self.forget_leader(&err)?;
        }
    }

    /// Switches to the hinted leader, or forgets the current one so the next
    /// attempt asks every endpoint again.
    fn forget_leader(&self, err: &PdError) -> Result<()> {
        let mut slot = self.leader.lock().unwrap();
        match err {
            PdError::NotLeader(Some(hint)) => *slot = Some((hint.address.clone(), channel(&hint.address)?)),
            _ => *slot = None,
        }
        Ok(())
    }

    async fn current_leader(&self) -> Result<(String, Channel)> {
        if let Some(l) = self.leader.lock().unwrap().clone() {
            return Ok(l);
        }
        let mut last_err = PdError::Unavailable("no PD endpoint answered".into());
        for ep in &self.endpoints {
            let mut c = pd_grpc(channel(ep)?);
            match tokio::time::timeout(ATTEMPT_TIMEOUT, c.get_members(pdpb::GetMembersRequest {})).await {
                Ok(Ok(resp)) => match resp.into_inner() {
                    pdpb::GetMembersResponse { leader: Some(l), member_id, .. } if !l.address.is_empty() => {
                        // Reached the leader itself: keep the dialed address.
                        let addr = if l.id == member_id { ep.clone() } else { l.address.clone() };
                        let found = (addr.clone(), channel(&addr)?);
                        *self.leader.lock().unwrap() = Some(found.clone());
                        return Ok(found);
                    }
                    _ => last_err = PdError::Unavailable(format!("PD at {ep} knows no leader yet")),
                },
                Ok(Err(status)) => last_err = status_error(ep, &status),
                Err(_) => last_err = PdError::Unavailable(format!("PD at {ep} did not answer")),
            }
        }
        Err(last_err)
    }

    /// Any reachable member's view of the membership.
    ///
    /// # Errors
    ///
    /// `Unavailable` when no endpoint answers.
    pub async fn get_members(&self) -> Result<pdpb::GetMembersResponse> {
        let mut last_err = PdError::Unavailable("no PD endpoint answered".into());
        let mut endpoints = self.endpoints.clone();
        if let Some(l) = self.leader_address() {
            endpoints.insert(0, l);
        }
        for ep in &endpoints {
            let mut c = pd_grpc(channel(ep)?);
            match tokio::time::timeout(ATTEMPT_TIMEOUT, c.get_members(pdpb::GetMembersRequest {})).await {
                Ok(Ok(resp)) => return Ok(resp.into_inner()),
                Ok(Err(status)) => last_err = status_error(ep, &status),
                Err(_) => last_err = PdError::Unavailable(format!("PD at {ep} did not answer")),
            }
        }
        Err(last_err)
    }

    pub async fn is_bootstrapped(&self) -> Result<bool> {
        Ok(self
            .call(|mut c| async move { c.is_bootstrapped(pdpb::IsBootstrappedRequest {}).await })
            .await?
            .bootstrapped)
    }

    pub async fn bootstrap(&self) -> Result<pdpb::BootstrapResponse> {
        self.call(|mut c| async move { c.bootstrap(pdpb::BootstrapRequest {}).await }).await
    }

    /// Allocates one id.
    pub async fn alloc_id(&self) -> Result<u64> {
        Ok(self.call(|mut c| async move { c.alloc_id(pdpb::AllocIdRequest { count: 1 }).await }).await?.first_id)
    }

    /// Allocates `count` consecutive ids (at most
    /// [`crate::catalog::MAX_ALLOC_BATCH`]); returns the first.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` for 0 or more than the batch limit, otherwise as
    /// [`PdClient::call`].
    pub async fn alloc_ids(&self, count: u32) -> Result<u64> {
        if count == 0 || count > crate::catalog::MAX_ALLOC_BATCH {
            return Err(PdError::InvalidArgument(format!(
                "{count} ids asked for; 1..={} at a time",
                crate::catalog::MAX_ALLOC_BATCH
            )));
        }
        Ok(self.call(|mut c| async move { c.alloc_id(pdpb::AllocIdRequest { count }).await }).await?.first_id)
    }

    /// Registers or updates a store; returns the catalog version after it.
    pub async fn put_store(&self, store: proto::metapb::Store) -> Result<u64> {
        let resp = self
            .call(|mut c| {
                let store = store.clone();
                async move { c.put_store(pdpb::PutStoreRequest { store: Some(store) }).await }
            })
            .await?;
        Ok(resp.version)
    }

    pub async fn get_store(&self, store_id: u64) -> Result<pdpb::StoreInfo> {
        let resp = self.call(|mut c| async move { c.get_store(pdpb::GetStoreRequest { store_id }).await }).await?;
        resp.store.ok_or(PdError::StoreNotFound(store_id))
    }

    /// Starts a store's decommission: an Up store becomes Offline (its
    /// replicas are to move away), or Tombstone at once if it holds none.
    /// Asking again for an Offline store answers it as it is. Returns the
    /// store as it is after the call.
    ///
    /// # Errors
    ///
    /// `StoreNotFound`; `StoreConflict` when it is already Tombstone;
    /// `NotEnoughStores` when fewer Up stores than max-replicas would
    /// remain; or as [`PdClient::call`].
    pub async fn delete_store(&self, store_id: u64) -> Result<pdpb::StoreInfo> {
        let resp =
            self.call(|mut c| async move { c.delete_store(pdpb::DeleteStoreRequest { store_id }).await }).await?;
        resp.store.ok_or(PdError::StoreNotFound(store_id))
    }

    pub async fn list_stores(&self) -> Result<Vec<pdpb::StoreInfo>> {
        Ok(self.call(|mut c| async move { c.list_stores(pdpb::ListStoresRequest {}).await }).await?.stores)
    }

    pub async fn get_region(&self, key: &[u8]) -> Result<pdpb::GetRegionResponse> {
        self.call(|mut c| {
            let key = key.to_vec();
            async move { c.get_region(pdpb::GetRegionRequest { key }).await }
        })
        .await
    }

    pub async fn get_region_by_id(&self, region_id: u64) -> Result<pdpb::GetRegionResponse> {
        self.call(|mut c| async move { c.get_region_by_id(pdpb::GetRegionByIdRequest { region_id }).await }).await
    }

    pub async fn scan_regions(&self, start_key: &[u8], end_key: &[u8], limit: u32) -> Result<Vec<pdpb::RegionRoute>> {
        let resp = self
            .call(|mut c| {
                let req = pdpb::ScanRegionsRequest { start_key: start_key.to_vec(), end_key: end_key.to_vec(), limit };
                async move { c.scan_regions(req).await }
            })
            .await?;
        Ok(resp.routes)
    }

    /// As [`PdClient::scan_regions`], with each region's last reported stats
    /// (zero when its leader has not reported since the region last changed).
    pub async fn scan_regions_with_stats(
        &self,
        start_key: &[u8],
        end_key: &[u8],
        limit: u32,
    ) -> Result<Vec<(pdpb::RegionRoute, pdpb::RegionStats)>> {
        let resp = self
            .call(|mut c| {
                let req = pdpb::ScanRegionsRequest { start_key: start_key.to_vec(), end_key: end_key.to_vec(), limit };
                async move { c.scan_regions(req).await }
            })
            .await?;
        let mut stats = resp.stats.into_iter();
        Ok(resp.routes.into_iter().map(|r| (r, stats.next().unwrap_or_default())).collect())
    }

    pub async fn list_routes(&self) -> Result<pdpb::RouteSnapshot> {
        let resp = self.call(|mut c| async move { c.list_routes(pdpb::ListRoutesRequest {}).await }).await?;
        resp.routes.ok_or_else(|| PdError::Unavailable("PD sent no routes".into()))
    }

    /// Starts moving `region_id`'s leadership to its voter on
    /// `to_store_id`; returns the operator at once.
    ///
    /// # Errors
    ///
    /// `RegionNotFound`, `StoreNotFound`, `StoreConflict` (store not Up),
    /// `InvalidArgument` (no voter there), `OperatorExists`,
    /// `NotBootstrapped`, or as [`PdClient::call`].
    pub async fn transfer_leader(&self, region_id: u64, to_store_id: u64) -> Result<pdpb::Operator> {
        let req = pdpb::TransferLeaderRequest { region_id, to_store_id };
        let resp = self.call(|mut c| async move { c.transfer_leader(req).await }).await?;
        resp.operator.ok_or_else(|| PdError::Fatal("transfer-leader answered without an operator".into()))
    }

    /// Starts moving `region_id`'s peer on `from_store_id` to
    /// `to_store_id`; returns the operator at once. As with every operator,
    /// a retry after an attempt whose answer was lost may find the operator
    /// that attempt created and fail with `OperatorExists` naming it.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` (zero ids, the same store twice), `RegionNotFound`,
    /// `StoreNotFound`, `PeerNotFound`, `PeerExists`, `StoreUnavailable`,
    /// `QuorumAtRisk`, `OperatorExists`, `NotBootstrapped`, or as
    /// [`PdClient::call`].
    pub async fn move_region(&self, region_id: u64, from_store_id: u64, to_store_id: u64) -> Result<pdpb::Operator> {
        let req = pdpb::MoveRegionRequest { region_id, from_store_id, to_store_id };
        let resp = self.call(|mut c| async move { c.move_region(req).await }).await?;
        resp.operator.ok_or_else(|| PdError::Fatal("move answered without an operator".into()))
    }

    /// Starts adding a voter of `region_id` on `store_id`; returns the
    /// operator at once.
    ///
    /// # Errors
    ///
    /// `InvalidArgument`, `RegionNotFound`, `StoreNotFound`, `PeerExists`,
    /// `StoreUnavailable`, `OperatorExists`, `NotBootstrapped`, or as
    /// [`PdClient::call`].
    pub async fn add_region_peer(&self, region_id: u64, store_id: u64) -> Result<pdpb::Operator> {
        let req = pdpb::AddRegionPeerRequest { region_id, store_id };
        let resp = self.call(|mut c| async move { c.add_region_peer(req).await }).await?;
        resp.operator.ok_or_else(|| PdError::Fatal("add-peer answered without an operator".into()))
    }

    /// Starts removing `region_id`'s peer on `store_id`; returns the
    /// operator at once.
    ///
    /// # Errors
    ///
    /// `InvalidArgument`, `RegionNotFound`, `StoreNotFound`, `PeerNotFound`,
    /// `QuorumAtRisk`, `OperatorExists`, `NotBootstrapped`, or as
    /// [`PdClient::call`].
    pub async fn remove_region_peer(&self, region_id: u64, store_id: u64) -> Result<pdpb::Operator> {
        let req = pdpb::RemoveRegionPeerRequest { region_id, store_id };
        let resp = self.call(|mut c| async move { c.remove_region_peer(req).await }).await?;
        resp.operator.ok_or_else(|| PdError::Fatal("remove-peer answered without an operator".into()))
    }

    /// Asks the PD leader to split a region at `split_key` (empty: its
    /// leader picks the middle by size), refused with `STALE_EPOCH` unless
    /// the region is at `epoch` when one is given. Answers with the new
    /// operator at once; [`PdClient::get_operator`] follows it.
    ///
    /// A retry after an attempt whose answer was lost may find the operator
    /// that attempt created and fail with `OperatorExists` naming it.
    ///
    /// # Errors
    ///
    /// `RegionNotFound`, `InvalidSplitKey`, `StaleEpoch`, `OperatorExists`,
    /// `NotBootstrapped`, or as [`PdClient::call`].
    pub async fn split_region(
        &self,
        region_id: u64,
        split_key: &[u8],
        epoch: Option<proto::metapb::RegionEpoch>,
    ) -> Result<pdpb::Operator> {
        let resp = self
            .call(|mut c| {
                let req = pdpb::SplitRegionRequest { region_id, split_key: split_key.to_vec(), region_epoch: epoch };
                async move { c.split_region(req).await }
            })
            .await?;
        resp.operator.ok_or_else(|| PdError::Unavailable("PD answered a split without its operator".into()))
    }

    /// Running operators, and recently finished ones with `include_finished`.
    pub async fn list_operators(&self, include_finished: bool) -> Result<Vec<pdpb::Operator>> {
        let req = pdpb::ListOperatorsRequest { include_finished };
        Ok(self.call(|mut c| async move { c.list_operators(req).await }).await?.operators)
    }

    /// # Errors
    ///
    /// `OperatorNotFound` when the leader neither runs nor remembers it (it
    /// finished long ago, or PD's leader changed since).
    pub async fn get_operator(&self, operator_id: u64) -> Result<pdpb::Operator> {
        let resp =
            self.call(|mut c| async move { c.get_operator(pdpb::GetOperatorRequest { operator_id }).await }).await?;
        resp.operator.ok_or(PdError::OperatorNotFound(operator_id))
    }

    /// Cancels a running operator; a finished one comes back as it ended.
    pub async fn cancel_operator(&self, operator_id: u64) -> Result<pdpb::Operator> {
        let resp = self
            .call(|mut c| async move { c.cancel_operator(pdpb::CancelOperatorRequest { operator_id }).await })
            .await?;
        resp.operator.ok_or(PdError::OperatorNotFound(operator_id))
    }

    /// Opens a watch-routes stream on the leader, every message a full
    /// snapshot. The stream ends when that member loses leadership; callers
    /// reopen it with the last version seen.
    ///
    /// # Errors
    ///
    /// As [`PdClient::call`].
    pub async fn watch_routes(&self, since_version: u64) -> Result<tonic::Streaming<pdpb::WatchRoutesResponse>> {
        self.watch(pdpb::WatchRoutesRequest { since_version, deltas: false }).await
    }

    /// As [`PdClient::watch_routes`], with deltas wherever PD can send them
    /// (`routes::apply_delta` applies them): the first message is a delta
    /// from `since_version` when PD still knows what changed since.
    ///
    /// # Errors
    ///
    /// As [`PdClient::call`].
    pub async fn watch_route_deltas(&self, since_version: u64) -> Result<tonic::Streaming<pdpb::WatchRoutesResponse>> {
        self.watch(pdpb::WatchRoutesRequest { since_version, deltas: true }).await
    }

    async fn watch(&self, req: pdpb::WatchRoutesRequest) -> Result<tonic::Streaming<pdpb::WatchRoutesResponse>> {
        let give_up = Instant::now() + self.deadline;
        loop {
            let (addr, ch) = self.current_leader().await?;
            let err = match pd_grpc(ch).watch_routes(req).await {
                Ok(resp) => return Ok(resp.into_inner()),
                Err(status) => status_error(&addr, &status),
            };
            if !err.is_retryable() || Instant::now() >= give_up {
                return Err(err);
            }
            self.forget_leader(&err)?;
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
    }

    /// A raw gRPC client to the current leader, for streams the caller
    /// drives itself (the store heartbeat).
    ///
    /// # Errors
    ///
    /// `Unavailable` when no leader can be found.
    pub async fn leader_grpc(&self) -> Result<(String, PdGrpc<Channel>)> {
        let (addr, ch) = self.current_leader().await?;
        Ok((addr, pd_grpc(ch)))
    }

    /// Drops the cached leader after a stream broke, following a hint if the
    /// error carried one.
    pub fn leader_failed(&self, err: &PdError) {
        let _ = self.forget_leader(err);
    }
}

/// Maps a transport-level failure. Errors PD means for the caller travel in
/// response headers; a bare status is a connection problem or a refusal
/// carried in the status (streams).
pub fn status_error(addr: &str, status: &tonic::Status) -> PdError {
    use tonic::Code;
    match status.code() {
        Code::InvalidArgument => PdError::InvalidArgument(status.message().to_string()),
        Code::FailedPrecondition if status.message().starts_with("not the PD leader") => {
            PdError::NotLeader(leader_hint_from(status))
        }
        _ => PdError::Unavailable(format!("PD at {addr}: {}", status.message())),
    }
}

/// Metadata key carrying the leader's address on a refused stream.
pub const LEADER_ADDR_METADATA: &str = "pd-leader-address";
pub const LEADER_ID_METADATA: &str = "pd-leader-id";

fn leader_hint_from(status: &tonic::Status) -> Option<crate::error::LeaderHint> {
    let md = status.metadata();
    let address = md.get(LEADER_ADDR_METADATA)?.to_str().ok()?.to_string();
    let id = md.get(LEADER_ID_METADATA).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
    Some(crate::error::LeaderHint { id, address })
}
