//! What a split operator asks for: the key, the ids PD allocated, and the
//! range it splits; the directive it sends and how to tell it is done.

use proto::{metapb, pdpb};

use crate::catalog::{RouteCatalog, keys};

/// What a split operator asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitPlan {
    /// Empty: the leader picks the middle by size.
    pub split_key: Vec<u8>,
    pub new_ids: pdpb::SplitIds,
    /// The region's range when the operator was created: the new region
    /// starts where it started.
    pub start_key: Vec<u8>,
    pub end_key: Vec<u8>,
}

impl SplitPlan {
    /// A plan for `region` using ids `first_id .. first_id + ids_needed`:
    /// returns the operator id (the first) and the plan.
    pub fn new(region: &metapb::Region, split_key: Vec<u8>, first_id: u64) -> (u64, SplitPlan) {
        let new_ids = pdpb::SplitIds {
            region_id: first_id + 1,
            peer_ids: (0..region.peers.len() as u64).map(|i| first_id + 2 + i).collect(),
        };
        let plan =
            SplitPlan { split_key, new_ids, start_key: region.start_key.clone(), end_key: region.end_key.clone() };
        (first_id, plan)
    }

    pub fn directive_kind(&self) -> pdpb::directive::Kind {
        pdpb::directive::Kind::Split(pdpb::SplitRegion {
            split_key: self.split_key.clone(),
            new_ids: Some(self.new_ids.clone()),
        })
    }

    /// The new region and the shrunk original, once the catalog holds the
    /// split: the new region's id (allocated for this split alone) over a
    /// left part of the original range, ending at the requested key if one
    /// was given.
    pub fn result(&self, region_id: u64, catalog: &RouteCatalog) -> Option<Vec<metapb::Region>> {
        let new = &catalog.region(self.new_ids.region_id)?.region;
        let original = &catalog.region(region_id)?.region;
        let left_part = new.start_key == self.start_key
            && !new.end_key.is_empty()
            && keys::contains(&self.start_key, &self.end_key, &new.end_key)
            && (self.split_key.is_empty() || new.end_key == self.split_key);
        left_part.then(|| vec![new.clone(), original.clone()])
    }
}
