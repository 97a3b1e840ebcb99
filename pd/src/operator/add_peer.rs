//! The add-peer operator: a new voter of a region on a store, added as a
//! learner (its peer id allocated by PD), promoted once it has caught up.
//! Done when the catalog lists it as a voter.

use std::collections::BTreeSet;
use std::time::Duration;

use proto::metapb;

use super::clock::Now;
use super::peer_checks::{known_store, no_peer_on, usable_target};
use super::peer_plan::PeerPlan;
use super::peer_reports::PeerStatus;
use super::state::{Kind, Operator, Source};
use crate::catalog::{RegionRecord, RouteCatalog};
use crate::error::Result;

/// Checks adding a voter of `rec`'s region on `store_id`.
///
/// # Errors
///
/// `StoreNotFound`; `PeerExists` when the store holds a peer already;
/// `StoreUnavailable` when it is not Up, or is in `down` (the stores PD
/// reports Down).
pub fn validate(rec: &RegionRecord, catalog: &RouteCatalog, down: &BTreeSet<u64>, store_id: u64) -> Result<()> {
    known_store(catalog, store_id)?;
    no_peer_on(rec, store_id)?;
    usable_target(catalog, down, store_id)
}

/// A running add-peer operator with operator id `id` and new peer id
/// `new_peer_id`.
#[allow(clippy::too_many_arguments)]
pub fn operator(
    rec: &RegionRecord,
    status: Option<&PeerStatus>,
    catalog: &RouteCatalog,
    store_id: u64,
    (id, new_peer_id): (u64, u64),
    source: Source,
    now: Now,
    timeout: Duration,
) -> Operator {
    let peer = metapb::Peer { id: new_peer_id, store_id, role: metapb::PeerRole::Voter as i32 };
    let plan = PeerPlan { add: Some(peer), remove_store: None };
    Operator::stepped(id, rec, Kind::AddPeer(plan), source, now, timeout, status, catalog)
}
