//! Receiving a snapshot: its chunks written to a temporary file in the
//! store's snapshot directory through the store's disk, durably, with the
//! stream's checksum checked as the chunks go by.
//!
//! Every write and sync runs on tokio's blocking pool, so the runtime's
//! workers never wait on the disk. One chunk's write is in flight while the
//! next chunk arrives, and every [`SYNC_EVERY`] bytes a sync of what was
//! written starts in the background: the sync that must come before the
//! install then has little left to write, instead of the whole region.
//!
//! The file is named `*.tmp` and its name is never synced here: a power
//! cut before the install renames it loses it (or [`super::clean_dir`]
//! removes it at startup), and the sender sends the snapshot again.

use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tokio::task::JoinHandle;

use super::format::StreamCheck;
use super::{SnapshotFile, temp_path};
use crate::disk::{self, Open};
use crate::engine::io_err;

/// Received bytes after which a sync of them starts in the background.
pub const SYNC_EVERY: u64 = 32 << 20;

/// Writes `chunks` to a fresh temporary file in `dir` and syncs it; returns
/// the file (marked verified when the stream's checksum matched) and its
/// size. On any error the file is removed.
///
/// # Errors
///
/// The stream's own errors, and file failures.
pub async fn receive(
    dir: &Path,
    region_id: u64,
    mut chunks: impl Stream<Item = io::Result<Vec<u8>>> + Unpin,
) -> io::Result<(SnapshotFile, u64)> {
    let path = temp_path(dir, &format!("region-{region_id}-recv"));
    let disk = disk::current();
    let file = Arc::new(disk.open(&path, Open::Truncate).map_err(|e| io_err(format!("{}: {e}", path.display())))?);
    // The handle the snapshot is read through once it is whole (the sync
    // below puts every byte in the real file). From here on the guard
    // removes the file on any early return.
    let mut guard = match std::fs::File::open(&path) {
        Ok(reader) => SnapshotFile::temporary(path, reader),
        Err(e) => {
            let _ = disk.remove_file(&path);
            return Err(e);
        }
    };
    let mut check = StreamCheck::default();
    let mut bytes = 0u64;
    let mut synced_to = 0u64;
    let mut writing: Option<JoinHandle<io::Result<()>>> = None;
    let mut syncing: Option<JoinHandle<io::Result<()>>> = None;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        check.update(&chunk);
        // One write in flight at a time, so they land in order.
        finish(writing.take()).await?;
        let (f, at) = (file.clone(), bytes);
        bytes += chunk.len() as u64;
        writing = Some(tokio::task::spawn_blocking(move || f.write_all_at(&chunk, at)));
        if bytes - synced_to >= SYNC_EVERY && syncing.as_ref().is_none_or(|h| h.is_finished()) {
            finish(syncing.take()).await?;
            // Covers what was written before it started; the next chunks
            // arrive and are written meanwhile.
            finish(writing.take()).await?;
            let f = file.clone();
            syncing = Some(tokio::task::spawn_blocking(move || f.sync_data()));
            synced_to = bytes;
        }
    }
    finish(writing.take()).await?;
    finish(syncing.take()).await?;
    // Installing names the file in the region's durable state: its bytes
    // must be on disk first.
    let f = file.clone();
    finish(Some(tokio::task::spawn_blocking(move || f.sync_all()))).await?;
    if check.finish() {
        guard.mark_verified();
    }
    Ok((guard, bytes))
}

/// Waits for a blocking write or sync, if one runs.
async fn finish(job: Option<JoinHandle<io::Result<()>>>) -> io::Result<()> {
    match job {
        Some(h) => h.await.map_err(io_err)?,
        None => Ok(()),
    }
}
