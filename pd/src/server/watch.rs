//! The watch-routes stream: a client gets the routes of every version newer
//! than the one it names, as soon as this leader applies it: full
//! snapshots, or, when it asks for `deltas`, what changed since the version
//! it holds (from `since_version` on) wherever PD's history reaches back
//! that far (`crate::routes`). A watcher that cannot apply a delta reopens
//! the watch from version 0 for a full snapshot. The stream ends with a
//! `NOT_LEADER` status when leadership moves; clients reopen it on the new
//! leader with the last version they saw, so they miss nothing.

use std::sync::Arc;

use proto::pdpb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::context::{PdContext, until_not_leader};
use super::stream_status::{BoxStream, refusal};
use crate::error::{PdError, Result};
use crate::metrics;
use crate::routes::RoutePush;

/// Pushes queued per watcher before the sender waits. Waiting costs a slow
/// watcher nothing: what is built when the queue frees up covers every
/// version since the last one it was sent.
const WATCH_QUEUE: usize = 4;

/// Decrements a gauge when dropped, so every exit path of a stream task
/// counts.
pub struct GaugeGuard(&'static prometheus::IntGauge);

impl GaugeGuard {
    pub fn new(g: &'static prometheus::IntGauge) -> Self {
        g.inc();
        GaugeGuard(g)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// # Errors
///
/// `NotLeader` on a follower.
pub fn open(ctx: Arc<PdContext>, req: pdpb::WatchRoutesRequest) -> Result<BoxStream<pdpb::WatchRoutesResponse>> {
    ctx.ensure_leader()?;
    let (tx, rx) = mpsc::channel(WATCH_QUEUE);
    tokio::spawn(async move {
        let _open = GaugeGuard::new(&metrics::WATCH_STREAMS);
        let mut versions = ctx.catalog.subscribe();
        let mut leader = ctx.leader_rx.clone();
        // 0 asks for the current snapshot at once, whatever its version.
        let mut held: Option<u64> = (req.since_version > 0).then_some(req.since_version);
        loop {
            versions.borrow_and_update();
            if let Some(push) = ctx.catalog.push_since(held, req.deltas) {
                let resp = match &push {
                    RoutePush::Full(s) => {
                        pdpb::WatchRoutesResponse { header: None, routes: Some((**s).clone()), delta: None }
                    }
                    RoutePush::Delta(d) => {
                        pdpb::WatchRoutesResponse { header: None, routes: None, delta: Some(d.clone()) }
                    }
                };
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
                metrics::route_pushed("watch", &push);
                held = Some(push.version());
            }
            tokio::select! {
                changed = versions.changed() => if changed.is_err() { return },
                () = until_not_leader(&mut leader) => {
                    let _ = tx.send(Err(refusal(&PdError::NotLeader(ctx.leader_hint())))).await;
                    return;
                }
                () = tx.closed() => return,
            }
        }
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}
