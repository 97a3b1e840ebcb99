//! The operator controller: the PD leader's running operators and the ones
//! that finished recently, in memory (as TiKV's PD keeps them).
//!
//! Rules it keeps:
//! - **One operator per region.** Adding a second is refused with
//!   `OPERATOR_EXISTS` naming the running one.
//! - **Every operator ends once**: SUCCEEDED when the catalog holds its
//!   result, FAILED when a store refuses its directive for good or the
//!   region moves on without it, TIMED_OUT at its deadline, CANCELLED on
//!   request. Finished operators stay listed for [`KEEP_FINISHED_FOR`], at
//!   most [`KEEP_FINISHED`] of them.
//! - **Convergence is tracked after success**: once every Up store has
//!   reported a route version at or past the result's, `converged_ms` is
//!   set and the split-to-convergence time observed.
//!
//! The controller does no I/O and reads no clock: callers pass the time,
//! the catalog, the stores' route versions and a [`DirectiveSink`], so its
//! tests drive time by hand. The server's driver
//! (`server/operator_driver.rs`) calls [`OperatorController::tick`] on a timer
//! and whenever the catalog, a store's route version or a stream changes.

use super::clock::Now;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use proto::{metapb, pdpb};

use super::peer_plan::Next;
use super::peer_reports::PeerReports;
use super::state::{KIND_NAMES, Operator, Sent, Source, outcome_name};
use crate::catalog::RouteCatalog;
use crate::error::{PdError, Result};
use crate::metrics;

/// A directive not answered by progress is sent again after this: often
/// enough that a lost message costs little, seldom enough that a store busy
/// applying the split is not flooded (a repeat is harmless, not free).
pub const RESEND_INTERVAL: Duration = Duration::from_secs(2);
/// Finished operators kept for `show` and `list --all`.
pub const KEEP_FINISHED: usize = 1000;
pub const KEEP_FINISHED_FOR: Duration = Duration::from_secs(600);

/// Where directives go: the leader's open store streams, or a recorder in
/// tests.
pub trait DirectiveSink {
    /// Queues `directive` for `store_id` without waiting.
    ///
    /// # Errors
    ///
    /// Why it could not be queued (no stream, queue full); the operator
    /// tries again on a later tick.
    fn send(&self, store_id: u64, directive: pdpb::Directive) -> std::result::Result<(), String>;
}

/// The route version each Up store last reported to this leader (0 for a
/// store that has not reported).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreVersions {
    pub up: Vec<(u64, u64)>,
}

impl StoreVersions {
    /// (Up stores at or past `version`, Up stores). Nobody has converged on
    /// version 0, which means "no result yet".
    pub fn converged(&self, version: u64) -> (u32, u32) {
        let total = self.up.len() as u32;
        if version == 0 {
            return (0, total);
        }
        (self.up.iter().filter(|(_, v)| *v >= version).count() as u32, total)
    }
}

#[derive(Debug, Default)]
pub struct OperatorController {
    running: BTreeMap<u64, Operator>,
    /// region id -> id of the operator running on it.
    by_region: HashMap<u64, u64>,
    /// Oldest first.
    finished: VecDeque<Operator>,
}

impl OperatorController {
    /// # Errors
    ///
    /// `OperatorExists` naming the operator running on the region.
    pub fn check_free(&self, region_id: u64) -> Result<()> {
        match self.by_region.get(&region_id).and_then(|id| self.running.get(id)) {
            None => Ok(()),
            Some(op) => Err(PdError::OperatorExists(format!(
                "region {region_id} is under {} operator {} from {} ({})",
                op.kind.as_str(),
                op.id,
                op.source.as_str(),
                op.step
            ))),
        }
    }

    /// Starts tracking a new operator.
    ///
    /// # Errors
    ///
    /// `OperatorExists` when its region already has one running.
    pub fn add(&mut self, op: Operator) -> Result<()> {
        self.check_free(op.region_id)?;
        debug_assert!(self.get(op.id).is_none(), "operator ids come from the catalog's allocator");
        metrics::OPERATORS_CREATED.with_label_values(&[op.kind.as_str(), op.source.as_str()]).inc();
        self.by_region.insert(op.region_id, op.id);
        self.running.insert(op.id, op);
        self.update_gauges();
        Ok(())
    }

    /// A running or recently finished operator.
    pub fn get(&self, id: u64) -> Option<&Operator> {
        self.running.get(&id).or_else(|| self.finished.iter().find(|op| op.id == id))
    }

    /// Running operators, and finished ones if asked, by id.
    pub fn list(&self, include_finished: bool) -> Vec<&Operator> {
        let mut out: Vec<&Operator> = self.running.values().collect();
        if include_finished {
            out.extend(self.finished.iter());
            out.sort_by_key(|op| op.id);
        }
        out
    }

    /// Regions under a running operator.
    pub fn busy_regions(&self) -> impl Iterator<Item = u64> + '_ {
        self.by_region.keys().copied()
    }

    /// Whether an operator runs on the region.
    pub fn is_busy(&self, region_id: u64) -> bool {
        self.by_region.contains_key(&region_id)
    }

    /// (region, epoch) of splits the split checker started that failed or
    /// timed out and are still remembered: the checker leaves a region
    /// alone at an epoch where its split did not work.
    pub fn failed_checker_splits(&self) -> Vec<(u64, metapb::RegionEpoch)> {
        self.finished
            .iter()
            .filter(|op| op.source == Source::SplitChecker)
            .filter(|op| matches!(op.status, pdpb::OperatorStatus::Failed | pdpb::OperatorStatus::TimedOut))
            .map(|op| (op.region_id, op.region_epoch))
            .collect()
    }

    /// Cancels a running operator; a finished one is returned as it ended.
    ///
    /// # Errors
    ///
    /// `OperatorNotFound` when no such operator is running or remembered.
    pub fn cancel(&mut self, id: u64, now: Now) -> Result<Operator> {
        if self.running.contains_key(&id) {
            let error = pdpb::Error {
                r#type: pdpb::ErrorType::Unavailable as i32,
                message: "cancelled on request".into(),
                leader: None,
            };
            self.finish(id, pdpb::OperatorStatus::Cancelled, Some(error), now);
        }
        self.get(id).cloned().ok_or(PdError::OperatorNotFound(id))
    }

    /// A store answered a directive with an error. NOT_LEADER and
    /// UNAVAILABLE are passing (leadership moves, a store restarts): the
    /// operator keeps running and its directive goes again to whichever
    /// store leads the region, until the deadline. For membership operators
    /// STALE_EPOCH passes too: every step changes the epoch, so a re-sent
    /// directive of a step the store already took arrives stale, and the
    /// next step is derived again from the catalog's newer record. Any other
    /// error (the split key does not fit, a change that makes no sense for
    /// the region, ...) fails it.
    /// Returns whether a running operator had this directive.
    pub fn directive_failed(&mut self, directive_id: u64, store_id: u64, error: pdpb::Error, now: Now) -> bool {
        let Some(op) = self.running.get_mut(&directive_id) else {
            return false;
        };
        let ty = error.r#type();
        let stepped = op.kind.peer_plan().is_some();
        match ty {
            pdpb::ErrorType::NotLeader | pdpb::ErrorType::Unavailable => {
                op.step = format!(
                    "store {store_id} answered {}: {}; will send again to the region's leader",
                    ty.as_str_name(),
                    error.message
                );
                if let Some(sent) = &mut op.sent {
                    sent.at = now.at;
                }
            }
            pdpb::ErrorType::StaleEpoch if stepped => {
                op.step = format!(
                    "store {store_id} answered STALE_EPOCH: {}; the next step follows the region's newer report",
                    error.message
                );
            }
            _ => {
                op.step = format!("store {store_id} refused the directive");
                self.finish(directive_id, pdpb::OperatorStatus::Failed, Some(error), now);
            }
        }
        true
    }

    /// The catalog accepted the split report of `directive_id` at `version`.
    pub fn split_applied(&mut self, directive_id: u64, version: u64, catalog: &RouteCatalog, now: Now) {
        let Some(op) = self.running.get(&directive_id) else {
            return;
        };
        if let Some(result) = op.kind.result(op.region_id, catalog) {
            self.succeed(directive_id, result, version, now);
        }
    }

    /// Moves every operator along: success when the catalog holds its
    /// result, failure when its region moved on, timeout at its deadline,
    /// otherwise its directive (again) to the region's leader when due.
    /// Then convergence of succeeded operators, then forgetting old ones.
    /// `peers` holds the region leaders' last peer reports, which tell
    /// membership operators when a new learner has caught up.
    pub fn tick(
        &mut self,
        now: Now,
        catalog: &RouteCatalog,
        stores: &StoreVersions,
        peers: &PeerReports,
        sink: &dyn DirectiveSink,
    ) {
        let ids: Vec<u64> = self.running.keys().copied().collect();
        for id in ids {
            self.advance(id, now, catalog, peers, sink);
        }
        self.track_convergence(now, stores);
        self.forget_old(now);
    }

    /// Drops everything: this member stopped leading, and a new leader
    /// starts with no operators. Returns how many were running.
    pub fn clear(&mut self) -> usize {
        let n = self.running.len();
        self.running.clear();
        self.by_region.clear();
        self.finished.clear();
        self.update_gauges();
        n
    }

    fn advance(&mut self, id: u64, now: Now, catalog: &RouteCatalog, peers: &PeerReports, sink: &dyn DirectiveSink) {
        let Some(op) = self.running.get_mut(&id) else {
            return;
        };
        if let Some(result) = op.kind.result(op.region_id, catalog) {
            self.succeed(id, result, catalog.version(), now);
            return;
        }
        if now.at >= op.deadline {
            let message = format!(
                "not done within {} ms; last step: {}",
                op.deadline.duration_since(op.created).as_millis(),
                op.step
            );
            let error = pdpb::Error { r#type: pdpb::ErrorType::Unavailable as i32, message, leader: None };
            self.finish(id, pdpb::OperatorStatus::TimedOut, Some(error), now);
            return;
        }
        let region_id = op.region_id;
        let Some(rec) = catalog.region(region_id) else {
            let error = PdError::RegionNotFound(region_id).to_pb();
            self.finish(id, pdpb::OperatorStatus::Failed, Some(error), now);
            return;
        };
        if op.kind.peer_plan().is_some() {
            self.advance_steps(id, now, catalog, peers, sink);
            return;
        }
        if rec.epoch() != op.region_epoch {
            let (was, is) = (op.region_epoch, rec.epoch());
            let error = PdError::StaleEpoch(format!(
                "region {region_id} moved from epoch {}/{} to {}/{} without this operator's change",
                was.conf_ver, was.version, is.conf_ver, is.version
            ))
            .to_pb();
            self.finish(id, pdpb::OperatorStatus::Failed, Some(error), now);
            return;
        }
        let Some(leader) = rec.leader else {
            op.step = format!("waiting for region {region_id} to report a leader");
            return;
        };
        let due =
            op.sent.is_none_or(|s| s.store_id != leader.store_id || now.at.duration_since(s.at) >= RESEND_INTERVAL);
        if !due {
            return;
        }
        let what = op.kind.as_str();
        match sink.send(leader.store_id, op.directive()) {
            Ok(()) => {
                let count = op.sent.map_or(0, |s| s.count) + 1;
                op.sent = Some(Sent { store_id: leader.store_id, at: now.at, count });
                op.step = format!("{what} directive sent to store {} (leader of region {region_id})", leader.store_id);
                if count > 1 {
                    op.step.push_str(&format!(", attempt {count}"));
                }
                metrics::DIRECTIVES_SENT.with_label_values(&[what]).inc();
            }
            Err(reason) => {
                op.step = format!("cannot reach store {}, leader of region {region_id}: {reason}", leader.store_id);
                op.sent = None;
            }
        }
    }

    /// One pass of a membership operator: the next step derived from the
    /// catalog's record and the leader's peer report, its directive sent to
    /// the region's leader with the record's epoch at once when the step or
    /// the epoch is new, again when the leader moves or every
    /// [`RESEND_INTERVAL`].
    fn advance_steps(
        &mut self,
        id: u64,
        now: Now,
        catalog: &RouteCatalog,
        peers: &PeerReports,
        sink: &dyn DirectiveSink,
    ) {
        let Some(op) = self.running.get_mut(&id) else {
            return;
        };
        let (Some(plan), Some(rec)) = (op.kind.peer_plan(), catalog.region(op.region_id)) else {
            return;
        };
        let epoch = rec.epoch();
        let status = peers.current(op.region_id, &epoch);
        let step = match plan.next(rec, status, catalog) {
            Ok(Next::Step(step)) => step,
            Ok(Next::Wait(reason)) => {
                op.step = reason;
                return;
            }
            // The result check in `advance` ends it on this same tick.
            Ok(Next::Done) => return,
            Err(e) => {
                op.step = format!("the region changed under the operator: {e}");
                self.finish(id, pdpb::OperatorStatus::Failed, Some(e.to_pb()), now);
                return;
            }
        };
        let kind = op.kind.as_str();
        if op.enter_step(&step) {
            let took = now.at.saturating_duration_since(op.step_started);
            if let Some(previous) = op.current.as_ref().map(|(s, _)| s.label()) {
                metrics::OPERATOR_STEP_SECONDS.with_label_values(&[kind, previous]).observe(took.as_secs_f64());
            }
            op.step_started = now.at;
        }
        let what = format!("step {}/{}: {}", op.step_index + 1, op.steps.len(), step.describe());
        let fresh = op.current.as_ref() != Some(&(step.clone(), epoch));
        if fresh {
            op.current = Some((step.clone(), epoch));
            op.sent = None;
        }
        if step.directive_kind().is_none() {
            op.step = match status {
                Some(_) => format!("{what} (the leader reports it pending)"),
                None => {
                    format!("{what} (waiting for the leader's report at epoch {}/{})", epoch.conf_ver, epoch.version)
                }
            };
            return;
        }
        let Some(leader) = rec.leader else {
            op.step = format!("{what}: waiting for region {} to report a leader", op.region_id);
            return;
        };
        let due =
            op.sent.is_none_or(|s| s.store_id != leader.store_id || now.at.duration_since(s.at) >= RESEND_INTERVAL);
        if !due {
            return;
        }
        match sink.send(leader.store_id, op.directive()) {
            Ok(()) => {
                let count = op.sent.map_or(0, |s| s.count) + 1;
                op.sent = Some(Sent { store_id: leader.store_id, at: now.at, count });
                op.step = format!("{what}: sent to store {} (leader of region {})", leader.store_id, op.region_id);
                if count > 1 {
                    op.step.push_str(&format!(", attempt {count}"));
                }
                metrics::DIRECTIVES_SENT.with_label_values(&[kind]).inc();
            }
            Err(reason) => {
                op.step = format!(
                    "{what}: cannot reach store {}, leader of region {}: {reason}",
                    leader.store_id, op.region_id
                );
                op.sent = None;
            }
        }
    }

    fn succeed(&mut self, id: u64, result: Vec<metapb::Region>, version: u64, now: Now) {
        let Some(op) = self.running.get_mut(&id) else {
            return;
        };
        op.result = result;
        op.result_version = version;
        if let Some((last, _)) = &op.current {
            let took = now.at.saturating_duration_since(op.step_started);
            metrics::OPERATOR_STEP_SECONDS
                .with_label_values(&[op.kind.as_str(), last.label()])
                .observe(took.as_secs_f64());
            op.step_index = op.steps.len().saturating_sub(1);
        }
        op.step = format!("{} applied at catalog version {version}", op.kind.as_str());
        self.finish(id, pdpb::OperatorStatus::Succeeded, None, now);
    }

    fn finish(&mut self, id: u64, status: pdpb::OperatorStatus, error: Option<pdpb::Error>, now: Now) {
        let Some(mut op) = self.running.remove(&id) else {
            return;
        };
        self.by_region.remove(&op.region_id);
        op.status = status;
        op.error = error;
        op.finished_ms = now.unix_ms.max(1);
        metrics::OPERATORS_FINISHED.with_label_values(&[op.kind.as_str(), outcome_name(status)]).inc();
        self.finished.push_back(op);
        self.update_gauges();
    }

    fn track_convergence(&mut self, now: Now, stores: &StoreVersions) {
        for op in self.finished.iter_mut() {
            if op.status != pdpb::OperatorStatus::Succeeded || op.converged_ms != 0 {
                continue;
            }
            let (converged, total) = stores.converged(op.result_version);
            if total == 0 || converged < total {
                continue;
            }
            op.converged_ms = now.unix_ms.max(1);
            op.step = format!("converged on {total}/{total} stores");
            let took_ms = op.converged_ms.saturating_sub(op.created_ms);
            metrics::SPLIT_CONVERGED_SECONDS.observe(took_ms as f64 / 1000.0);
        }
    }

    fn forget_old(&mut self, now: Now) {
        while self.finished.len() > KEEP_FINISHED {
            self.finished.pop_front();
        }
        let horizon = now.unix_ms.saturating_sub(KEEP_FINISHED_FOR.as_millis() as u64);
        while self.finished.front().is_some_and(|op| op.finished_ms < horizon) {
            self.finished.pop_front();
        }
    }

    fn update_gauges(&self) {
        for kind in KIND_NAMES {
            let n = self.running.values().filter(|op| op.kind.as_str() == kind).count();
            metrics::OPERATORS_RUNNING.with_label_values(&[kind]).set(n as i64);
        }
    }
}
