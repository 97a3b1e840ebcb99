//! Region snapshots as files: what openraft's `SnapshotData` is here.
//!
//! A snapshot is never held in memory whole. It is built by streaming one
//! redb read transaction into a file ([`build`]), sent by streaming that file
//! in chunks, received by writing the chunks to a file ([`receive`]), and
//! installed from that file in bounded steps ([`install`]). The file format
//! is in [`format`]. Every file, rename, removal and directory sync here
//! goes through the store's disk ([`crate::disk`]).
//!
//! Files live in the store's snapshot directory
//! ([`crate::engine::Engine::snapshot_dir`]):
//!
//! - `region-<id>-<index>.snap`: a complete snapshot of region `id` at log
//!   index `index`. A region keeps only its newest one, which is what
//!   openraft asks for when a follower needs a snapshot (its contract: the
//!   built or installed snapshot is the current one, every older one is
//!   deleted). A region whose install was interrupted keeps the file its
//!   local state names until the install resumes.
//! - `*.tmp`: being built or received; never read after a restart, so
//!   [`clean_dir`] removes them at startup.

pub mod build;
pub mod format;
pub mod install;
pub mod receive;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use proto::raftpb;

use super::SnapshotMeta;

/// An open snapshot file: openraft's `SnapshotData`.
///
/// The open handle is what gets read, so a newer snapshot replacing the
/// file's name meanwhile (a rename or delete) never cuts a send short. A
/// temporary file (being received, not yet installed) is deleted when its
/// handle is dropped without being installed.
#[derive(Debug)]
pub struct SnapshotFile {
    pub path: PathBuf,
    pub file: File,
    temporary: bool,
    /// Its checksum was checked as it was received
    /// ([`format::StreamCheck`]): the installer need not read it whole
    /// before it starts.
    verified: bool,
}

impl SnapshotFile {
    /// Opens a complete snapshot file.
    ///
    /// # Errors
    ///
    /// Open failures.
    pub fn open(path: PathBuf) -> io::Result<Self> {
        let file = File::open(&path)?;
        Ok(SnapshotFile { path, file, temporary: false, verified: false })
    }

    /// Wraps an already open complete snapshot file.
    pub fn open_handle(path: PathBuf, file: File) -> Self {
        SnapshotFile { path, file, temporary: false, verified: false }
    }

    /// Wraps a temporary file, deleted on drop unless installed.
    pub fn temporary(path: PathBuf, file: File) -> Self {
        SnapshotFile { path, file, temporary: true, verified: false }
    }

    /// The whole file's checksum checked out as it was written.
    pub fn mark_verified(&mut self) {
        self.verified = true;
    }

    pub fn is_verified(&self) -> bool {
        self.verified
    }

    /// The file now has its final name: keep it on drop.
    fn keep(&mut self, path: PathBuf) {
        self.path = path;
        self.temporary = false;
    }
}

impl Drop for SnapshotFile {
    fn drop(&mut self) {
        if self.temporary {
            let _ = crate::disk::current().remove_file(&self.path);
        }
    }
}

/// The final name of region `region_id`'s snapshot at `index`.
pub fn file_name(region_id: u64, index: u64) -> String {
    format!("region-{region_id}-{index}.snap")
}

/// (region id, index) of a final snapshot file name.
fn parse_name(name: &str) -> Option<(u64, u64)> {
    let rest = name.strip_prefix("region-")?.strip_suffix(".snap")?;
    let (id, index) = rest.split_once('-')?;
    Some((id.parse().ok()?, index.parse().ok()?))
}

/// A fresh temporary path in `dir`: unique within the process, and a
/// restart removes every temporary file anyway.
pub fn temp_path(dir: &Path, what: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{what}.{}.{n}.tmp", std::process::id()))
}

/// The region's newest final snapshot file, with its meta.
///
/// # Errors
///
/// Directory read failures; a file whose head cannot be read is skipped.
pub fn latest(dir: &Path, region_id: u64) -> io::Result<Option<(SnapshotMeta, PathBuf)>> {
    let mut best: Option<(u64, PathBuf)> = None;
    for entry in crate::disk::current().read_dir(dir)? {
        let Some((id, index)) = entry.file_name().to_str().and_then(parse_name) else { continue };
        if id == region_id && best.as_ref().is_none_or(|(i, _)| index > *i) {
            best = Some((index, entry.path()));
        }
    }
    let Some((_, path)) = best else { return Ok(None) };
    match File::open(&path).and_then(|f| format::SnapshotReader::new(io::BufReader::new(f))) {
        Ok((head, _)) => Ok(Some((head.meta, path))),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable snapshot file");
            Ok(None)
        }
    }
}

/// The region meta a snapshot file's head carries: the range and epoch its
/// pairs cover.
///
/// # Errors
///
/// Open, read or decode failures.
pub fn region_of(path: &Path) -> io::Result<proto::metapb::Region> {
    let (head, _) = format::SnapshotReader::new(io::BufReader::new(File::open(path)?))?;
    <proto::metapb::Region as prost::Message>::decode(head.region.as_slice()).map_err(io::Error::other)
}

/// Deletes the region's final snapshot files older than `index`.
///
/// The removals are not synced: one a power cut undoes leaves a stale file
/// that [`clean_dir`] removes at the next start, never a file missing.
pub fn remove_older(dir: &Path, region_id: u64, index: u64) {
    let disk = crate::disk::current();
    let Ok(entries) = disk.read_dir(dir) else { return };
    for entry in entries {
        if let Some((id, i)) = entry.file_name().to_str().and_then(parse_name)
            && id == region_id
            && i < index
        {
            let _ = disk.remove_file(&entry.path());
        }
    }
}

/// Startup cleanup: removes temporary files, files of regions this store
/// no longer has a live peer of, and every file of a region but its newest
/// and the one an interrupted install names.
///
/// # Errors
///
/// Directory read failures.
pub fn clean_dir(dir: &Path, states: &[raftpb::RegionLocalState]) -> io::Result<()> {
    let live = |id: u64| {
        states
            .iter()
            .find(|s| s.region.as_ref().is_some_and(|r| r.id == id) && s.state != raftpb::PeerState::Tombstone as i32)
    };
    let disk = crate::disk::current();
    let mut newest = std::collections::HashMap::<u64, u64>::new();
    let mut files = Vec::new();
    for entry in disk.read_dir(dir)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            let _ = disk.remove_file(&entry.path());
            continue;
        }
        if let Some((id, index)) = parse_name(&name) {
            let n = newest.entry(id).or_insert(index);
            *n = (*n).max(index);
            files.push((id, index, name, entry.path()));
        }
    }
    for (id, index, name, path) in files {
        let keep = match live(id) {
            None => false,
            Some(s) => s.applying_snapshot == name || index == newest[&id],
        };
        if !keep {
            tracing::info!(path = %path.display(), "removing stale snapshot file");
            let _ = disk.remove_file(&path);
        }
    }
    Ok(())
}

/// Makes a rename or create in `dir` durable.
///
/// # Errors
///
/// Open or fsync failures.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    crate::disk::current().sync_dir(dir)
}
