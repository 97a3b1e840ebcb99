//! The group-commit writer: every durable write of the store (raft log
//! appends, votes, truncations and purges of every region, and applied
//! state) goes through one thread that commits whatever has queued up as one
//! batch, so one fsync covers many regions' writes.
//!
//! Jobs run in queue order inside the batch, so writes of one region keep
//! the order they were submitted in (openraft requires it).
//!
//! # The log and the data
//!
//! The raft log (entries, votes, marks) lives in the append-only log engine
//! ([`super::log_engine`]) and the data (user keys, applied state,
//! sessions, region states) in a redb file; a batch is one log record and
//! one write transaction on the data file ([`Txn`]). A durable redb commit
//! writes every page its transaction dirtied, and the data file's B-trees
//! dirty many pages per write; a durable log record is one sequential write
//! and one fsync, so that is what a raft append pays.
//!
//! Raft log writes are durable; applying committed entries need not be,
//! because the log can replay them. The data file is committed without
//! fsync unless a job in the batch asks for durability, and made durable
//! at least every [`DATA_SYNC_INTERVAL`]. Three rules keep the data file
//! replayable from the log after a crash:
//!
//! - Each batch commits the log first, then the data file, so data is
//!   never durable ahead of the log entries it was applied from.
//! - A job queued with [`GroupWriter::write_after_sync`] (a log purge) runs
//!   only once every data write queued before it is durable: it starts a
//!   batch of its own, and the data file is synced before that batch.
//! - A job that seeds raft state the data file must not forget (a split's
//!   new region) calls [`Txn::sync_data`], which makes its batch's commits
//!   of both durable.
//!
//! # A failing job fails only itself
//!
//! A batch mixes the writes of many regions, so one region's storage error
//! must not fail the others. When a job returns an error, its partial writes
//! are already in the batch's transactions, and the only way to take them out
//! is to abort them: the writer aborts it and runs the batch again
//! in a new one without that job. The failing job's waiter gets its own
//! error; every other waiter gets the commit's outcome. That is why a job is
//! an `Fn`, not an `FnOnce`: it may run more than once, and only its last run
//! counts, so it must be a function of what it captured and of the
//! transaction, with no side effects of its own (its result is handed back
//! from the run that committed).
//!
//! Savepoints would undo one job without repeating the others, but redb only
//! creates a savepoint in a transaction that has not opened a table yet, so
//! only one at the start of the batch is possible, and restoring that undoes
//! every job before the failing one too. One transaction per job would
//! isolate jobs without running them again, but costs every job a commit.
//! Running the batch again costs nothing until a job fails; a job failure is
//! rare (it stops its region's raft group), so that is the choice.
//!
//! Ordering across a failure holds because every caller waits for a write's
//! result before queueing a write that depends on it (openraft calls a
//! region's storage one call at a time): a later job of the same batch never
//! depends on the failed one.
//!
//! The commit itself failing fails every job of the batch. The log (after a
//! failed write or sync) and redb (after a failed commit) then refuse
//! further writes, and the commit may or may not have reached the disk, so
//! the writer stops (below) and the waiters hear that the outcome is
//! unknown. A data commit refused because the transaction was poisoned (a
//! job hid a failed redb call and returned success) was rolled back by
//! redb: the batch fails, the writer goes on, unless the log had already
//! committed its half, which leaves the batch half on disk: the writer
//! stops.
//!
//! # Writer death
//!
//! The writer stops for good when the log or redb refuses further writes (a failed
//! commit, a failed abort, no new transaction) or when a job panics. A panic
//! is a bug that struck in the middle of a transaction nobody can vouch for,
//! so it is not caught and counted as that job's failure: it ends the writer
//! like the others (redb, too, marks the file for repair when a panic drops
//! a write transaction). Once stopped, [`GroupWriter::failure`] names the reason,
//! [`GroupWriter::died`] resolves, every queued and later write fails at once
//! with `group-commit writer died: ...`, and the store must stop serving:
//! `/health` answers 503 and the `storenode` binary exits non-zero. A
//! restart reopens the log (which drops a record cut short) and the data
//! file (which redb repairs).

use std::any::Any;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use redb::Database;
use tokio::sync::{mpsc, oneshot, watch};

#[cfg(test)]
pub mod hold;
mod thread;

use self::thread::{JobRuns, WriterThread};
use super::log_engine::LogEngine;
use super::txn::Txn;

/// Jobs in one transaction at most: bounds the latency one batch adds.
pub const MAX_BATCH: usize = 1024;
/// Queued jobs before submitters wait: back-pressure, not unbounded memory.
const QUEUE: usize = 8192;
/// The data file is made durable at least this often while it is written:
/// it bounds how much of the log a restart replays, and redb reuses the
/// pages a lazy commit frees only after a durable one.
pub const DATA_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs inside a batch's transaction; may run more than once (see the module
/// doc), so `Fn`.
type Job = Box<dyn Fn(&Txn) -> io::Result<()> + Send>;

struct Request {
    job: Job,
    durable: bool,
    /// Runs only once every data write queued before it is durable.
    after_sync: bool,
    done: Done,
}

/// Who hears a request's outcome: a waiting submitter, or a callback the
/// writer thread runs itself (no task hop: a raft log append tells openraft
/// it is flushed straight from here).
enum Done {
    Wait(oneshot::Sender<io::Result<()>>),
    Call(Callback),
}

/// A completion callback that is called exactly once: with the outcome, or,
/// if its request is dropped unanswered (the writer died with it queued),
/// with the writer's death.
pub struct Callback(Option<Box<dyn FnOnce(io::Result<()>) + Send>>);

impl Callback {
    fn call(mut self, result: io::Result<()>) {
        if let Some(f) = self.0.take() {
            f(result);
        }
    }
}

impl Drop for Callback {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(Err(io::Error::other("group-commit writer died with the write queued")));
        }
    }
}

impl Done {
    fn send(self, result: io::Result<()>) {
        match self {
            Done::Wait(tx) => {
                let _ = tx.send(result);
            }
            Done::Call(cb) => cb.call(result),
        }
    }
}

/// Faults a test can switch on for a whole process, off unless named at
/// startup (see `docs/operations.md`, "Failpoints").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Failpoints {
    /// The writer panics inside the job after this many job runs, as a
    /// buggy job would.
    pub writer_panic_after: Option<u64>,
}

impl Failpoints {
    /// The environment variable that sets [`Failpoints::writer_panic_after`].
    pub const WRITER_PANIC_AFTER: &'static str = "STORE_FAILPOINT_WRITER_PANIC_AFTER";

    /// Reads the failpoints from `lookup` (the environment).
    ///
    /// # Errors
    ///
    /// `InvalidInput` when a failpoint is set to something other than a
    /// number: a test that meant to inject a fault must not run without it.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> io::Result<Failpoints> {
        let writer_panic_after = match lookup(Self::WRITER_PANIC_AFTER) {
            None => None,
            Some(v) => Some(v.trim().parse().map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("{}={v:?}: {e}", Self::WRITER_PANIC_AFTER))
            })?),
        };
        Ok(Failpoints { writer_panic_after })
    }
}

#[derive(Clone)]
pub struct GroupWriter {
    tx: mpsc::Sender<Request>,
    /// `Some(reason)` once the writer thread has stopped for good.
    died: watch::Receiver<Option<String>>,
}

impl GroupWriter {
    /// Starts the writer thread over the raft log `log` and the data file
    /// `data`.
    pub fn start(log: Arc<LogEngine>, data: Arc<Database>) -> GroupWriter {
        Self::start_with(log, data, Failpoints::default())
    }

    /// As [`GroupWriter::start`], with `failpoints` armed.
    pub fn start_with(log: Arc<LogEngine>, data: Arc<Database>, failpoints: Failpoints) -> GroupWriter {
        let (tx, mut rx) = mpsc::channel(QUEUE);
        let (died_tx, died) = watch::channel(None);
        std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || {
                let mut runs = JobRuns::new(failpoints.writer_panic_after);
                let reason = match panic::catch_unwind(AssertUnwindSafe(|| {
                    WriterThread::new(log, data).run(&mut rx, &mut runs)
                })) {
                    // Every GroupWriter is gone: nobody is left to write.
                    Ok(Ok(())) => return,
                    Ok(Err(fatal)) => fatal,
                    Err(payload) => format!("a write job panicked: {}", panic_message(&*payload)),
                };
                // The reason first, then the queue: a submitter that finds
                // the queue closed (or its request dropped) reads why.
                died_tx.send_replace(Some(reason));
                drop(rx);
            })
            .expect("spawn group-commit thread");
        GroupWriter { tx, died }
    }

    /// Runs `f` inside the next batch's transaction and returns its result
    /// once the batch is durably committed. `f` may run more than once (the
    /// batch is run again without a job that failed); only the run that
    /// commits counts.
    ///
    /// # Errors
    ///
    /// `f`'s error (its writes are not committed); the commit's, which fails
    /// the whole batch; or `group-commit writer died: ...` once the writer
    /// has stopped.
    pub async fn write<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: Fn(&Txn) -> io::Result<T> + Send + 'static,
    {
        self.submit(true, false, f).await
    }

    /// Like [`GroupWriter::write`], but `f` runs only once every data write
    /// queued before it is durable: for a log purge, which must not drop
    /// entries whose applied state could still be lost.
    ///
    /// # Errors
    ///
    /// As [`GroupWriter::write`].
    pub async fn write_after_sync<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: Fn(&Txn) -> io::Result<T> + Send + 'static,
    {
        self.submit(true, true, f).await
    }

    /// Like [`GroupWriter::write`], but the write need not be on disk when
    /// this returns: it is visible to readers, and durable once any later
    /// durable write commits. For state the raft log can rebuild.
    ///
    /// # Errors
    ///
    /// As [`GroupWriter::write`].
    pub async fn write_lazy<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: Fn(&Txn) -> io::Result<T> + Send + 'static,
    {
        self.submit(false, false, f).await
    }

    /// Queues `f` for the next batch and returns once it is queued, not
    /// committed: `done` runs on the writer thread with the commit's outcome
    /// (durable when `durable`). Writes queued later by the same caller
    /// commit in the same batch or a later one, so order holds. `f` may run
    /// more than once, as for [`GroupWriter::write`].
    ///
    /// # Errors
    ///
    /// `group-commit writer died: ...` when the writer has stopped (`done`
    /// is then called with the same error).
    pub async fn submit_then<F, D>(&self, durable: bool, f: F, done: D) -> io::Result<()>
    where
        F: Fn(&Txn) -> io::Result<()> + Send + 'static,
        D: FnOnce(io::Result<()>) + Send + 'static,
    {
        let done = Done::Call(Callback(Some(Box::new(done))));
        let req = Request { job: Box::new(f), durable, after_sync: false, done };
        if let Err(mpsc::error::SendError(req)) = self.tx.send(req).await {
            let e = self.death_error().await;
            req.done.send(Err(io::Error::new(e.kind(), e.to_string())));
            return Err(e);
        }
        Ok(())
    }

    /// Why the writer stopped, once it has; `None` while it runs.
    pub fn failure(&self) -> Option<String> {
        self.died.borrow().clone()
    }

    /// Resolves, with the reason, once the writer has stopped for good.
    pub async fn died(&self) -> String {
        let mut died = self.died.clone();
        match died.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            // The thread dropped its end without a reason: it ended some
            // other way (it cannot end normally while `self` holds a sender).
            Err(_) => "the writer thread ended".into(),
        }
    }

    async fn submit<T, F>(&self, durable: bool, after_sync: bool, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: Fn(&Txn) -> io::Result<T> + Send + 'static,
    {
        let slot: Arc<Mutex<Option<T>>> = Arc::new(Mutex::new(None));
        let out = slot.clone();
        let job: Job = Box::new(move |tx| {
            let v = f(tx)?;
            *out.lock().unwrap() = Some(v);
            Ok(())
        });
        let (done, wait) = oneshot::channel();
        if self.tx.send(Request { job, durable, after_sync, done: Done::Wait(done) }).await.is_err() {
            return Err(self.death_error().await);
        }
        match wait.await {
            Ok(result) => result?,
            // Dropped unanswered: only the writer's death does that, and it
            // names its reason right after.
            Err(_) => return Err(self.death_error().await),
        }
        let v = slot.lock().unwrap().take();
        v.ok_or_else(|| io::Error::other("committed job left no result"))
    }

    async fn death_error(&self) -> io::Error {
        io::Error::other(format!("group-commit writer died: {}", self.died().await))
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".into()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    use redb::backends::InMemoryBackend;
    use redb::{ReadableDatabase, StorageBackend, TableDefinition, TableHandle};
    use tokio::task::JoinHandle;

    use super::*;
    use crate::metrics;

    const T: TableDefinition<&str, u64> = TableDefinition::new("t");
    const WAIT: Duration = Duration::from_secs(10);

    /// A raft log in a directory of its own, removed with the guard.
    fn test_log() -> (tempfile::TempDir, Arc<LogEngine>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = LogEngine::open(dir.path()).expect("raft log");
        (dir, log)
    }

    fn memory_db() -> Arc<Database> {
        Arc::new(Database::builder().create_with_backend(InMemoryBackend::new()).expect("in-memory database"))
    }

    fn read(db: &Database, key: &str) -> Option<u64> {
        let tx = db.begin_read().expect("read");
        let t = match tx.open_table(T) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return None,
            Err(e) => panic!("{e}"),
        };
        t.get(key).expect("get").map(|v| v.value())
    }

    fn put(tx: &Txn, key: &str, value: u64) -> io::Result<()> {
        tx.open_table(T).map_err(io::Error::other)?.insert(key, value).map_err(io::Error::other)?;
        Ok(())
    }

    impl GroupWriter {
        fn queued(&self) -> usize {
            self.tx.max_capacity() - self.tx.capacity()
        }
    }

    /// Submits `f` and waits until it is queued, so jobs queue in the order
    /// they are submitted.
    async fn queue<T, F>(writer: &GroupWriter, f: F) -> JoinHandle<io::Result<T>>
    where
        T: Send + 'static,
        F: Fn(&Txn) -> io::Result<T> + Send + 'static,
    {
        let queued = writer.queued();
        let w = writer.clone();
        let job = tokio::spawn(async move { w.write(f).await });
        let deadline = tokio::time::Instant::now() + WAIT;
        while writer.queued() == queued {
            assert!(tokio::time::Instant::now() < deadline, "a job never queued");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        job
    }

    async fn outcome<T>(job: JoinHandle<io::Result<T>>) -> io::Result<T> {
        tokio::time::timeout(WAIT, job).await.expect("a write never answered").expect("write task")
    }

    #[tokio::test]
    async fn a_failing_job_fails_alone_and_its_batch_commits() {
        let db = memory_db();
        let (_dir, log) = test_log();
        let writer = GroupWriter::start(log, db.clone());
        let failures = metrics::GROUP_COMMIT_JOB_FAILURES.get();
        let runs: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
        let gate = writer.hold().await;

        let r = runs.clone();
        let before = queue(&writer, move |tx| {
            r[0].fetch_add(1, Ordering::SeqCst);
            put(tx, "before", 1)?;
            Ok("before's result")
        })
        .await;
        let r = runs.clone();
        let failing = queue(&writer, move |tx| {
            r[1].fetch_add(1, Ordering::SeqCst);
            put(tx, "failing", 2)?;
            Err::<(), _>(io::Error::new(io::ErrorKind::InvalidData, "region 7: bad entry"))
        })
        .await;
        let r = runs.clone();
        let after = queue(&writer, move |tx| {
            r[2].fetch_add(1, Ordering::SeqCst);
            put(tx, "after", 3)
        })
        .await;
        gate.release().await;

        assert_eq!(outcome(before).await.expect("before commits"), "before's result");
        let e = outcome(failing).await.expect_err("the failing job's own error");
        assert_eq!((e.kind(), e.to_string().as_str()), (io::ErrorKind::InvalidData, "region 7: bad entry"));
        outcome(after).await.expect("after commits");
        assert_eq!((read(&db, "before"), read(&db, "failing"), read(&db, "after")), (Some(1), None, Some(3)));
        // One batch: the job before the failing one ran again without it.
        let runs: Vec<usize> = runs.iter().map(|r| r.load(Ordering::SeqCst)).collect();
        assert_eq!(runs, [2, 1, 1]);
        assert!(metrics::GROUP_COMMIT_JOB_FAILURES.get() > failures);
        assert_eq!(writer.failure(), None);
        writer.write(|tx| put(tx, "later", 4)).await.expect("the writer goes on");
        assert_eq!(read(&db, "later"), Some(4));
    }

    #[tokio::test]
    async fn a_batch_where_every_job_fails_commits_nothing() {
        let db = memory_db();
        let (_dir, log) = test_log();
        let writer = GroupWriter::start(log, db.clone());
        let gate = writer.hold().await;
        let mut jobs = Vec::new();
        for i in 0..3u64 {
            jobs.push(
                queue(&writer, move |tx| {
                    put(tx, &format!("k{i}"), i)?;
                    Err::<(), _>(io::Error::other(format!("job {i} failed")))
                })
                .await,
            );
        }
        gate.release().await;
        for (i, job) in jobs.into_iter().enumerate() {
            assert_eq!(outcome(job).await.expect_err("fails").to_string(), format!("job {i} failed"));
            assert_eq!(read(&db, &format!("k{i}")), None);
        }
        assert_eq!(writer.failure(), None);
    }

    #[tokio::test]
    async fn a_panicking_job_kills_the_writer_and_nothing_hangs() {
        let db = memory_db();
        let (_dir, log) = test_log();
        let writer = GroupWriter::start(log, db.clone());
        writer.write(|tx| put(tx, "committed", 1)).await.expect("a first write");
        let gate = writer.hold().await;
        let good = queue(&writer, |tx| put(tx, "good", 2)).await;
        let panicking = queue(&writer, |_| -> io::Result<()> { panic!("boom") }).await;
        let queued_behind = queue(&writer, |tx| put(tx, "behind", 3)).await;
        gate.release().await;

        for job in [good, panicking, queued_behind] {
            let e = outcome(job).await.expect_err("the writer died");
            assert_eq!(e.to_string(), "group-commit writer died: a write job panicked: boom");
        }
        let reason = tokio::time::timeout(WAIT, writer.died()).await.expect("died resolves");
        assert_eq!(reason, "a write job panicked: boom");
        assert_eq!(writer.failure().as_deref(), Some("a write job panicked: boom"));
        let later = tokio::time::timeout(WAIT, writer.write(|tx| put(tx, "later", 4))).await.expect("no hang");
        assert!(later.expect_err("refused").to_string().starts_with("group-commit writer died"));
        assert_eq!((read(&db, "committed"), read(&db, "good"), read(&db, "later")), (Some(1), None, None));
    }

    #[tokio::test]
    async fn the_panic_failpoint_kills_the_writer_after_n_job_runs() {
        let db = memory_db();
        let (_dir, log) = test_log();
        let writer = GroupWriter::start_with(log, db.clone(), Failpoints { writer_panic_after: Some(2) });
        writer.write(|tx| put(tx, "a", 1)).await.expect("first");
        writer.write_lazy(|tx| put(tx, "b", 2)).await.expect("second");
        let e = writer.write(|tx| put(tx, "c", 3)).await.expect_err("third");
        assert!(e.to_string().contains("STORE_FAILPOINT_WRITER_PANIC_AFTER=2"), "{e}");
        assert!(writer.failure().is_some());
        assert_eq!((read(&db, "a"), read(&db, "b"), read(&db, "c")), (Some(1), Some(2), None));
    }

    /// An in-memory disk that counts its fsyncs and fails them on demand.
    #[derive(Debug, Default)]
    struct TestDisk {
        inner: InMemoryBackend,
        fail_sync: Arc<AtomicBool>,
        syncs: Arc<AtomicUsize>,
    }

    impl StorageBackend for TestDisk {
        fn len(&self) -> io::Result<u64> {
            self.inner.len()
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
            self.inner.read(offset, out)
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.inner.set_len(len)
        }
        fn sync_data(&self) -> io::Result<()> {
            if self.fail_sync.load(Ordering::SeqCst) {
                return Err(io::Error::other("injected fsync failure"));
            }
            self.syncs.fetch_add(1, Ordering::SeqCst);
            self.inner.sync_data()
        }
        fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
            self.inner.write(offset, data)
        }
    }

    #[tokio::test]
    async fn a_failed_commit_fails_the_batch_and_kills_the_writer() {
        let fail_sync = Arc::new(AtomicBool::new(false));
        let disk = TestDisk { fail_sync: fail_sync.clone(), ..TestDisk::default() };
        let db = Arc::new(Database::builder().create_with_backend(disk).expect("database"));
        let (_dir, log) = test_log();
        let writer = GroupWriter::start(log, db.clone());
        writer.write(|tx| put(tx, "a", 1)).await.expect("a healthy commit");

        fail_sync.store(true, Ordering::SeqCst);
        let e = writer.write(|tx| put(tx, "b", 2)).await.expect_err("the fsync fails");
        assert!(e.to_string().starts_with("group-commit writer died: commit failed, outcome unknown"), "{e}");
        let reason = tokio::time::timeout(WAIT, writer.died()).await.expect("died resolves");
        assert!(reason.contains("injected fsync failure"), "{reason}");
        let later = tokio::time::timeout(WAIT, writer.write(|tx| put(tx, "c", 3))).await.expect("no hang");
        assert!(later.is_err());
    }

    /// A raft log (it counts its own fsyncs) and a data file that counts
    /// its fsyncs.
    fn counted_files() -> (tempfile::TempDir, Arc<LogEngine>, Arc<Database>, Arc<AtomicUsize>) {
        let (dir, log) = test_log();
        let syncs = Arc::new(AtomicUsize::new(0));
        let disk = TestDisk { syncs: syncs.clone(), ..TestDisk::default() };
        (dir, log, Arc::new(Database::builder().create_with_backend(disk).expect("database")), syncs)
    }

    fn append(tx: &Txn, index: u64) -> io::Result<()> {
        tx.log().append(1, index, b"entry");
        Ok(())
    }

    #[tokio::test]
    async fn appends_fsync_the_log_file_and_applies_stay_lazy_in_the_data_file() {
        let (_dir, log, data, data_syncs) = counted_files();
        let writer = GroupWriter::start(log.clone(), data.clone());
        let (l0, d0) = (log.syncs(), data_syncs.load(Ordering::SeqCst));
        for i in 0..5u64 {
            writer.write(move |tx| append(tx, i)).await.expect("append");
            writer.write_lazy(move |tx| put(tx, &format!("k{i}"), i)).await.expect("apply");
        }
        assert!(log.syncs() >= l0 + 5, "every append is durable");
        assert_eq!(data_syncs.load(Ordering::SeqCst), d0, "no apply paid an fsync");
        assert_eq!(read(&data, "k4"), Some(4), "lazy writes are visible");
        assert_eq!(log.entries(1, 0, u64::MAX).expect("entries").len(), 5);
        // The data file never holds the log's writes.
        let tx = data.begin_read().expect("read");
        assert_eq!(tx.list_tables().expect("tables").map(|t| t.name().to_string()).collect::<Vec<_>>(), ["t"]);
    }

    #[tokio::test]
    async fn a_purge_runs_only_after_the_data_written_before_it_is_durable() {
        let (_dir, log, data, data_syncs) = counted_files();
        let writer = GroupWriter::start(log.clone(), data.clone());
        let gate = writer.hold().await;
        let before = data_syncs.load(Ordering::SeqCst);
        // Lazy, like an apply.
        let lazy = {
            let w = writer.clone();
            let queued = writer.queued();
            let job = tokio::spawn(async move { w.write_lazy(|tx| put(tx, "lazy", 2)).await });
            while writer.queued() == queued {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            job
        };
        let (d, syncs) = (data.clone(), data_syncs.clone());
        let purge = {
            let w = writer.clone();
            let queued = writer.queued();
            let job = tokio::spawn(async move {
                w.write_after_sync(move |tx| {
                    append(tx, 9)?;
                    Ok((syncs.load(Ordering::SeqCst), read(&d, "lazy")))
                })
                .await
            });
            while writer.queued() == queued {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            job
        };
        let behind = queue(&writer, |tx| put(tx, "behind", 3)).await;
        gate.release().await;
        outcome(lazy).await.expect("lazy write");
        let (syncs_seen, lazy_seen) = outcome(purge).await.expect("purge");
        assert_eq!(lazy_seen, Some(2), "the write queued before the purge committed first");
        assert!(syncs_seen > before, "the data file was synced before the purge ran");
        outcome(behind).await.expect("the job behind the purge commits too");
        assert_eq!(read(&data, "behind"), Some(3));
    }

    #[tokio::test]
    async fn a_job_can_ask_for_a_durable_data_commit() {
        let (_dir, log, data, data_syncs) = counted_files();
        let writer = GroupWriter::start(log.clone(), data);
        writer.write_lazy(|tx| put(tx, "a", 1)).await.expect("lazy");
        let before = data_syncs.load(Ordering::SeqCst);
        writer.write_lazy(|tx| put(tx, "b", 2)).await.expect("lazy");
        assert_eq!(data_syncs.load(Ordering::SeqCst), before);
        let log_before = log.syncs();
        writer
            .write_lazy(|tx| {
                tx.sync_data();
                append(tx, 1)?;
                put(tx, "split", 3)
            })
            .await
            .expect("a lazy job that asks for durability");
        assert!(data_syncs.load(Ordering::SeqCst) > before);
        assert!(log.syncs() > log_before, "its log half is durable too");
    }

    #[test]
    fn failpoints_come_from_the_environment_or_refuse_to_start() {
        let env = |v: Option<&'static str>| {
            move |k: &str| if k == Failpoints::WRITER_PANIC_AFTER { v.map(String::from) } else { None }
        };
        assert_eq!(Failpoints::from_env(env(None)).unwrap(), Failpoints::default());
        assert_eq!(Failpoints::from_env(env(Some("40"))).unwrap().writer_panic_after, Some(40));
        let e = Failpoints::from_env(env(Some("forty"))).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("STORE_FAILPOINT_WRITER_PANIC_AFTER"), "{e}");
    }
}
