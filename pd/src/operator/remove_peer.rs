//! The remove-peer operator: a region's peer leaves a store. Leadership
//! moves off the store first if it leads there, a voter is demoted to
//! learner (leaving the joint state if the region is left in it), then the
//! learner is removed. Done when the catalog lists no peer on the store.

use std::collections::BTreeSet;
use std::time::Duration;

use super::clock::Now;
use super::peer_checks::{check_quorum, known_store, peer_on};
use super::peer_plan::PeerPlan;
use super::peer_reports::PeerStatus;
use super::state::{Kind, Operator, Source};
use crate::catalog::{RegionRecord, RouteCatalog};
use crate::error::Result;

/// Checks removing `rec`'s peer on `store_id` (a store in any state: a
/// tombstoned store's peers are exactly what must go).
///
/// # Errors
///
/// `StoreNotFound`; `PeerNotFound`; `QuorumAtRisk` when the region would
/// keep no voter or too few healthy ones (voters on `down` stores, the ones
/// PD reports Down, are not healthy).
pub fn validate(
    rec: &RegionRecord,
    status: Option<&PeerStatus>,
    catalog: &RouteCatalog,
    down: &BTreeSet<u64>,
    store_id: u64,
) -> Result<()> {
    known_store(catalog, store_id)?;
    peer_on(rec, store_id)?;
    check_quorum(rec, status, catalog, down, Some(store_id), None)
}

/// A running remove-peer operator with id `id`.
#[allow(clippy::too_many_arguments)]
pub fn operator(
    rec: &RegionRecord,
    status: Option<&PeerStatus>,
    catalog: &RouteCatalog,
    store_id: u64,
    id: u64,
    source: Source,
    now: Now,
    timeout: Duration,
) -> Operator {
    let plan = PeerPlan { add: None, remove_store: Some(store_id) };
    Operator::stepped(id, rec, Kind::RemovePeer(plan), source, now, timeout, status, catalog)
}
