//! The move operator: a region's replica goes from one store to another.
//!
//! Steps ([`PeerPlan`] derives them): leadership off the source store if it
//! leads there, a learner on the target (its peer id allocated by PD),
//! caught up, then one joint change promoting it and demoting the source's
//! voter, leaving the joint state if the region is left in it, and the
//! source's peer removed. A learner that moves stays a learner. Done when
//! the catalog lists no peer on the source and the new peer in its role.

use std::collections::BTreeSet;
use std::time::Duration;

use proto::metapb;

use super::clock::Now;
use super::peer_checks::{check_quorum, known_store, no_peer_on, peer_on, usable_target};
use super::peer_plan::PeerPlan;
use super::peer_reports::PeerStatus;
use super::state::{Kind, Operator, Source};
use crate::catalog::{RegionRecord, RouteCatalog};
use crate::error::{PdError, Result};

/// Checks a move of `rec`'s peer on `from` to `to`; returns the peer that
/// moves.
///
/// # Errors
///
/// `InvalidArgument` when `from == to`; `StoreNotFound`; `PeerNotFound`
/// (nothing on `from`); `PeerExists` (already a peer on `to`);
/// `StoreUnavailable` (`to` not Up, or Down); `QuorumAtRisk` when the
/// region would keep too few healthy voters. `down`: the stores PD reports
/// Down.
pub fn validate(
    rec: &RegionRecord,
    status: Option<&PeerStatus>,
    catalog: &RouteCatalog,
    down: &BTreeSet<u64>,
    from: u64,
    to: u64,
) -> Result<metapb::Peer> {
    if from == to {
        return Err(PdError::InvalidArgument(format!("a move needs two stores, not store {from} twice")));
    }
    known_store(catalog, from)?;
    known_store(catalog, to)?;
    let moving = peer_on(rec, from)?;
    no_peer_on(rec, to)?;
    usable_target(catalog, down, to)?;
    if moving.role != metapb::PeerRole::Learner as i32 {
        check_quorum(rec, status, catalog, down, Some(from), Some(to))?;
    }
    Ok(moving)
}

/// A running move of `moving` to `to` with operator id `id` and new peer
/// id `new_peer_id`.
#[allow(clippy::too_many_arguments)]
pub fn operator(
    rec: &RegionRecord,
    status: Option<&PeerStatus>,
    catalog: &RouteCatalog,
    moving: metapb::Peer,
    to: u64,
    (id, new_peer_id): (u64, u64),
    source: Source,
    now: Now,
    timeout: Duration,
) -> Operator {
    let role = if moving.role == metapb::PeerRole::Learner as i32 {
        metapb::PeerRole::Learner
    } else {
        metapb::PeerRole::Voter
    };
    let plan = PeerPlan {
        add: Some(metapb::Peer { id: new_peer_id, store_id: to, role: role as i32 }),
        remove_store: Some(moving.store_id),
    };
    Operator::stepped(id, rec, Kind::Move(plan), source, now, timeout, status, catalog)
}
