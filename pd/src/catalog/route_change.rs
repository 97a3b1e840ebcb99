//! What each accepted command that moved the catalog version touched, for
//! route deltas (`crate::routes`): not part of the replicated state, but
//! derived from it deterministically, so every member records the same.

/// The regions and stores one version's change touched. Region ids include
/// regions it removed: whether one still exists is read from the catalog
/// at the newer version.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteChange {
    /// The version the change produced.
    pub version: u64,
    /// Ascending.
    pub regions: Vec<u64>,
    /// Ascending.
    pub stores: Vec<u64>,
}
