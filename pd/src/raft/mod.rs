//! PD's own raft group: the route catalog replicated with openraft.
//!
//! - [`log_store`]: the raft log, vote and purge/commit marks in redb.
//! - [`state_machine`]: the catalog applied from the log, persisted row by
//!   row in the same redb file, and the route publisher.
//! - [`network`]: outgoing raft RPCs over gRPC (`pdraftpb.PdRaft`).
//! - [`service`]: the incoming side of those RPCs and the join handshake.
//!
//! A member either starts a new group on its own (no `join` configured, no
//! state on disk), joins an existing one through any member (added as a
//! learner, then promoted to voter), or restarts from its data directory.
//!
//! Not done yet: removing members, leader transfer between PD members on
//! request.

pub mod log_store;
pub mod network;
pub mod service;
pub mod state_machine;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::catalog::{CatalogCommand, CommandOutcome};
use crate::error::PdError;

/// A PD member's addresses, stored in the raft membership so every member
/// can reach and name every other.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdMember {
    /// gRPC address: client API and raft traffic.
    pub address: String,
    pub http_address: String,
}

impl fmt::Display for CatalogCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CatalogCommand::AllocIds { count } => write!(f, "alloc-ids({count})"),
            CatalogCommand::PutStore { store } => write!(f, "put-store({})", store.id),
            CatalogCommand::Bootstrap { store_ids, split_keys } => {
                write!(f, "bootstrap(stores={store_ids:?}, regions={})", split_keys.len() + 1)
            }
            CatalogCommand::ReportRegions { regions, term, .. } => {
                let ids: Vec<u64> = regions.iter().map(|r| r.id).collect();
                write!(f, "report-regions({ids:?}, term={term})")
            }
            CatalogCommand::SetStoreState { store_id, state, .. } => {
                write!(f, "set-store-state({store_id}, {})", crate::catalog::state_name(*state))
            }
            #[cfg(test)]
            CatalogCommand::Unvalidated { edits } => write!(f, "unvalidated({} edits)", edits.len()),
        }
    }
}

/// What applying a log entry answers: the command's outcome, or the typed
/// reason the catalog refused it (the refusal is itself deterministic, so
/// every member refuses alike). Blank and membership entries answer `None`.
pub type CommandReply = Result<Option<CommandOutcome>, PdError>;

openraft::declare_raft_types!(
    /// openraft's type configuration for the PD group.
    pub TypeConfig:
        D = CatalogCommand,
        R = CommandReply,
        NodeId = u64,
        Node = PdMember,
        Entry = openraft::Entry<<Self::LeaderId as openraft::vote::RaftLeaderId>::Committed, Self::Payload>,
        AsyncRuntime = openraft::impls::TokioRuntime,
);

pub type PdRaft = openraft::Raft<TypeConfig, state_machine::CatalogStateMachine>;
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
pub type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, Vec<u8>>;

/// Wraps any error as the `io::Error` openraft's storage traits return.
pub(crate) fn io_err(e: impl fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

#[cfg(test)]
mod tests;
