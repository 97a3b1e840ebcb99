//! Region reports from leaders: heartbeats (one region) and split results
//! (every region a split produced), applied atomically.

use std::collections::BTreeSet;

use proto::metapb;

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
        let leaders = self.leaders_for(regions, leader)?;

        // Invariant 2: no epoch goes backwards.
        for r in regions {
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
            if new_epoch == old_epoch && term < old.term {
                return Err(PdError::StaleEpoch(format!(
                    "region {} reported by term {term}, catalog has term {}",
                    r.id, old.term
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

        let mut changed = false;
        let mut term_moved = false;
        for (r, leader) in regions.iter().zip(&leaders) {
            match self.regions.get(&r.id) {
                Some(old) if old.region == *r && old.leader == *leader => {
                    term_moved |= old.term != term;
                }
                _ => changed = true,
            }
        }
        changed |= replaced.iter().any(|id| !batch_ids.contains(id));
        if !changed && !term_moved {
            return Ok(CommandOutcome::Regions { changed: false, version: self.version });
        }
        for id in &replaced {
            self.remove_region(*id);
        }
        for (r, leader) in regions.iter().zip(leaders) {
            self.insert_region(RegionRecord { region: r.clone(), leader, term });
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

    /// The leader of each region in the report: the peer on the reporting
    /// leader's store. A split's new regions are led from the same store that
    /// led the original at first.
    fn leaders_for(
        &self,
        regions: &[metapb::Region],
        leader: Option<&metapb::Peer>,
    ) -> Result<Vec<Option<metapb::Peer>>> {
        let Some(leader) = leader else {
            return Ok(vec![None; regions.len()]);
        };
        let mut named = false;
        let mut out = Vec::with_capacity(regions.len());
        for r in regions {
            let peer = r.peers.iter().find(|p| p.store_id == leader.store_id).ok_or_else(|| {
                PdError::InvalidArgument(format!("leader store {} holds no peer of region {}", leader.store_id, r.id))
            })?;
            named |= peer.id == leader.id;
            out.push(Some(*peer));
        }
        if !named {
            return Err(PdError::InvalidArgument(format!(
                "leader peer {} is not a peer of any reported region",
                leader.id
            )));
        }
        Ok(out)
    }
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
