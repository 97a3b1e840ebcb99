//! What a transfer-leader operator asks for, and when the catalog shows it
//! done: kept apart from the operator's state so the state does not import
//! the operator that builds it.

use proto::{metapb, pdpb};

use crate::catalog::RouteCatalog;

/// What a transfer-leader operator asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferPlan {
    /// The region's voter on the target store.
    pub to: metapb::Peer,
}

impl TransferPlan {
    pub fn directive_kind(&self) -> pdpb::directive::Kind {
        pdpb::directive::Kind::TransferLeader(pdpb::TransferLeader { peer: Some(self.to) })
    }

    /// The region, once the catalog names the target's peer its leader.
    pub fn result(&self, region_id: u64, catalog: &RouteCatalog) -> Option<Vec<metapb::Region>> {
        let rec = catalog.region(region_id)?;
        (rec.leader.map(|l| l.store_id) == Some(self.to.store_id)).then(|| vec![rec.region.clone()])
    }
}
