//! Schedulers: pure functions of a cluster view that decide which
//! operators to start. The server runs them on the leader and carries the
//! decisions out ([`crate::server::split_runner`],
//! [`crate::server::replica_runner`]); here they only decide, so their tests
//! are fast, deterministic, and partly golden (`testdata/*.golden`: input
//! views and the decisions expected, reviewed like code;
//! `UPDATE_GOLDEN=1 cargo test -p pd schedule` rewrites them).
//!
//! - [`split_checker`]: regions past their size or key thresholds get a
//!   split at their middle.
//! - Replica checkers, over a [`cluster::ClusterView`], making
//!   [`plan::Plan`]s, run together by [`replica_checks::check_all`]:
//!   [`joint`] (half-done configuration changes are finished),
//!   [`replica_repair`] (replicas on Down stores are re-created elsewhere,
//!   missing voters added), [`decommission`] (Offline stores are drained,
//!   and reported ready for Tombstone once empty).
//!
//! Not done yet: leader and region balance, region merge, placement labels.

pub mod cluster;
pub mod decommission;
pub mod joint;
pub mod plan;
pub mod replica_checks;
pub mod replica_repair;
pub mod split_checker;

#[cfg(test)]
mod golden;
#[cfg(test)]
mod golden_replicas;
