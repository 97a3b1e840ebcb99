//! The raft log engine: every region's raft entries and marks in one
//! append-only log of segment files, with an index in memory.
//!
//! A group-commit batch's log writes are one record ([`record`]) appended
//! to the newest segment with one `write` and, when the batch is durable,
//! one `fdatasync`: the cheapest durable write a disk offers, and the one
//! etcd's WAL and TiKV's raft-engine are built on. Nothing on disk is ever
//! updated in place; the index ([`index`]) says where each live entry is,
//! and reads are positioned reads of the segment that holds it.
//!
//! Opening replays the segments in order ([`replay`]). A crash can only
//! tear what was written after the last completed sync, and that is always
//! in the newest segment (older ones are synced before a new one starts),
//! but lazy batches write without a sync, so it can be several records,
//! with holes before records that survived. Each record carries its
//! watermark, the offset its segment was synced through when it was
//! written; each segment's header says where the one before it ends and
//! which segments the log still needs. From those [`verify`] tells damage
//! from a torn tail: a needed segment missing, an older segment that does
//! not run whole to its recorded end, or a bad record in the newest that a
//! later whole record's watermark shows was durable, is damage and refuses
//! the open with a [`LogDamage`] naming the file and offset. The rest,
//! after the last whole record of the newest segment, is a torn tail:
//! dropped (logged and counted) or, in [`RecoveryMode::AbsoluteConsistency`],
//! refused. [`check`] runs the same walk offline.
//!
//! When the newest segment is full a new one starts ([`rotate`]), carrying
//! every region's marks and the live entries of segments two behind, so
//! the older segments hold nothing live and are deleted: the log keeps at
//! most three segments plus what the carry adds.
//!
//! A failed write or sync leaves the log in a state no one can vouch for
//! (a partial record, pages the kernel may have dropped), so the engine
//! refuses every later write; the store stops, and the next open replays
//! what is whole.

mod batch;
pub mod check;
mod damage;
mod index;
pub mod record;
mod recovery;
mod replay;
mod rotate;
mod segment;
mod verify;

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use self::batch::LogBatch;
pub use self::damage::{LogDamage, Refusal};
use self::index::{Index, Loc};
use self::record::RecordBuf;
pub use self::recovery::RecoveryMode;
use crate::disk::File;
use crate::metrics;

/// A segment is created this large (zeroed) and closed once it holds this
/// much.
pub const SEGMENT_BYTES: u64 = 32 * 1024 * 1024;

/// What readers share with the writer.
struct State {
    index: Index,
    files: BTreeMap<u64, Arc<File>>,
}

/// The segment being written.
struct Active {
    seq: u64,
    file: Arc<File>,
    len: u64,
    /// Where the last completed sync left the segment durable up to: every
    /// record carries it, so a replay can tell what a crash could tear.
    synced: u64,
    /// Written since the last sync.
    unsynced: bool,
    /// Why writes are refused, once one failed.
    failed: Option<String>,
}

impl Active {
    /// Segment `seq`, durable up to `len`, where writing goes on.
    fn new(seq: u64, file: Arc<File>, len: u64) -> Active {
        Active { seq, file, len, synced: len, unsynced: false, failed: None }
    }
}

pub struct LogEngine {
    dir: PathBuf,
    /// Held locked while open: one process writes a log.
    _lock: std::fs::File,
    segment_bytes: u64,
    state: Mutex<State>,
    active: Mutex<Active>,
    syncs: AtomicU64,
}

impl LogEngine {
    /// Opens (creating if needed) the raft log under `dir`, replaying it.
    ///
    /// # Errors
    ///
    /// I/O failures, `WouldBlock` when another process has the log open,
    /// and `InvalidData` for a damaged segment (carrying a [`LogDamage`]).
    pub fn open(dir: &Path) -> io::Result<Arc<LogEngine>> {
        Self::open_in(dir, SEGMENT_BYTES, RecoveryMode::default())
    }

    /// As [`LogEngine::open`], closing segments at `segment_bytes`.
    ///
    /// # Errors
    ///
    /// As [`LogEngine::open`].
    pub fn open_with(dir: &Path, segment_bytes: u64) -> io::Result<Arc<LogEngine>> {
        Self::open_in(dir, segment_bytes, RecoveryMode::default())
    }

    /// As [`LogEngine::open`], treating a torn tail as `mode` says and
    /// closing segments at `segment_bytes`. A refused open is counted in
    /// `store_raft_log_open_refusals_total`.
    ///
    /// # Errors
    ///
    /// As [`LogEngine::open`]; in [`RecoveryMode::AbsoluteConsistency`] a
    /// torn tail is refused too.
    pub fn open_in(dir: &Path, segment_bytes: u64, mode: RecoveryMode) -> io::Result<Arc<LogEngine>> {
        std::fs::create_dir_all(dir)?;
        let lock = segment::lock(dir)?;
        let replayed = replay::replay(dir, segment_bytes, mode).inspect_err(|e| {
            if let Some(d) = LogDamage::of(e) {
                metrics::RAFT_LOG_OPEN_REFUSALS.with_label_values(&[d.refusal.label()]).inc();
                tracing::error!(mode = %mode, "refusing to open the raft log: {d}");
            }
        })?;
        let replay::Replayed { index, files, active, old_format } = replayed;
        let log = Arc::new(LogEngine {
            dir: dir.to_path_buf(),
            _lock: lock,
            segment_bytes,
            state: Mutex::new(State { index, files }),
            active: Mutex::new(active),
            syncs: AtomicU64::new(0),
        });
        if old_format {
            // Records without a watermark are never written: the next ones
            // go to a segment of the current format, whose header records
            // where this one ends.
            let mut active = log.active.lock().unwrap();
            log.rotate(&mut active)?;
        }
        Ok(log)
    }

    /// A region's mark of `kind`.
    pub fn meta(&self, region: u64, kind: u8) -> Option<Vec<u8>> {
        self.state.lock().unwrap().index.regions.get(&region).and_then(|r| r.mark(kind)).map(<[u8]>::to_vec)
    }

    /// The region's entries with indexes in `[start, end)`, in order.
    ///
    /// # Errors
    ///
    /// Read failures.
    pub fn entries(&self, region: u64, start: u64, end: u64) -> io::Result<Vec<(u64, Vec<u8>)>> {
        if start >= end {
            return Ok(Vec::new());
        }
        let locs: Vec<(u64, Loc, Arc<File>)> = {
            let state = self.state.lock().unwrap();
            let Some(r) = state.index.regions.get(&region) else { return Ok(Vec::new()) };
            r.entries.range(start..end).map(|(&i, &l)| (i, l, state.files[&l.seg].clone())).collect()
        };
        locs.into_iter().map(|(i, l, f)| Ok((i, read_loc(&f, l)?))).collect()
    }

    /// The region's last entry, with its index.
    ///
    /// # Errors
    ///
    /// Read failures.
    pub fn last_entry(&self, region: u64) -> io::Result<Option<(u64, Vec<u8>)>> {
        let last = {
            let state = self.state.lock().unwrap();
            let Some(r) = state.index.regions.get(&region) else { return Ok(None) };
            r.entries.last_key_value().map(|(&i, &l)| (i, l, state.files[&l.seg].clone()))
        };
        last.map(|(i, l, f)| Ok((i, read_loc(&f, l)?))).transpose()
    }

    /// Whether the region has any entry.
    pub fn has_entries(&self, region: u64) -> bool {
        self.state.lock().unwrap().index.regions.get(&region).is_some_and(|r| !r.entries.is_empty())
    }

    /// Whether the region has any entry or mark.
    pub fn has_state(&self, region: u64) -> bool {
        self.state.lock().unwrap().index.regions.get(&region).is_some_and(|r| !r.entries.is_empty() || r.has_marks())
    }

    /// A new, empty batch of writes to this log.
    pub fn batch(self: &Arc<Self>) -> LogBatch {
        LogBatch::new(self.clone())
    }

    /// Writes `rec` (see [`LogBatch::commit`]).
    fn commit_record(&self, rec: RecordBuf, sync: bool) -> io::Result<()> {
        let mut active = self.active.lock().unwrap();
        if let Some(why) = &active.failed {
            return Err(io::Error::other(format!("the raft log refuses writes after a failed one: {why}")));
        }
        let res = self.commit_locked(&mut active, rec, sync);
        if let Err(e) = &res {
            active.failed = Some(e.to_string());
        }
        res
    }

    fn commit_locked(&self, active: &mut Active, rec: RecordBuf, sync: bool) -> io::Result<()> {
        if rec.is_empty() {
            return if sync && active.unsynced { self.sync_active(active) } else { Ok(()) };
        }
        if active.len >= self.segment_bytes {
            self.rotate(active)?;
        }
        self.write_record(active, rec, sync)
    }

    /// Writes a record that has ops: an empty one would read as the zeros
    /// where records end.
    fn write_record(&self, active: &mut Active, mut rec: RecordBuf, sync: bool) -> io::Result<()> {
        debug_assert!(!rec.is_empty());
        rec.seal(active.synced);
        let base = active.len;
        active.file.write_all_at(&rec.bytes, base)?;
        active.len += rec.bytes.len() as u64;
        active.unsynced = true;
        if sync {
            self.sync_active(active)?;
        }
        self.state.lock().unwrap().index.apply(&rec.ops, &rec.bytes, active.seq, base);
        Ok(())
    }

    fn sync_active(&self, active: &mut Active) -> io::Result<()> {
        // The crash suite's planted bug: appends acknowledged unsynced.
        if !crate::disk::current().skips_log_sync() {
            active.file.sync_data()?;
        }
        active.unsynced = false;
        active.synced = active.len;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Makes every write so far durable.
    ///
    /// # Errors
    ///
    /// As [`LogEngine::commit`].
    pub fn sync(&self) -> io::Result<()> {
        self.commit_record(RecordBuf::default(), true)
    }

    /// The syncs this log has made since it opened.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// The segments on disk now, oldest first.
    pub fn segments(&self) -> Vec<u64> {
        self.state.lock().unwrap().files.keys().copied().collect()
    }

    /// The bytes the log's segments take under `dir`.
    pub fn disk_bytes(dir: &Path) -> u64 {
        segment::list(dir)
            .map(|seqs| seqs.iter().map(|&s| std::fs::metadata(segment::path(dir, s)).map_or(0, |m| m.len())).sum())
            .unwrap_or(0)
    }
}

fn read_loc(f: &File, l: Loc) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; l.len as usize];
    f.read_exact_at(&mut buf, l.off)?;
    Ok(buf)
}

#[cfg(test)]
mod damage_tests;
#[cfg(test)]
mod tests;
