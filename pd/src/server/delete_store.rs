//! `DeleteStore`: starts a store's decommission.
//!
//! An Up store becomes Offline: it keeps serving while the decommission
//! checker ([`crate::schedule::decommission`]) plans moves of its replicas to
//! healthy stores, and the replica check loop
//! ([`super::replica_runner`]) marks it Tombstone once the catalog lists no
//! peer on it. A store holding no replica goes straight to Tombstone.
//! Deleting an Offline store again is not an error: it answers the store as
//! it is, so a caller can repeat the request to follow the decommission.
//!
//! Refusals: `STORE_NOT_FOUND`; `STORE_CONFLICT` for a store that is
//! already Tombstone (gone for good, like every other request naming a
//! tombstoned store); `NOT_ENOUGH_STORES` when fewer Up stores than
//! `replication.max-replicas` would remain, checked by the catalog command
//! itself so two deletes racing each other cannot both pass.

use proto::{metapb, pdpb};
use tracing::info;

use super::context::PdContext;
use crate::catalog::{CatalogCommand, CommandOutcome};
use crate::error::{PdError, Result};

/// Marks the store Offline (or Tombstone, if it holds no replica) and
/// answers it as it is then.
///
/// # Errors
///
/// `InvalidArgument` for id 0, `StoreNotFound`, `StoreConflict` (already
/// Tombstone), `NotEnoughStores`, `NotLeader`, `Unavailable`.
pub async fn delete_store(ctx: &PdContext, store_id: u64) -> Result<pdpb::StoreInfo> {
    if store_id == 0 {
        return Err(PdError::InvalidArgument("store id 0".into()));
    }
    ctx.linearizable().await?;
    let state = current_state(ctx, store_id)?;
    if state == metapb::StoreState::Tombstone as i32 {
        return Err(PdError::StoreConflict(format!("store {store_id} is already Tombstone")));
    }
    let min_up_stores = ctx.config.replication.max_replicas;
    if state == metapb::StoreState::Up as i32 {
        set_state(ctx, store_id, metapb::StoreState::Offline, min_up_stores).await?;
        info!(store_id, "store is Offline: its replicas are to move away");
    }
    let empty = ctx.catalog.read().catalog.regions_on_store(store_id) == 0;
    if empty {
        match set_state(ctx, store_id, metapb::StoreState::Tombstone, min_up_stores).await {
            Ok(()) => info!(store_id, "store held no replica: it is Tombstone"),
            // A peer reached it in between: the replica check tombstones it
            // once that peer has moved too.
            Err(PdError::StoreConflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let state = ctx.catalog.read();
    let store = state.catalog.store(store_id).ok_or(PdError::StoreNotFound(store_id))?;
    let counts = state.catalog.counts_by_store().get(&store_id).copied().unwrap_or_default();
    Ok(ctx.store_info(store, counts))
}

fn current_state(ctx: &PdContext, store_id: u64) -> Result<i32> {
    let state = ctx.catalog.read();
    state.catalog.store(store_id).map(|s| s.state).ok_or(PdError::StoreNotFound(store_id))
}

/// Proposes a store state change.
///
/// # Errors
///
/// The catalog's refusal, or as [`PdContext::propose`].
pub async fn set_state(ctx: &PdContext, store_id: u64, state: metapb::StoreState, min_up_stores: u32) -> Result<()> {
    match ctx.propose(CatalogCommand::SetStoreState { store_id, state, min_up_stores }).await? {
        CommandOutcome::StoreState { .. } => Ok(()),
        other => Err(PdError::Fatal(format!("store state change answered {other:?}"))),
    }
}
