//! Answering a batch's proposers from the writer thread, as soon as the
//! batch's apply job has run, without waiting for the data file's commit
//! and the hop back to the state machine's task.
//!
//! A reply may go out before the commit because it is already decided:
//!
//! - The entries are committed in the raft log, so every replica applies
//!   them, in this order, whatever happens to this store next. If the data
//!   commit fails, the writer stops, and a restart applies the entries again
//!   from the log.
//! - The outcome is a function of the log alone: the region's range and
//!   epoch and the session table as the preceding entries left them. The
//!   replay computes the same reply, and so does a rerun of the job (a
//!   writer batch runs its jobs again without one that failed; none of a
//!   region's jobs depends on another region's).
//! - A linearizable read waits until openraft's applied index covers its
//!   read index, and that index moves only when the state machine returns,
//!   after the data commit: no read served here misses a write whose reply
//!   went out early.
//!
//! Splits and membership changes are never answered early: their proposers
//! must hear only after the node has acted on them (a new peer started, a
//! removed one destroyed).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use openraft::storage::ApplyResponder;

use super::stage_clock::StageClock;
use super::{KvReply, TypeConfig};

type Responders = Vec<Option<ApplyResponder<TypeConfig>>>;

/// A batch's responders, taken by the first run of its apply job that
/// gets to the end.
pub struct EarlyReplies {
    waiting: Mutex<Option<(Responders, Vec<u64>)>>,
    stages: Arc<StageClock>,
}

impl EarlyReplies {
    /// `responders` in entry order; `indexes` are the entries with one.
    pub fn new(responders: Responders, indexes: Vec<u64>, stages: Arc<StageClock>) -> EarlyReplies {
        EarlyReplies { waiting: Mutex::new(Some((responders, indexes))), stages }
    }

    /// Sends each entry's reply to its proposer; only the first call sends.
    /// `started` is when the batch was handed to the writer.
    pub fn send(&self, replies: &[KvReply], started: Instant) {
        let Some((responders, indexes)) = self.waiting.lock().unwrap().take() else { return };
        self.stages.applied(indexes, started, Instant::now());
        for (responder, reply) in responders.into_iter().zip(replies) {
            if let Some(r) = responder {
                r.send(reply.clone());
            }
        }
    }
}
