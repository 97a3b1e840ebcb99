//! One batch's writes: a record for the raft log ([`LogBatch`], through
//! [`Txn::log`]) and a write transaction on the data file (through
//! [`Txn::open_table`]), so a job that writes both (a split seeds the new
//! region's raft state beside the parent's data) reads as one.
//!
//! The writer commits the log first, then the data, so the data file is
//! never durable ahead of the log that can replay it (see
//! [`super::writer`]).

use std::cell::Cell;
use std::io;
use std::sync::Arc;

use redb::{Database, Durability, Key, Table, TableDefinition, TableError, Value, WriteTransaction};

use super::io_err;
use super::log_engine::{LogBatch, LogEngine};

/// Which files a job wrote to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Touched {
    pub log: bool,
    pub data: bool,
}

/// A commit that failed: why, whether redb refused the data commit because a
/// job hid a failed call (the transaction was rolled back), and whether the
/// log had already committed its half of the batch.
#[derive(Debug)]
pub struct CommitFailure {
    pub reason: String,
    pub poisoned: bool,
    pub log_committed: bool,
}

pub struct Txn {
    log: LogBatch,
    data: WriteTransaction,
    /// Files opened in the whole batch, and in the current job.
    batch: Cell<Touched>,
    job: Cell<Touched>,
    sync_data: Cell<bool>,
}

impl Txn {
    /// Begins a batch on the log and a write transaction on the data file.
    ///
    /// # Errors
    ///
    /// When the data file refuses a write transaction.
    pub fn begin(log: &Arc<LogEngine>, data: &Database) -> io::Result<Txn> {
        Ok(Txn {
            log: log.batch(),
            data: data.begin_write().map_err(io_err)?,
            batch: Cell::default(),
            job: Cell::default(),
            sync_data: Cell::new(false),
        })
    }

    /// Opens (creating if needed) a table of the data file.
    ///
    /// # Errors
    ///
    /// redb's.
    pub fn open_table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Result<Table<'_, K, V>, TableError> {
        self.touch(|t| t.data = true);
        self.data.open_table(def)
    }

    /// The batch's raft log writes.
    pub fn log(&self) -> &LogBatch {
        self.touch(|t| t.log = true);
        &self.log
    }

    fn touch(&self, f: impl Fn(&mut Touched)) {
        let (mut job, mut batch) = (self.job.get(), self.batch.get());
        f(&mut job);
        f(&mut batch);
        self.job.set(job);
        self.batch.set(batch);
    }

    /// Makes this batch's commits of both files durable even if every job
    /// in it is lazy: the job wrote raft state that a replay of its data
    /// writes would overwrite (a split seeding a new region, which starts
    /// taking log entries as soon as the job returns), and the data must
    /// not outlive that raft state either.
    pub fn sync_data(&self) {
        self.sync_data.set(true);
    }

    /// Starts tracking the files of a new job.
    pub(super) fn begin_job(&self) {
        self.job.set(Touched::default());
    }

    /// The files the current job opened.
    pub(super) fn job_touched(&self) -> Touched {
        self.job.get()
    }

    /// Whether a job asked for a durable data commit.
    pub(super) fn data_sync_asked(&self) -> bool {
        self.sync_data.get()
    }

    /// Commits the log, then the data file, each with its durability (the
    /// log is synced when `log` is `Immediate`); a file no job opened is not
    /// committed at all. Returns which files were committed.
    ///
    /// # Errors
    ///
    /// The failing commit's, with whether the log had already committed
    /// (the batch is then half on disk).
    pub(super) fn commit(self, log: Durability, data: Durability) -> Result<Touched, CommitFailure> {
        let touched = self.batch.get();
        let Txn { log: batch, data: mut data_tx, .. } = self;
        let fail = |e: &dyn std::fmt::Display, poisoned: bool, log_committed: bool| CommitFailure {
            reason: e.to_string(),
            poisoned,
            log_committed,
        };
        if touched.log {
            batch.commit(matches!(log, Durability::Immediate)).map_err(|e| fail(&e, false, false))?;
        }
        if touched.data {
            data_tx.set_durability(data).map_err(|e| fail(&e, false, touched.log))?;
            data_tx.commit().map_err(|e| fail(&e, matches!(e, redb::CommitError::TransactionPoisoned), touched.log))?;
        } else {
            data_tx.abort().map_err(|e| fail(&e, false, touched.log))?;
        }
        Ok(touched)
    }

    /// Throws the batch away.
    ///
    /// # Errors
    ///
    /// redb's.
    pub(super) fn abort(self) -> Result<(), redb::StorageError> {
        self.data.abort()
    }

    /// For tests that drive a job's body directly: commits both files
    /// durably.
    ///
    /// # Errors
    ///
    /// redb's.
    pub fn commit_now(self) -> io::Result<()> {
        self.commit(Durability::Immediate, Durability::Immediate).map(|_| ()).map_err(|e| io_err(e.reason))
    }
}
