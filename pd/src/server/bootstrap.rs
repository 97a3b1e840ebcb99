//! Cluster bootstrap: once `replication.max-replicas` stores are up, the
//! leader creates the first regions (over the whole key space, pre-split as
//! configured) with one voter on each of those stores, and the route push
//! that follows tells the stores to start their raft groups.

use std::sync::Arc;
use std::time::Duration;

use proto::metapb;
use tracing::{info, warn};

use super::context::PdContext;
use crate::catalog::{CatalogCommand, CommandOutcome};
use crate::error::{PdError, Result};

/// Pause before retrying a bootstrap that failed for a transient reason.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// The bootstrap command for the stores registered now: the lowest
/// `max-replicas` up store ids.
///
/// # Errors
///
/// `AlreadyBootstrapped`, or `NotEnoughStores` while too few are up.
pub fn bootstrap_command(ctx: &PdContext) -> Result<CatalogCommand> {
    let state = ctx.catalog.read();
    if state.catalog.is_bootstrapped() {
        return Err(PdError::AlreadyBootstrapped);
    }
    let need = ctx.config.replication.max_replicas as usize;
    let up: Vec<u64> =
        state.catalog.stores().filter(|s| s.state == metapb::StoreState::Up as i32).map(|s| s.id).collect();
    if up.len() < need {
        return Err(PdError::NotEnoughStores { need, have: up.len() });
    }
    Ok(CatalogCommand::Bootstrap { store_ids: up[..need].to_vec(), split_keys: ctx.config.bootstrap_split_keys() })
}

/// Runs on every member; acts only while leading. Wakes on every catalog
/// change (a store registering bumps the version) and on leadership change.
pub async fn run(ctx: Arc<PdContext>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut routes = ctx.catalog.subscribe();
    let mut leader = ctx.leader_rx.clone();
    loop {
        let mut retry = false;
        if *leader.borrow_and_update() && !ctx.catalog.read().catalog.is_bootstrapped() {
            match bootstrap_command(&ctx) {
                Ok(cmd) => match ctx.propose(cmd).await {
                    // The regions are counted, not listed: a bootstrap of
                    // thousands would write one line of megabytes.
                    Ok(CommandOutcome::Bootstrapped { regions, version }) => {
                        info!(regions = regions.len(), version, "cluster bootstrapped")
                    }
                    Ok(out) => info!(?out, "cluster bootstrapped"),
                    Err(PdError::AlreadyBootstrapped) => {}
                    Err(e) => {
                        warn!(error = %e, "bootstrap failed; retrying");
                        retry = true;
                    }
                },
                Err(PdError::NotEnoughStores { need, have }) => {
                    info!(need, have, "waiting for stores to bootstrap")
                }
                Err(e) => warn!(error = %e, "cannot bootstrap yet"),
            }
        }
        if ctx.catalog.read().catalog.is_bootstrapped() {
            return;
        }
        tokio::select! {
            r = routes.changed() => if r.is_err() { return },
            r = leader.changed() => if r.is_err() { return },
            _ = shutdown.changed() => return,
            () = tokio::time::sleep(RETRY_INTERVAL), if retry => {}
        }
    }
}
