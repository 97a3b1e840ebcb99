//! Route pushes as deltas: what PD remembers about recent catalog versions,
//! and how a delta is built from the catalog and applied by a receiver.
//!
//! # Protocol
//!
//! Every catalog change that moves the version records which regions and
//! stores it touched ([`RouteChange`](crate::catalog::RouteChange)). Each PD member keeps the last
//! `routes.history-versions` of them in a [`RouteHistory`], filled as it
//! applies the raft log, so a member that becomes leader has one already.
//! To bring a receiver from version `from` to the current version `to`, PD
//! looks up the union of what changed in `(from, to]`: if the history still
//! covers `from`, it sends a `pdpb.RouteDelta` naming `from_version`,
//! `to_version`, the current route of every touched region that still
//! exists (`upserted`, once each however many times it changed), the ids of
//! the touched ones that do not (`removed`) and the touched stores. Beyond
//! the history, or to a receiver that holds nothing yet, it sends a full
//! `pdpb.RouteSnapshot`.
//!
//! A receiver applies a delta only when it holds exactly `from_version`
//! ([`apply_delta`]); one it is already past is ignored, and one that does
//! not start where it is (a gap) is refused, and the receiver asks for a
//! full snapshot. A delta whose result does not tile the key space is
//! refused the same way, so a bug never leaves a store with holes in its
//! routes. After applying, the receiver's routes equal PD's at
//! `to_version`, byte for byte: the same order as a full snapshot.
//!
//! Not done yet: a delta is rebuilt for each receiver (they are small; a
//! cache per `(from, to)` would help thousands of stores on one version).

mod delta;
mod history;
mod push;

pub use delta::{DeltaRefusal, apply_delta, build_delta};
pub use history::{Changes, RouteHistory};
pub use push::RoutePush;

#[cfg(test)]
mod tests;
