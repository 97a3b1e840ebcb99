//! The fence a destroyed peer's state machine runs into.
//!
//! Stopping a peer's openraft group waits for its core task, not for its
//! state-machine worker, which drains whatever was queued to it (applies
//! served from the log cache, a snapshot install, the split and membership
//! hooks) and openraft 0.10 keeps that worker's join handle to itself. A
//! destroy that deleted the peer's state while the worker still ran would
//! race it: a split applied after the destroy chose which keys to delete
//! seeds a new region over keys the destroy then deletes, and an apply or
//! install after the tombstone rewrites the rows the tombstone replaced.
//!
//! So the peer's state machine passes through a [`Fence`] of its own:
//!
//! - every call of the worker that writes (an apply batch with its hooks,
//!   a snapshot install) runs holding the fence's worker lock;
//! - every writer job those calls queue checks the fence *inside the job*,
//!   on the writer thread, and fails if it is raised: the job writes
//!   nothing and is never reported done, so no reply acknowledges what
//!   was not written;
//! - the peer's raft log store checks it in every write job too (votes,
//!   appends, marks): a destroy waits for the raft core to stop only so
//!   long, and a core that outlives the wait must not write raft state
//!   after the destroy cleared it, where a later peer of the region here
//!   would find it;
//! - a destroy [`Fence::raise`]s it and waits for the worker's call in
//!   progress to end before it looks at the index or deletes anything.
//!   From then on no job of the region commits, and the call that was in
//!   progress has finished with its hooks (a split that committed first has
//!   indexed its new region, which the destroy then leaves alone).
//!
//! The fence is never lowered: a later peer of the region is a new
//! incarnation with a fence of its own.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::metrics;

/// A region peer's state-machine fence; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Fence(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    raised: AtomicBool,
    /// Held by the worker for each writing call, and by `raise` until the
    /// call in progress has ended.
    worker: tokio::sync::Mutex<()>,
}

/// A writer job of a peer whose destroy has begun: refused, not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("region {region_id}: its peer is being destroyed; {job} not written")]
pub struct Fenced {
    pub region_id: u64,
    /// What the job was: the `job` label of `store_fenced_jobs_total`.
    pub job: &'static str,
}

impl Fence {
    /// Whether a destroy has begun.
    pub fn is_raised(&self) -> bool {
        self.0.raised.load(Ordering::Acquire)
    }

    /// Called first thing inside every writer job of the peer's state
    /// machine, on the writer thread: the destroy's own job runs on that
    /// thread too, so a job that passes this check commits before any
    /// job the destroy queues after raising the fence.
    ///
    /// # Errors
    ///
    /// [`Fenced`] (as an `io::Error`) once raised; counted in
    /// `store_fenced_jobs_total`.
    pub fn check(&self, region_id: u64, job: &'static str) -> io::Result<()> {
        if !self.is_raised() {
            return Ok(());
        }
        metrics::FENCED_JOBS.with_label_values(&[job]).inc();
        Err(io::Error::other(Fenced { region_id, job }))
    }

    /// Held by the state-machine worker for one writing call. A call that
    /// starts after the fence was raised gets the guard too, and its jobs
    /// fail the check.
    pub async fn enter(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.0.worker.lock().await
    }

    /// Raises the fence, then waits until the worker's call in progress (if
    /// any) has ended, hooks included. Idempotent.
    pub async fn raise(&self) {
        self.0.raised.store(true, Ordering::Release);
        drop(self.0.worker.lock().await);
    }
}

/// Whether `e` is a job refused by a raised fence.
pub fn is_fenced(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Fenced>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn raising_waits_for_the_call_in_progress_and_then_refuses_every_job() {
        let fence = Fence::default();
        fence.check(7, "apply").expect("open");
        let guard = fence.enter().await;
        let raised = {
            let fence = fence.clone();
            tokio::spawn(async move { fence.raise().await })
        };
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while !fence.is_raised() {
            assert!(tokio::time::Instant::now() < deadline, "never raised");
            tokio::task::yield_now().await;
        }
        assert!(!raised.is_finished(), "raise waits for the worker's call");
        let before = metrics::FENCED_JOBS.with_label_values(&["apply"]).get();
        let e = fence.check(7, "apply").expect_err("refused once raised");
        assert!(is_fenced(&e), "{e}");
        assert_eq!(e.to_string(), "region 7: its peer is being destroyed; apply not written");
        assert_eq!(metrics::FENCED_JOBS.with_label_values(&["apply"]).get(), before + 1);
        drop(guard);
        tokio::time::timeout(std::time::Duration::from_secs(10), raised).await.expect("raise ends").unwrap();
        fence.raise().await;
        assert!(fence.check(7, "install").is_err(), "never lowered");
    }
}
