//! Destroying a removed peer.
//!
//! A peer is destroyed when this store applies a membership entry that no
//! longer lists it, or when PD's routes show its region at a newer
//! `conf_ver` without a peer on this store (a removed peer rarely applies
//! its own removal: the leader stops replicating to it as soon as it
//! appends that entry).
//!
//! The peer's state machine is fenced first ([`crate::raft::fence`]): its
//! writer jobs fail from then on, and the destroy waits for the worker's
//! call in progress, hooks included, so a split that committed before the
//! fence has indexed its new region, and nothing the worker still has
//! queued (an apply, a snapshot install) can write after the tombstone.
//! Then the peer leaves the range index, so nothing is served from it
//! again; its raft group is shut down; then one durable engine job deletes
//! its raft log and marks, its apply state and sessions, writes a tombstone
//! row (the region meta it had, its peer id), and deletes the keys of its
//! range that no other local region owns. The tombstone keeps a stale raft
//! message from creating the peer again (see
//! [`super::refusal::check_new_peer`]); a later peer of the region (a
//! higher peer id, added back by PD) may still be created.

use std::io;
use std::sync::Arc;

use prost::Message;
use proto::{metapb, raftpb};
use tracing::{info, warn};

use super::Node;
use crate::engine::{APPLY_STATE, DATA, REGION_STATE, SESSIONS, io_err};
use crate::metrics;

/// Why a peer is destroyed: the `reason` label of
/// `store_peers_destroyed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestroyReason {
    /// This replica applied a membership entry without itself.
    Removed,
    /// PD's routes list the region at a newer `conf_ver` without this store.
    Routes,
}

impl DestroyReason {
    pub fn label(self) -> &'static str {
        match self {
            DestroyReason::Removed => "removed",
            DestroyReason::Routes => "routes",
        }
    }
}

impl Node {
    /// Destroys this store's peer `peer_id` of `region_id`, if it is still
    /// the one running. Idempotent.
    ///
    /// # Errors
    ///
    /// Storage failures (the peer stays out of the index and stopped; its
    /// state is deleted by a later attempt).
    pub async fn destroy_peer(self: &Arc<Self>, region_id: u64, peer_id: u64, reason: DestroyReason) -> io::Result<()> {
        let Some(peer) = self.peer(region_id).filter(|p| p.shared.peer_id == peer_id) else {
            return Ok(());
        };
        // Fenced, and its worker's call in progress waited for, before
        // anything is looked at or deleted. Not under `creating`: that call
        // may be a split whose hook starts the new region's peer under it.
        peer.shared.fence.raise().await;
        let _guard = self.creating.lock().await;
        if !self.peer(region_id).is_some_and(|p| Arc::ptr_eq(&p, &peer)) {
            return Ok(());
        }
        let region = peer.region();
        // Out of the index first: no request reaches the peer from now on.
        let indexed = self.ranges.lock().unwrap().remove(region_id);
        self.stop_peer(&peer).await;
        // The keys of its range that no other local region owns: the range
        // its meta names and the one it held in the index (a peer that
        // admitted a snapshot it had not installed yet holds the latter).
        let orphaned = match indexed {
            Some(entry) => {
                let mut parts = self.unowned_parts(&region.start_key, &region.end_key);
                if (&entry.start_key, &entry.end_key) != (&region.start_key, &region.end_key) {
                    parts.extend(self.unowned_parts(&entry.start_key, &entry.end_key));
                }
                parts
            }
            None => Vec::new(),
        };
        let deleted = self.delete_peer_state(&region, peer_id, orphaned).await?;
        crate::raft::snapshot::remove_older(&self.engine.snapshot_dir, region_id, u64::MAX);
        self.peers.write().unwrap().remove(&region_id);
        self.regions_changed.notify_waiters();
        metrics::REGIONS.set(self.peers.read().unwrap().len() as i64);
        self.count_leaders();
        metrics::PEERS_DESTROYED.with_label_values(&[reason.label()]).inc();
        info!(region_id, peer_id, reason = reason.label(), keys_deleted = deleted, "region peer destroyed");
        Ok(())
    }

    /// Destroys the peer in the background (from a raft apply hook, which
    /// must not wait for its own raft to stop).
    pub fn destroy_peer_later(self: &Arc<Self>, region_id: u64, peer_id: u64, reason: DestroyReason) {
        let node = self.clone();
        tokio::spawn(async move {
            if let Err(e) = node.destroy_peer(region_id, peer_id, reason).await {
                warn!(region_id, peer_id, error = %e, "cannot destroy peer");
            }
        });
    }

    /// The pieces of `[start, end)` no initialized local region owns (the
    /// whole range, by the range invariant, unless the peer's meta was
    /// stale).
    fn unowned_parts(&self, start: &[u8], end: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let ranges = self.ranges.lock().unwrap();
        let mut owned: Vec<(Vec<u8>, Vec<u8>)> =
            ranges.overlapping(start, end).map(|r| (r.start_key.clone(), r.end_key.clone())).collect();
        owned.sort();
        let mut parts = Vec::new();
        let mut from = start.to_vec();
        for (start, end) in owned {
            if from < start {
                parts.push((from.clone(), start.clone()));
            }
            if end.is_empty() {
                return parts;
            }
            if end > from {
                from = end;
            }
        }
        if end.is_empty() || from.as_slice() < end {
            parts.push((from, end.to_vec()));
        }
        parts
    }

    /// Two durable jobs, data file first: the peer's apply state and
    /// sessions go, a tombstone row takes its place, and the keys in
    /// `orphaned` are deleted; then its raft state goes. A crash between the
    /// two leaves a tombstone with a raft log behind, which the next open
    /// clears; the other order would leave a live region without its log
    /// and vote. Returns how many keys it deleted.
    async fn delete_peer_state(
        &self,
        region: &metapb::Region,
        peer_id: u64,
        orphaned: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> io::Result<u64> {
        let region_id = region.id;
        let tombstone = raftpb::RegionLocalState {
            region: Some(region.clone()),
            state: raftpb::PeerState::Tombstone as i32,
            peer_id,
            ..Default::default()
        };
        let deleted = self
            .engine
            .writer
            .write(move |tx| {
                tx.open_table(APPLY_STATE).map_err(io_err)?.remove(region_id).map_err(io_err)?;
                tx.open_table(SESSIONS)
                    .map_err(io_err)?
                    .retain_in((region_id, 0)..=(region_id, u64::MAX), |_, _| false)
                    .map_err(io_err)?;
                tx.open_table(REGION_STATE)
                    .map_err(io_err)?
                    .insert(region_id, tombstone.encode_to_vec().as_slice())
                    .map_err(io_err)?;
                let mut data = tx.open_table(DATA).map_err(io_err)?;
                let mut deleted = 0u64;
                for (start, end) in &orphaned {
                    let mut n = 0u64;
                    if end.is_empty() {
                        data.retain_in::<&[u8], _>(start.as_slice().., |_, _| {
                            n += 1;
                            false
                        })
                        .map_err(io_err)?;
                    } else {
                        data.retain_in::<&[u8], _>(start.as_slice()..end.as_slice(), |_, _| {
                            n += 1;
                            false
                        })
                        .map_err(io_err)?;
                    }
                    deleted += n;
                }
                Ok(deleted)
            })
            .await?;
        self.engine.writer.write(move |tx| crate::raft::log_store::clear(tx, region_id)).await?;
        Ok(deleted)
    }

    /// Destroys local peers that PD's routes show removed: the region is
    /// listed at a newer `conf_ver` than any this store knows for it, with
    /// no peer of this one's id on this store.
    ///
    /// What the store knows is the newer of the peer's applied epoch and
    /// the one its range index holds: a new peer admitted under its
    /// leader's view (which lists it) may install a snapshot built long
    /// before it was added, whose membership does not list it yet, while
    /// PD's routes still show the region from before the add. Against the
    /// applied epoch alone, such a peer looked removed, was destroyed, and
    /// its id was refused for good: the region stayed a replica short.
    pub fn destroy_removed_by_routes(self: &Arc<Self>, routes: &proto::pdpb::RouteSnapshot) {
        for route in &routes.regions {
            let Some(region) = &route.region else { continue };
            let Some(peer) = self.peer(region.id) else { continue };
            let mine = peer.shared.peer_id;
            let applied = peer.shared.epoch().conf_ver;
            let indexed = self.ranges.lock().unwrap().get(region.id).map_or(0, |r| r.epoch.conf_ver);
            let known = applied.max(indexed);
            let listed = region.peers.iter().any(|p| p.id == mine && p.store_id == self.store_id);
            if !listed && region.region_epoch.unwrap_or_default().conf_ver > known {
                self.destroy_peer_later(region.id, mine, DestroyReason::Routes);
            }
        }
    }
}

#[cfg(test)]
mod tests;
