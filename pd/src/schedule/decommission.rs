//! The decommission checker: drains Offline stores.
//!
//! Every peer on an Offline store is replaced: a voter by a `Move` to the
//! healthy Up store with no peer of the region that holds the fewest
//! regions (lowest id on a tie); a learner, or a voter the region has more
//! of than max-replicas, by a `RemovePeer`. Offline stores are drained in
//! id order, their regions in id order, at most `max_plans` plans per run;
//! regions under an operator or in a joint state wait for a later run, and
//! a region with no candidate store, or without a quorum on live stores,
//! is skipped and reported.
//!
//! An Offline store that no region has a peer on any more is **ready for
//! Tombstone**: the server proposes the state change, which the catalog
//! checks again.

use proto::metapb::{PeerRole, StoreState};

use super::cluster::ClusterView;
use super::plan::{CheckerOutput, Plan, PlanKind, Skip, Skipped};

/// What one run decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decommission {
    pub output: CheckerOutput,
    /// Offline stores no region has a peer on, in id order.
    pub ready_for_tombstone: Vec<u64>,
}

pub fn check(view: &ClusterView, max_plans: usize) -> Decommission {
    let mut d = Decommission::default();
    let mut load = view.region_counts();
    let offline = view.stores.values().filter(|s| s.state == StoreState::Offline);
    for store in offline {
        let mut held = view.regions.values().filter(|r| r.has_peer_on(store.id)).peekable();
        if held.peek().is_none() {
            d.ready_for_tombstone.push(store.id);
            continue;
        }
        for r in held {
            if d.output.plans.len() >= max_plans {
                return d;
            }
            if !view.is_free(r) {
                continue;
            }
            if !view.has_quorum(r) {
                d.output.skipped.push(Skipped { region_id: r.id, why: Skip::NoQuorum });
                continue;
            }
            let role = r.peers.iter().find(|p| p.store_id == store.id).map_or(PeerRole::Voter, |p| p.role);
            let kind = if role != PeerRole::Voter || r.voters() > view.max_replicas {
                PlanKind::RemovePeer { store: store.id }
            } else {
                let Some(to) = view.pick_target(r, &load) else {
                    d.output.skipped.push(Skipped { region_id: r.id, why: Skip::NoCandidate });
                    continue;
                };
                *load.entry(to).or_default() += 1;
                PlanKind::Move { from: store.id, to }
            };
            d.output.plans.push(Plan { region_id: r.id, kind, reason: format!("store {} is Offline", store.id) });
        }
    }
    d
}
