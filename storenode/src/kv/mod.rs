//! KV request handling: validate, locate the region, run on the local
//! leader or forward to the leader's store, answer with typed errors.
//!
//! Routing: a request naming a region (`Context.region_id`) runs on this
//! store's peer of that region after an epoch check; otherwise the key picks
//! the local peer whose range holds it (only initialized peers, which hold
//! their range's data, count for either); failing both, PD's route table
//! names the region's leader store and the request is forwarded there. A
//! local peer that is not the leader forwards to the leader it knows. A
//! forwarded request (`Context.forwarded`) is never forwarded again: it
//! answers with a region error instead, so a stale route cannot loop. When
//! PD's route named the wrong leader, that error is a `NotLeader` naming
//! the one its store knows, kept as a leader hint in the route table
//! ([`Node::learn_leader`]): the caller's retry (the HTTP API's own retry
//! loop too) goes to that store, not to the stale route again.
//!
//! - [`read`]: get, scan, batch get (linearizable via lease read, or stale
//!   on request).
//! - [`write`]: put, delete, batch put, compare-and-swap through raft.
//! - [`service`]: the gRPC service on top.
//! - [`batch`]: many requests over one stream (`BatchCommands`).

pub mod batch;
pub mod read;
pub mod service;
pub mod write;

#[cfg(test)]
mod leader_hint_tests;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::errors::RaftError;
use openraft::{LinearizerOption, TryAsRef};
use pd::catalog::keys;
use proto::kvpb::{self, kv_client::KvClient};
use proto::metapb;
use tonic::transport::Channel;

use crate::config::{MAX_KEY_SIZE, MAX_VALUE_SIZE};
use crate::error::{Result, StoreError};
use crate::metrics;
use crate::node::{Node, RegionPeer};
use crate::raft::TypeConfig;

/// How long a write may wait for commit, or a read for its lease check,
/// before the caller is told to retry: a leader cut off from its quorum
/// must not hang clients.
pub const RAFT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a request runs.
pub enum Route {
    Local(Arc<RegionPeer>),
    /// Another store, believed to lead `region_id`.
    Remote {
        address: String,
        region_id: u64,
        store_id: u64,
    },
}

/// KV responses: each carries a region error and a plain error slot.
pub trait KvResponse: Default {
    fn set_errors(&mut self, region_error: Option<kvpb::RegionError>, error: Option<kvpb::Error>);
    fn region_error(&self) -> Option<&kvpb::RegionError>;
}

macro_rules! kv_response {
    ($($t:ty),*) => {$(
        impl KvResponse for $t {
            fn set_errors(&mut self, re: Option<kvpb::RegionError>, e: Option<kvpb::Error>) {
                self.region_error = re;
                self.error = e;
            }

            fn region_error(&self) -> Option<&kvpb::RegionError> {
                self.region_error.as_ref()
            }
        }
    )*};
}
kv_response!(
    kvpb::GetResponse,
    kvpb::PutResponse,
    kvpb::DeleteResponse,
    kvpb::ScanResponse,
    kvpb::BatchGetResponse,
    kvpb::BatchPutResponse,
    kvpb::CasResponse
);

/// # Errors
///
/// `InvalidArgument` for an empty or oversized key.
pub fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(StoreError::InvalidArgument("key must not be empty".into()));
    }
    if key.len() > MAX_KEY_SIZE {
        return Err(StoreError::InvalidArgument(format!(
            "key of {} bytes exceeds the {MAX_KEY_SIZE}-byte limit",
            key.len()
        )));
    }
    Ok(())
}

/// # Errors
///
/// `InvalidArgument` for an oversized value.
pub fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_SIZE {
        return Err(StoreError::InvalidArgument(format!(
            "value of {} bytes exceeds the {MAX_VALUE_SIZE}-byte limit",
            value.len()
        )));
    }
    Ok(())
}

fn key_not_in_region(key: &[u8], region: &metapb::Region) -> StoreError {
    StoreError::KeyNotInRegion {
        key: key.to_vec(),
        region_id: region.id,
        start_key: region.start_key.clone(),
        end_key: region.end_key.clone(),
    }
}

impl Node {
    /// `EpochNotMatch` naming the regions this store has now for the
    /// request: `region` (where it was routed) and, when a split moved
    /// `key` elsewhere, the local region that owns it now.
    pub(crate) fn epoch_not_match(&self, region: metapb::Region, key: &[u8]) -> StoreError {
        let mut current = vec![region];
        if let Some(owner) = self.peer_for_key(key).map(|p| p.region())
            && owner.id != current[0].id
        {
            current.insert(0, owner);
        }
        StoreError::EpochNotMatch(current)
    }

    /// Finds where a request for `key` runs.
    ///
    /// # Errors
    ///
    /// `EpochNotMatch` when the caller's epoch names another version of the
    /// region's range (a membership change, `conf_ver`, moves no key),
    /// `KeyNotInRegion` when the named region does not hold the key,
    /// `RegionNotFound` when a forwarded request finds no local peer.
    pub fn locate(&self, ctx: &kvpb::Context, key: &[u8]) -> Result<Route> {
        if ctx.region_id != 0 {
            if let Some(peer) = self.initialized_peer(ctx.region_id) {
                let region = peer.region();
                let version = region.region_epoch.unwrap_or_default().version;
                if ctx.region_epoch.is_some_and(|e| e.version != version) {
                    return Err(self.epoch_not_match(region, key));
                }
                if !keys::contains(&region.start_key, &region.end_key, key) {
                    return Err(key_not_in_region(key, &region));
                }
                return Ok(Route::Local(peer));
            }
            if ctx.forwarded {
                return Err(StoreError::RegionNotFound(ctx.region_id));
            }
        }
        if let Some(peer) = self.peer_for_key(key) {
            return Ok(Route::Local(peer));
        }
        if ctx.forwarded {
            return Err(StoreError::RegionNotFound(ctx.region_id));
        }
        let route = self
            .routes
            .region_by_key(key)
            .ok_or_else(|| StoreError::ServerBusy("no route for the key yet (cluster bootstrapping?)".into()))?;
        let store_id = self
            .routes
            .leader_store(&route)
            .or_else(|| route.region.as_ref().and_then(|r| r.peers.first()).map(|p| p.store_id));
        let region_id = route.region.map_or(0, |r| r.id);
        let store_id = store_id.ok_or(StoreError::RegionNotFound(region_id))?;
        let address = self.store_address(store_id).ok_or(StoreError::RegionNotFound(region_id))?;
        Ok(Route::Remote { address, region_id, store_id })
    }

    /// Learns from the answer of the store a request was forwarded to by
    /// route (`tried`, believed to lead `region_id`): a `NotLeader` naming
    /// another store's peer is a leader hint the next request follows (PD
    /// may not have heard of that leader yet, and the store answering did
    /// not forward: a forwarded request never is); a store that could not
    /// be reached, knows no leader or holds no peer of the region loses
    /// its hint.
    pub(crate) fn learn_leader<R: KvResponse>(&self, region_id: u64, tried: u64, answer: &Result<R>) {
        use kvpb::region_error::Kind;
        match answer {
            Ok(r) => match r.region_error().and_then(|e| e.kind.as_ref()) {
                Some(Kind::NotLeader(kvpb::NotLeader { region_id: named, leader: Some(leader), .. }))
                    if *named == region_id && leader.store_id != tried =>
                {
                    metrics::KV_LEADER_HINTS.inc();
                    self.routes.set_leader_hint(region_id, leader.store_id);
                }
                // Naming itself (a leader stepping up): nothing new.
                Some(Kind::NotLeader(kvpb::NotLeader { leader: Some(leader), .. })) if leader.store_id == tried => {}
                // A hinted store that knows no leader, or holds no peer of
                // the region, would keep every request while PD's route
                // stays as it is: back to PD's leader.
                Some(Kind::NotLeader(_) | Kind::RegionNotFound(_)) => {
                    self.routes.forget_leader_hint(region_id, tried);
                }
                _ => {}
            },
            Err(StoreError::Unavailable(_)) => self.routes.forget_leader_hint(region_id, tried),
            Err(_) => {}
        }
    }

    /// Runs a request: locally (`local`) or on another store (`remote`,
    /// with `forwarded` set), recording metrics, and folds any error into
    /// the response.
    pub async fn dispatch<R, L, LF, RM, RF>(
        &self,
        op: &'static str,
        ctx: Option<kvpb::Context>,
        key: &[u8],
        local: L,
        remote: RM,
    ) -> R
    where
        R: KvResponse,
        L: FnOnce(Arc<RegionPeer>) -> LF,
        LF: Future<Output = Result<R>>,
        RM: FnOnce(KvClient<Channel>, kvpb::Context) -> RF,
        RF: Future<Output = std::result::Result<tonic::Response<R>, tonic::Status>>,
    {
        let started = Instant::now();
        metrics::KV_REQUESTS.with_label_values(&[op]).inc();
        let ctx = ctx.unwrap_or_default();
        let res = match self.locate(&ctx, key) {
            Ok(Route::Local(peer)) => {
                // A request is traffic: a hibernated peer resumes its timers.
                self.wake_for_request(&peer).await;
                match local(peer).await {
                    Err(StoreError::NotLeader { address, .. })
                        if !ctx.forwarded && !address.is_empty() && address != self.advertise_grpc_addr =>
                    {
                        self.forward(address, ctx, remote).await
                    }
                    other => other,
                }
            }
            Ok(Route::Remote { address, region_id, store_id }) => {
                let answer = self.forward(address, ctx, remote).await;
                self.learn_leader(region_id, store_id, &answer);
                answer
            }
            Err(e) => Err(e),
        };
        metrics::KV_SECONDS.with_label_values(&[op]).observe(started.elapsed().as_secs_f64());
        match res {
            Ok(r) => r,
            Err(e) => {
                metrics::KV_ERRORS.with_label_values(&[op, e.label()]).inc();
                let (re, err) = e.to_pb();
                let mut r = R::default();
                r.set_errors(re, err);
                r
            }
        }
    }

    async fn forward<R, RM, RF>(&self, address: String, mut ctx: kvpb::Context, remote: RM) -> Result<R>
    where
        RM: FnOnce(KvClient<Channel>, kvpb::Context) -> RF,
        RF: Future<Output = std::result::Result<tonic::Response<R>, tonic::Status>>,
    {
        metrics::KV_FORWARDED.inc();
        if self.cut_off_from(&address) {
            return Err(StoreError::Unavailable(format!("forward to {address}: cut off (fault injection)")));
        }
        let client = self.kv_client(&address).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        ctx.forwarded = true;
        match tokio::time::timeout(RAFT_TIMEOUT, remote(client, ctx)).await {
            Ok(Ok(resp)) => Ok(resp.into_inner()),
            // The leader's store may have received and proposed it: for a
            // write the outcome is unknown, which `Unavailable` says.
            Ok(Err(status)) => Err(StoreError::Unavailable(format!("forward to {address}: {}", status.message()))),
            Err(_) => Err(StoreError::Unavailable(format!("forward to {address} timed out"))),
        }
    }

    /// A raft API failure as the caller should see it.
    pub(crate) fn raft_error<E>(&self, peer: &RegionPeer, e: &RaftError<TypeConfig, E>) -> StoreError
    where
        E: std::error::Error + TryAsRef<openraft::errors::ForwardToLeader<TypeConfig>>,
    {
        if let Some(f) = e.forward_to_leader() {
            let leader = f.leader_id.zip(f.leader_node.as_ref()).map(|(id, node)| metapb::Peer {
                id,
                store_id: node.store_id,
                role: metapb::PeerRole::Voter as i32,
            });
            let address = leader.and_then(|l| self.store_address(l.store_id)).unwrap_or_default();
            return StoreError::NotLeader { region_id: peer.region_id(), leader, address };
        }
        match e {
            RaftError::Fatal(f) => StoreError::Unavailable(format!("region {} raft stopped: {f}", peer.region_id())),
            RaftError::APIError(api) => StoreError::ServerBusy(api.to_string()),
        }
    }

    /// `NotLeader` if this peer is known not to lead, without a raft round.
    /// A dormant leader counts as leading: the request's wake revived it.
    pub(crate) fn check_leader(&self, peer: &RegionPeer) -> Result<()> {
        if peer.is_leader() {
            return Ok(());
        }
        let leader = peer.leader();
        let address = leader.and_then(|l| self.store_address(l.store_id)).unwrap_or_default();
        Err(StoreError::NotLeader { region_id: peer.region_id(), leader, address })
    }

    /// Confirms this peer still leads and has applied everything committed
    /// before the call. A valid lease answers at once; without one (right
    /// after an election, or when the quorum's last acknowledgement is too
    /// old) the leader sends a heartbeat round and waits for a quorum to
    /// answer it: a read index, never a refusal.
    pub(crate) async fn read_index(&self, peer: &RegionPeer) -> Result<()> {
        self.check_leader(peer)?;
        let lease_or_read_index = LinearizerOption::new(None, true);
        let raft = running(peer)?;
        match tokio::time::timeout(RAFT_TIMEOUT, raft.ensure_linearizable(lease_or_read_index)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.raft_error(peer, &e)),
            Err(_) => Err(StoreError::ServerBusy(format!("region {}: read index timed out", peer.region_id()))),
        }
    }
}

/// The peer's running raft group: `ServerBusy` (the client retries) when
/// it went dormant or stopped since the request woke it.
pub(crate) fn running(peer: &RegionPeer) -> Result<crate::raft::RegionRaft> {
    peer.raft().ok_or_else(|| StoreError::ServerBusy(format!("region {}: raft is not running here", peer.region_id())))
}
