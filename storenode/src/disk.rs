//! The one disk every file a store writes goes through: the raft log's
//! segments, the redb data file (as a [`redb::StorageBackend`]), and the
//! removals, renames and directory syncs around them.
//!
//! A process has one disk, chosen once at startup ([`install`]):
//!
//! - [`Disk::Std`], the default and the only one in production: plain
//!   `std::fs`, a `match` in front of each call and nothing else.
//! - [`Disk::WriteBack`] (tests only, [`power_cut`]): writes stay in this
//!   process's own page cache and reach the real file only when synced, so
//!   `kill -9` of the store is a power cut that loses everything never
//!   synced, while synced bytes survive the restart.

mod names;
pub mod power_cut;
mod redb_backend;

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

pub use names::undo_unsynced;
pub use power_cut::{PowerCut, PowerCutConfig, WriteBack};
pub use redb_backend::RedbFile;

/// Where a process's files are written.
#[derive(Debug, Clone)]
pub enum Disk {
    Std,
    WriteBack(Arc<WriteBack>),
}

static DISK: OnceLock<Disk> = OnceLock::new();
static STD: Disk = Disk::Std;

/// Makes `disk` this process's disk. Only before any file is opened: a
/// file opened on one disk and synced on another would be neither.
///
/// # Errors
///
/// When a disk was already installed.
pub fn install(disk: Disk) -> io::Result<()> {
    DISK.set(disk).map_err(|_| io::Error::other("a disk is already installed in this process"))
}

/// This process's disk: [`Disk::Std`] unless [`install`] chose another.
pub fn current() -> &'static Disk {
    DISK.get().unwrap_or(&STD)
}

/// How [`Disk::open`] treats a missing or existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// The file must exist.
    Existing,
    /// Created empty if missing.
    Create,
    /// Created if missing, emptied if not.
    Truncate,
}

impl Disk {
    /// Opens `path` for reading and writing.
    ///
    /// # Errors
    ///
    /// I/O failures.
    pub fn open(&self, path: &Path, how: Open) -> io::Result<File> {
        match self {
            Disk::Std => {
                let mut o = std::fs::OpenOptions::new();
                o.read(true).write(true);
                match how {
                    Open::Existing => {}
                    Open::Create => {
                        o.create(true).truncate(false);
                    }
                    Open::Truncate => {
                        o.create(true).truncate(true);
                    }
                }
                Ok(File::Std(o.open(path)?))
            }
            Disk::WriteBack(wb) => Ok(File::Cached(Cursor { file: wb.open(path, how)?, pos: 0 })),
        }
    }

    /// Removes `path`; durable once its directory is synced.
    ///
    /// # Errors
    ///
    /// I/O failures.
    pub fn remove_file(&self, path: &Path) -> io::Result<()> {
        match self {
            Disk::Std => std::fs::remove_file(path),
            Disk::WriteBack(wb) => wb.remove_file(path),
        }
    }

    /// Renames `from` to `to`, replacing it; durable once the directory is
    /// synced.
    ///
    /// # Errors
    ///
    /// I/O failures.
    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        match self {
            Disk::Std => std::fs::rename(from, to),
            Disk::WriteBack(wb) => wb.rename(from, to),
        }
    }

    /// The entries of `dir` as this process sees them (the write-back disk
    /// makes a name change in the real directory at once), without the
    /// write-back disk's own journal of unsynced names.
    ///
    /// # Errors
    ///
    /// I/O failures.
    pub fn read_dir(&self, dir: &Path) -> io::Result<Vec<std::fs::DirEntry>> {
        let mut entries = Vec::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            if e.file_name() != names::UNDO_DIR {
                entries.push(e);
            }
        }
        Ok(entries)
    }

    /// Makes the creations, removals and renames under `dir` durable.
    ///
    /// # Errors
    ///
    /// I/O failures.
    pub fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()?;
        match self {
            Disk::Std => Ok(()),
            Disk::WriteBack(wb) => wb.dir_synced(dir),
        }
    }

    /// Whether the log's append sync is skipped on purpose
    /// ([`PowerCutConfig::skip_log_sync`]): the planted bug the crash
    /// suite must catch.
    pub fn skips_log_sync(&self) -> bool {
        match self {
            Disk::Std => false,
            Disk::WriteBack(wb) => wb.skips_log_sync(),
        }
    }

    /// Opens (creating if needed) a redb database at `path` on this disk.
    ///
    /// # Errors
    ///
    /// redb's, with the path.
    pub fn open_redb(&self, path: &Path, cache_bytes: usize) -> io::Result<redb::Database> {
        let mut b = redb::Builder::new();
        b.set_cache_size(cache_bytes);
        let db = match self {
            Disk::Std => b.create(path),
            Disk::WriteBack(_) => b.create_with_backend(RedbFile::new(self.open(path, Open::Create)?)),
        };
        db.map_err(|e| io::Error::other(format!("{}: {e}", path.display())))
    }
}

/// An open file on a [`Disk`]. Positioned I/O through
/// [`std::os::unix::fs::FileExt`]; `Read`, `Write` and `Seek` through a
/// position of its own, as a `std::fs::File`'s.
#[derive(Debug)]
pub enum File {
    Std(std::fs::File),
    Cached(Cursor),
}

/// A handle on a write-back file: the file is shared by every handle on it,
/// the position is this handle's.
#[derive(Debug)]
pub struct Cursor {
    file: Arc<power_cut::CachedFile>,
    pos: u64,
}

impl File {
    /// The file's length as this process sees it (with unsynced writes).
    ///
    /// # Errors
    ///
    /// I/O failures.
    pub fn size(&self) -> io::Result<u64> {
        match self {
            File::Std(f) => Ok(f.metadata()?.len()),
            File::Cached(c) => Ok(c.file.len()),
        }
    }

    /// # Errors
    ///
    /// I/O failures.
    pub fn set_len(&self, len: u64) -> io::Result<()> {
        match self {
            File::Std(f) => f.set_len(len),
            File::Cached(c) => c.file.set_len(len),
        }
    }

    /// Makes the file's data (and its length) durable.
    ///
    /// # Errors
    ///
    /// I/O failures.
    pub fn sync_data(&self) -> io::Result<()> {
        match self {
            File::Std(f) => f.sync_data(),
            File::Cached(c) => c.file.sync(false),
        }
    }

    /// Makes the file's data and metadata durable.
    ///
    /// # Errors
    ///
    /// I/O failures.
    pub fn sync_all(&self) -> io::Result<()> {
        match self {
            File::Std(f) => f.sync_all(),
            File::Cached(c) => c.file.sync(true),
        }
    }
}

impl FileExt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        match self {
            File::Std(f) => f.read_at(buf, offset),
            File::Cached(c) => c.file.read_at(buf, offset),
        }
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        match self {
            File::Std(f) => f.write_at(buf, offset),
            File::Cached(c) => c.file.write_at(buf, offset).map(|()| buf.len()),
        }
    }
}

impl Read for File {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            File::Std(f) => f.read(buf),
            File::Cached(c) => {
                let n = c.file.read_at(buf, c.pos)?;
                c.pos += n as u64;
                Ok(n)
            }
        }
    }
}

impl Write for File {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            File::Std(f) => f.write(buf),
            File::Cached(c) => {
                c.file.write_at(buf, c.pos)?;
                c.pos += buf.len() as u64;
                Ok(buf.len())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            File::Std(f) => f.flush(),
            File::Cached(_) => Ok(()),
        }
    }
}

impl Seek for File {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        match self {
            File::Std(f) => f.seek(to),
            File::Cached(c) => {
                let base = match to {
                    SeekFrom::Start(n) => Some(n),
                    SeekFrom::End(d) => c.file.len().checked_add_signed(d),
                    SeekFrom::Current(d) => c.pos.checked_add_signed(d),
                };
                c.pos = base.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
                Ok(c.pos)
            }
        }
    }
}
