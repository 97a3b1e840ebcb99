//! A test seam: holds the group-commit writer inside a job until released,
//! so a test can queue other jobs behind it and decide when they run.

use std::io;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::GroupWriter;

/// How long the writer may take to start the holding job.
const WAIT: Duration = Duration::from_secs(10);

/// The writer, held inside a job.
pub struct WriterHold {
    release: std::sync::mpsc::Sender<()>,
    job: JoinHandle<io::Result<()>>,
}

impl GroupWriter {
    /// Queues a job that blocks the writer thread until the hold is
    /// released, and returns once the writer is inside it.
    ///
    /// # Panics
    ///
    /// When the writer does not take the job within [`WAIT`].
    pub async fn hold(&self) -> WriterHold {
        let (started_tx, mut started) = mpsc::unbounded_channel();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let w = self.clone();
        let job = tokio::spawn(async move {
            w.write(move |_| {
                let _ = started_tx.send(());
                let _ = held.recv();
                Ok(())
            })
            .await
        });
        tokio::time::timeout(WAIT, started.recv()).await.expect("writer took the holding job");
        WriterHold { release, job }
    }

    /// Jobs queued and not yet taken by the writer.
    pub fn pending_jobs(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

impl WriterHold {
    /// Lets the writer go on with everything queued behind the hold.
    ///
    /// # Panics
    ///
    /// When the holding job failed.
    pub async fn release(self) {
        self.release.send(()).expect("holding job waiting");
        self.job.await.expect("holding task").expect("holding job");
    }
}
