//! Request ids for exactly-once writes.
//!
//! Every write a client sends carries `(client_id, seq)`: a random client id
//! chosen once per client instance and a sequence number that grows with
//! each logical write. A retry reuses the same pair, so the region's session
//! table (see [`crate::raft::session`]) can answer a repeat with the first
//! attempt's outcome instead of applying it twice. `acked_below` tells the
//! regions which outcomes the client will never ask about again.
//!
//! The client library and the HTTP API each own one [`RequestIds`]; a store
//! forwarding a request passes the caller's id through unchanged.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use proto::kvpb;

/// Hands out request ids for one client and tracks which are in flight.
pub struct RequestIds {
    client_id: u64,
    next_seq: AtomicU64,
    /// Sequence numbers issued but not finished: the lowest one is the
    /// `acked_below` every new request carries.
    in_flight: Arc<Mutex<BTreeSet<u64>>>,
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestIds {
    /// A new client identity, random so that two clients (or one client
    /// restarted) never share a session.
    pub fn new() -> Self {
        RequestIds::with_client_id(random_client_id())
    }

    /// A fixed identity, for tests.
    pub fn with_client_id(client_id: u64) -> Self {
        assert_ne!(client_id, 0, "client id 0 means no request id");
        RequestIds { client_id, next_seq: AtomicU64::new(1), in_flight: Arc::new(Mutex::new(BTreeSet::new())) }
    }

    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// Starts one logical write; every attempt of it uses the returned id.
    /// The id stays in flight until the guard drops.
    pub fn begin(&self) -> InFlight {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        self.in_flight.lock().unwrap().insert(seq);
        InFlight { client_id: self.client_id, seq, in_flight: self.in_flight.clone() }
    }
}

/// One logical write in progress.
pub struct InFlight {
    client_id: u64,
    seq: u64,
    in_flight: Arc<Mutex<BTreeSet<u64>>>,
}

impl InFlight {
    /// The id to send with an attempt: the same client and sequence number
    /// every time, with the current low-water mark of unfinished writes.
    pub fn id(&self) -> kvpb::RequestId {
        let acked_below = self.in_flight.lock().unwrap().first().copied().unwrap_or(self.seq);
        kvpb::RequestId { client_id: self.client_id, seq: self.seq, acked_below }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.in_flight.lock().unwrap().remove(&self.seq);
    }
}

/// 64 random bits from the OS-seeded hasher, mixed with the clock and the
/// process id, never 0.
fn random_client_id() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.write_u32(std::process::id());
    h.finish().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acked_below_is_the_lowest_unfinished_write() {
        let ids = RequestIds::with_client_id(7);
        let a = ids.begin();
        let b = ids.begin();
        assert_eq!(b.id(), kvpb::RequestId { client_id: 7, seq: 2, acked_below: 1 });
        drop(a);
        assert_eq!(b.id().acked_below, 2, "a finished write no longer holds the mark back");
        let c = ids.begin();
        drop(b);
        assert_eq!(c.id(), kvpb::RequestId { client_id: 7, seq: 3, acked_below: 3 });
    }

    #[test]
    fn client_ids_differ() {
        assert_ne!(RequestIds::new().client_id(), RequestIds::new().client_id());
    }
}
