//! A client that speaks the store side of PD's heartbeat protocol, for
//! driving PD the way a storage node does without starting one: reports,
//! route snapshots (or deltas, on a stream opened for them), and
//! directives a test answers by hand.

use std::collections::VecDeque;
use std::time::Duration;

use pd::client::PdClient;
use pd::error::PdError;
use proto::{metapb, pdpb};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// One open heartbeat stream.
pub struct HeartbeatStream {
    pub store_id: u64,
    tx: mpsc::Sender<pdpb::StoreHeartbeatRequest>,
    rx: tonic::Streaming<pdpb::StoreHeartbeatResponse>,
    /// Directives that arrived while the test waited for routes.
    directives: VecDeque<pdpb::Directive>,
    /// Route snapshots that arrived while the test waited for a directive.
    routes: VecDeque<pdpb::RouteSnapshot>,
    /// Routes (snapshots and deltas, in order) on a stream opened with
    /// [`HeartbeatStream::open_for_deltas`].
    updates: VecDeque<RouteUpdate>,
}

/// Routes PD sent down a stream that takes deltas.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteUpdate {
    Full(pdpb::RouteSnapshot),
    Delta(pdpb::RouteDelta),
}

/// Allocates a store id and registers a store with a made-up address.
///
/// # Panics
///
/// If PD refuses.
pub async fn register_store(pd: &PdClient, port: u16) -> u64 {
    let id = pd.alloc_id().await.expect("alloc store id");
    let store = metapb::Store {
        id,
        address: format!("127.0.0.1:{port}"),
        http_address: format!("127.0.0.1:{}", port + 1),
        ..Default::default()
    };
    pd.put_store(store).await.expect("put store");
    id
}

impl HeartbeatStream {
    /// Opens a stream to the current PD leader and sends the first store
    /// heartbeat.
    ///
    /// # Errors
    ///
    /// When no leader can be reached.
    pub async fn open(pd: &PdClient, store_id: u64) -> Result<Self, PdError> {
        Self::open_with(pd, Self::stats(store_id, 0)).await
    }

    /// Opens a stream that takes route deltas, its first stats claiming
    /// `route_version` held (0: none). Its routes are read with
    /// [`HeartbeatStream::next_update`].
    ///
    /// # Errors
    ///
    /// When no leader can be reached.
    pub async fn open_for_deltas(pd: &PdClient, store_id: u64, route_version: u64) -> Result<Self, PdError> {
        let mut first = Self::stats(store_id, route_version);
        first.route_deltas = true;
        Self::open_with(pd, first).await
    }

    async fn open_with(pd: &PdClient, first: pdpb::StoreHeartbeatRequest) -> Result<Self, PdError> {
        let store_id = first.store_id;
        let (_, mut grpc) = pd.leader_grpc().await?;
        let (tx, rx) = mpsc::channel(16);
        tx.send(first).await.expect("queue first message");
        let resp =
            grpc.store_heartbeat(ReceiverStream::new(rx)).await.map_err(|s| pd::client::status_error("leader", &s))?;
        Ok(HeartbeatStream {
            store_id,
            tx,
            rx: resp.into_inner(),
            directives: VecDeque::new(),
            routes: VecDeque::new(),
            updates: VecDeque::new(),
        })
    }

    fn stats(store_id: u64, route_version: u64) -> pdpb::StoreHeartbeatRequest {
        pdpb::StoreHeartbeatRequest {
            store_id,
            payload: Some(pdpb::store_heartbeat_request::Payload::Store(pdpb::StoreStats {
                capacity: 100 << 30,
                available: 50 << 30,
                route_version,
                ..Default::default()
            })),
            route_deltas: false,
        }
    }

    pub async fn send(&self, payload: pdpb::store_heartbeat_request::Payload) {
        let msg = pdpb::StoreHeartbeatRequest { store_id: self.store_id, payload: Some(payload), route_deltas: false };
        self.tx.send(msg).await.expect("heartbeat stream closed");
    }

    /// Reports `region` as led by this store's peer at `term`.
    pub async fn report_region(&self, region: &metapb::Region, term: u64) {
        let stats = pdpb::RegionStats { approximate_size: 1 << 20, approximate_keys: 1000, ..Default::default() };
        self.report_region_with(region, term, stats).await;
    }

    /// Reports `region` as led by this store's peer at `term`, this big.
    pub async fn report_region_with(&self, region: &metapb::Region, term: u64, stats: pdpb::RegionStats) {
        self.send(pdpb::store_heartbeat_request::Payload::Region(pdpb::RegionHeartbeat {
            region: Some(region.clone()),
            leader: Some(self.peer_of(region)),
            term,
            stats: Some(stats),
            ..Default::default()
        }))
        .await;
    }

    /// Store stats claiming this route version applied.
    pub async fn report_route_version(&self, route_version: u64) {
        self.send(pdpb::store_heartbeat_request::Payload::Store(pdpb::StoreStats {
            capacity: 100 << 30,
            available: 50 << 30,
            route_version,
            ..Default::default()
        }))
        .await;
    }

    /// Tells PD a delta did not apply here: it answers with a full snapshot.
    pub async fn want_full_routes(&self, have_version: u64) {
        self.send(pdpb::store_heartbeat_request::Payload::RoutesWanted(pdpb::RoutesWanted { have_version })).await;
    }

    /// Reports a split this store's peer carried out as leader at `term`,
    /// naming itself leader of every region at that term.
    pub async fn report_split(
        &self,
        regions: &[metapb::Region],
        term: u64,
        directive_id: u64,
        stats: Vec<pdpb::RegionStats>,
    ) {
        let parent = regions.last().expect("a split report names the original region last");
        // This store leads every region it reports, each at `term`.
        let leaderships =
            regions.iter().map(|r| pdpb::RegionLeadership { leader: Some(self.peer_of(r)), term }).collect();
        self.send(pdpb::store_heartbeat_request::Payload::Split(pdpb::SplitReport {
            regions: regions.to_vec(),
            leader: Some(self.peer_of(parent)),
            term,
            directive_id,
            stats,
            leaderships,
        }))
        .await;
    }

    /// Answers a directive with an error.
    pub async fn directive_failed(&self, d: &pdpb::Directive, ty: pdpb::ErrorType, message: &str) {
        self.send(pdpb::store_heartbeat_request::Payload::DirectiveFailed(pdpb::DirectiveFailed {
            directive_id: d.id,
            region_id: d.region_id,
            error: Some(pdpb::Error { r#type: ty as i32, message: message.into(), leader: None }),
        }))
        .await;
    }

    /// This store's peer of `region`.
    ///
    /// # Panics
    ///
    /// If the store hosts no peer of it.
    pub fn peer_of(&self, region: &metapb::Region) -> metapb::Peer {
        *region.peers.iter().find(|p| p.store_id == self.store_id).expect("store hosts a peer")
    }

    /// The next message from PD, or its refusal.
    async fn next_message(&mut self, timeout: Duration) -> Result<pdpb::StoreHeartbeatResponse, PdError> {
        let msg = tokio::time::timeout(timeout, self.rx.message())
            .await
            .map_err(|_| PdError::Unavailable("no heartbeat response in time".into()))?
            .map_err(|s| pd::client::status_error("leader", &s))?
            .ok_or_else(|| PdError::Unavailable("heartbeat stream ended".into()))?;
        pd::error::check_header(&msg.header)?;
        Ok(msg)
    }

    /// The next route snapshot (directives arriving meanwhile are kept for
    /// [`HeartbeatStream::next_directive`]), or PD's refusal.
    ///
    /// # Errors
    ///
    /// The refusal in a header, or `Unavailable` when the stream ends or
    /// nothing arrives within `timeout`.
    pub async fn next_routes(&mut self, timeout: Duration) -> Result<pdpb::RouteSnapshot, PdError> {
        if let Some(r) = self.routes.pop_front() {
            return Ok(r);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_message(left).await?.payload {
                Some(pdpb::store_heartbeat_response::Payload::Routes(r)) => return Ok(r),
                Some(pdpb::store_heartbeat_response::Payload::Directive(d)) => self.directives.push_back(d),
                Some(pdpb::store_heartbeat_response::Payload::RouteDelta(d)) => {
                    self.updates.push_back(RouteUpdate::Delta(d))
                }
                None => {}
            }
        }
    }

    /// The next directive PD sends this store (route snapshots arriving
    /// meanwhile are kept for [`HeartbeatStream::next_routes`]).
    ///
    /// # Errors
    ///
    /// The refusal in a header, or `Unavailable` when the stream ends or no
    /// directive arrives within `timeout`.
    pub async fn next_directive(&mut self, timeout: Duration) -> Result<pdpb::Directive, PdError> {
        if let Some(d) = self.directives.pop_front() {
            return Ok(d);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_message(left).await?.payload {
                Some(pdpb::store_heartbeat_response::Payload::Directive(d)) => return Ok(d),
                Some(pdpb::store_heartbeat_response::Payload::Routes(r)) => self.routes.push_back(r),
                Some(pdpb::store_heartbeat_response::Payload::RouteDelta(d)) => {
                    self.updates.push_back(RouteUpdate::Delta(d))
                }
                None => {}
            }
        }
    }

    /// The next routes PD sends, snapshot or delta, on a stream opened with
    /// [`HeartbeatStream::open_for_deltas`] (directives arriving meanwhile
    /// are kept).
    ///
    /// # Errors
    ///
    /// The refusal in a header, or `Unavailable` when the stream ends or
    /// nothing arrives within `timeout`.
    pub async fn next_update(&mut self, timeout: Duration) -> Result<RouteUpdate, PdError> {
        if let Some(u) = self.updates.pop_front() {
            return Ok(u);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_message(left).await?.payload {
                Some(pdpb::store_heartbeat_response::Payload::Routes(r)) => return Ok(RouteUpdate::Full(r)),
                Some(pdpb::store_heartbeat_response::Payload::RouteDelta(d)) => return Ok(RouteUpdate::Delta(d)),
                Some(pdpb::store_heartbeat_response::Payload::Directive(d)) => self.directives.push_back(d),
                None => {}
            }
        }
    }

    /// Skips snapshots until one satisfies `pred`.
    ///
    /// # Panics
    ///
    /// If the stream fails or nothing matching arrives in `timeout`.
    pub async fn routes_until(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&pdpb::RouteSnapshot) -> bool,
    ) -> pdpb::RouteSnapshot {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let r = self.next_routes(left).await.expect("route snapshot");
            if pred(&r) {
                return r;
            }
        }
    }
}

/// What a store's split does to `region` at `key`: the new left region
/// `[start, key)` with the ids the directive carries, and the original
/// shrunk to `[key, end)`, both one version up. Left first, as stores report.
///
/// # Panics
///
/// If `d` is not a split directive.
pub fn split_regions(region: &metapb::Region, d: &pdpb::Directive, key: &[u8]) -> Vec<metapb::Region> {
    let Some(pdpb::directive::Kind::Split(s)) = &d.kind else { panic!("not a split directive: {d:?}") };
    let ids = s.new_ids.clone().expect("split ids");
    let mut right = region.clone();
    right.start_key = key.to_vec();
    right.region_epoch.as_mut().expect("epoch").version += 1;
    let mut left = right.clone();
    left.id = ids.region_id;
    left.start_key = region.start_key.clone();
    left.end_key = key.to_vec();
    assert_eq!(ids.peer_ids.len(), left.peers.len(), "one new peer id per peer");
    for (p, id) in left.peers.iter_mut().zip(&ids.peer_ids) {
        p.id = *id;
    }
    vec![left, right]
}
