//! The open store heartbeat streams of this leader, by store id, so code
//! other than the stream's own task (the operator driver) can push a
//! directive down to a store.
//!
//! A store has at most one registered stream: one it opens later (after a
//! reconnect) replaces the older one, and the older one's registration,
//! dropped when its task ends, leaves the newer entry alone. Sending never
//! waits: a directive that finds no stream or a full queue is reported back
//! and the operator re-sends it on a later tick.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use proto::pdpb;
use tokio::sync::mpsc;

/// The sending half of one heartbeat stream's response queue.
pub type Tx = mpsc::Sender<Result<pdpb::StoreHeartbeatResponse, tonic::Status>>;

/// Why a directive did not reach a store's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("store has no heartbeat stream open to this PD leader")]
    NoStream,
    #[error("store's heartbeat stream queue is full")]
    QueueFull,
    #[error("store's heartbeat stream is closing")]
    Closed,
}

#[derive(Default)]
pub struct StoreStreams {
    /// store id -> (connection number, response queue).
    inner: Mutex<HashMap<u64, (u64, Tx)>>,
    next_conn: AtomicU64,
}

/// Removes its stream from the registry when dropped, unless the store has
/// registered a newer one since.
pub struct Registration<'a> {
    streams: &'a StoreStreams,
    store_id: u64,
    conn: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut map = self.streams.inner.lock().unwrap();
        if map.get(&self.store_id).is_some_and(|(conn, _)| *conn == self.conn) {
            map.remove(&self.store_id);
        }
    }
}

impl StoreStreams {
    /// Makes `tx` the store's stream until the returned registration drops.
    pub fn register(&self, store_id: u64, tx: Tx) -> Registration<'_> {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        self.inner.lock().unwrap().insert(store_id, (conn, tx));
        Registration { streams: self, store_id, conn }
    }

    /// Queues a directive on the store's stream without waiting.
    ///
    /// # Errors
    ///
    /// When the store has no stream here or its queue is full or closed.
    pub fn send_directive(&self, store_id: u64, directive: pdpb::Directive) -> Result<(), SendError> {
        let tx = self.inner.lock().unwrap().get(&store_id).map(|(_, tx)| tx.clone()).ok_or(SendError::NoStream)?;
        let msg = pdpb::StoreHeartbeatResponse {
            header: None,
            payload: Some(pdpb::store_heartbeat_response::Payload::Directive(directive)),
        };
        tx.try_send(Ok(msg)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => SendError::Closed,
        })
    }

    /// Whether the store has a stream open here.
    pub fn is_connected(&self, store_id: u64) -> bool {
        self.inner.lock().unwrap().contains_key(&store_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directive(id: u64) -> pdpb::Directive {
        pdpb::Directive { id, region_id: 2, ..Default::default() }
    }

    #[test]
    fn a_newer_stream_replaces_an_older_one_and_outlives_its_registration() {
        let streams = StoreStreams::default();
        assert_eq!(streams.send_directive(1, directive(1)), Err(SendError::NoStream));
        let (old_tx, mut old_rx) = mpsc::channel(1);
        let old = streams.register(1, old_tx);
        streams.send_directive(1, directive(1)).unwrap();
        assert!(old_rx.try_recv().is_ok());

        let (new_tx, mut new_rx) = mpsc::channel(1);
        let new = streams.register(1, new_tx);
        drop(old);
        assert!(streams.is_connected(1), "the old stream's end must not unregister the new one");
        streams.send_directive(1, directive(2)).unwrap();
        assert_eq!(streams.send_directive(1, directive(3)), Err(SendError::QueueFull));
        let got = new_rx.try_recv().unwrap().unwrap();
        assert!(matches!(got.payload, Some(pdpb::store_heartbeat_response::Payload::Directive(d)) if d.id == 2));
        drop(new);
        assert!(!streams.is_connected(1));
    }
}
