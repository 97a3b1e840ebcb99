//! The write-back disk: a page cache of this process's own in front of the
//! real files, so that killing the process is a power cut.
//!
//! `kill -9` keeps the kernel's page cache: everything a killed store wrote
//! is still there when it restarts, synced or not, so killing a store never
//! tests what a power cut would lose. Here writes land in pages this
//! process holds, and reach the real file only when the file is synced
//! (`sync_data`, `sync_all`); `kill -9` drops the pages, and what the real
//! file holds is exactly what a disk would keep. Reads see the process's
//! own writes.
//!
//! A real kernel also writes dirty pages back on its own, in any order, so
//! a power cut keeps some unsynced writes and tears others. The model
//! ([`PowerCut`]) picks what reaches the real file early, from a seed:
//!
//! - [`PowerCut::All`]: nothing unsynced survives.
//! - [`PowerCut::Pages`]: after a write, now and then one random dirty page
//!   of the file is written back whole; a cut keeps a random subset.
//! - [`PowerCut::TornPage`]: now and then the file's last dirty page is
//!   written back cut short after a random number of 512-byte sectors.
//!
//! A shrinking `set_len` is unsynced too: until the sync, the real file
//! keeps its old length and bytes. A creation, removal or rename is
//! durable only once its directory is synced ([`super::names`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::Open;
use super::names::{self, Names};
use crate::bench::rng::Rng;

/// The page the cache keeps, written back whole or not at all (but for a
/// torn page): the kernel's.
pub const PAGE: u64 = 4096;
/// The unit a torn page is cut at: a disk sector.
const SECTOR: u64 = 512;
/// One write in this many writes back a page early: often enough that
/// every run of the suite has pages out before a sync, and rarely enough
/// that most unsynced writes are still lost.
const EARLY_ONE_IN: u64 = 4;

/// What a power cut keeps of the writes never synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerCut {
    All,
    Pages,
    TornPage,
}

impl PowerCut {
    /// The value of [`PowerCutConfig::DISK`] for each model.
    pub const NAMES: [(&'static str, PowerCut); 3] =
        [("all", PowerCut::All), ("pages", PowerCut::Pages), ("torn-page", PowerCut::TornPage)];
}

impl fmt::Display for PowerCut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = Self::NAMES.iter().find(|(_, m)| m == self).map_or("?", |(n, _)| n);
        f.write_str(name)
    }
}

/// The test-only settings of the write-back disk, from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerCutConfig {
    pub model: PowerCut,
    pub seed: u64,
    /// The raft log's appends are acknowledged without their sync: the one
    /// missing fsync the crash suite proves it catches.
    pub skip_log_sync: bool,
}

impl PowerCutConfig {
    /// `all`, `pages` or `torn-page`: run the store on the write-back disk.
    pub const DISK: &'static str = "STORE_POWER_CUT_DISK";
    /// The seed of the early write-backs (default 0).
    pub const SEED: &'static str = "STORE_POWER_CUT_SEED";
    /// `1`: skip the raft log's append sync (only with [`Self::DISK`]).
    pub const SKIP_LOG_SYNC: &'static str = "STORE_FAILPOINT_SKIP_LOG_SYNC";

    /// Reads the settings from `lookup` (the environment); `None` when the
    /// store runs on the real disk.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a value that is not one of the documented ones,
    /// or the skipped sync without the write-back disk (on a real disk it
    /// would lose data for good, not in a test).
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> io::Result<Option<PowerCutConfig>> {
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
        let skip_log_sync = match lookup(Self::SKIP_LOG_SYNC).as_deref() {
            None | Some("0") => false,
            Some("1") => true,
            Some(v) => return Err(invalid(format!("{}={v}: expected 0 or 1", Self::SKIP_LOG_SYNC))),
        };
        let Some(name) = lookup(Self::DISK) else {
            if skip_log_sync {
                return Err(invalid(format!("{} needs {}", Self::SKIP_LOG_SYNC, Self::DISK)));
            }
            return Ok(None);
        };
        let model = PowerCut::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, m)| *m)
            .ok_or_else(|| invalid(format!("{}={name}: expected one of all, pages, torn-page", Self::DISK)))?;
        let seed = match lookup(Self::SEED) {
            None => 0,
            Some(v) => v.parse().map_err(|_| invalid(format!("{}={v}: not a number", Self::SEED)))?,
        };
        Ok(Some(PowerCutConfig { model, seed, skip_log_sync }))
    }
}

/// The write-back disk: every file this process opened on it, by inode, so
/// that every handle on a file (and a file reopened by name) shares one
/// set of pages.
pub struct WriteBack {
    config: PowerCutConfig,
    early: Arc<Mutex<Rng>>,
    files: Mutex<HashMap<(u64, u64), Arc<CachedFile>>>,
    names: Names,
}

impl fmt::Debug for WriteBack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBack").field("config", &self.config).finish_non_exhaustive()
    }
}

impl WriteBack {
    pub fn new(config: PowerCutConfig) -> WriteBack {
        let early = Arc::new(Mutex::new(Rng::new(config.seed)));
        WriteBack { config, early, files: Mutex::new(HashMap::new()), names: Names::default() }
    }

    pub fn skips_log_sync(&self) -> bool {
        self.config.skip_log_sync
    }

    /// A power cut without ending the process: every unsynced write is
    /// dropped, every unsynced name change under `root` undone, and the
    /// real files are what is left, as after a restart. For tests of one
    /// component in one process; a store is cut by killing it (and undoes
    /// its names when it starts). Handles still open read the real files
    /// from here on.
    ///
    /// # Errors
    ///
    /// I/O failures.
    pub fn cut(&self, root: &Path) -> io::Result<usize> {
        let mut files = self.files.lock().unwrap();
        for f in files.values() {
            f.drop_unsynced()?;
        }
        files.clear();
        names::undo_unsynced(root)
    }

    pub(super) fn dir_synced(&self, dir: &Path) -> io::Result<()> {
        self.names.synced(dir)
    }

    pub(super) fn open(&self, path: &Path, how: Open) -> io::Result<Arc<CachedFile>> {
        // Truncation is a length change like any other: unsynced until the
        // file is synced, so the real file is opened as it is.
        let creates = how != Open::Existing && !path.exists();
        let real = std::fs::OpenOptions::new().read(true).write(true).create(how != Open::Existing).open(path)?;
        if creates {
            self.names.created(path)?;
        }
        let meta = real.metadata()?;
        let file = {
            let mut files = self.files.lock().unwrap();
            // A file no handle holds any more is forgotten once it has
            // nothing unsynced; one with dirty pages is kept, as a kernel
            // keeps a closed file's dirty pages.
            files.retain(|_, f| Arc::strong_count(f) > 1 || f.is_dirty());
            files
                .entry((meta.dev(), meta.ino()))
                .or_insert_with(|| Arc::new(CachedFile::new(real, meta.len(), self.config.model, self.early.clone())))
                .clone()
        };
        if how == Open::Truncate {
            file.set_len(0)?;
        }
        Ok(file)
    }

    pub(super) fn remove_file(&self, path: &Path) -> io::Result<()> {
        let key = inode(path)?;
        self.names.remove(path)?;
        // Its inode number may be reused by a later file.
        self.files.lock().unwrap().remove(&key);
        Ok(())
    }

    pub(super) fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let replaced = inode(to).ok().filter(|k| inode(from).ok().as_ref() != Some(k));
        self.names.rename(from, to)?;
        if let Some(k) = replaced {
            self.files.lock().unwrap().remove(&k);
        }
        Ok(())
    }
}

fn inode(path: &Path) -> io::Result<(u64, u64)> {
    let m = std::fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}

/// One real file and the pages written to it since its last sync.
pub struct CachedFile {
    real: std::fs::File,
    model: PowerCut,
    early: Arc<Mutex<Rng>>,
    pages: Mutex<Pages>,
}

impl fmt::Debug for CachedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedFile").field("model", &self.model).finish_non_exhaustive()
    }
}

struct Pages {
    /// Whole pages as this process sees them, by page number. Bytes past
    /// `len` are zero.
    dirty: BTreeMap<u64, Box<[u8]>>,
    /// The length this process sees.
    len: u64,
    /// The real file's bytes before this offset are the file's; after it
    /// they are stale (a shrink not synced yet, or pages written back
    /// early) and read as zeros.
    valid: u64,
}

impl CachedFile {
    fn new(real: std::fs::File, len: u64, model: PowerCut, early: Arc<Mutex<Rng>>) -> CachedFile {
        CachedFile { real, model, early, pages: Mutex::new(Pages { dirty: BTreeMap::new(), len, valid: len }) }
    }

    fn drop_unsynced(&self) -> io::Result<()> {
        let mut p = self.pages.lock().unwrap();
        p.dirty.clear();
        p.len = self.real.metadata()?.len();
        p.valid = p.len;
        Ok(())
    }

    fn is_dirty(&self) -> bool {
        let p = self.pages.lock().unwrap();
        !p.dirty.is_empty() || p.valid != p.len
    }

    pub(super) fn len(&self) -> u64 {
        self.pages.lock().unwrap().len
    }

    /// Reads the real file's bytes at `at` into `out`, zeros where they are
    /// not the file's.
    fn read_real(&self, valid: u64, out: &mut [u8], at: u64) -> io::Result<()> {
        let have = valid.saturating_sub(at).min(out.len() as u64) as usize;
        self.real.read_exact_at(&mut out[..have], at)?;
        out[have..].fill(0);
        Ok(())
    }

    pub(super) fn read_at(&self, out: &mut [u8], offset: u64) -> io::Result<usize> {
        let p = self.pages.lock().unwrap();
        let n = p.len.saturating_sub(offset).min(out.len() as u64) as usize;
        let mut done = 0;
        while done < n {
            let at = offset + done as u64;
            let (page, within) = (at / PAGE, (at % PAGE) as usize);
            let take = (PAGE as usize - within).min(n - done);
            let dst = &mut out[done..done + take];
            match p.dirty.get(&page) {
                Some(bytes) => dst.copy_from_slice(&bytes[within..within + take]),
                None => self.read_real(p.valid, dst, at)?,
            }
            done += take;
        }
        Ok(n)
    }

    pub(super) fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        let mut p = self.pages.lock().unwrap();
        let mut done = 0;
        while done < data.len() {
            let at = offset + done as u64;
            let (page, within) = (at / PAGE, (at % PAGE) as usize);
            let take = (PAGE as usize - within).min(data.len() - done);
            if !p.dirty.contains_key(&page) {
                let mut bytes = vec![0; PAGE as usize].into_boxed_slice();
                self.read_real(p.valid, &mut bytes, page * PAGE)?;
                p.dirty.insert(page, bytes);
            }
            let bytes = p.dirty.get_mut(&page).expect("inserted above");
            bytes[within..within + take].copy_from_slice(&data[done..done + take]);
            done += take;
        }
        p.len = p.len.max(offset + data.len() as u64);
        self.write_back_early(&p)
    }

    pub(super) fn set_len(&self, len: u64) -> io::Result<()> {
        let mut p = self.pages.lock().unwrap();
        if len < p.len {
            let first_gone = len.div_ceil(PAGE);
            p.dirty.retain(|&page, _| page < first_gone);
            let within = (len % PAGE) as usize;
            if within != 0 {
                let page = len / PAGE;
                if !p.dirty.contains_key(&page) {
                    let mut bytes = vec![0; PAGE as usize].into_boxed_slice();
                    self.read_real(p.valid, &mut bytes, page * PAGE)?;
                    p.dirty.insert(page, bytes);
                }
                p.dirty.get_mut(&page).expect("inserted above")[within..].fill(0);
            }
            p.valid = p.valid.min(len);
        }
        p.len = len;
        Ok(())
    }

    /// Writes every dirty page and the length to the real file and syncs
    /// it: from here on they survive a cut.
    pub(super) fn sync(&self, all: bool) -> io::Result<()> {
        let mut p = self.pages.lock().unwrap();
        if self.real.metadata()?.len() > p.valid {
            self.real.set_len(p.valid)?;
        }
        for (&page, bytes) in &p.dirty {
            let at = page * PAGE;
            let n = p.len.saturating_sub(at).min(PAGE) as usize;
            self.real.write_all_at(&bytes[..n], at)?;
        }
        self.real.set_len(p.len)?;
        if all { self.real.sync_all() } else { self.real.sync_data() }?;
        p.dirty.clear();
        p.valid = p.len;
        Ok(())
    }

    /// Now and then, as a kernel would, writes a dirty page (or a torn part
    /// of the last one) to the real file without syncing it. The page stays
    /// dirty: this process still reads its own copy.
    fn write_back_early(&self, p: &Pages) -> io::Result<()> {
        if self.model == PowerCut::All || p.dirty.is_empty() {
            return Ok(());
        }
        let (page, cut) = {
            let mut rng = self.early.lock().unwrap();
            if rng.below(EARLY_ONE_IN) != 0 {
                return Ok(());
            }
            match self.model {
                PowerCut::Pages => (rng.below(p.dirty.len() as u64) as usize, PAGE),
                _ => (p.dirty.len() - 1, SECTOR * (1 + rng.below(PAGE / SECTOR - 1))),
            }
        };
        let (&page, bytes) = p.dirty.iter().nth(page).expect("a dirty page");
        let at = page * PAGE;
        let n = p.len.saturating_sub(at).min(cut) as usize;
        self.real.write_all_at(&bytes[..n], at)
    }
}

#[cfg(test)]
mod tests;
