//! The raft log's segment files: `<seq>.raftlog` under the log directory,
//! numbered in the order they were started, each opening with a magic
//! header. Only the newest is written; older ones are only read, until
//! rotation drops them.
//!
//! A segment is created at its full size, filled with zeros: an `fdatasync`
//! after writing into blocks already allocated and written need not commit
//! the file system's journal for a new size or extent, which an append (or
//! a write into `fallocate`d, unwritten space) must. Measured on ext4 with
//! `dd oflag=dsync bs=512`: 0.10 ms per write into zeroed space, 0.13 ms
//! into `fallocate`d space, 0.17 ms appending. A zero header is where the
//! records end.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::disk::{self, File, Open};

/// The first bytes of every segment: the format and its version.
pub const MAGIC: &[u8; 8] = b"RAFTLOG1";
const EXT: &str = "raftlog";

pub fn path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.{EXT}"))
}

/// The sequence numbers of the segments under `dir`, oldest first.
///
/// # Errors
///
/// When the directory cannot be listed.
pub fn list(dir: &Path) -> io::Result<Vec<u64>> {
    let mut seqs = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(hex) = name.strip_suffix(&format!(".{EXT}"))
            && let Ok(seq) = u64::from_str_radix(hex, 16)
        {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// Starts segment `seq`: creates it with its header and zeros up to `size`,
/// durably, and makes its name durable in the directory.
///
/// # Errors
///
/// I/O failures.
pub fn create(dir: &Path, seq: u64, size: u64) -> io::Result<File> {
    let p = path(dir, seq);
    let f = disk::current().open(&p, Open::Truncate)?;
    f.write_all_at(MAGIC, 0)?;
    zero(&f, MAGIC.len() as u64, size)?;
    f.sync_all()?;
    sync_dir(dir)?;
    Ok(f)
}

/// Opens segment `seq` for reading and writing.
///
/// # Errors
///
/// I/O failures.
pub fn open(dir: &Path, seq: u64) -> io::Result<File> {
    disk::current().open(&path(dir, seq), Open::Existing)
}

/// Writes zeros over `[from, to)` of `f`.
///
/// # Errors
///
/// I/O failures.
pub fn zero(f: &File, from: u64, to: u64) -> io::Result<()> {
    const CHUNK: u64 = 1024 * 1024;
    let zeros = vec![0u8; CHUNK.min(to.saturating_sub(from)) as usize];
    let mut at = from;
    while at < to {
        let n = CHUNK.min(to - at) as usize;
        f.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// Locks the log under `dir` for this process: the returned file holds an
/// exclusive `flock` until it is dropped.
///
/// # Errors
///
/// `WouldBlock` when another process holds it; I/O failures.
pub fn lock(dir: &Path) -> io::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let p = dir.join("LOCK");
    let f = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&p)?;
    // SAFETY: flock on a descriptor this function owns; no memory involved.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{}: the raft log is open in another process: {e}", p.display())));
    }
    Ok(f)
}

/// Makes creations and removals under `dir` durable.
///
/// # Errors
///
/// I/O failures.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    disk::current().sync_dir(dir)
}
