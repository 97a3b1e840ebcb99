//! One batch's write transactions: one on the raft log file, one on the
//! data file. A job opens tables by name and [`Txn::open_table`] picks the
//! file ([`is_log_table`]), so a job that writes both (a split seeds the
//! new region's raft state beside the parent's data) reads as one.
//!
//! The writer commits the log transaction first, then the data one, so the
//! data file is never durable ahead of the log that can replay it (see
//! [`super::writer`]).

use std::cell::Cell;
use std::io;

use redb::{Database, Durability, Key, Table, TableDefinition, TableError, TableHandle, Value, WriteTransaction};

use super::{RAFT_LOG, RAFT_META, io_err};

/// Whether the table named `name` lives in the raft log file.
pub fn is_log_table(name: &str) -> bool {
    name == RAFT_LOG.name() || name == RAFT_META.name()
}

/// Which files a job wrote to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Touched {
    pub log: bool,
    pub data: bool,
}

/// A commit that failed: why, whether redb refused it because a job hid a
/// failed call (the transaction was rolled back), and whether the log file
/// had already committed its half of the batch.
#[derive(Debug)]
pub struct CommitFailure {
    pub reason: String,
    pub poisoned: bool,
    pub log_committed: bool,
}

pub struct Txn {
    log: WriteTransaction,
    data: WriteTransaction,
    /// Files opened in the whole batch, and in the current job.
    batch: Cell<Touched>,
    job: Cell<Touched>,
    sync_data: Cell<bool>,
}

impl Txn {
    /// Begins a write transaction on each file.
    ///
    /// # Errors
    ///
    /// When either file refuses a write transaction.
    pub fn begin(log: &Database, data: &Database) -> io::Result<Txn> {
        Ok(Txn {
            log: log.begin_write().map_err(io_err)?,
            data: data.begin_write().map_err(io_err)?,
            batch: Cell::default(),
            job: Cell::default(),
            sync_data: Cell::new(false),
        })
    }

    /// Opens (creating if needed) a table in the file that holds it.
    ///
    /// # Errors
    ///
    /// redb's.
    pub fn open_table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Result<Table<'_, K, V>, TableError> {
        let mut job = self.job.get();
        let mut batch = self.batch.get();
        let tx = if is_log_table(def.name()) {
            job.log = true;
            batch.log = true;
            &self.log
        } else {
            job.data = true;
            batch.data = true;
            &self.data
        };
        self.job.set(job);
        self.batch.set(batch);
        tx.open_table(def)
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

    /// Commits the log file, then the data file, each with its durability;
    /// a file no job opened is not committed at all. Returns which files
    /// were committed.
    ///
    /// # Errors
    ///
    /// The failing commit's, with whether the log had already committed
    /// (the batch is then half on disk).
    pub(super) fn commit(self, log: Durability, data: Durability) -> Result<Touched, CommitFailure> {
        let touched = self.batch.get();
        let Txn { log: mut log_tx, data: mut data_tx, .. } = self;
        let fail = |e: &dyn std::fmt::Display, poisoned: bool, log_committed: bool| CommitFailure {
            reason: e.to_string(),
            poisoned,
            log_committed,
        };
        if touched.log {
            log_tx.set_durability(log).map_err(|e| fail(&e, false, false))?;
            log_tx.commit().map_err(|e| fail(&e, matches!(e, redb::CommitError::TransactionPoisoned), false))?;
        } else {
            log_tx.abort().map_err(|e| fail(&e, false, false))?;
        }
        if touched.data {
            data_tx.set_durability(data).map_err(|e| fail(&e, false, touched.log))?;
            data_tx.commit().map_err(|e| fail(&e, matches!(e, redb::CommitError::TransactionPoisoned), touched.log))?;
        } else {
            data_tx.abort().map_err(|e| fail(&e, false, touched.log))?;
        }
        Ok(touched)
    }

    /// Throws both transactions away.
    ///
    /// # Errors
    ///
    /// redb's.
    pub(super) fn abort(self) -> Result<(), redb::StorageError> {
        self.log.abort()?;
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
