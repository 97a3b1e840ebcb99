//! The replica repair checker: regions that lost a replica to a Down store,
//! or have fewer voters than max-replicas, get one back on a healthy store.
//!
//! For each region that is free (no operator, not in a joint state):
//!
//! - a peer on a **Down** store is replaced: a voter by a `Move` to the
//!   healthy Up store with no peer of the region that holds the fewest
//!   regions (lowest id on a tie); a learner, or a voter the region has
//!   more of than max-replicas, by a `RemovePeer` (nothing to re-create);
//! - otherwise a region with **fewer voters than max-replicas** gets an
//!   `AddPeer` on such a store.
//!
//! Regions closest to losing their quorum go first (fewest voters on live
//! stores), then by id; one plan per region per run, at most `max_plans`
//! per run, so a dead store's regions are re-created a few at a time. A
//! region with no candidate store, or whose voters on live stores are not a
//! majority (no change could commit), is skipped and reported.

use proto::metapb::PeerRole;

use super::cluster::{ClusterView, RegionView};
use super::plan::{CheckerOutput, Plan, PlanKind, Skip, Skipped};

pub fn check(view: &ClusterView, max_plans: usize) -> CheckerOutput {
    let mut out = CheckerOutput::default();
    let mut load = view.region_counts();
    let mut regions: Vec<&RegionView> = view.regions.values().filter(|r| view.is_free(r)).collect();
    let live_voters =
        |r: &RegionView| r.peers.iter().filter(|p| p.role == PeerRole::Voter && !view.is_down(p.store_id)).count();
    regions.sort_by_key(|r| (live_voters(r), r.id));
    for r in regions {
        if out.plans.len() >= max_plans {
            break;
        }
        let down_peer = r.peers.iter().filter(|p| view.is_down(p.store_id)).min_by_key(|p| p.store_id);
        let missing = r.voters() < view.max_replicas;
        if down_peer.is_none() && !missing {
            continue;
        }
        if !view.has_quorum(r) {
            out.skipped.push(Skipped { region_id: r.id, why: Skip::NoQuorum });
            continue;
        }
        let plan = match down_peer {
            Some(p) if p.role != PeerRole::Voter || r.voters() > view.max_replicas => Plan {
                region_id: r.id,
                kind: PlanKind::RemovePeer { store: p.store_id },
                reason: format!("{} on Down store {} is not needed", role_text(p.role), p.store_id),
            },
            Some(p) => {
                let Some(to) = view.pick_target(r, &load) else {
                    out.skipped.push(Skipped { region_id: r.id, why: Skip::NoCandidate });
                    continue;
                };
                *load.entry(to).or_default() += 1;
                Plan {
                    region_id: r.id,
                    kind: PlanKind::Move { from: p.store_id, to },
                    reason: format!("store {} is Down", p.store_id),
                }
            }
            None => {
                let Some(to) = view.pick_target(r, &load) else {
                    out.skipped.push(Skipped { region_id: r.id, why: Skip::NoCandidate });
                    continue;
                };
                *load.entry(to).or_default() += 1;
                Plan {
                    region_id: r.id,
                    kind: PlanKind::AddPeer { store: to },
                    reason: format!("{} of {} voters", r.voters(), view.max_replicas),
                }
            }
        };
        out.plans.push(plan);
    }
    out
}

fn role_text(role: PeerRole) -> &'static str {
    match role {
        PeerRole::Voter => "surplus voter",
        _ => "learner",
    }
}

#[cfg(test)]
mod tests {
    use proto::metapb::StoreState;

    use super::*;
    use crate::schedule::cluster::{PeerView, StoreView};

    fn view(stores: &[(u64, bool)], regions: &[(u64, &[u64])]) -> ClusterView {
        ClusterView {
            stores: stores.iter().map(|&(id, down)| (id, StoreView { id, state: StoreState::Up, down })).collect(),
            regions: regions
                .iter()
                .map(|&(id, on)| {
                    let peers = on.iter().map(|&store_id| PeerView { store_id, role: PeerRole::Voter }).collect();
                    (id, RegionView { id, peers })
                })
                .collect(),
            busy: Default::default(),
            max_replicas: 3,
        }
    }

    #[test]
    fn moves_spread_over_the_least_loaded_stores_and_are_capped() {
        let v = view(
            &[(1, false), (2, true), (3, false), (4, false), (5, false)],
            &[(10, &[1, 2, 3]), (11, &[1, 2, 3]), (12, &[1, 2, 3])],
        );
        let out = check(&v, 2);
        let kinds: Vec<PlanKind> = out.plans.iter().map(|p| p.kind).collect();
        assert_eq!(kinds, vec![PlanKind::Move { from: 2, to: 4 }, PlanKind::Move { from: 2, to: 5 }]);
    }

    #[test]
    fn a_region_without_quorum_is_skipped() {
        let v = view(&[(1, false), (2, true), (3, true), (4, false)], &[(10, &[1, 2, 3])]);
        let out = check(&v, 4);
        assert!(out.plans.is_empty());
        assert_eq!(out.skipped, vec![Skipped { region_id: 10, why: Skip::NoQuorum }]);
    }
}
