//! The retry policy, in one place: which errors may be retried, and how.
//!
//! Every error a store answers falls in one of three classes:
//!
//! - [`Outcome::NotApplied`]: the command provably never reached a raft log
//!   (wrong leader, stale epoch, key outside the region, no route yet, a
//!   read that could not confirm leadership). Retry freely, after
//!   refreshing routes.
//! - [`Outcome::Unknown`]: the command may have been proposed and may yet
//!   apply (the leader changed before it committed, the commit wait timed
//!   out, the store did not answer). A read may be retried; a write only
//!   with the same request id, which the region's session table turns into
//!   at-most-once application.
//! - [`Outcome::Final`]: retrying cannot help (bad input).
//!
//! The client library and the HTTP API both ask [`may_retry`]; nothing else
//! decides.

use crate::error::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    NotApplied,
    Unknown,
    Final,
}

/// What an error says about whether its command took effect.
pub fn outcome(e: &StoreError) -> Outcome {
    match e {
        StoreError::NotLeader { .. }
        | StoreError::EpochNotMatch(_)
        | StoreError::KeyNotInRegion { .. }
        | StoreError::RegionNotFound(_)
        | StoreError::ServerBusy(_) => Outcome::NotApplied,
        StoreError::StaleCommand | StoreError::Unavailable(_) => Outcome::Unknown,
        StoreError::InvalidArgument(_) => Outcome::Final,
    }
}

/// Whether a request that failed with `e` may be sent again. `repeatable`:
/// the request is a read, or a write carrying a request id (so a repeat is
/// deduplicated by the region).
pub fn may_retry(e: &StoreError, repeatable: bool) -> bool {
    match outcome(e) {
        Outcome::NotApplied => true,
        Outcome::Unknown => repeatable,
        Outcome::Final => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_outcomes_are_retried_only_when_repeatable() {
        let not_leader = StoreError::NotLeader { region_id: 1, leader: None, address: String::new() };
        assert!(may_retry(&not_leader, false));
        assert!(may_retry(&StoreError::ServerBusy("no route".into()), false));
        assert!(!may_retry(&StoreError::StaleCommand, false));
        assert!(may_retry(&StoreError::StaleCommand, true));
        assert!(!may_retry(&StoreError::Unavailable("store down".into()), false));
        assert!(may_retry(&StoreError::Unavailable("store down".into()), true));
        assert!(!may_retry(&StoreError::InvalidArgument("empty key".into()), true));
    }
}
