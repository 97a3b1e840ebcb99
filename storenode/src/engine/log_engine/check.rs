//! The offline check of a raft log (`storenode check-log`): the walk a
//! replay makes ([`super::verify`]), read-only, reporting each segment's
//! records, a tail an open would drop, and the damage that would refuse the
//! open, without starting the store.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use super::damage::LogDamage;
use super::index::Index;
use super::record::Op;
use super::recovery::RecoveryMode;
use super::segment::{self, Format};
use super::verify::{self, Fix};

/// One whole record, as the check lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordLine {
    pub seq: u64,
    pub at: u64,
    pub len: u64,
    pub synced: Option<u64>,
    /// Its ops by kind: append, truncate, purge, clear, mark.
    pub ops: [usize; 5],
}

impl fmt::Display for RecordLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [append, truncate, purge, clear, mark] = self.ops;
        write!(f, "{:016x}.raftlog record at byte {}: {} bytes", self.seq, self.at, self.len)?;
        if let Some(w) = self.synced {
            write!(f, ", segment synced through byte {w}")?;
        }
        write!(f, "; appends {append}, truncates {truncate}, purges {purge}, clears {clear}, marks {mark}")
    }
}

/// What one segment holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReport {
    pub file: PathBuf,
    pub format: Format,
    pub bytes: u64,
    pub records: u64,
    /// Where its records end.
    pub end: u64,
    /// A tail a crash may have torn: its offset and the bytes in it that
    /// are not the zeros after it. An open drops it, or refuses it in
    /// `absolute-consistency`.
    pub torn_tail: Option<(u64, u64)>,
    /// Its creation was cut short; an open writes its header again.
    pub unfinished: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub dir: PathBuf,
    /// The segments walked, oldest first (up to the damaged one).
    pub segments: Vec<SegmentReport>,
    /// Regions with live entries or marks, and live entries, as an open
    /// would index them (up to the damage).
    pub regions: usize,
    pub entries: usize,
    /// What refuses the open in every recovery mode.
    pub damage: Option<LogDamage>,
}

impl Report {
    /// Whether the log opens (dropping a torn tail in the default mode).
    pub fn opens(&self) -> bool {
        self.damage.is_none()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "raft log {}: {} segments", self.dir.display(), self.segments.len())?;
        for s in &self.segments {
            let name = s.file.file_name().map_or_else(|| s.file.display().to_string(), |n| n.to_string_lossy().into());
            let format = match s.format {
                Format::V1 => 1,
                Format::V2 => 2,
            };
            writeln!(
                f,
                "segment {name}: format {format}, {} bytes, {} records, records end at byte {}",
                s.bytes, s.records, s.end
            )?;
            if let Some((at, n)) = s.torn_tail {
                writeln!(
                    f,
                    "  torn tail at byte {at} ({n} bytes): written after the last sync any later record saw; \
                     an open drops it ({}) or refuses ({})",
                    RecoveryMode::TolerateTailCorruption,
                    RecoveryMode::AbsoluteConsistency
                )?;
            }
            if s.unfinished {
                writeln!(f, "  its creation was cut short: an open writes its header again")?;
            }
        }
        writeln!(f, "regions {}, live entries {}", self.regions, self.entries)?;
        match &self.damage {
            None => writeln!(f, "ok: the log opens"),
            Some(d) => writeln!(f, "DAMAGED: {d}"),
        }
    }
}

/// Checks the raft log under `dir`, calling `each` for every whole record.
///
/// # Errors
///
/// `NotFound` when `dir` holds no raft log, `WouldBlock` while a store has
/// it open, and read failures. Damage is reported, not an error.
pub fn check(dir: &Path, mut each: impl FnMut(&RecordLine)) -> io::Result<Report> {
    if segment::list(dir)?.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("{}: no raft log segments", dir.display())));
    }
    // A running store's tail moves under the walk: check a stopped one.
    // The segments are listed under the lock: a store stopping just before
    // it was taken may have rotated, or deleted a segment listed earlier.
    let _lock = segment::lock(dir)?;
    let seqs = segment::list(dir)?;
    let mut index = Index::default();
    let mut records: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let mut read_ones: BTreeMap<u64, (u64, Format)> = BTreeMap::new();
    let read = |seq: u64| -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        File::open(segment::path(dir, seq))?.read_to_end(&mut buf)?;
        let format = segment::read_header(&buf, seq).map_or(Format::V2, |h| h.format);
        read_ones.insert(seq, (buf.len() as u64, format));
        Ok(buf)
    };
    let scanned = verify::scan(dir, &seqs, RecoveryMode::TolerateTailCorruption, read, |r| {
        index.apply(r.ops, r.bytes, r.seq, r.at);
        let seen = records.entry(r.seq).or_default();
        seen.0 += 1;
        seen.1 = r.at + r.bytes.len() as u64;
        let mut ops = [0; 5];
        for op in r.ops {
            ops[match op {
                Op::Append { .. } => 0,
                Op::Truncate { .. } => 1,
                Op::Purge { .. } => 2,
                Op::Clear { .. } => 3,
                Op::Meta { .. } => 4,
            }] += 1;
        }
        each(&RecordLine { seq: r.seq, at: r.at, len: r.bytes.len() as u64, synced: r.synced, ops });
    });
    let (segments, damage) = match scanned {
        Ok(scans) => {
            let segments = scans
                .into_iter()
                .map(|s| SegmentReport {
                    file: segment::path(dir, s.seq),
                    format: s.format,
                    bytes: s.bytes,
                    records: s.records,
                    end: s.end,
                    torn_tail: match s.fix {
                        Fix::DropTail { at, written } => Some((at, written)),
                        Fix::None | Fix::Header { .. } => None,
                    },
                    unfinished: matches!(s.fix, Fix::Header { .. }),
                })
                .collect();
            (segments, None)
        }
        Err(e) => {
            let Some(d) = LogDamage::of(&e).cloned() else { return Err(e) };
            // The segments read before the damage, as far as their records
            // ran.
            let segments = read_ones
                .iter()
                .map(|(&seq, &(bytes, format))| {
                    let (n, end) = records.get(&seq).copied().unwrap_or((0, format.header_len() as u64));
                    SegmentReport {
                        file: segment::path(dir, seq),
                        format,
                        bytes,
                        records: n,
                        end,
                        torn_tail: None,
                        unfinished: false,
                    }
                })
                .collect();
            (segments, Some(d))
        }
    };
    let entries = index.regions.values().map(|r| r.entries.len()).sum();
    Ok(Report { dir: dir.to_path_buf(), segments, regions: index.regions.len(), entries, damage })
}
