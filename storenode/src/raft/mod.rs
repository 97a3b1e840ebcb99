//! One openraft group per region.
//!
//! - [`command`]: what a region's raft log carries and what applying answers.
//! - [`log_store`]: a region's raft log and vote, in the shared engine, written
//!   through the group-commit writer.
//! - [`log_cache`]: the newest log entries in memory, readable before their
//!   write commits, so a leader replicates while its own fsync runs.
//! - [`stage_clock`]: per-stage latency of the leader's writes.
//! - [`bootstrap`]: a bootstrap region's first raft state, seeded.
//! - [`membership`]: membership entries rewrite the region's peers and `conf_ver`.
//! - [`apply_state`]: what the engine records per region next to its data.
//! - [`state_machine`]: a region's applied state: user keys in the shared
//!   data table, the region's meta, snapshots built by scanning its range.
//! - [`snapshot`]: snapshots as files: the format, the streaming builder and
//!   the bounded, crash-safe installer.
//! - [`session`]: the per-region session table that makes writes
//!   exactly-once.
//! - [`log_clock`]: log time, which sessions expire by, driven by each
//!   leader's monotonic clock and anchored on the log.
//! - [`split`]: the split admin command and how every replica applies it,
//!   seeding the new region's raft state.
//! - [`split_point`]: where a region splits (its middle by size) and how
//!   much lies left of the key.
//! - [`network`]: outgoing raft RPCs for one region over the store-to-store
//!   transport.
//!
//! Raft node ids are peer ids, which PD allocates and never reuses; a node
//! names its store, whose address is looked up in the route table at send
//! time, so a store that moves address needs no membership change.

pub mod apply_state;
pub mod bootstrap;
pub mod command;
pub mod command_clock;
pub mod early_replies;
pub mod fence;
pub mod log_cache;
pub mod log_clock;
pub mod log_store;
pub mod membership;
pub mod network;
pub mod session;
pub mod snapshot;
pub mod split;
pub mod split_point;
pub mod stage_clock;
pub mod state_machine;

use serde::{Deserialize, Serialize};

pub use command::{KvCommand, KvOp, KvReply, RequestId};

/// A raft member: a peer of a region, living on a store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerNode {
    pub store_id: u64,
}

openraft::declare_raft_types!(
    /// openraft's type configuration for region groups.
    pub TypeConfig:
        D = KvCommand,
        R = KvReply,
        NodeId = u64,
        Node = PeerNode,
        Entry = openraft::Entry<<Self::LeaderId as openraft::vote::RaftLeaderId>::Committed, Self::Payload>,
        AsyncRuntime = openraft::impls::TokioRuntime,
);

pub type RegionRaft = openraft::Raft<TypeConfig, state_machine::RegionStateMachine>;
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
pub type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, snapshot::SnapshotFile>;

/// postcard encoding for raft entries, state and snapshots.
pub(crate) fn encode<T: Serialize>(v: &T) -> std::io::Result<Vec<u8>> {
    postcard::to_allocvec(v).map_err(crate::engine::io_err)
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> std::io::Result<T> {
    postcard::from_bytes(b).map_err(crate::engine::io_err)
}

#[cfg(test)]
mod tests;
