//! Membership entries and the region's meta.
//!
//! A membership entry rewrites the region's peers (ids, stores, roles) and
//! bumps its `conf_ver`, in the same engine transaction as the apply state,
//! so the region meta in the engine always follows the applied log. Every
//! replica starts from the same meta (a seeded bootstrap or split-born
//! state, or a snapshot taken at an applied index) and applies the same
//! entries, so every replica computes the same `conf_ver`.
//!
//! A membership that lists the same peers with the same roles as the meta
//! (the one a region was seeded with, or openraft re-adding a learner it
//! already has) changes nothing: `conf_ver` counts changes, not entries.
//!
//! Roles follow openraft's configs: with one config, its members are
//! voters and every other node a learner; with a joint config (old, new),
//! members of both are voters, members of the new one only are incoming
//! voters, of the old one only demoting voters.

use std::io;

use openraft::Membership;
use prost::Message;
use proto::metapb::{self, PeerRole};
use proto::raftpb;
use redb::ReadableTable;

use super::PeerNode;
use crate::engine::{REGION_STATE, Txn, io_err};

/// What applying one membership entry did to the region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MembershipApplied {
    /// The peers or their roles changed, and `conf_ver` with them.
    pub changed: bool,
    /// This replica's peer is no longer part of the region.
    pub removed_self: bool,
}

/// The region's peers as `membership` has them: peers already in `current`
/// keep their order, new ones follow by id.
pub fn peers_of(membership: &Membership<u64, PeerNode>, current: &[metapb::Peer]) -> Vec<metapb::Peer> {
    let configs = membership.get_joint_config();
    let role = |id: u64| -> PeerRole {
        match configs.as_slice() {
            [only] => {
                if only.contains(&id) {
                    PeerRole::Voter
                } else {
                    PeerRole::Learner
                }
            }
            [old, new, ..] => match (old.contains(&id), new.contains(&id)) {
                (true, true) => PeerRole::Voter,
                (false, true) => PeerRole::IncomingVoter,
                (true, false) => PeerRole::DemotingVoter,
                (false, false) => PeerRole::Learner,
            },
            [] => PeerRole::Learner,
        }
    };
    let peer = |id: u64, node: &PeerNode| metapb::Peer { id, store_id: node.store_id, role: role(id) as i32 };
    let mut out: Vec<metapb::Peer> =
        current.iter().filter_map(|p| membership.get_node(&p.id).map(|node| peer(p.id, node))).collect();
    for (id, node) in membership.nodes() {
        if !current.iter().any(|p| p.id == *id) {
            out.push(peer(*id, node));
        }
    }
    out
}

/// Applies a membership entry to `region` inside the apply transaction:
/// when the peers or roles differ, rewrites them, bumps `conf_ver` and
/// records the new meta in the region's state row.
///
/// `was_member`: the membership applied before this entry has this peer.
/// Only then does an entry without it remove it: a new peer catching up
/// from a snapshot older than its own addition replays entries from
/// before it was added, none of which name it.
///
/// # Errors
///
/// Storage and decode failures.
pub fn apply(
    tx: &Txn,
    region: &mut metapb::Region,
    membership: &Membership<u64, PeerNode>,
    my_peer_id: u64,
    was_member: bool,
) -> io::Result<MembershipApplied> {
    let peers = peers_of(membership, &region.peers);
    let removed_self = was_member && membership.get_node(&my_peer_id).is_none();
    if peers == region.peers {
        return Ok(MembershipApplied { changed: false, removed_self });
    }
    region.peers = peers;
    let epoch = region.region_epoch.get_or_insert_with(Default::default);
    epoch.conf_ver += 1;
    let mut states = tx.open_table(REGION_STATE).map_err(io_err)?;
    let mut row = match states.get(region.id).map_err(io_err)? {
        Some(v) => raftpb::RegionLocalState::decode(v.value()).map_err(io_err)?,
        None => raftpb::RegionLocalState { peer_id: my_peer_id, ..Default::default() },
    };
    row.region = Some(region.clone());
    states.insert(region.id, row.encode_to_vec().as_slice()).map_err(io_err)?;
    Ok(MembershipApplied { changed: true, removed_self })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn node(store_id: u64) -> PeerNode {
        PeerNode { store_id }
    }

    fn peer(id: u64, store_id: u64, role: PeerRole) -> metapb::Peer {
        metapb::Peer { id, store_id, role: role as i32 }
    }

    fn membership(configs: Vec<Vec<u64>>, nodes: &[(u64, u64)]) -> Membership<u64, PeerNode> {
        let configs = configs.into_iter().map(|c| c.into_iter().collect::<BTreeSet<_>>()).collect();
        let nodes: BTreeMap<u64, PeerNode> = nodes.iter().map(|(id, s)| (*id, node(*s))).collect();
        Membership::new(configs, nodes).unwrap()
    }

    #[test]
    fn roles_follow_the_configs() {
        let current = vec![peer(11, 1, PeerRole::Voter), peer(12, 2, PeerRole::Voter), peer(13, 3, PeerRole::Voter)];
        // A learner on store 4.
        let m = membership(vec![vec![11, 12, 13]], &[(11, 1), (12, 2), (13, 3), (14, 4)]);
        let mut want = current.clone();
        want.push(peer(14, 4, PeerRole::Learner));
        assert_eq!(peers_of(&m, &current), want);
        // Joint: 14 comes in, 11 goes out.
        let m = membership(vec![vec![11, 12, 13], vec![12, 13, 14]], &[(11, 1), (12, 2), (13, 3), (14, 4)]);
        let got = peers_of(&m, &want);
        assert_eq!(
            got,
            vec![
                peer(11, 1, PeerRole::DemotingVoter),
                peer(12, 2, PeerRole::Voter),
                peer(13, 3, PeerRole::Voter),
                peer(14, 4, PeerRole::IncomingVoter)
            ]
        );
        // Uniform again, 11 kept as a learner, then removed.
        let m = membership(vec![vec![12, 13, 14]], &[(11, 1), (12, 2), (13, 3), (14, 4)]);
        assert_eq!(peers_of(&m, &got)[0], peer(11, 1, PeerRole::Learner));
        let m = membership(vec![vec![12, 13, 14]], &[(12, 2), (13, 3), (14, 4)]);
        assert_eq!(
            peers_of(&m, &got),
            vec![peer(12, 2, PeerRole::Voter), peer(13, 3, PeerRole::Voter), peer(14, 4, PeerRole::Voter)]
        );
    }

    #[tokio::test]
    async fn conf_ver_counts_changes_and_the_row_follows() {
        let dir = tempfile::tempdir().unwrap();
        let engine = crate::engine::Engine::open(dir.path()).unwrap();
        let mut region = metapb::Region {
            id: 7,
            region_epoch: Some(metapb::RegionEpoch { conf_ver: 1, version: 1 }),
            peers: vec![peer(11, 1, PeerRole::Voter), peer(12, 2, PeerRole::Voter), peer(13, 3, PeerRole::Voter)],
            ..Default::default()
        };
        let same = membership(vec![vec![11, 12, 13]], &[(11, 1), (12, 2), (13, 3)]);
        let learner = membership(vec![vec![11, 12, 13]], &[(11, 1), (12, 2), (13, 3), (14, 4)]);
        let gone = membership(vec![vec![12, 13, 14]], &[(12, 2), (13, 3), (14, 4)]);
        let tx = engine.begin_txn().unwrap();
        let a = apply(&tx, &mut region, &same, 11, true).unwrap();
        assert_eq!(a, MembershipApplied { changed: false, removed_self: false });
        assert_eq!(region.region_epoch.unwrap().conf_ver, 1);
        let a = apply(&tx, &mut region, &learner, 11, true).unwrap();
        assert_eq!(a, MembershipApplied { changed: true, removed_self: false });
        assert_eq!(region.region_epoch.unwrap().conf_ver, 2);
        // Peer 14 replaying, from an old snapshot, entries from before it
        // was added is not removed by them.
        let mut replayed = region.clone();
        let a = apply(&tx, &mut replayed, &same, 14, false).unwrap();
        assert_eq!(a, MembershipApplied { changed: true, removed_self: false });
        let a = apply(&tx, &mut region, &gone, 11, true).unwrap();
        assert_eq!(a, MembershipApplied { changed: true, removed_self: true });
        assert_eq!(region.region_epoch.unwrap().conf_ver, 3);
        tx.commit_now().unwrap();
        let row = engine.region_state(7).unwrap().unwrap();
        assert_eq!(row.region.unwrap(), region);
        assert_eq!(row.peer_id, 11);
    }
}
