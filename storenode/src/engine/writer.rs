//! The group-commit writer: every durable write of the store (raft log
//! appends, votes, truncations and purges of every region, and applied
//! state) goes through one thread that commits whatever has queued up as one
//! redb transaction, so one fsync covers many regions' writes.
//!
//! Jobs run in queue order inside the batch, so writes of one region keep
//! the order they were submitted in (openraft requires it).
//!
//! Raft log writes are durable; applying committed entries need not be,
//! because the log can replay them. A batch holding only lazy jobs (applies)
//! commits without fsync; redb makes it durable with the next durable
//! commit, which always comes before anything that depends on it (a log
//! purge is itself a durable job queued after the applies it covers). A job that fails
//! fails the whole batch: the transaction is dropped, nothing is committed,
//! and every waiter gets the error. Storage errors are fatal to the raft
//! groups that see them, which stop rather than diverge.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use redb::{Database, Durability, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use crate::metrics;

/// Jobs in one transaction at most: bounds the latency one batch adds.
pub const MAX_BATCH: usize = 1024;
/// Queued jobs before submitters wait: back-pressure, not unbounded memory.
const QUEUE: usize = 8192;

type Job = Box<dyn FnOnce(&WriteTransaction) -> io::Result<()> + Send>;

struct Request {
    job: Job,
    durable: bool,
    done: oneshot::Sender<io::Result<()>>,
}

#[derive(Clone)]
pub struct GroupWriter {
    tx: mpsc::Sender<Request>,
}

impl GroupWriter {
    /// Starts the writer thread over `db`.
    pub fn start(db: Arc<Database>) -> GroupWriter {
        let (tx, rx) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || run(db, rx))
            .expect("spawn group-commit thread");
        GroupWriter { tx }
    }

    /// Runs `f` inside the next batch's transaction and returns its result
    /// once the batch is durably committed.
    ///
    /// # Errors
    ///
    /// `f`'s error, any other job's error in the same batch, or the commit's.
    pub async fn write<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> io::Result<T> + Send + 'static,
    {
        self.submit(true, f).await
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
        F: FnOnce(&WriteTransaction) -> io::Result<T> + Send + 'static,
    {
        self.submit(false, f).await
    }

    async fn submit<T, F>(&self, durable: bool, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> io::Result<T> + Send + 'static,
    {
        let slot: Arc<Mutex<Option<T>>> = Arc::new(Mutex::new(None));
        let out = slot.clone();
        let job: Job = Box::new(move |tx| {
            let v = f(tx)?;
            *out.lock().unwrap() = Some(v);
            Ok(())
        });
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Request { job, durable, done })
            .await
            .map_err(|_| io::Error::other("group-commit writer stopped"))?;
        wait.await.map_err(|_| io::Error::other("group-commit writer stopped"))??;
        let v = slot.lock().unwrap().take();
        v.ok_or_else(|| io::Error::other("committed job left no result"))
    }
}

fn run(db: Arc<Database>, mut rx: mpsc::Receiver<Request>) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let size = batch.len();
        let durable = batch.iter().any(|r| r.durable);
        let (jobs, waiters): (Vec<Job>, Vec<_>) = batch.into_iter().map(|r| (r.job, r.done)).unzip();
        let started = Instant::now();
        let result = commit(&db, jobs, durable);
        metrics::GROUP_COMMIT_BATCH_SIZE.observe(size as f64);
        if durable {
            metrics::GROUP_COMMIT_SECONDS.observe(started.elapsed().as_secs_f64());
            metrics::GROUP_COMMITS.inc();
        } else {
            metrics::LAZY_COMMITS.inc();
        }
        for w in waiters {
            let r = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            let _ = w.send(r);
        }
    }
}

fn commit(db: &Database, jobs: Vec<Job>, durable: bool) -> io::Result<()> {
    let mut tx = db.begin_write().map_err(io::Error::other)?;
    if !durable {
        tx.set_durability(Durability::None).map_err(io::Error::other)?;
    }
    for job in jobs {
        job(&tx)?;
    }
    tx.commit().map_err(io::Error::other)
}
