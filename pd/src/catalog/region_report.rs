//! Region reports from leaders: heartbeats (one region) and split results
//! (every region a split produced), applied atomically.
//!
//! A report's meta (range, epoch, peers) applies to every region in it; its
//! leadership only to the region whose peer reported, and to any region it
//! names a leader for explicitly. Each region is its own raft group with
//! its own terms (a split-born group starts at its own initial term), so
//! the catalog compares a report's term only with the term it recorded for
//! the same region. A region new to the catalog and led by no peer the
//! report names starts with no leader and term 0: its leader's first
//! heartbeat names it, whatever term its group is at.

use std::collections::BTreeSet;

use proto::{metapb, pdpb};

use super::{CommandOutcome, RegionRecord, RouteCatalog, keys};
use crate::error::{PdError, Result};

/// Whether `new` is older than `old` in either dimension.
pub fn epoch_is_stale(new: &metapb::RegionEpoch, old: &metapb::RegionEpoch) -> bool {
    new.version < old.version || new.conf_ver < old.conf_ver
}

impl RouteCatalog {
    pub(super) fn report_regions(
        &mut self,
        regions: &[metapb::Region],
        leader: Option<&metapb::Peer>,
        term: u64,
        leaderships: &[pdpb::RegionLeadership],
    ) -> Result<CommandOutcome> {
        if !self.bootstrapped {
            return Err(PdError::NotBootstrapped);
        }
        if regions.is_empty() {
            return Err(PdError::InvalidArgument("region report carries no region".into()));
        }
        let mut batch_ids = BTreeSet::new();
        for r in regions {
            self.validate_region_shape(r)?;
            if !batch_ids.insert(r.id) {
                return Err(PdError::InvalidArgument(format!("region {} appears twice in one report", r.id)));
            }
        }
        let leads = leads_for(regions, leader, term, leaderships)?;

        // Invariant 2: no epoch goes backwards.
        for (r, lead) in regions.iter().zip(&leads) {
            let Some(old) = self.regions.get(&r.id) else {
                continue;
            };
            let (new_epoch, old_epoch) = (r.region_epoch.unwrap_or_default(), old.epoch());
            if epoch_is_stale(&new_epoch, &old_epoch) {
                return Err(PdError::StaleEpoch(format!(
                    "region {} reported epoch {:?}, catalog has {:?}",
                    r.id, new_epoch, old_epoch
                )));
            }
            if new_epoch == old_epoch && *r != old.region {
                return Err(PdError::RouteConflict(format!(
                    "region {} reported different meta with the same epoch {:?}",
                    r.id, new_epoch
                )));
            }
            // Terms compare within one region's group only: a lower one at
            // the same epoch comes from a leader deposed since.
            if let Some(lead) = lead
                && new_epoch == old_epoch
                && superseded(*lead, old)
            {
                return Err(PdError::StaleEpoch(format!(
                    "region {} reported by its leader of term {}, catalog has term {}",
                    r.id, lead.term, old.term
                )));
            }
        }

        // Everything the batch replaces: same-id records and overlapped ones.
        let mut replaced: BTreeSet<u64> =
            batch_ids.iter().copied().filter(|id| self.regions.contains_key(id)).collect();
        for r in regions {
            for id in self.overlapping(&r.start_key, &r.end_key) {
                if batch_ids.contains(&id) {
                    continue;
                }
                let other = &self.regions[&id];
                // Only an older range version can be superseded by a newer one.
                if other.epoch().version >= r.region_epoch.unwrap_or_default().version {
                    return Err(PdError::RouteConflict(format!(
                        "region {} overlaps region {} whose epoch {:?} is not older",
                        r.id,
                        id,
                        other.epoch()
                    )));
                }
                replaced.insert(id);
            }
        }
        // Invariant 1: the batch must cover exactly what it replaces.
        let old_ranges = merge_ranges(replaced.iter().map(|id| {
            let r = &self.regions[id].region;
            (r.start_key.as_slice(), r.end_key.as_slice())
        }))?;
        let new_ranges = merge_ranges(regions.iter().map(|r| (r.start_key.as_slice(), r.end_key.as_slice())))?;
        if old_ranges != new_ranges {
            return Err(PdError::RouteConflict(format!(
                "report of regions {batch_ids:?} covers {} but replaces {}",
                show_ranges(&new_ranges),
                show_ranges(&old_ranges)
            )));
        }

        let records: Vec<RegionRecord> = regions.iter().zip(leads).map(|(r, lead)| self.record_for(r, lead)).collect();
        let mut changed = replaced.iter().any(|id| !batch_ids.contains(id));
        let mut term_moved = false;
        for rec in &records {
            match self.regions.get(&rec.region.id) {
                Some(old) if old.region == rec.region && old.leader == rec.leader => {
                    term_moved |= old.term != rec.term;
                }
                _ => changed = true,
            }
        }
        if !changed && !term_moved {
            return Ok(CommandOutcome::Regions { changed: false, version: self.version });
        }
        for id in &replaced {
            self.remove_region(*id);
        }
        for rec in records {
            self.insert_region(rec);
        }
        if changed {
            self.bump_version();
        }
        Ok(CommandOutcome::Regions { changed, version: self.version })
    }

    /// Checks what a region must look like regardless of the catalog's state.
    fn validate_region_shape(&self, r: &metapb::Region) -> Result<()> {
        if r.id == 0 {
            return Err(PdError::InvalidArgument("region id 0".into()));
        }
        let Some(epoch) = r.region_epoch else {
            return Err(PdError::InvalidArgument(format!("region {} has no epoch", r.id)));
        };
        if epoch.version == 0 || epoch.conf_ver == 0 {
            return Err(PdError::InvalidArgument(format!("region {} has a zero epoch {:?}", r.id, epoch)));
        }
        if !keys::is_valid_range(&r.start_key, &r.end_key) {
            return Err(PdError::InvalidArgument(format!(
                "region {} has start key {:?} not below end key {:?}",
                r.id,
                keys::display(&r.start_key),
                keys::display(&r.end_key)
            )));
        }
        if r.peers.is_empty() {
            return Err(PdError::InvalidArgument(format!("region {} has no peers", r.id)));
        }
        if let Err(e) = self.check_region_ids(r) {
            return Err(PdError::InvalidArgument(e));
        }
        let mut peer_ids = BTreeSet::new();
        let mut store_ids = BTreeSet::new();
        for p in &r.peers {
            if !peer_ids.insert(p.id) || !store_ids.insert(p.store_id) {
                return Err(PdError::InvalidArgument(format!(
                    "region {} repeats peer {} or store {}",
                    r.id, p.id, p.store_id
                )));
            }
            self.live_store(p.store_id)?;
        }
        Ok(())
    }

    /// What the catalog records for `r` once the report is in: its own
    /// leader and term where the report names them, unless the catalog
    /// knows a leader of a later term (a deposed leader may still report
    /// a newer epoch it applied: the meta is right, the leadership is not);
    /// otherwise the leader it had, or none for a region new to it. A
    /// leader that is no longer a peer of the region is forgotten; its term
    /// stays, so reports of older terms are still known stale.
    fn record_for(&self, r: &metapb::Region, lead: Option<Lead>) -> RegionRecord {
        let old = self.regions.get(&r.id);
        let (leader, term) = match (lead, old) {
            (Some(lead), Some(old)) if superseded(lead, old) => (old.leader, old.term),
            (Some(lead), _) => (Some(lead.peer), lead.term),
            (None, Some(old)) => (old.leader, old.term),
            (None, None) => (None, 0),
        };
        let leader = leader.and_then(|l| r.peers.iter().find(|p| p.id == l.id).copied());
        RegionRecord { region: r.clone(), leader, term }
    }
}

/// Whether the catalog knows a leader of `lead`'s region in a later term
/// than `lead`'s.
///
/// The catalog records a leader together with that leader's own term, and a
/// peer's term never goes down, so the recorded leader itself reporting a
/// lower term means the record's term is not its own: a record written when
/// a split report's term was stamped on every region it named. That record
/// is healed (the report is taken) rather than left refusing the region's
/// leaders until its group's term passes another group's.
pub fn superseded(lead: Lead, old: &RegionRecord) -> bool {
    lead.term < old.term && old.leader.is_none_or(|l| l.id != lead.peer.id)
}

/// A region's leader as a report names it, with its term in that region's
/// group.
#[derive(Debug, Clone, Copy)]
pub struct Lead {
    pub peer: metapb::Peer,
    pub term: u64,
}

/// The leader each region of the report names: the reporting peer (`leader`
/// at `term`) for the region it belongs to, and for the others the entry
/// `leaderships` has for them, if any. The reporting peer must belong to one
/// of the regions, and every named leader must be a peer of its region (as
/// the region lists it, role included).
fn leads_for(
    regions: &[metapb::Region],
    leader: Option<&metapb::Peer>,
    term: u64,
    leaderships: &[pdpb::RegionLeadership],
) -> Result<Vec<Option<Lead>>> {
    if !leaderships.is_empty() && leaderships.len() != regions.len() {
        return Err(PdError::InvalidArgument(format!(
            "report of {} regions names {} leaderships",
            regions.len(),
            leaderships.len()
        )));
    }
    let member = |r: &metapb::Region, l: &metapb::Peer| {
        r.peers.iter().find(|p| p.id == l.id && p.store_id == l.store_id).copied()
    };
    let mut named = leader.is_none();
    let mut out = Vec::with_capacity(regions.len());
    for (i, r) in regions.iter().enumerate() {
        if let Some(peer) = leader.and_then(|l| member(r, l)) {
            named = true;
            out.push(Some(Lead { peer, term }));
            continue;
        }
        let lead = match leaderships.get(i).and_then(|l| l.leader.map(|p| (p, l.term))) {
            None => None,
            Some((l, term)) => {
                let peer = member(r, &l).ok_or_else(|| {
                    PdError::InvalidArgument(format!(
                        "leader peer {} on store {} is not a peer of region {}",
                        l.id, l.store_id, r.id
                    ))
                })?;
                Some(Lead { peer, term })
            }
        };
        out.push(lead);
    }
    if !named {
        return Err(PdError::InvalidArgument(format!(
            "leader peer {} is not a peer of any reported region",
            leader.map_or(0, |l| l.id)
        )));
    }
    Ok(out)
}

/// Sorts ranges and merges adjacent ones.
///
/// # Errors
///
/// `RouteConflict` if two ranges overlap.
fn merge_ranges<'a>(ranges: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut sorted: Vec<(&[u8], &[u8])> = ranges.collect();
    sorted.sort();
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for (start, end) in sorted {
        match out.last_mut() {
            Some((_, last_end)) if !last_end.is_empty() && last_end.as_slice() == start => *last_end = end.to_vec(),
            Some((_, last_end)) if last_end.is_empty() || last_end.as_slice() > start => {
                return Err(PdError::RouteConflict("reported regions overlap each other".into()));
            }
            _ => out.push((start.to_vec(), end.to_vec())),
        }
    }
    Ok(out)
}

fn show_ranges(ranges: &[(Vec<u8>, Vec<u8>)]) -> String {
    let parts: Vec<String> =
        ranges.iter().map(|(s, e)| format!("[{:?}, {:?})", keys::display(s), keys::display(e))).collect();
    parts.join(" ")
}
