//! A bootstrap region's first raft state, seeded like a split-born one.
//!
//! Every replica of a bootstrap region writes the same state before its
//! raft starts: applied, committed and purged up to the synthetic init log
//! id (term 5, index 5, see [`super::split::init_log_id`]) with the region's
//! voters as the membership there, and the init vote. No region's log then
//! starts at index 0, so a peer that joins later (a learner being added)
//! always begins from a snapshot, which carries the region meta as of its
//! log index. Region meta therefore only ever follows applied entries on
//! every replica alike, and `conf_ver` agrees everywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use openraft::Membership;
use proto::metapb;
use redb::ReadableTable;

use super::apply_state::ApplyState;
use super::split::{init_log_id, init_vote};
use super::{PeerNode, StoredMembership, encode, log_store};
use crate::engine::{APPLY_STATE, Engine, io_err};

/// Seeds `region`'s raft state with its voters unless the engine already
/// holds an applied state for it (an earlier run seeded it). Returns
/// whether it seeded.
///
/// # Errors
///
/// Storage failures, or a region without voters.
pub async fn seed(engine: &Engine, region: &metapb::Region) -> io::Result<bool> {
    let voters: BTreeSet<u64> =
        region.peers.iter().filter(|p| p.role == metapb::PeerRole::Voter as i32).map(|p| p.id).collect();
    let nodes: BTreeMap<u64, PeerNode> =
        region.peers.iter().map(|p| (p.id, PeerNode { store_id: p.store_id })).collect();
    if voters.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("region {} has no voter", region.id)));
    }
    let membership = Membership::new(vec![voters], nodes).map_err(io_err)?;
    let state = ApplyState {
        last_applied: Some(init_log_id()),
        membership: StoredMembership::new(Some(init_log_id()), membership),
        clock_ms: 0,
        last_sweep_ms: 0,
    };
    let encoded = encode(&state)?;
    let region_id = region.id;
    engine
        .writer
        .write(move |tx| {
            let mut states = tx.open_table(APPLY_STATE).map_err(io_err)?;
            if states.get(region_id).map_err(io_err)?.is_some() {
                return Ok(false);
            }
            states.insert(region_id, encoded.as_slice()).map_err(io_err)?;
            log_store::seed(tx, region_id, init_log_id(), init_vote())?;
            Ok(true)
        })
        .await
}
