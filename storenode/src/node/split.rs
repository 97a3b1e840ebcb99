//! The node's part of a split, once a replica has applied it: index the new
//! range, start the new region's peer from its seeded state, let it
//! campaign at once where the parent was led, and report the result to PD
//! until PD's routes show it. The report names the original region's leader
//! and term, and each region's own leader and term only where this store's
//! peer of it leads: a split-born group has terms of its own.

use std::sync::Arc;

use futures::future::BoxFuture;

use proto::{metapb, pdpb};
use tracing::{error, info, warn};

use super::{Node, PeerOrigin, StartPeerError};
use crate::metrics;
use crate::raft::split::SplitApplied;

/// A split applied here whose result PD's routes do not show yet.
#[derive(Debug, Clone)]
pub struct PendingSplit {
    pub new: metapb::Region,
    pub parent: metapb::Region,
    pub directive_id: u64,
}

impl Node {
    /// Called by the parent's state machine after it applied a split, before
    /// the proposer hears of it. Boxed: starting the new peer registers this
    /// same hook on it.
    pub(super) fn split_applied(self: Arc<Self>, parent_id: u64, done: SplitApplied) -> BoxFuture<'static, ()> {
        Box::pin(async move { self.finish_split(parent_id, done).await })
    }

    async fn finish_split(self: &Arc<Self>, parent_id: u64, done: SplitApplied) {
        let new_id = done.new.id;
        // A peer created empty for the new region's traffic (before this
        // store held the parent) makes way for the seeded one.
        let empty = self.peer(new_id).filter(|_| !self.is_initialized(new_id));
        let indexed = self.ranges.lock().unwrap().split(&done.parent, done.new_peer_id.map(|_| &done.new));
        self.regions_changed.notify_waiters();
        if let Err(e) = &indexed {
            metrics::PEER_REFUSALS.with_label_values(&["split", e.label()]).inc();
            error!(region_id = parent_id, new_region_id = new_id, error = %e, "applied split conflicts with the range index");
        }
        let leading = self.peer(parent_id).is_some_and(|p| p.is_leader());
        if let (Some(peer_id), Ok(())) = (done.new_peer_id, &indexed) {
            if let Some(old) = empty {
                self.stop_peer(&old).await;
                let mut peers = self.peers.write().unwrap();
                if peers.get(&new_id).is_some_and(|p| Arc::ptr_eq(p, &old)) {
                    peers.remove(&new_id);
                }
            }
            let sizes = Some((done.left_keys, done.left_size));
            match self.start_peer_sized(done.new.clone(), peer_id, PeerOrigin::Split, sizes).await {
                Ok(peer) if leading => {
                    // No election timeout of silence after a split: the
                    // store that led the parent campaigns for the new region
                    // now, and the others' seeded logs match its own.
                    if let Some(raft) = peer.raft()
                        && let Err(e) = raft.trigger().elect(false).await
                    {
                        warn!(region_id = new_id, error = %e, "split-born peer could not campaign");
                    }
                }
                Ok(_) => {}
                Err(StartPeerError::Refused(_)) => {}
                Err(StartPeerError::Io(e)) => error!(region_id = new_id, error = %e, "cannot start split-born peer"),
            }
        }
        info!(
            region_id = parent_id,
            new_region_id = new_id,
            split_key = %pd::catalog::keys::display(&done.parent.start_key),
            leading,
            "split applied"
        );
        self.pending_splits
            .lock()
            .unwrap()
            .insert(new_id, PendingSplit { new: done.new, parent: done.parent, directive_id: done.directive_id });
        let _ = self.region_events.send(parent_id);
    }

    /// Whether raft traffic for `region`, which has no peer here, must wait
    /// for a split: an initialized local region of an older version still
    /// owns some of its keys, so the split that made `region` has not
    /// applied here yet. (A newer local region means the traffic is stale;
    /// creating the peer refuses it.)
    pub fn awaits_split(&self, region: &metapb::Region) -> bool {
        let version = region.region_epoch.unwrap_or_default().version;
        self.ranges
            .lock()
            .unwrap()
            .overlapping(&region.start_key, &region.end_key)
            .any(|r| r.region_id != region.id && r.epoch.version < version)
    }

    /// Holds traffic for `region` until the split that creates it applies
    /// here (its peer exists) or the keys are no longer covered (a snapshot
    /// moved the parent), at most `timeout`. Returns whether it may go on.
    pub async fn hold_for_split(&self, region: &metapb::Region, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.regions_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.peer(region.id).is_some() || !self.awaits_split(region) {
                metrics::RAFT_MESSAGES_HELD.with_label_values(&["delivered"]).inc();
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                metrics::RAFT_MESSAGES_HELD.with_label_values(&["dropped"]).inc();
                return false;
            }
        }
    }

    /// Whether a split that creates `new_region_id` is applied here and not
    /// yet in PD's routes.
    pub fn split_pending(&self, new_region_id: u64) -> bool {
        self.pending_splits.lock().unwrap().contains_key(&new_region_id)
    }

    /// The split reports this store should send now: one per pending split
    /// whose parent it leads, oldest split first (PD takes them in order;
    /// a later split of the same parent only fits after the earlier one).
    /// With `rescan`, also one per split it finds PD's routes missing
    /// without a pending entry (applied before a restart, which forgets
    /// pending splits): a walk over every route, so the periodic report
    /// asks for it, not each leadership change.
    pub fn split_reports(&self, rescan: bool) -> Vec<pdpb::SplitReport> {
        let pending: Vec<PendingSplit> = self.pending_splits.lock().unwrap().values().cloned().collect();
        let mut out = Vec::new();
        for p in &pending {
            if let Some(report) = self.report(vec![p.new.clone(), p.parent.clone()], p.parent.id, p.directive_id) {
                out.push(report);
            }
        }
        if rescan {
            out.extend(self.unreported_splits(&pending));
        }
        out
    }

    /// A report of `regions`, led from this store by its peer of `leader_region`,
    /// if that peer leads.
    fn report(&self, regions: Vec<metapb::Region>, leader_region: u64, directive_id: u64) -> Option<pdpb::SplitReport> {
        let leader = self.peer(leader_region).filter(|peer| peer.is_leader())?;
        let stats = |id: u64| {
            self.peer(id).map_or_else(pdpb::RegionStats::default, |peer| pdpb::RegionStats {
                approximate_size: peer.shared.approximate_size.load(std::sync::atomic::Ordering::Relaxed),
                approximate_keys: peer.shared.approximate_keys.load(std::sync::atomic::Ordering::Relaxed),
                ..Default::default()
            })
        };
        // Each region is its own group: name its leader and term only where
        // this store's peer of it leads, never the original's for the others.
        let leadership = |id: u64| {
            self.peer(id).filter(|peer| peer.is_leader()).map_or_else(pdpb::RegionLeadership::default, |peer| {
                pdpb::RegionLeadership { leader: Some(self.voter(peer.shared.peer_id)), term: peer.term() }
            })
        };
        Some(pdpb::SplitReport {
            stats: regions.iter().map(|r| stats(r.id)).collect(),
            leaderships: regions.iter().map(|r| leadership(r.id)).collect(),
            regions,
            leader: Some(self.voter(leader.shared.peer_id)),
            term: leader.term(),
            directive_id,
        })
    }

    /// This store's peer `peer_id` as a voter, as leaders are reported.
    fn voter(&self, peer_id: u64) -> metapb::Peer {
        metapb::Peer { id: peer_id, store_id: self.store_id, role: metapb::PeerRole::Voter as i32 }
    }

    /// Splits PD's routes do not show and no pending entry covers: a region
    /// this store leads whose local version is past the routed one, while
    /// the local regions covering the routed range are all past it too and
    /// cover exactly that range. Reported together, as a split is.
    fn unreported_splits(&self, pending: &[PendingSplit]) -> Vec<pdpb::SplitReport> {
        let routes = self.routes.snapshot();
        let mut out = Vec::new();
        for route in &routes.regions {
            let Some(old) = &route.region else { continue };
            let old_version = old.region_epoch.unwrap_or_default().version;
            let Some(peer) = self.initialized_peer(old.id).filter(|p| p.is_leader()) else { continue };
            if peer.region().region_epoch.unwrap_or_default().version <= old_version
                || pending.iter().any(|p| p.parent.id == old.id)
            {
                continue;
            }
            let covering: Vec<u64> = {
                let ranges = self.ranges.lock().unwrap();
                ranges.overlapping(&old.start_key, &old.end_key).map(|r| r.region_id).collect()
            };
            let Some(regions) =
                covering.iter().map(|id| self.initialized_peer(*id).map(|p| p.region())).collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            let newer = regions.iter().all(|r| r.region_epoch.unwrap_or_default().version > old_version);
            let exact = regions.first().is_some_and(|r| r.start_key == old.start_key)
                && regions.last().is_some_and(|r| r.end_key == old.end_key)
                && regions.windows(2).all(|w| w[0].end_key == w[1].start_key);
            if newer && exact && regions.len() > 1 {
                out.extend(self.report(regions, old.id, 0));
            }
        }
        out
    }

    /// Drops the pending splits PD's routes now show (the new region at its
    /// split version or later).
    pub(super) fn forget_reported_splits(&self, routes: &pdpb::RouteSnapshot) {
        let mut pending = self.pending_splits.lock().unwrap();
        if pending.is_empty() {
            return;
        }
        for route in &routes.regions {
            let Some(r) = &route.region else { continue };
            let reported = pending.get(&r.id).is_some_and(|p| {
                r.region_epoch.unwrap_or_default().version >= p.new.region_epoch.unwrap_or_default().version
            });
            if reported {
                pending.remove(&r.id);
            }
        }
    }
}
