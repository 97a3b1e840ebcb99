//! Commands that change the catalog: the payload of PD's raft log entries.

use proto::metapb;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CatalogCommand {
    /// Hand out `count` consecutive ids.
    AllocIds { count: u32 },
    /// Register a store or update its addresses and labels.
    PutStore { store: metapb::Store },
    /// Create the first regions: one per range between `split_keys`, each with
    /// one voter on every store in `store_ids`. Ids come from the allocator at
    /// apply time, so every member creates identical regions.
    Bootstrap { store_ids: Vec<u64>, split_keys: Vec<Vec<u8>> },
    /// A region leader's report: one region from a heartbeat, or every region
    /// a split produced. Applied atomically, only if no epoch in it is stale
    /// and the regions it replaces cover exactly the same keys.
    ReportRegions { regions: Vec<metapb::Region>, leader: Option<metapb::Peer>, term: u64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CommandOutcome {
    Ids {
        first: u64,
        count: u32,
    },
    StorePut {
        version: u64,
    },
    Bootstrapped {
        regions: Vec<metapb::Region>,
        version: u64,
    },
    /// `changed` is false when the report matched the catalog already.
    Regions {
        changed: bool,
        version: u64,
    },
}
