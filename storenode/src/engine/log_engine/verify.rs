//! Walking the log's segments and telling a torn tail from damage, for a
//! replay ([`super::replay`]) and for the offline check ([`super::check`]).
//! Pure over the segments' bytes: what to repair is returned, not done.
//!
//! What a crash can tear follows from how the log writes. A record is
//! written with one `pwrite`; a durable batch is followed by an
//! `fdatasync`, but lazy batches (applies' marks, queued appends) are not,
//! so any number of records can be written after the last completed sync,
//! and a power cut may keep any subset of their pages: a hole (zeros, or a
//! torn page) can sit before records that survived whole. Bytes before the
//! last completed sync cannot be torn. Rotation syncs a segment before the
//! next one starts, so every segment but the newest is wholly durable.
//!
//! So:
//!
//! - every segment from the oldest one the newest segment's header says
//!   the log needs must be there; segments below a gap are the dead prefix
//!   a deletion cut short left, and are not walked;
//! - an older segment must hold whole records exactly up to the offset the
//!   next segment's header says it ended at ([`super::segment`]); anything
//!   else there, a bad record or an early end at a zeroed header, is damage;
//! - in the newest segment, the records run from the header to the first
//!   offset `X` that is not a whole record. If only zeros follow `X`, the
//!   log ends there. Otherwise every byte from `X` on was written after the
//!   last sync, or the log is damaged; each record carries the offset up to
//!   which its segment was synced when it was written (its watermark,
//!   [`super::record`]), so a whole record anywhere after `X` whose
//!   watermark is past `X` proves `X` was durable: damage. With no such
//!   witness, the bytes from `X` on are a torn tail, dropped or refused by
//!   the [`RecoveryMode`].
//!
//! The last synced record with nothing whole behind it reads like a torn
//! tail: no later record vouches for it. That is the one case a corrupted
//! durable record is dropped rather than refused (and then logged and
//! counted); `absolute-consistency` refuses it too.
//!
//! A watermark is only as true as the sync behind it: an open syncs the
//! newest segment before writing (what the last run left unsynced may be
//! in the page cache only), and rotation starts a segment durable up to its
//! header. Segments of [`Format::V1`] carry no watermark: in the newest of
//! them, anything after the last whole record is a torn tail.

use std::io;
use std::path::Path;

use super::damage::{LogDamage, Refusal};
use super::record::{self, Op, Read};
use super::recovery::RecoveryMode;
use super::segment::{self, Format, HEADER, MAGIC};

/// What the walk found in one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentScan {
    pub seq: u64,
    pub format: Format,
    /// The file's length.
    pub bytes: u64,
    pub records: u64,
    /// Where the records end: where writing goes on in the newest.
    pub end: u64,
    pub fix: Fix,
}

/// A repair the newest segment needs before it is written again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fix {
    None,
    /// Its creation was cut short (no record can have been written into
    /// it): write its header again, after a segment ending at `prev_end`,
    /// in a log that needs segments from `oldest` on.
    Header {
        prev_end: u64,
        oldest: u64,
    },
    /// A tail a crash may have torn: zero `[at, bytes)`; `written` of
    /// them are not zeros already.
    DropTail {
        at: u64,
        written: u64,
    },
}

/// A whole record as the walk meets it.
pub struct Seen<'a> {
    pub seq: u64,
    /// Where it starts in its segment.
    pub at: u64,
    pub bytes: &'a [u8],
    pub ops: &'a [Op],
    pub synced: Option<u64>,
}

/// How a segment's run of whole records stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// At a zero header, or the end of the file.
    Zero,
    /// At bytes that are not a whole record.
    Bad,
}

struct Walked {
    at: usize,
    stop: Stop,
    records: u64,
}

/// A segment whose end is checked once the next one's header is read.
struct Closed {
    seq: u64,
    walked: Walked,
    /// Whether only zeros follow where its records stop.
    zeros_after: bool,
    /// The file's length.
    len: usize,
}

/// Walks segments `seqs` (oldest first; `read` gives each one's bytes),
/// calling `each` for every whole record in order, and returns what each
/// segment holds and the repair the newest needs.
///
/// # Errors
///
/// `read`'s, and [`LogDamage`] (as `InvalidData`) for damage, or for a
/// torn tail in [`RecoveryMode::AbsoluteConsistency`].
pub fn scan(
    dir: &Path,
    seqs: &[u64],
    mode: RecoveryMode,
    mut read: impl FnMut(u64) -> io::Result<Vec<u8>>,
    mut each: impl FnMut(Seen<'_>),
) -> io::Result<Vec<SegmentScan>> {
    let Some(&newest) = seqs.last() else { return Ok(Vec::new()) };
    let damage = |seq: u64, offset: usize, what: String, refusal: Refusal| LogDamage {
        file: segment::path(dir, seq),
        offset: offset as u64,
        what,
        refusal,
    };
    // The newest header says which segments must be here: read it first.
    let mut newest_buf = Some(read(newest)?);
    let needs_from =
        segment::read_header(newest_buf.as_deref().unwrap_or_default(), newest).ok().and_then(|h| h.oldest);
    if let Some(oldest) = needs_from
        && let Some(missing) = (oldest..newest).find(|s| seqs.binary_search(s).is_err())
    {
        let what = format!(
            "missing: segment {newest} says the log needs every segment from {oldest} on (a segment file was \
             deleted or lost)"
        );
        return Err(damage(missing, 0, what, Refusal::Damage).into());
    }
    // Segments below a gap (below `oldest` then, or the check above
    // refused) are what a deletion of the dead prefix left: it deletes
    // them oldest first, but its unlinks may reach the disk in any order,
    // and the ops their entries need (truncations, purges, clears) may have
    // been in the segments it did delete. Replaying them would bring back
    // what the log dropped. Only a newest header that names `oldest` says
    // a gap is such a deletion and not a loss.
    let start = if needs_from.is_some() { present_run_start(seqs) } else { seqs[0] };
    let (leftover, seqs) = seqs.split_at(seqs.partition_point(|&s| s < start));
    if !leftover.is_empty() {
        tracing::warn!(
            segments = ?leftover,
            needed_from = start,
            "raft log segments below a gap are left by a deletion of old segments cut short: not replayed"
        );
    }
    let mut out = Vec::new();
    let mut prev: Option<Closed> = None;
    for &seq in seqs {
        let last = seq == newest;
        let buf = match newest_buf.take_if(|_| last) {
            Some(buf) => buf,
            None => read(seq)?,
        };
        let header = match segment::read_header(&buf, seq) {
            Ok(h) => Some(h),
            Err(_) if last && unfinished_creation(&buf) => None,
            Err(why) => return Err(damage(seq, 0, why, Refusal::Damage).into()),
        };
        let prev_stop = prev.as_ref().map_or(0, |p| p.walked.at as u64);
        if let Some(p) = prev.take() {
            // Only the segment just before this one is checked against its
            // header: after a gap (a deletion of old segments cut short)
            // the segment it names is not here.
            let vouched = header.and_then(|h| h.prev_end).filter(|_| p.seq + 1 == seq);
            if p.seq + 1 != seq {
                tracing::warn!(
                    segment = seq,
                    previous = p.seq,
                    "raft log segments missing between two kept ones: left by a deletion of old segments cut short"
                );
            }
            check_closed(&p, vouched).map_err(|(at, what)| damage(p.seq, at, what, Refusal::Damage))?;
        }
        let Some(header) = header else {
            out.push(SegmentScan {
                seq,
                format: Format::V2,
                bytes: buf.len() as u64,
                records: 0,
                end: HEADER as u64,
                fix: Fix::Header { prev_end: prev_stop, oldest: present_run_start(seqs) },
            });
            continue;
        };
        let walked =
            walk(&buf, header.format, seq, &mut each).map_err(|(at, what)| damage(seq, at, what, Refusal::Damage))?;
        let zeros_after = first_nonzero(&buf[walked.at..]).is_none();
        let mut fix = Fix::None;
        if last && !(walked.stop == Stop::Zero && zeros_after) {
            let x = walked.at;
            let what = match walked.stop {
                Stop::Bad => "not a whole record",
                Stop::Zero => "a zeroed record header with bytes after it",
            };
            if header.format == Format::V2
                && let Some((y, w)) = witness(&buf, x)
            {
                let what = format!(
                    "{what}, but the whole record at byte {y} was written after the segment was synced through \
                     byte {w}: bytes that were durable are damaged, not torn by a crash"
                );
                return Err(damage(seq, x, what, Refusal::Damage).into());
            }
            match mode {
                RecoveryMode::TolerateTailCorruption => {
                    let written = buf[x..].len() - trailing_zeros(&buf[x..]);
                    fix = Fix::DropTail { at: x as u64, written: written as u64 };
                }
                RecoveryMode::AbsoluteConsistency => {
                    let what = format!(
                        "{what}: a tail a crash may have torn (nothing after it says it was synced); \
                         recovery-mode {mode} refuses to drop it"
                    );
                    return Err(damage(seq, x, what, Refusal::TornTail).into());
                }
            }
        }
        out.push(SegmentScan {
            seq,
            format: header.format,
            bytes: buf.len() as u64,
            records: walked.records,
            end: walked.at as u64,
            fix,
        });
        if !last {
            prev = Some(Closed { seq, walked, zeros_after, len: buf.len() });
        }
    }
    Ok(out)
}

/// The oldest segment of the run of consecutive ones that ends with the
/// newest: all the log can claim to need when the newest's header is lost.
fn present_run_start(seqs: &[u64]) -> u64 {
    let mut start = *seqs.last().expect("a segment");
    for &s in seqs.iter().rev().skip(1) {
        if s + 1 != start {
            break;
        }
        start = s;
    }
    start
}

/// Whether the newest segment's bytes are a creation cut short: no whole
/// header, and nothing but zeros after where it goes (records are written
/// only once the header and zeros are durable).
fn unfinished_creation(buf: &[u8]) -> bool {
    let magic = &buf[..buf.len().min(MAGIC.len())];
    let written = magic.iter().zip(MAGIC).take_while(|(a, b)| a == b).count();
    magic[written..].iter().all(|&b| b == 0) && buf.get(HEADER..).is_none_or(|rest| first_nonzero(rest).is_none())
}

/// How many zeros `buf` ends with.
fn trailing_zeros(buf: &[u8]) -> usize {
    const BLOCK: usize = 4096;
    static ZEROS: [u8; BLOCK] = [0; BLOCK];
    let mut n = 0;
    for block in buf.rchunks(BLOCK) {
        if block != &ZEROS[..block.len()] {
            return n + block.iter().rev().take_while(|&&b| b == 0).count();
        }
        n += block.len();
    }
    n
}

/// Where the first byte that is not zero is. A segment is mostly the zeros
/// it was created with, so they are compared a block at a time.
fn first_nonzero(buf: &[u8]) -> Option<usize> {
    const BLOCK: usize = 4096;
    static ZEROS: [u8; BLOCK] = [0; BLOCK];
    let mut at = 0;
    for block in buf.chunks(BLOCK) {
        if block != &ZEROS[..block.len()] {
            return block.iter().position(|&b| b != 0).map(|p| at + p);
        }
        at += block.len();
    }
    None
}

/// Checks that an older segment's records end where the next segment's
/// header says (`vouched`), or, when it cannot say, at the end of the file
/// or at zeros that run to it.
fn check_closed(p: &Closed, vouched: Option<u64>) -> Result<(), (usize, String)> {
    let at = p.walked.at;
    let stopped = match p.walked.stop {
        Stop::Bad => "not a whole record",
        Stop::Zero => "the records end early at a zeroed record header",
    };
    match vouched {
        Some(end) if at as u64 == end && p.zeros_after => Ok(()),
        Some(end) if (at as u64) < end => {
            Err((at, format!("{stopped}, in a closed segment whose records run to byte {end}")))
        }
        Some(end) if at as u64 == end => {
            Err((at, format!("bytes after the closed segment's last record (its records run to byte {end})")))
        }
        Some(end) => Err((
            usize::try_from(end).unwrap_or(at),
            format!("records past byte {end}, where the next segment's header says this closed segment ends"),
        )),
        None if p.walked.stop == Stop::Zero && p.zeros_after => Ok(()),
        None => Err((at, format!("{stopped}, in a closed segment ({} bytes long)", p.len))),
    }
}

/// The run of whole records from the segment's header on.
fn walk(buf: &[u8], format: Format, seq: u64, each: &mut impl FnMut(Seen<'_>)) -> Result<Walked, (usize, String)> {
    let first = format.header_len();
    let mut at = first;
    let mut records = 0;
    let mut last_synced = 0;
    loop {
        let read =
            record::read(&buf[at..], format).map_err(|e| (at, format!("a checksummed record does not decode: {e}")))?;
        match read {
            Read::Record { len, ops, synced } => {
                if let Some(w) = synced {
                    // A sync can only have covered what was written before
                    // the record, and syncs only grow.
                    if w < first as u64 || w > at as u64 || w < last_synced {
                        return Err((at, format!("a record whose watermark {w} is out of order")));
                    }
                    last_synced = w;
                }
                each(Seen { seq, at: at as u64, bytes: &buf[at..at + len], ops: &ops, synced });
                at += len;
                records += 1;
            }
            Read::End => return Ok(Walked { at, stop: Stop::Zero, records }),
            Read::Torn => return Ok(Walked { at, stop: Stop::Bad, records }),
        }
    }
}

/// The first whole record after offset `x` whose watermark is past `x`,
/// with its offset and watermark: proof that `x` was durable.
///
/// Records after a hole are still at their offsets but nothing says where
/// the first one starts, so every offset is tried; a candidate must have a
/// watermark in `(x, y]` before its checksum is computed, which few random
/// bytes pass.
fn witness(buf: &[u8], x: usize) -> Option<(usize, u64)> {
    let mut y = x + 1;
    while y + record::HEADER <= buf.len() {
        let w = u64::from_le_bytes(buf[y + 8..y + 16].try_into().expect("8 bytes"));
        if w == 0 {
            // The zeros a segment was created with: a candidate's watermark
            // is past the header, so it holds a byte that is not zero.
            let p = first_nonzero(&buf[y + 16..])?;
            y = (y + 1).max(y + 16 + p - 15);
            continue;
        }
        if w > x as u64 && w <= y as u64 && record::whole(&buf[y..], Format::V2).is_some() {
            return Some((y, w));
        }
        y += 1;
    }
    None
}
