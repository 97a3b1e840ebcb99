//! What a run measured.

use std::time::Duration;

use super::histogram::Summary;
use super::op::Op;

#[derive(Debug, Clone)]
pub struct Report {
    pub elapsed: Duration,
    pub errors: u64,
    /// Reads (get, and the read of a read-modify-write) that found no
    /// value: a read of a record that was never loaded.
    pub not_found: u64,
    /// Per operation that ran, in [`Op::ALL`] order; successful
    /// operations only.
    pub ops: Vec<(Op, Summary)>,
    pub last_error: Option<String>,
}

impl Report {
    pub fn total(&self) -> u64 {
        self.ops.iter().map(|(_, s)| s.count).sum()
    }

    /// Successful operations per second.
    pub fn throughput(&self) -> f64 {
        self.total() as f64 / self.elapsed.as_secs_f64()
    }
}
