//! Bootstrap: the first regions of the cluster.

use std::collections::BTreeSet;

use proto::metapb;

use super::{CommandOutcome, RegionRecord, RouteCatalog};
use crate::error::{PdError, Result};

/// Split keys that cut the key space into `n` even ranges: `prefix` followed
/// by two big-endian bytes, so keys `prefix + u16` (and anything that starts
/// like them) spread evenly. `n` is clamped to 1..=65536.
pub fn even_split_keys(prefix: &[u8], n: u32) -> Vec<Vec<u8>> {
    let n = u64::from(n.clamp(1, 65_536));
    (1..n)
        .map(|i| {
            let point = (i * 65_536 / n) as u16;
            let mut k = prefix.to_vec();
            k.extend_from_slice(&point.to_be_bytes());
            k
        })
        .collect()
}

impl RouteCatalog {
    pub(super) fn bootstrap(&mut self, store_ids: &[u64], split_keys: &[Vec<u8>]) -> Result<CommandOutcome> {
        if self.bootstrapped {
            return Err(PdError::AlreadyBootstrapped);
        }
        if store_ids.is_empty() {
            return Err(PdError::InvalidArgument("bootstrap needs at least one store".into()));
        }
        let unique: BTreeSet<u64> = store_ids.iter().copied().collect();
        if unique.len() != store_ids.len() {
            return Err(PdError::InvalidArgument("bootstrap store ids repeat".into()));
        }
        for id in store_ids {
            let s = self.live_store(*id)?;
            if s.state != metapb::StoreState::Up as i32 {
                return Err(PdError::StoreConflict(format!("store {id} is not up")));
            }
        }
        for (i, k) in split_keys.iter().enumerate() {
            if k.is_empty() {
                return Err(PdError::InvalidArgument("split keys must not be empty".into()));
            }
            if i > 0 && split_keys[i - 1] >= *k {
                return Err(PdError::InvalidArgument("split keys must be strictly ascending".into()));
            }
        }
        // One id per region and one per peer, all taken below: refuse up front
        // if the allocator cannot supply them, rather than overflow midway.
        let regions = split_keys.len() as u64 + 1;
        let needed = regions.checked_mul(store_ids.len() as u64 + 1);
        if needed.and_then(|n| self.next_id.checked_add(n)).is_none() {
            return Err(PdError::InvalidArgument("id space exhausted".into()));
        }
        let epoch = metapb::RegionEpoch { conf_ver: 1, version: 1 };
        let mut bounds: Vec<&[u8]> = vec![b""];
        bounds.extend(split_keys.iter().map(Vec::as_slice));
        bounds.push(b"");
        let mut created = Vec::with_capacity(bounds.len() - 1);
        for w in bounds.windows(2) {
            let id = self.take_id();
            let peers = store_ids
                .iter()
                .map(|&store_id| metapb::Peer { id: self.take_id(), store_id, role: metapb::PeerRole::Voter as i32 })
                .collect();
            let region = metapb::Region {
                id,
                start_key: w[0].to_vec(),
                end_key: w[1].to_vec(),
                region_epoch: Some(epoch),
                peers,
            };
            created.push(region.clone());
            self.insert_region(RegionRecord { region, leader: None, term: 0 });
        }
        self.bootstrapped = true;
        self.bump_version();
        Ok(CommandOutcome::Bootstrapped { regions: created, version: self.version })
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.dirty.meta = true;
        id
    }
}
