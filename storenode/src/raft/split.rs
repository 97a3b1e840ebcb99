//! The split admin command: what the leader proposes, and how every replica
//! applies it in one engine transaction.
//!
//! A split is metadata only: the keys stay where they are in the shared data
//! table. Applying it, in the same transaction as the rest of the apply
//! batch:
//!
//! - checks the command's epoch against the region's current one (a split
//!   proposed against an older range or membership is refused, never applied
//!   to the wrong keys) and that the key is strictly inside the range;
//! - shrinks the parent to `[split_key, end)` with version + 1 and records
//!   its meta;
//! - creates the new region `[start, split_key)`, version + 1, with the
//!   parent's peers under the new peer ids, and *seeds* its raft state: an
//!   applied state and a purged log at the synthetic [`init_log_id`] with the
//!   parent's membership mapped to the new peer ids, a vote at that term,
//!   and a copy of the parent's session table, so a write retried across
//!   the split is still answered once.
//!
//! The seeded group never goes through openraft's `initialize`: that works
//! only on a pristine node, makes every member a voter and writes the
//! membership at index 0, where a replica that missed the split could take
//! it by plain append. With the log purged up to index [`RAFT_INIT_INDEX`],
//! a replica that missed the split can only catch up by snapshot.
//!
//! If this store already destroyed a peer of the new region (a tombstone),
//! or already holds it initialized (its data came by snapshot), the new
//! region is not seeded again: the parent still shrinks.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use openraft::Membership;
use openraft::vote::RaftLeaderId;
use pd::catalog::keys;
use prost::Message;
use proto::{metapb, raftpb};
use redb::{ReadableTable, Table};
use serde::{Deserialize, Serialize};

use super::apply_state::ApplyState;
use super::session::BatchSessions;
use super::{KvReply, LogId, PeerNode, StoredMembership, TypeConfig, Vote, encode, log_store};
use crate::engine::{APPLY_STATE, REGION_STATE, Txn, io_err};

/// The term and index of a split-born region's synthetic first log id (as
/// TiKV's `RAFT_INIT_LOG_TERM` / `RAFT_INIT_LOG_INDEX`): above anything a
/// pristine peer holds, so a replica that has not applied the split cannot
/// accept the new group's entries by append and needs a snapshot.
pub const RAFT_INIT_TERM: u64 = 5;
pub const RAFT_INIT_INDEX: u64 = 5;

/// The log id every replica of a split-born region starts at.
pub fn init_log_id() -> LogId {
    LogId::new(
        openraft::type_config::alias::LeaderIdOf::<TypeConfig>::new(RAFT_INIT_TERM, 0).to_committed(),
        RAFT_INIT_INDEX,
    )
}

/// The vote a split-born replica starts with: the init term, no leader.
pub fn init_vote() -> Vote {
    Vote::new(RAFT_INIT_TERM, 0)
}

/// The split admin entry. Ids come from PD, so every replica creates the
/// same region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitCommand {
    pub split_key: Vec<u8>,
    pub new_region_id: u64,
    /// One per parent peer, in the order of the parent's `peers`.
    pub new_peer_ids: Vec<u64>,
    /// The parent's full epoch the leader checked: `(conf_ver, version)`.
    pub conf_ver: u64,
    pub version: u64,
    /// The leader's estimate of the left part's keys and bytes, measured
    /// when it proposed; replicas split their approximate sizes by it.
    pub left_keys: u64,
    pub left_size: u64,
    /// The PD directive that asked for it; 0 if none.
    pub directive_id: u64,
}

/// A split this replica applied.
#[derive(Debug, Clone)]
pub struct SplitApplied {
    /// The parent after the split: `[split_key, end)`.
    pub parent: metapb::Region,
    /// The new region: `[start, split_key)`.
    pub new: metapb::Region,
    /// This store's peer of the new region, if it was seeded here.
    pub new_peer_id: Option<u64>,
    pub left_keys: u64,
    pub left_size: u64,
    pub directive_id: u64,
}

/// The two regions a split of `parent` at `cmd` produces: (new left part,
/// shrunk parent).
pub fn split_regions(parent: &metapb::Region, cmd: &SplitCommand) -> (metapb::Region, metapb::Region) {
    let epoch = parent.region_epoch.unwrap_or_default();
    let next = metapb::RegionEpoch { conf_ver: epoch.conf_ver, version: epoch.version + 1 };
    let new = metapb::Region {
        id: cmd.new_region_id,
        start_key: parent.start_key.clone(),
        end_key: cmd.split_key.clone(),
        region_epoch: Some(next),
        peers: parent
            .peers
            .iter()
            .zip(&cmd.new_peer_ids)
            .map(|(p, id)| metapb::Peer { id: *id, store_id: p.store_id, role: p.role })
            .collect(),
    };
    let shrunk = metapb::Region { start_key: cmd.split_key.clone(), region_epoch: Some(next), ..parent.clone() };
    (new, shrunk)
}

/// Why a split cannot apply to `region` now, as the reply the proposer
/// gets; `None` if it can.
pub fn refusal(region: &metapb::Region, cmd: &SplitCommand) -> Option<KvReply> {
    let epoch = region.region_epoch.unwrap_or_default();
    if epoch.conf_ver != cmd.conf_ver || epoch.version != cmd.version {
        return Some(KvReply::EpochNotMatch { current: region.clone() });
    }
    let inside = region.start_key.as_slice() < cmd.split_key.as_slice()
        && keys::contains(&region.start_key, &region.end_key, &cmd.split_key);
    if !inside {
        return Some(KvReply::KeyNotInRegion { key: cmd.split_key.clone(), region: region.clone() });
    }
    if cmd.new_peer_ids.len() != region.peers.len() || cmd.new_region_id == region.id {
        return Some(KvReply::EpochNotMatch { current: region.clone() });
    }
    None
}

/// Applies `cmd` to the parent `region` inside the apply batch's
/// transaction. On success `region` becomes the shrunk parent (later
/// entries of the batch are checked against it) and the reply names both
/// regions; a refused split changes nothing.
///
/// # Errors
///
/// Storage and encode failures.
pub fn apply(
    tx: &Txn,
    data: &mut Table<&[u8], &[u8]>,
    sessions: &mut BatchSessions<'_, '_>,
    region: &mut metapb::Region,
    state: &ApplyState,
    my_peer_id: u64,
    cmd: &SplitCommand,
) -> io::Result<Result<SplitApplied, KvReply>> {
    if let Some(reply) = refusal(region, cmd) {
        return Ok(Err(reply));
    }
    let (new, shrunk) = split_regions(region, cmd);
    let mut region_states = tx.open_table(REGION_STATE).map_err(io_err)?;
    let mut apply_states = tx.open_table(APPLY_STATE).map_err(io_err)?;

    let my_new_peer = region.peers.iter().position(|p| p.id == my_peer_id).map(|i| cmd.new_peer_ids[i]);
    let existing = match region_states.get(new.id).map_err(io_err)? {
        Some(v) => Some(raftpb::RegionLocalState::decode(v.value()).map_err(io_err)?),
        None => None,
    };
    let tombstoned = existing.as_ref().is_some_and(|s| s.state == raftpb::PeerState::Tombstone as i32);
    let has_data = apply_states.get(new.id).map_err(io_err)?.is_some();
    let new_peer_id = my_new_peer.filter(|_| !tombstoned && !has_data);

    if let Some(peer_id) = new_peer_id {
        // The new region's peer starts taking log entries once this batch
        // commits; a replay of this split after a crash would seed its log
        // again and drop them, so the split must be durable first.
        tx.sync_data();
        let membership = map_membership(&state.membership, region, &cmd.new_peer_ids)?;
        let seeded = ApplyState {
            last_applied: Some(init_log_id()),
            membership: StoredMembership::new(Some(init_log_id()), membership),
            clock_ms: state.clock_ms,
            last_sweep_ms: state.last_sweep_ms,
        };
        apply_states.insert(new.id, encode(&seeded)?.as_slice()).map_err(io_err)?;
        log_store::seed(tx, new.id, init_log_id(), init_vote())?;
        let row = raftpb::RegionLocalState {
            region: Some(new.clone()),
            state: raftpb::PeerState::Normal as i32,
            peer_id,
            ..Default::default()
        };
        region_states.insert(new.id, row.encode_to_vec().as_slice()).map_err(io_err)?;
        sessions.copy_to(new.id)?;
    }

    if tombstoned && !has_data {
        // This store destroyed its peer of the new region earlier (removed
        // from it elsewhere in the log): the left part's keys have no owner
        // here once the parent shrinks.
        delete_range(data, &new.start_key, &new.end_key)?;
    }

    let mut parent_row = match region_states.get(region.id).map_err(io_err)? {
        Some(v) => raftpb::RegionLocalState::decode(v.value()).map_err(io_err)?,
        None => raftpb::RegionLocalState { peer_id: my_peer_id, ..Default::default() },
    };
    parent_row.region = Some(shrunk.clone());
    region_states.insert(region.id, parent_row.encode_to_vec().as_slice()).map_err(io_err)?;

    *region = shrunk.clone();
    Ok(Ok(SplitApplied {
        parent: shrunk,
        new,
        new_peer_id,
        left_keys: cmd.left_keys,
        left_size: cmd.left_size,
        directive_id: cmd.directive_id,
    }))
}

/// Deletes the user keys in `[start, end)` (an empty end is unbounded).
fn delete_range(data: &mut Table<&[u8], &[u8]>, start: &[u8], end: &[u8]) -> io::Result<()> {
    if end.is_empty() {
        data.retain_in::<&[u8], _>(start.., |_, _| false).map_err(io_err)
    } else {
        data.retain_in::<&[u8], _>(start..end, |_, _| false).map_err(io_err)
    }
}

/// The parent's membership with every peer id replaced by the new region's
/// peer at the same position in the parent's peer list: same stores, same
/// voters and learners, same joint state.
fn map_membership(
    stored: &StoredMembership,
    parent: &metapb::Region,
    new_peer_ids: &[u64],
) -> io::Result<Membership<u64, PeerNode>> {
    let ids: BTreeMap<u64, u64> = parent.peers.iter().map(|p| p.id).zip(new_peer_ids.iter().copied()).collect();
    let map = |id: &u64| {
        ids.get(id).copied().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("region {}: raft member {id} is not in the region's peers", parent.id),
            )
        })
    };
    let membership = stored.membership();
    let configs = membership
        .get_joint_config()
        .iter()
        .map(|c| c.iter().map(&map).collect::<io::Result<BTreeSet<u64>>>())
        .collect::<io::Result<Vec<_>>>()?;
    let nodes = membership.nodes().map(|(id, n)| Ok((map(id)?, n.clone()))).collect::<io::Result<BTreeMap<_, _>>>()?;
    Membership::new(configs, nodes).map_err(io_err)
}

#[cfg(test)]
mod tests;
