//! The leave-joint operator: a region its leader left in a joint
//! configuration (leadership lost between the two halves of a change) is
//! asked with `ChangePeers{}` to leave it, again until the catalog lists no
//! incoming or demoting voter.

use std::time::Duration;

use super::clock::Now;
use super::peer_plan::{PeerPlan, is_joint};
use super::peer_reports::PeerStatus;
use super::state::{Kind, Operator, Source};
use crate::catalog::{RegionRecord, RouteCatalog};
use crate::error::{PdError, Result};

/// # Errors
///
/// `InvalidArgument` when the region is not in a joint configuration.
pub fn validate(rec: &RegionRecord) -> Result<()> {
    if is_joint(&rec.region) {
        Ok(())
    } else {
        Err(PdError::InvalidArgument(format!("region {} is not in a joint configuration", rec.region.id)))
    }
}

/// A running leave-joint operator with id `id`.
pub fn operator(
    rec: &RegionRecord,
    status: Option<&PeerStatus>,
    catalog: &RouteCatalog,
    id: u64,
    source: Source,
    now: Now,
    timeout: Duration,
) -> Operator {
    Operator::stepped(id, rec, Kind::LeaveJoint(PeerPlan::default()), source, now, timeout, status, catalog)
}
