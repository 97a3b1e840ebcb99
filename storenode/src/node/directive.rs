//! What every PD directive shares on the store: how it ended, the refusal
//! sent back up, and the check that this store leads the region at the
//! epoch the directive names.

use proto::metapb;
use proto::pdpb::{self, ErrorType};

use super::{Node, RegionPeer};

/// How a directive was carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectiveOutcome {
    /// The split was proposed and applied here.
    Proposed,
    /// A split this directive asked for already applied (or is being
    /// proposed); its report goes to PD again.
    Repeated,
}

impl DirectiveOutcome {
    pub fn label(self) -> &'static str {
        match self {
            DirectiveOutcome::Proposed => "proposed",
            DirectiveOutcome::Repeated => "repeated",
        }
    }
}

pub fn refuse(kind: ErrorType, message: String) -> pdpb::Error {
    pdpb::Error { r#type: kind as i32, message, leader: None }
}

impl Node {
    /// The region as `peer` has it, if this store leads it at the epoch
    /// directive `d` names; `what` names the directive in the refusal.
    ///
    /// # Errors
    ///
    /// `NOT_LEADER` naming the leader this store knows of; `STALE_EPOCH`
    /// with both epochs.
    pub fn leading_at_epoch(
        &self,
        peer: &RegionPeer,
        d: &pdpb::Directive,
        what: &str,
    ) -> Result<metapb::Region, pdpb::Error> {
        if !peer.is_leader() {
            let leader = peer.leader().map_or_else(|| "unknown".to_string(), |l| format!("store {}", l.store_id));
            return Err(refuse(
                ErrorType::NotLeader,
                format!("store {} does not lead region {} (leader: {leader})", self.store_id, d.region_id),
            ));
        }
        let region = peer.region();
        let epoch = region.region_epoch.unwrap_or_default();
        let asked = d.region_epoch.unwrap_or_default();
        if asked != epoch {
            return Err(refuse(
                ErrorType::StaleEpoch,
                format!(
                    "{what} of region {} at epoch (conf_ver {}, version {}), but the region is at (conf_ver {}, version {})",
                    d.region_id, asked.conf_ver, asked.version, epoch.conf_ver, epoch.version
                ),
            ));
        }
        Ok(region)
    }
}
