//! Changing a store's state: the decommission life cycle.
//!
//! ```text
//! Up ──delete──▶ Offline ──no peer left──▶ Tombstone
//!  ▲                │
//!  └────cancel──────┘
//! ```
//!
//! Nothing leaves Tombstone: a tombstoned store's id is never used again
//! (its registration and heartbeat stream are refused), and no region may
//! name a peer on it. Leaving Up is refused when it would leave fewer Up
//! stores than the command's `min_up_stores` (the leader's max-replicas), so
//! two deletes racing each other cannot both pass: the second is checked
//! against the catalog the first produced.

use proto::metapb::{self, StoreState};

use super::{CommandOutcome, RouteCatalog};
use crate::error::{PdError, Result};

/// The state's name as operators read it.
pub fn state_name(state: StoreState) -> &'static str {
    match state {
        StoreState::Up => "Up",
        StoreState::Offline => "Offline",
        StoreState::Tombstone => "Tombstone",
    }
}

impl RouteCatalog {
    pub(super) fn set_store_state(
        &mut self,
        store_id: u64,
        to: StoreState,
        min_up_stores: u32,
    ) -> Result<CommandOutcome> {
        if store_id == 0 {
            return Err(PdError::InvalidArgument("store id 0".into()));
        }
        let store = self.stores.get(&store_id).ok_or(PdError::StoreNotFound(store_id))?;
        let from = StoreState::try_from(store.state)
            .map_err(|_| PdError::InvariantViolation(format!("store {store_id} has unknown state {}", store.state)))?;
        if from == to {
            return Ok(CommandOutcome::StoreState { state: to as i32, version: self.version });
        }
        match (from, to) {
            (StoreState::Up, StoreState::Offline) => {
                let up = self.stores.values().filter(|s| s.state == StoreState::Up as i32).count();
                let need = min_up_stores as usize;
                if up - 1 < need {
                    return Err(PdError::NotEnoughStores { need, have: up - 1 });
                }
            }
            (StoreState::Offline, StoreState::Up) => {}
            (StoreState::Offline, StoreState::Tombstone) => {
                let held = self.regions_on_store(store_id);
                if held > 0 {
                    return Err(PdError::StoreConflict(format!(
                        "store {store_id} still holds peers of {held} regions; it becomes Tombstone once they moved"
                    )));
                }
            }
            (StoreState::Tombstone, _) => {
                return Err(PdError::StoreConflict(format!("store {store_id} is tombstoned")));
            }
            _ => {
                return Err(PdError::StoreConflict(format!(
                    "store {store_id} cannot go from {} to {}",
                    state_name(from),
                    state_name(to)
                )));
            }
        }
        let record = metapb::Store { state: to as i32, ..store.clone() };
        self.put_store_row(record);
        self.bump_version();
        Ok(CommandOutcome::StoreState { state: to as i32, version: self.version })
    }

    /// How many regions list a peer on the store.
    pub fn regions_on_store(&self, store_id: u64) -> usize {
        self.regions.values().filter(|r| r.region.peers.iter().any(|p| p.store_id == store_id)).count()
    }
}
