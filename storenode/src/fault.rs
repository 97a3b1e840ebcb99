//! Fault injection for tests: a network partition switch.
//!
//! A store started with `fault-injection: true` (`--fault-injection`) lets a
//! test harness cut it off from chosen stores and from PD through
//! `PUT /debug/partition` and heal it with `DELETE /debug/partition` (see
//! [`crate::http`]). While cut off, every outgoing message to a blocked
//! store is dropped as if the network lost it: raft RPCs and heartbeats
//! ([`crate::transport::client`]), snapshots, and KV requests forwarded to
//! its leader ([`crate::kv`]); and the PD heartbeat stream is closed and not
//! reopened ([`crate::pd_worker`]). The harness blocks both directions by
//! setting the switch on both sides, so no store ever needs to know who sent
//! a message. Client traffic to the store still arrives: a minority
//! partition must refuse to serve stale data, and that is what such tests
//! check.
//!
//! Off by default; the HTTP routes do not exist unless it is on.

use std::collections::BTreeSet;
use std::sync::RwLock;

use tokio::sync::watch;

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionSpec {
    /// Stores this store cannot reach.
    #[serde(default)]
    pub stores: BTreeSet<u64>,
    /// Whether PD is unreachable.
    #[serde(default)]
    pub pd: bool,
}

pub struct Partition {
    spec: RwLock<PartitionSpec>,
    /// Bumped on every change, so the PD worker can drop its stream at once.
    changed: watch::Sender<u64>,
}

impl Default for Partition {
    fn default() -> Self {
        Partition { spec: RwLock::new(PartitionSpec::default()), changed: watch::channel(0).0 }
    }
}

impl Partition {
    pub fn blocks_store(&self, store_id: u64) -> bool {
        self.spec.read().unwrap().stores.contains(&store_id)
    }

    pub fn blocks_pd(&self) -> bool {
        self.spec.read().unwrap().pd
    }

    pub fn spec(&self) -> PartitionSpec {
        self.spec.read().unwrap().clone()
    }

    pub fn set(&self, spec: PartitionSpec) {
        *self.spec.write().unwrap() = spec;
        self.changed.send_modify(|n| *n += 1);
    }

    pub fn heal(&self) {
        self.set(PartitionSpec::default());
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_heal() {
        let p = Partition::default();
        let mut rx = p.subscribe();
        p.set(PartitionSpec { stores: [2, 3].into(), pd: true });
        assert!(p.blocks_store(2) && p.blocks_store(3) && !p.blocks_store(1) && p.blocks_pd());
        assert!(rx.has_changed().unwrap());
        rx.mark_unchanged();
        p.heal();
        assert!(!p.blocks_store(2) && !p.blocks_pd());
        assert!(rx.has_changed().unwrap());
    }
}
