//! One route push to a receiver: a full snapshot or a delta.

use std::sync::Arc;

use proto::pdpb;

/// What to send a receiver to bring its routes to the current version.
#[derive(Debug, Clone, PartialEq)]
pub enum RoutePush {
    /// Shared: every receiver that needs the same version's snapshot gets
    /// the same one.
    Full(Arc<pdpb::RouteSnapshot>),
    Delta(pdpb::RouteDelta),
}

impl RoutePush {
    /// The version the receiver holds once it has applied this.
    pub fn version(&self) -> u64 {
        match self {
            RoutePush::Full(s) => s.version,
            RoutePush::Delta(d) => d.to_version,
        }
    }

    /// `full` or `delta`, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            RoutePush::Full(_) => "full",
            RoutePush::Delta(_) => "delta",
        }
    }
}
