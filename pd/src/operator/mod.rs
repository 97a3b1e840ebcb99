//! Operators: changes PD drives for one region, one step at a time, by
//! sending directives down the region leader's heartbeat stream and
//! watching the catalog for the result.
//!
//! - [`state`]: one operator, its kind, status and progress.
//! - [`controller`]: the leader's running and recently finished operators,
//!   one per region, with timeouts, cancellation and convergence tracking.
//! - [`split`]: the split operator's steps.
//! - [`split_plan`]: what a split asks for, its directive, and its result.
//! - [`transfer_leader`]: moving a region's leadership to another voter.
//! - Membership changes, in steps derived by [`peer_plan`] (each step in
//!   [`peer_step`], checks in [`peer_checks`], the leaders' pending and down
//!   peers in [`peer_reports`]): [`move_peer`], [`add_peer`],
//!   [`remove_peer`], [`leave_joint`].
//!
//! Operators live in the PD leader's memory only, as in TiKV's PD: when a
//! member stops leading, its operators are dropped, and the new leader
//! starts with none. A directive already sent may still be carried out by
//! its store; the catalog takes the result like any other region report,
//! and nothing waits for it.
//!
//! Timeouts: a split and a leader transfer move no data, so a fixed one
//! serves; a membership operator's grows with the region's size.

pub mod add_peer;
pub mod clock;
pub mod controller;
pub mod leave_joint;
pub mod move_peer;
pub mod peer_checks;
pub mod peer_plan;
pub mod peer_reports;
pub mod peer_step;
pub mod remove_peer;
pub mod split;
pub mod split_plan;
pub mod state;
pub mod transfer_leader;
pub mod transfer_plan;

pub use clock::Now;
pub use controller::{DirectiveSink, OperatorController, StoreVersions};
pub use peer_reports::{PeerReports, PeerStatus};
pub use state::{Kind, Operator, Source};

/// Zeroes every label set of the operator metrics, so dashboards and alerts
/// see zeros rather than missing series before the first operator. The
/// label values are the operators' own, so they are set here rather than in
/// [`crate::metrics::init`].
pub fn init_metrics() {
    use crate::metrics::{
        DIRECTIVES_SENT, OPERATOR_STEP_SECONDS, OPERATORS_CREATED, OPERATORS_FINISHED, OPERATORS_RUNNING,
    };
    for kind in state::KIND_NAMES {
        for source in Source::ALL {
            OPERATORS_CREATED.with_label_values(&[kind, source.as_str()]);
        }
        for outcome in state::OUTCOME_NAMES {
            OPERATORS_FINISHED.with_label_values(&[kind, outcome]);
        }
        OPERATORS_RUNNING.with_label_values(&[kind]);
        DIRECTIVES_SENT.with_label_values(&[kind]);
    }
    for kind in ["move", "add_peer", "remove_peer", "leave_joint"] {
        for step in peer_step::STEP_LABELS {
            OPERATOR_STEP_SECONDS.with_label_values(&[kind, step]);
        }
    }
}

#[cfg(test)]
mod peer_tests;
#[cfg(test)]
mod tests;
