//! Region reports that change routes, proposed to the catalog off the
//! heartbeat streams' read loops.
//!
//! A proposal can take up to the propose timeout when the PD group is slow
//! or without quorum. Proposing inline would stall the stream it came on:
//! no other report, store stats or route push would move meanwhile, and
//! directives would queue behind it. So the stream hands each report to
//! this queue and goes on reading.
//!
//! Reports are ordered per region (the key: the region a heartbeat names,
//! or the split's original region): at most one proposal per region is in
//! flight, and what arrives meanwhile waits behind it. A newer heartbeat
//! replaces a waiting one (only the latest matters); split reports wait in
//! arrival order and are proposed before a waiting heartbeat, since a
//! heartbeat of a split region's new epoch is refused until the split is in.
//! The catalog refuses stale epochs on its own, so ordering is about not
//! wasting proposals, not about safety.
//!
//! This file decides (the order, and what a proposal's result means); the
//! tasks that propose are in [`report_driver`](super::report_driver).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use tracing::{debug, info, warn};

use crate::catalog::{CatalogCommand, CommandOutcome};
use crate::error::PdError;
use crate::metrics;

/// Split reports one region may have waiting; stores re-send a split report
/// until it is accepted, so dropping one past this loses nothing for good.
const MAX_WAITING_SPLITS: usize = 8;

/// A report to propose.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub cmd: CatalogCommand,
    /// `Some` for a split report: the directive that asked for it (0 if
    /// none did).
    pub split_directive: Option<u64>,
}

impl Report {
    pub fn heartbeat(cmd: CatalogCommand) -> Report {
        Report { cmd, split_directive: None }
    }

    pub fn split(cmd: CatalogCommand, directive_id: u64) -> Report {
        Report { cmd, split_directive: Some(directive_id) }
    }
}

/// What [`ReportQueue::offer`] did with a report.
#[derive(Debug, PartialEq)]
pub enum Offer {
    /// Nothing was in flight for the region: propose this now, then ask
    /// [`ReportQueue::next`] for what waited meanwhile.
    Start(Report),
    /// Waits behind the proposal in flight.
    Queued,
    /// Dropped: an identical report already waits, or too many splits do.
    Dropped,
}

#[derive(Default)]
struct Waiting {
    splits: VecDeque<Report>,
    heartbeat: Option<Report>,
}

/// Per-region ordering of report proposals. A key present in the map has a
/// proposal in flight.
#[derive(Default)]
pub struct ReportQueue {
    regions: Mutex<HashMap<u64, Waiting>>,
}

impl ReportQueue {
    pub fn offer(&self, key: u64, report: Report) -> Offer {
        let mut map = self.regions.lock().unwrap();
        let Some(waiting) = map.get_mut(&key) else {
            map.insert(key, Waiting::default());
            return Offer::Start(report);
        };
        if report.split_directive.is_some() {
            if waiting.splits.contains(&report) || waiting.splits.len() >= MAX_WAITING_SPLITS {
                return Offer::Dropped;
            }
            waiting.splits.push_back(report);
        } else {
            waiting.heartbeat = Some(report);
        }
        Offer::Queued
    }

    /// The next report to propose for `key` after the one in flight
    /// finished; `None` ends the region's turn.
    pub fn next(&self, key: u64) -> Option<Report> {
        let mut map = self.regions.lock().unwrap();
        let waiting = map.get_mut(&key)?;
        let next = waiting.splits.pop_front().or_else(|| waiting.heartbeat.take());
        if next.is_none() {
            map.remove(&key);
        }
        next
    }

    /// Regions with a proposal in flight.
    pub fn in_flight(&self) -> usize {
        self.regions.lock().unwrap().len()
    }
}

/// What became of a proposed report, for the caller that owns the
/// operators to act on.
#[derive(Debug, PartialEq)]
pub enum Settled {
    /// The catalog took a split report; `directive_id` is the directive
    /// that asked for it (0 if none did), `version` the catalog's version
    /// after it.
    SplitApplied { directive_id: u64, version: u64 },
    /// Taken (a heartbeat), or refused and counted: nothing to follow up.
    Done,
}

/// Counts a refusal and says whether an accepted split needs following up.
/// The queue does not act on a split itself: that is the operator driver's
/// business, and calling it from here would make the queue, the context
/// that holds it and the driver import each other.
pub fn settle(report: &Report, res: Result<CommandOutcome, PdError>) -> Settled {
    let reason = match res {
        Ok(CommandOutcome::Regions { version, .. }) => {
            return match report.split_directive {
                Some(directive_id) => Settled::SplitApplied { directive_id, version },
                None => Settled::Done,
            };
        }
        Ok(other) => {
            warn!(?other, "region report answered with an unexpected outcome");
            return Settled::Done;
        }
        Err(PdError::StaleEpoch(m)) => {
            if let Some(held_back) = super::log_limit::REFUSALS_LOG.admit(std::time::Instant::now()) {
                info!(reason = %m, held_back, "stale region report refused by the catalog");
            }
            "stale"
        }
        // The store reports again on its next tick (a split report until it
        // is accepted), so nothing is lost while PD cannot commit.
        Err(e @ (PdError::NotLeader(_) | PdError::Unavailable(_) | PdError::Fatal(_) | PdError::Storage(_))) => {
            debug!(error = %e, "region report not proposed");
            "unavailable"
        }
        Err(e @ (PdError::RouteConflict(_) | PdError::InvariantViolation(_))) => {
            warn!(error = %e, "region report refused");
            "conflict"
        }
        Err(e) => {
            warn!(error = %e, "region report refused");
            "invalid"
        }
    };
    metrics::REGION_REPORTS_REFUSED.with_label_values(&[reason]).inc();
    Settled::Done
}

#[cfg(test)]
mod tests {
    use proto::metapb;

    use super::*;

    fn heartbeat(version: u64) -> Report {
        let region = metapb::Region {
            id: 2,
            region_epoch: Some(metapb::RegionEpoch { conf_ver: 1, version }),
            ..Default::default()
        };
        Report::heartbeat(CatalogCommand::ReportRegions {
            regions: vec![region],
            leader: None,
            term: 1,
            leaderships: Vec::new(),
        })
    }

    fn split(version: u64, directive_id: u64) -> Report {
        let mut r = heartbeat(version);
        r.split_directive = Some(directive_id);
        r
    }

    #[test]
    fn one_proposal_per_region_and_the_latest_heartbeat_wins() {
        let q = ReportQueue::default();
        assert_eq!(q.offer(2, heartbeat(1)), Offer::Start(heartbeat(1)));
        assert_eq!(q.offer(3, heartbeat(1)), Offer::Start(heartbeat(1)), "other regions do not wait");
        assert_eq!(q.offer(2, heartbeat(2)), Offer::Queued);
        assert_eq!(q.offer(2, heartbeat(3)), Offer::Queued);
        assert_eq!(q.in_flight(), 2);
        assert_eq!(q.next(2), Some(heartbeat(3)));
        assert_eq!(q.next(2), None);
        assert_eq!(q.offer(2, heartbeat(4)), Offer::Start(heartbeat(4)), "the region's turn ended");
    }

    #[test]
    fn splits_keep_their_order_and_go_before_a_waiting_heartbeat() {
        let q = ReportQueue::default();
        assert!(matches!(q.offer(2, heartbeat(1)), Offer::Start(_)));
        assert_eq!(q.offer(2, heartbeat(3)), Offer::Queued);
        assert_eq!(q.offer(2, split(2, 7)), Offer::Queued);
        assert_eq!(q.offer(2, split(2, 7)), Offer::Dropped, "a re-sent split waits once");
        assert_eq!(q.offer(2, split(3, 8)), Offer::Queued);
        assert_eq!(q.next(2), Some(split(2, 7)));
        assert_eq!(q.next(2), Some(split(3, 8)));
        assert_eq!(q.next(2), Some(heartbeat(3)));
        assert_eq!(q.next(2), None);
    }

    #[test]
    fn waiting_splits_are_bounded() {
        let q = ReportQueue::default();
        assert!(matches!(q.offer(2, heartbeat(1)), Offer::Start(_)));
        for i in 0..MAX_WAITING_SPLITS as u64 {
            assert_eq!(q.offer(2, split(2 + i, 10 + i)), Offer::Queued);
        }
        assert_eq!(q.offer(2, split(100, 100)), Offer::Dropped);
    }

    #[test]
    fn an_accepted_split_is_handed_back_and_nothing_else_is() {
        let taken = || Ok(CommandOutcome::Regions { changed: true, version: 9 });
        assert_eq!(settle(&split(2, 7), taken()), Settled::SplitApplied { directive_id: 7, version: 9 });
        assert_eq!(settle(&heartbeat(2), taken()), Settled::Done);
        let stale = Err(PdError::StaleEpoch("older epoch".into()));
        assert_eq!(settle(&split(2, 7), stale), Settled::Done, "a refused split is not applied");
    }
}
