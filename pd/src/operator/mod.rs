//! Operators: changes PD drives for one region, one step at a time, on the
//! PD leader. They live in the leader's memory, like TiKV's PD: a new
//! leader starts with none, and the schedulers (or the operator who asked)
//! start them again if still needed.
//!
//! - [`Operators`]: the controller: at most one running operator per
//!   region, the finished ones kept for a while, cancel, and the registry of
//!   store heartbeat streams directives go down.
//! - [`split`]: the split operator's steps.
//! - [`split_checker`]: the pure function that picks regions to split.

pub mod split;
pub mod split_checker;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

use proto::pdpb;
use tokio::sync::mpsc;

use crate::error::{PdError, Result};
use crate::metrics;

/// Finished operators kept for `show`.
const KEEP_FINISHED: usize = 1000;

/// A store's heartbeat stream, downwards.
pub type StoreTx = mpsc::Sender<std::result::Result<pdpb::StoreHeartbeatResponse, tonic::Status>>;

/// One operator as the controller tracks it.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub op: pdpb::Operator,
    pub deadline: Instant,
}

#[derive(Default)]
struct Inner {
    ops: BTreeMap<u64, Tracked>,
    /// region id -> its running operator.
    running: HashMap<u64, u64>,
    finished: VecDeque<u64>,
    /// Directive refusals not yet seen by their operator, by operator id.
    refusals: HashMap<u64, pdpb::Error>,
}

#[derive(Default)]
pub struct Operators {
    inner: Mutex<Inner>,
    streams: Mutex<HashMap<u64, StoreTx>>,
}

pub fn kind_label(kind: i32) -> &'static str {
    match pdpb::OperatorKind::try_from(kind) {
        Ok(pdpb::OperatorKind::Split) | Err(_) => "split",
    }
}

pub fn outcome_label(status: i32) -> &'static str {
    match pdpb::OperatorStatus::try_from(status) {
        Ok(pdpb::OperatorStatus::Running) => "running",
        Ok(pdpb::OperatorStatus::Succeeded) => "succeeded",
        Ok(pdpb::OperatorStatus::Failed) | Err(_) => "failed",
        Ok(pdpb::OperatorStatus::TimedOut) => "timed_out",
        Ok(pdpb::OperatorStatus::Cancelled) => "cancelled",
    }
}

impl Operators {
    /// Registers `op` as its region's running operator.
    ///
    /// # Errors
    ///
    /// `OperatorExists` naming the region's running operator.
    pub fn add(&self, op: pdpb::Operator, deadline: Instant) -> Result<()> {
        let mut inner = self.inner.lock().unwrap();
        if let Some(id) = inner.running.get(&op.region_id) {
            return Err(PdError::OperatorExists(format!("region {} is under operator {id}", op.region_id)));
        }
        metrics::OPERATORS_CREATED.with_label_values(&[kind_label(op.kind), &op.source]).inc();
        metrics::OPERATORS_RUNNING.inc();
        inner.running.insert(op.region_id, op.id);
        inner.ops.insert(op.id, Tracked { op, deadline });
        Ok(())
    }

    /// Whether the region has a running operator.
    pub fn is_busy(&self, region_id: u64) -> bool {
        self.inner.lock().unwrap().running.contains_key(&region_id)
    }

    /// # Errors
    ///
    /// `OperatorExists` naming the region's running operator.
    pub fn ensure_free(&self, region_id: u64) -> Result<()> {
        match self.inner.lock().unwrap().running.get(&region_id) {
            Some(id) => Err(PdError::OperatorExists(format!("region {region_id} is under operator {id}"))),
            None => Ok(()),
        }
    }

    pub fn get(&self, id: u64) -> Option<Tracked> {
        self.inner.lock().unwrap().ops.get(&id).cloned()
    }

    /// Running operators, and with `all` the finished ones kept, by id.
    pub fn list(&self, all: bool) -> Vec<pdpb::Operator> {
        let inner = self.inner.lock().unwrap();
        inner
            .ops
            .values()
            .filter(|t| all || t.op.status == pdpb::OperatorStatus::Running as i32)
            .map(|t| t.op.clone())
            .collect()
    }

    /// Changes a running operator; returns the new state, or `None` if it
    /// has ended (it is then left as it is).
    pub fn update(&self, id: u64, f: impl FnOnce(&mut pdpb::Operator)) -> Option<pdpb::Operator> {
        let mut inner = self.inner.lock().unwrap();
        let t = inner.ops.get_mut(&id)?;
        if t.op.status != pdpb::OperatorStatus::Running as i32 {
            return None;
        }
        f(&mut t.op);
        Some(t.op.clone())
    }

    /// Changes a finished operator (its convergence).
    pub fn update_finished(&self, id: u64, f: impl FnOnce(&mut pdpb::Operator)) {
        if let Some(t) = self.inner.lock().unwrap().ops.get_mut(&id) {
            f(&mut t.op);
        }
    }

    /// Ends a running operator with `status` (and `error`); `false` if it had
    /// ended already.
    pub fn finish(&self, id: u64, status: pdpb::OperatorStatus, error: Option<pdpb::Error>) -> bool {
        let mut inner = self.inner.lock().unwrap();
        let Some(t) = inner.ops.get_mut(&id) else { return false };
        if t.op.status != pdpb::OperatorStatus::Running as i32 {
            return false;
        }
        t.op.status = status as i32;
        t.op.error = error;
        t.op.finished_ms = crate::server::context::now_ms();
        let (region_id, kind) = (t.op.region_id, t.op.kind);
        inner.running.remove(&region_id);
        inner.refusals.remove(&id);
        inner.finished.push_back(id);
        while inner.finished.len() > KEEP_FINISHED {
            if let Some(old) = inner.finished.pop_front() {
                inner.ops.remove(&old);
            }
        }
        metrics::OPERATORS_RUNNING.dec();
        metrics::OPERATORS_FINISHED.with_label_values(&[kind_label(kind), outcome_label(status as i32)]).inc();
        true
    }

    /// Cancels a running operator.
    ///
    /// # Errors
    ///
    /// `OperatorNotFound`; `InvalidArgument` if it has ended already.
    pub fn cancel(&self, id: u64) -> Result<pdpb::Operator> {
        let error =
            pdpb::Error { r#type: pdpb::ErrorType::Ok as i32, message: "cancelled by request".into(), leader: None };
        if !self.finish(id, pdpb::OperatorStatus::Cancelled, Some(error)) {
            let t = self.get(id).ok_or(PdError::OperatorNotFound(id))?;
            return Err(PdError::InvalidArgument(format!(
                "operator {id} has ended already ({})",
                outcome_label(t.op.status)
            )));
        }
        self.get(id).map(|t| t.op).ok_or(PdError::OperatorNotFound(id))
    }

    /// Ends every running operator: this member stopped leading.
    pub fn drop_all(&self, reason: &str) {
        let running: Vec<u64> = self.inner.lock().unwrap().running.values().copied().collect();
        for id in running {
            let error = pdpb::Error { r#type: pdpb::ErrorType::NotLeader as i32, message: reason.into(), leader: None };
            self.finish(id, pdpb::OperatorStatus::Failed, Some(error));
        }
    }

    /// A store refused operator `id`'s directive.
    pub fn refused(&self, id: u64, error: pdpb::Error) {
        let mut inner = self.inner.lock().unwrap();
        if inner.ops.contains_key(&id) {
            inner.refusals.insert(id, error);
        }
    }

    /// The refusal waiting for operator `id`, taken.
    pub fn take_refusal(&self, id: u64) -> Option<pdpb::Error> {
        self.inner.lock().unwrap().refusals.remove(&id)
    }

    /// Registers a store's open heartbeat stream (replacing an older one).
    pub fn stream_opened(&self, store_id: u64, tx: StoreTx) {
        self.streams.lock().unwrap().insert(store_id, tx);
    }

    /// Forgets a store's stream if it is still `tx`.
    pub fn stream_closed(&self, store_id: u64, tx: &StoreTx) {
        let mut streams = self.streams.lock().unwrap();
        if streams.get(&store_id).is_some_and(|t| t.same_channel(tx)) {
            streams.remove(&store_id);
        }
    }

    /// Sends a directive down a store's stream without waiting: `false`
    /// when the store has no open stream or its queue is full (the operator
    /// tries again).
    pub fn send(&self, store_id: u64, directive: pdpb::Directive) -> bool {
        let Some(tx) = self.streams.lock().unwrap().get(&store_id).cloned() else { return false };
        let msg = pdpb::StoreHeartbeatResponse {
            header: None,
            payload: Some(pdpb::store_heartbeat_response::Payload::Directive(directive)),
        };
        let sent = tx.try_send(Ok(msg)).is_ok();
        if sent {
            metrics::DIRECTIVES_SENT.inc();
        }
        sent
    }
}

#[cfg(test)]
mod tests;
