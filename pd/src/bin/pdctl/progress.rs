//! What `pdctl` says while it follows an operator, and when it stops
//! waiting for the stores to take the result.
//!
//! Steps: a membership operator's plan is derived from the region as PD
//! saw it when the operator started; the region can change under it (its
//! leadership moved back onto the store losing its peer), and PD then adds
//! a step. The plan's size is printed with every step ("step 2/5"), so a
//! plan that grew is said once, with the step it gained, before any step
//! is numbered against the new size.
//!
//! Convergence: a split or a move is done for a client once the stores
//! have the new routes. A store that stopped heartbeating (paused, cut
//! off) is still Up in PD's catalog for minutes, and never takes them;
//! waiting for it kept pdctl until `--timeout` after the operator had
//! finished. pdctl waits only for the Up stores that heartbeat recently,
//! judged against the stores' own pace, and names the ones it left.

use std::collections::HashMap;

use proto::{metapb, pdpb};

/// A store silent for this many of its peers' heartbeat intervals is not
/// waited for: one missed heartbeat is a slow store, three a stopped one.
const SILENT_INTERVALS: u64 = 3;
/// The stores' heartbeat interval until pdctl has seen one (the store
/// default, `heartbeat.store-interval-ms`).
const DEFAULT_STORE_HEARTBEAT_MS: u64 = 10_000;

/// The step lines printed so far for one operator.
#[derive(Debug, Default)]
pub struct StepReport {
    /// (index, description) of the last step printed.
    last: Option<(usize, String)>,
    /// The plan the printed steps were numbered against.
    plan: Option<Vec<String>>,
}

impl StepReport {
    /// Lines for a running operator whose plan is `op.steps`, now at
    /// `op.step_index`: each step once, as it starts, with the steps passed
    /// between two polls in order.
    pub fn running(&mut self, op: &pdpb::Operator) -> Vec<String> {
        let i = op.step_index as usize;
        let now = (i, op.steps.get(i).cloned().unwrap_or_default());
        if self.last.as_ref() == Some(&now) {
            return Vec::new();
        }
        let from = match &self.last {
            Some((last, _)) if *last < i => last + 1,
            _ => i,
        };
        let mut lines = self.plan_changed(op);
        lines.extend(self.steps(op, from, i + 1));
        self.last = Some(now);
        lines
    }

    /// Lines for the steps a succeeded operator passed since the last poll.
    pub fn finished(&mut self, op: &pdpb::Operator) -> Vec<String> {
        let from = self.last.as_ref().map_or(0, |(last, _)| last + 1);
        let mut lines = if from < op.steps.len() { self.plan_changed(op) } else { Vec::new() };
        lines.extend(self.steps(op, from, op.steps.len()));
        self.last = op.steps.len().checked_sub(1).map(|i| (i, op.steps[i].clone()));
        lines
    }

    fn steps(&self, op: &pdpb::Operator, from: usize, to: usize) -> Vec<String> {
        let n = op.steps.len();
        (from..to.min(n)).map(|j| format!("operator {}: step {}/{n}: {}", op.id, j + 1, op.steps[j])).collect()
    }

    /// The line saying the plan grew or shrank since steps were numbered
    /// against it, naming the steps it gained or lost.
    fn plan_changed(&mut self, op: &pdpb::Operator) -> Vec<String> {
        let n = op.steps.len();
        let Some(before) = self.plan.replace(op.steps.clone()) else { return Vec::new() };
        if before.len() == n {
            return Vec::new();
        }
        let mut changes = Vec::new();
        let added = not_in(&op.steps, &before);
        if !added.is_empty() {
            changes.push(format!("new: {}", added.join("; ")));
        }
        let dropped = not_in(&before, &op.steps);
        if !dropped.is_empty() {
            changes.push(format!("dropped: {}", dropped.join("; ")));
        }
        vec![format!(
            "operator {}: the region changed under the operator; the plan now has {n} steps, not {} ({})",
            op.id,
            before.len(),
            changes.join(", ")
        )]
    }
}

/// The steps of `plan` that `other` does not hold, each of `other`'s
/// steps matching one step of `plan` at most.
fn not_in(plan: &[String], other: &[String]) -> Vec<String> {
    let mut left: Vec<&String> = other.iter().collect();
    plan.iter()
        .filter(|s| match left.iter().position(|o| o == s) {
            Some(i) => {
                left.remove(i);
                false
            }
            None => true,
        })
        .cloned()
        .collect()
}

/// Where the stores stand on a result.
#[derive(Debug, PartialEq, Eq)]
pub struct Convergence {
    /// Up stores whose routes cover the result.
    pub converged: Vec<u64>,
    /// Up stores heartbeating but not there yet: waited for.
    pub behind: Vec<u64>,
    /// Up stores silent for too long, not there: not waited for.
    pub silent: Vec<Silent>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Silent {
    pub store_id: u64,
    /// Since its last heartbeat, by the freshest store's (both PD's clock).
    pub for_ms: u64,
    pub route_version: u64,
}

impl Convergence {
    /// Whether pdctl may stop waiting.
    pub fn done(&self) -> bool {
        self.behind.is_empty() && !self.converged.is_empty()
    }

    /// "converged on 2/3 stores", and the stores left behind.
    pub fn describe(&self, op_id: u64, version: u64) -> String {
        let total = self.converged.len() + self.behind.len() + self.silent.len();
        let mut line = format!("operator {op_id}: converged on {}/{total} stores", self.converged.len());
        if self.done() && !self.silent.is_empty() {
            let left: Vec<String> = self
                .silent
                .iter()
                .map(|s| {
                    format!(
                        "store {} (no heartbeat for {:.1} s, routes at version {} < {version})",
                        s.store_id,
                        s.for_ms as f64 / 1000.0,
                        s.route_version
                    )
                })
                .collect();
            line.push_str(&format!("; not waiting for {}", left.join(", ")));
        }
        line
    }
}

/// The stores' heartbeats as pdctl saw them across polls: their pace
/// tells a store that stopped from one between two heartbeats.
#[derive(Debug, Default)]
pub struct StoreWatch {
    /// Each store's last heartbeat time seen (PD's clock).
    last_seen: HashMap<u64, u64>,
    /// The longest gap seen between two heartbeats of one store.
    interval_ms: Option<u64>,
}

impl StoreWatch {
    /// Notes `stores` (one `list_stores` answer) and says where they stand
    /// on catalog version `version`.
    pub fn observe(&mut self, stores: &[pdpb::StoreInfo], version: u64) -> Convergence {
        for s in stores {
            let id = s.store.as_ref().map_or(0, |s| s.id);
            let at = s.last_heartbeat_ms;
            if let Some(prev) = self.last_seen.insert(id, at)
                && prev != 0
                && at > prev
            {
                self.interval_ms = Some(self.interval_ms.unwrap_or(0).max(at - prev));
            }
        }
        let up: Vec<&pdpb::StoreInfo> = stores
            .iter()
            .filter(|s| s.store.as_ref().is_some_and(|s| s.state == metapb::StoreState::Up as i32))
            .collect();
        // PD's clock on both sides: no skew between pdctl's host and PD's.
        let freshest = up.iter().map(|s| s.last_heartbeat_ms).max().unwrap_or(0);
        let silent_after = SILENT_INTERVALS * self.interval_ms.unwrap_or(DEFAULT_STORE_HEARTBEAT_MS);
        let mut c = Convergence { converged: Vec::new(), behind: Vec::new(), silent: Vec::new() };
        for s in up {
            let id = s.store.as_ref().map_or(0, |s| s.id);
            let route_version = s.stats.as_ref().map_or(0, |st| st.route_version);
            let for_ms = freshest.saturating_sub(s.last_heartbeat_ms);
            if route_version >= version {
                c.converged.push(id);
            } else if for_ms > silent_after {
                c.silent.push(Silent { store_id: id, for_ms, route_version });
            } else {
                c.behind.push(id);
            }
        }
        c
    }
}

#[cfg(test)]
mod tests;
