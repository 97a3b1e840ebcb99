//! Destroying a removed peer.
//!
//! A peer is destroyed when this store applies a membership entry that no
//! longer lists it, or when PD's routes show its region at a newer
//! `conf_ver` without a peer on this store (a removed peer rarely applies
//! its own removal: the leader stops replicating to it as soon as it
//! appends that entry).
//!
//! The peer leaves the range index first, so nothing is served from it
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
        let _guard = self.creating.lock().await;
        let Some(peer) = self.peer(region_id).filter(|p| p.shared.peer_id == peer_id) else {
            return Ok(());
        };
        let region = peer.region();
        // Out of the index first: no request reaches the peer from now on.
        let initialized = self.ranges.lock().unwrap().remove(region_id).is_some();
        self.stop_peer(&peer).await;
        // The keys of its range that no other local region owns.
        let orphaned = if initialized { self.unowned_parts(&region) } else { Vec::new() };
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

    /// The pieces of `region`'s range no initialized local region owns (the
    /// whole range, by the range invariant, unless the peer's meta was
    /// stale).
    fn unowned_parts(&self, region: &metapb::Region) -> Vec<(Vec<u8>, Vec<u8>)> {
        let ranges = self.ranges.lock().unwrap();
        let mut owned: Vec<(Vec<u8>, Vec<u8>)> = ranges
            .overlapping(&region.start_key, &region.end_key)
            .map(|r| (r.start_key.clone(), r.end_key.clone()))
            .collect();
        owned.sort();
        let mut parts = Vec::new();
        let mut from = region.start_key.clone();
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
        if region.end_key.is_empty() || from < region.end_key {
            parts.push((from, region.end_key.clone()));
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
