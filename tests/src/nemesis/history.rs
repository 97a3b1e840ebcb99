//! Recording a history: each operation's invoke and completion times (on
//! one monotonic clock shared by every worker) and its outcome, in the
//! checker's terms.

use std::sync::Mutex;
use std::time::Instant;

use super::checker::{Event, Op, Outcome};

pub struct Recorder {
    start: Instant,
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    pub fn new(start: Instant) -> Recorder {
        Recorder { start, events: Mutex::new(Vec::new()) }
    }

    /// Nanoseconds since the run started.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    pub fn record(&self, client: usize, key: &str, op: Op, invoke: u64, outcome: Outcome) {
        let complete = self.now();
        self.events.lock().unwrap().push(Event { client, key: key.to_string(), op, invoke, complete, outcome });
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }
}
