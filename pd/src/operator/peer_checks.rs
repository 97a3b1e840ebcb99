//! Checks the membership operators share when they are asked for: stores
//! that exist and can take a peer, peers that are (or are not) there, and
//! enough healthy voters left once the change is done.
//!
//! Store liveness comes in as `down`: the stores PD reports Down
//! (`StoreInfo.down`: silent for longer than the store down time). A Down
//! store takes no new peer, and its voters do not count as healthy.

use std::collections::BTreeSet;

use proto::metapb;

use super::peer_reports::PeerStatus;
use crate::catalog::{RegionRecord, RouteCatalog};
use crate::error::{PdError, Result};

/// # Errors
///
/// `StoreNotFound` for a store the catalog does not know.
pub fn known_store(catalog: &RouteCatalog, store_id: u64) -> Result<&metapb::Store> {
    catalog.store(store_id).ok_or(PdError::StoreNotFound(store_id))
}

/// A store that may receive a new peer.
///
/// # Errors
///
/// `StoreNotFound`; `StoreUnavailable` when it is Offline, Tombstone or
/// Down.
pub fn usable_target(catalog: &RouteCatalog, down: &BTreeSet<u64>, store_id: u64) -> Result<()> {
    let store = known_store(catalog, store_id)?;
    if store.state != metapb::StoreState::Up as i32 {
        let state = metapb::StoreState::try_from(store.state).map_or("UNKNOWN", |s| s.as_str_name());
        return Err(PdError::StoreUnavailable(format!("store {store_id} is {state}, not UP")));
    }
    if down.contains(&store_id) {
        return Err(PdError::StoreUnavailable(format!("store {store_id} is Down (no heartbeat for too long)")));
    }
    Ok(())
}

/// # Errors
///
/// `PeerExists` naming the peer `store_id` holds.
pub fn no_peer_on(rec: &RegionRecord, store_id: u64) -> Result<()> {
    match rec.region.peers.iter().find(|p| p.store_id == store_id) {
        None => Ok(()),
        Some(p) => {
            Err(PdError::PeerExists(format!("store {store_id} holds peer {} of region {}", p.id, rec.region.id)))
        }
    }
}

/// The region's peer on `store_id`.
///
/// # Errors
///
/// `PeerNotFound` when the store holds none.
pub fn peer_on(rec: &RegionRecord, store_id: u64) -> Result<metapb::Peer> {
    rec.region
        .peers
        .iter()
        .find(|p| p.store_id == store_id)
        .copied()
        .ok_or_else(|| PdError::PeerNotFound(format!("store {store_id} holds no peer of region {}", rec.region.id)))
}

/// Whether the region keeps a quorum of healthy voters once the voter on
/// `leaving_store` (if any) is gone and one on `joining_store` (if any) is
/// in. Voters are counted in the configuration the region is heading to
/// (incoming voters count, demoting ones do not); a voter is healthy when
/// the leader's last report does not list it as down and its store is
/// neither tombstoned nor Down. The joining voter counts as healthy: it is caught up before
/// it votes.
///
/// # Errors
///
/// `QuorumAtRisk` when the change would leave no voter, or fewer healthy
/// voters than a majority.
pub fn check_quorum(
    rec: &RegionRecord,
    status: Option<&PeerStatus>,
    catalog: &RouteCatalog,
    down: &BTreeSet<u64>,
    leaving_store: Option<u64>,
    joining_store: Option<u64>,
) -> Result<()> {
    let voting = [metapb::PeerRole::Voter as i32, metapb::PeerRole::IncomingVoter as i32];
    let healthy = |p: &metapb::Peer| {
        status.is_none_or(|s| !s.is_down(p.id))
            && !down.contains(&p.store_id)
            && catalog.store(p.store_id).is_some_and(|s| s.state != metapb::StoreState::Tombstone as i32)
    };
    let stay: Vec<&metapb::Peer> =
        rec.region.peers.iter().filter(|p| voting.contains(&p.role) && Some(p.store_id) != leaving_store).collect();
    let joining = u32::from(joining_store.is_some());
    let total = stay.len() as u32 + joining;
    let good = stay.iter().filter(|p| healthy(p)).count() as u32 + joining;
    let id = rec.region.id;
    if total == 0 {
        return Err(PdError::QuorumAtRisk(format!("region {id} would have no voter left")));
    }
    let majority = total / 2 + 1;
    if good < majority {
        return Err(PdError::QuorumAtRisk(format!(
            "region {id} would keep {good} healthy voter(s) of {total}, fewer than the {majority} a quorum needs"
        )));
    }
    Ok(())
}
