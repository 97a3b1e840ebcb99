//! The transfer-leader operator: one directive to the region's leader,
//! done once the catalog names the target store's peer as the leader.
//!
//! Steps:
//! 1. **Validate** against the catalog ([`validate`]): the target store is
//!    Up and holds a voter of the region.
//! 2. **Send** `Directive{TransferLeader{peer}}` with the epoch PD saw to
//!    the region's current leader; again when the leader moves, and every
//!    few seconds without progress. The leader hands over with openraft's
//!    leader transfer; the new leader reports the region at once.
//! 3. **Done** when the catalog's leader of the region is on the target
//!    store ([`TransferPlan::result`](super::transfer_plan::TransferPlan::result)). A transfer to the store that leads
//!    already is done at once.

use std::time::Duration;

use proto::metapb;

use super::clock::Now;
use super::state::{Kind, Operator, Source};
use super::transfer_plan::TransferPlan;
use crate::catalog::RegionRecord;
use crate::error::{PdError, Result};

/// A leader transfer moves no data: time for an election or two.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The region's voter on `to_store_id`, if the transfer may go there.
///
/// # Errors
///
/// `StoreNotFound` for an unknown store; `StoreConflict` when it is not Up
/// (offline or tombstoned); `InvalidArgument` when it holds no voter of the
/// region.
pub fn validate(rec: &RegionRecord, store: Option<&metapb::Store>, to_store_id: u64) -> Result<metapb::Peer> {
    let store = store.ok_or(PdError::StoreNotFound(to_store_id))?;
    if store.state != metapb::StoreState::Up as i32 {
        let state = metapb::StoreState::try_from(store.state).map_or("unknown", |s| s.as_str_name());
        return Err(PdError::StoreConflict(format!("store {to_store_id} is {state}, not UP")));
    }
    rec.region
        .peers
        .iter()
        .find(|p| p.store_id == to_store_id && p.role == metapb::PeerRole::Voter as i32)
        .copied()
        .ok_or_else(|| {
            PdError::InvalidArgument(format!("store {to_store_id} holds no voter of region {}", rec.region.id))
        })
}

/// A running transfer-leader operator for `rec` with id `id`.
pub fn operator(rec: &RegionRecord, to: metapb::Peer, id: u64, source: Source, now: Now) -> Operator {
    let step = format!("transfer of region {} leadership to store {} started", rec.region.id, to.store_id);
    Operator::running(id, rec, Kind::TransferLeader(TransferPlan { to }), source, step, now, TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RegionRecord {
        RegionRecord {
            region: metapb::Region {
                id: 2,
                region_epoch: Some(metapb::RegionEpoch { conf_ver: 1, version: 1 }),
                peers: vec![
                    metapb::Peer { id: 3, store_id: 1, role: metapb::PeerRole::Voter as i32 },
                    metapb::Peer { id: 4, store_id: 5, role: metapb::PeerRole::Learner as i32 },
                ],
                ..Default::default()
            },
            leader: None,
            term: 0,
        }
    }

    fn store(id: u64, state: metapb::StoreState) -> metapb::Store {
        metapb::Store { id, state: state as i32, ..Default::default() }
    }

    #[test]
    fn only_an_up_store_holding_a_voter_may_lead() {
        let rec = record();
        assert_eq!(validate(&rec, Some(&store(1, metapb::StoreState::Up)), 1).unwrap().id, 3);
        assert!(matches!(validate(&rec, None, 9), Err(PdError::StoreNotFound(9))));
        assert!(matches!(
            validate(&rec, Some(&store(1, metapb::StoreState::Tombstone)), 1),
            Err(PdError::StoreConflict(_))
        ));
        // A learner cannot lead.
        assert!(matches!(validate(&rec, Some(&store(5, metapb::StoreState::Up)), 5), Err(PdError::InvalidArgument(_))));
        assert!(matches!(validate(&rec, Some(&store(7, metapb::StoreState::Up)), 7), Err(PdError::InvalidArgument(_))));
    }
}
