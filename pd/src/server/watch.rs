//! The watch-routes stream: a client gets every route snapshot newer than
//! the version it names, as soon as this leader applies it. The stream ends
//! with a `NOT_LEADER` status when leadership moves; clients reopen it on the
//! new leader with the last version they saw, so they miss nothing.

use std::sync::Arc;

use proto::pdpb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::context::{PdContext, until_not_leader};
use super::stream_status::{BoxStream, refusal};
use crate::error::{PdError, Result};
use crate::metrics;

/// Snapshots queued per watcher before the sender waits: a slow watcher
/// only ever needs the newest one, and skipped versions are fine because
/// every snapshot is complete.
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
pub fn open(ctx: Arc<PdContext>, since_version: u64) -> Result<BoxStream<pdpb::WatchRoutesResponse>> {
    ctx.ensure_leader()?;
    let (tx, rx) = mpsc::channel(WATCH_QUEUE);
    tokio::spawn(async move {
        let _open = GaugeGuard::new(&metrics::WATCH_STREAMS);
        let mut routes = ctx.catalog.subscribe();
        let mut leader = ctx.leader_rx.clone();
        // 0 asks for the current snapshot at once, whatever its version.
        let mut sent: Option<u64> = (since_version > 0).then_some(since_version);
        loop {
            let snapshot = routes.borrow_and_update().clone();
            if sent.is_none_or(|v| snapshot.version > v) {
                let resp = pdpb::WatchRoutesResponse { header: None, routes: Some((*snapshot).clone()) };
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
                metrics::ROUTE_PUSHES.inc();
                sent = Some(snapshot.version);
            }
            tokio::select! {
                changed = routes.changed() => if changed.is_err() { return },
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
