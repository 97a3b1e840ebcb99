//! A log line that may repeat at the rate of heartbeats, written at most
//! once per interval with the count of those left out since.
//!
//! A refused region report is worth an info line (PD and a store disagree
//! on something an operator may have to act on), but a store re-sends the
//! same report every region heartbeat interval, for every region it
//! concerns: unlimited, one stuck region would flood the log.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a limited line may be written: often enough that a stuck
/// region shows in the log within seconds, rarely enough that thousands of
/// them stay a trickle.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Refused region reports, from every stream and the report queue.
pub static REFUSALS_LOG: LogLimit = LogLimit::new(LOG_EVERY);

#[derive(Debug)]
pub struct LogLimit {
    every: Duration,
    /// When a line was last let through, and how many were held back since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogLimit {
    pub const fn new(every: Duration) -> LogLimit {
        LogLimit { every, state: Mutex::new((None, 0)) }
    }

    /// Whether a line may be written at `now`: `Some(held back since the
    /// last one written)`, or `None` (this one is held back and counted).
    pub fn admit(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap();
        let (last, held) = &mut *state;
        if last.is_some_and(|at| now.saturating_duration_since(at) < self.every) {
            *held += 1;
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_counting_the_rest() {
        let limit = LogLimit::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(limit.admit(t0), Some(0), "the first line is written");
        assert_eq!(limit.admit(t0 + Duration::from_secs(1)), None);
        assert_eq!(limit.admit(t0 + Duration::from_secs(9)), None);
        assert_eq!(limit.admit(t0 + Duration::from_secs(10)), Some(2), "the next says how many were held back");
        assert_eq!(limit.admit(t0 + Duration::from_secs(11)), None);
        assert_eq!(limit.admit(t0 + Duration::from_secs(30)), Some(1));
    }
}
