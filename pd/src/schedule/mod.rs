//! Schedulers: pure functions of a cluster view that decide which
//! operators to start. The server runs them on the leader and carries the
//! decisions out ([`crate::server::split_check`]); here they only decide,
//! so their tests are fast, deterministic, and partly golden
//! (`testdata/*.golden`: input views and the decisions expected, reviewed
//! like code; `UPDATE_GOLDEN=1 cargo test -p pd schedule` rewrites them).
//!
//! - [`split_checker`]: regions past their size or key thresholds get a
//!   split at their middle.
//!
//! Not done yet: replica placement (move regions off full or offline
//! stores), leader balance, region merge.

pub mod split_checker;

#[cfg(test)]
mod golden;
