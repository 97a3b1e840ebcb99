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
//!
//! Operators live in the PD leader's memory only, as in TiKV's PD: when a
//! member stops leading, its operators are dropped, and the new leader
//! starts with none. A directive already sent may still be carried out by
//! its store; the catalog takes the result like any other region report,
//! and nothing waits for it.
//!
//! Not done yet: operators other than split (add learner, promote/demote,
//! remove peer, transfer leader: the move of a replica), timeouts that grow
//! with region size (a split moves no data, so a fixed one serves).

pub mod controller;
pub mod split;
pub mod split_plan;
pub mod state;
pub mod transfer_leader;

pub use controller::{DirectiveSink, Now, OperatorController, StoreVersions};
pub use state::{Kind, Operator, Source};

/// Zeroes every label set of the operator metrics, so dashboards and alerts
/// see zeros rather than missing series before the first operator. The
/// label values are the operators' own, so they are set here rather than in
/// [`crate::metrics::init`].
pub fn init_metrics() {
    use crate::metrics::{DIRECTIVES_SENT, OPERATORS_CREATED, OPERATORS_FINISHED, OPERATORS_RUNNING};
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
}

#[cfg(test)]
mod tests;
