//! The writer thread's loop: takes what has queued as one batch, runs its
//! jobs in one log record and one data transaction, commits the log then the data, and
//! answers each job (the rules are in [`super`]'s module doc).

use std::io;
use std::sync::Arc;
use std::time::Instant;

use redb::{Database, Durability};

use crate::engine::log_engine::LogEngine;
use tokio::sync::mpsc;

use super::{DATA_SYNC_INTERVAL, Failpoints, Job, MAX_BATCH, Request};
use crate::engine::txn::Txn;
use crate::metrics;

/// Counts job runs for the panic failpoint.
pub(super) struct JobRuns {
    count: u64,
    panic_after: Option<u64>,
}

impl JobRuns {
    pub(super) fn new(panic_after: Option<u64>) -> JobRuns {
        JobRuns { count: 0, panic_after }
    }

    fn run(&mut self, job: &Job, tx: &Txn) -> io::Result<()> {
        if self.panic_after == Some(self.count) {
            panic!("failpoint {}={} reached", Failpoints::WRITER_PANIC_AFTER, self.count);
        }
        self.count += 1;
        job(tx)
    }
}

/// The writer thread's loop over the log and the data file, and whether the
/// data file holds lazy commits that are not durable yet.
pub(super) struct WriterThread {
    log: Arc<LogEngine>,
    data: Arc<Database>,
    /// Since when the data file has lazy commits not yet durable.
    data_lazy_since: Option<Instant>,
}

/// The database refuses further writes: the writer must stop.
struct Fatal(String);

/// Every job's outcome in batch order, and which files were committed how
/// (`None`: not committed).
struct Outcome {
    results: Vec<io::Result<()>>,
    log: Option<Durability>,
    data: Option<Durability>,
}

impl WriterThread {
    pub(super) fn new(log: Arc<LogEngine>, data: Arc<Database>) -> WriterThread {
        WriterThread { log, data, data_lazy_since: None }
    }

    /// The writer loop. Returns when every sender is gone, or with the
    /// reason the files can no longer be written.
    pub(super) fn run(&mut self, rx: &mut mpsc::Receiver<Request>, runs: &mut JobRuns) -> Result<(), String> {
        // A job that must run after a data sync starts the batch after the
        // one it arrived behind.
        let mut carried: Option<Request> = None;
        loop {
            let first = match carried.take() {
                Some(r) => r,
                None => match rx.blocking_recv() {
                    Some(r) => r,
                    None => return Ok(()),
                },
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) if r.after_sync => {
                        carried = Some(r);
                        break;
                    }
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            if batch[0].after_sync
                && let Err(Fatal(reason)) = self.sync_data()
            {
                for r in batch.into_iter().chain(carried) {
                    r.done.send(Err(io::Error::other(format!("group-commit writer died: {reason}"))));
                }
                return Err(reason);
            }
            metrics::GROUP_COMMIT_BATCH_SIZE.observe(batch.len() as f64);
            let started = Instant::now();
            // The batch behind is a purge: the data it covers must be on
            // disk before it runs.
            let sync_data =
                carried.is_some() || self.data_lazy_since.is_some_and(|since| since.elapsed() >= DATA_SYNC_INTERVAL);
            match self.commit(&batch, sync_data, runs) {
                Ok(outcome) => {
                    if matches!(outcome.log, Some(Durability::Immediate))
                        || matches!(outcome.data, Some(Durability::Immediate))
                    {
                        metrics::GROUP_COMMIT_SECONDS.observe(started.elapsed().as_secs_f64());
                        metrics::GROUP_COMMITS.inc();
                    } else if outcome.log.is_some() || outcome.data.is_some() {
                        metrics::LAZY_COMMITS.inc();
                    }
                    match outcome.data {
                        Some(Durability::Immediate) => self.data_synced(),
                        Some(_) => {
                            self.data_lazy_since.get_or_insert_with(Instant::now);
                        }
                        None => {}
                    }
                    // Due, but this batch wrote no data: sync on its own.
                    if sync_data
                        && !matches!(outcome.data, Some(Durability::Immediate))
                        && let Err(Fatal(reason)) = self.sync_data()
                    {
                        for r in batch.into_iter().chain(carried) {
                            r.done.send(Err(io::Error::other(format!("group-commit writer died: {reason}"))));
                        }
                        return Err(reason);
                    }
                    for (r, result) in batch.into_iter().zip(outcome.results) {
                        r.done.send(result);
                    }
                }
                Err(Fatal(reason)) => {
                    for r in batch.into_iter().chain(carried) {
                        r.done.send(Err(io::Error::other(format!("group-commit writer died: {reason}"))));
                    }
                    return Err(reason);
                }
            }
        }
    }

    fn data_synced(&mut self) {
        if self.data_lazy_since.take().is_some() {
            metrics::DATA_SYNCS.inc();
        }
    }

    /// Makes every lazy commit of the data file durable: an empty durable
    /// commit carries them.
    fn sync_data(&mut self) -> Result<(), Fatal> {
        if self.data_lazy_since.is_none() {
            return Ok(());
        }
        let tx = self.data.begin_write().map_err(|e| Fatal(format!("cannot begin a write transaction: {e}")))?;
        tx.commit().map_err(|e| Fatal(format!("data sync failed, outcome unknown: {e}")))?;
        self.data_synced();
        Ok(())
    }

    /// Commits `batch` in one transaction per file, leaving out each job
    /// that fails. Each failure costs one more attempt, so a batch takes at
    /// most one more than it has jobs. The data file's commit is durable
    /// when `sync_data`, when a job asks for it, or when a durable job
    /// wrote to it.
    fn commit(&self, batch: &[Request], sync_data: bool, runs: &mut JobRuns) -> Result<Outcome, Fatal> {
        let mut failed: Vec<Option<io::Error>> = batch.iter().map(|_| None).collect();
        let (log, data) = 'attempt: loop {
            if failed.iter().all(Option::is_some) {
                break 'attempt (None, None);
            }
            let txn = Txn::begin(&self.log, &self.data)
                .map_err(|e| Fatal(format!("cannot begin a write transaction: {e}")))?;
            let (mut log_durable, mut data_durable) = (false, sync_data);
            for (i, r) in batch.iter().enumerate() {
                if failed[i].is_some() {
                    continue;
                }
                txn.begin_job();
                if let Err(e) = runs.run(&r.job, &txn) {
                    metrics::GROUP_COMMIT_JOB_FAILURES.inc();
                    failed[i] = Some(e);
                    // The job's partial writes are in `txn`: only an abort
                    // takes them out, and the others' writes with them.
                    txn.abort().map_err(|e| Fatal(format!("abort after a failed job: {e}")))?;
                    continue 'attempt;
                }
                let touched = txn.job_touched();
                log_durable |= r.durable && touched.log;
                data_durable |= r.durable && touched.data;
            }
            // A job that asks for a durable data commit wrote raft state
            // beside it (a split's seed): the log half must be durable too,
            // and first, or the data would name a region whose vote and
            // marks a crash could still take.
            if txn.data_sync_asked() {
                data_durable = true;
                log_durable = true;
            }
            let durability = |durable: bool| if durable { Durability::Immediate } else { Durability::None };
            let (log, data) = (durability(log_durable), durability(data_durable));
            match txn.commit(log, data) {
                Ok(touched) => break 'attempt (touched.log.then_some(log), touched.data.then_some(data)),
                Err(f) if f.poisoned && !f.log_committed => {
                    let results = failed
                        .into_iter()
                        .map(|e| {
                            Err(e.unwrap_or_else(|| io::Error::other(format!("batch not committed: {}", f.reason))))
                        })
                        .collect();
                    return Ok(Outcome { results, log: None, data: None });
                }
                Err(f) if f.log_committed => {
                    return Err(Fatal(format!("data commit failed after the log's, outcome unknown: {}", f.reason)));
                }
                Err(f) => return Err(Fatal(format!("commit failed, outcome unknown: {}", f.reason))),
            }
        };
        Ok(Outcome { results: failed.into_iter().map(|f| f.map_or(Ok(()), Err)).collect(), log, data })
    }
}
