//! The operators' clock: a monotonic instant for deadlines and the wall
//! time people read, taken together so tests can step both.

use std::time::{Duration, Instant};

/// The time, both ways: `at` for deadlines (monotonic), `unix_ms` for what
/// people read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub at: Instant,
    pub unix_ms: u64,
}

impl Now {
    pub fn current() -> Now {
        let unix_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        Now { at: Instant::now(), unix_ms }
    }

    /// The same clock `d` later.
    pub fn after(self, d: Duration) -> Now {
        Now { at: self.at + d, unix_ms: self.unix_ms + d.as_millis() as u64 }
    }
}
