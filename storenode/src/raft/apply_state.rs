//! What the engine records per region next to its data: written by every
//! apply batch, a snapshot install and a split (for the new region), read
//! when a region's state machine opens and when a snapshot is built.

use serde::{Deserialize, Serialize};

use super::{LogId, StoredMembership};

/// What the engine records per region next to its data.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ApplyState {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    /// Log time: the largest leader timestamp applied. Sessions expire by
    /// it, so every replica expires them at the same log position.
    pub clock_ms: u64,
    /// Log time of the last sweep for expired sessions.
    pub last_sweep_ms: u64,
}
