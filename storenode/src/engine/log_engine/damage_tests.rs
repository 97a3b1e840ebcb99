//! Damage against torn tails: what a replay refuses, what it drops, and what
//! the offline check reports.

use std::os::unix::fs::FileExt;
use std::path::Path;

use super::check::{self, RecordLine};
use super::*;

/// Small segments: a test need not write (and sync) 32 MiB of zeros.
const SEG: u64 = 64 * 1024;

fn all(log: &LogEngine, region: u64) -> Vec<u64> {
    log.entries(region, 0, u64::MAX).unwrap().into_iter().map(|(i, _)| i).collect()
}

/// Appends entry `i` of region 1 as one record, synced or not.
fn append(log: &Arc<LogEngine>, i: u64, sync: bool) {
    let b = log.batch();
    b.append(1, i, &[i as u8; 100]);
    b.put_meta(1, 1, &i.to_le_bytes());
    b.commit(sync).unwrap();
}

/// Every whole record of the log under `dir`, as the check lists them.
fn records(dir: &Path) -> Vec<RecordLine> {
    let mut out = Vec::new();
    check::check(dir, |r| out.push(r.clone())).unwrap();
    out
}

fn in_segment(dir: &Path, seq: u64) -> Vec<RecordLine> {
    records(dir).into_iter().filter(|r| r.seq == seq).collect()
}

/// Changes the bytes of segment `seq` at `at` in place.
fn poke(dir: &Path, seq: u64, at: u64, f: impl FnOnce(&mut [u8]), len: usize) {
    let file = std::fs::OpenOptions::new().read(true).write(true).open(segment::path(dir, seq)).unwrap();
    let mut buf = vec![0; len];
    file.read_exact_at(&mut buf, at).unwrap();
    f(&mut buf);
    file.write_all_at(&buf, at).unwrap();
}

fn flip(dir: &Path, seq: u64, at: u64) {
    poke(dir, seq, at, |b| b[0] ^= 0x40, 1);
}

fn zero(dir: &Path, seq: u64, at: u64, len: u64) {
    poke(dir, seq, at, |b| b.fill(0), len as usize);
}

/// The damage a refused open names.
fn refused(dir: &Path, segment_bytes: u64, mode: RecoveryMode) -> LogDamage {
    let before = metrics::RAFT_LOG_OPEN_REFUSALS.with_label_values(&["damage"]).get()
        + metrics::RAFT_LOG_OPEN_REFUSALS.with_label_values(&["torn_tail"]).get();
    let e = LogEngine::open_in(dir, segment_bytes, mode).err().expect("the open is refused");
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    let d = LogDamage::of(&e).expect("a typed damage").clone();
    assert!(e.to_string().contains(&format!("{} at byte {}", d.file.display(), d.offset)), "{e}");
    let after = metrics::RAFT_LOG_OPEN_REFUSALS.with_label_values(&["damage"]).get()
        + metrics::RAFT_LOG_OPEN_REFUSALS.with_label_values(&["torn_tail"]).get();
    assert!(after > before, "a refused open is counted");
    d
}

/// Ten synced records in the one segment.
fn ten_synced(dir: &Path) -> Vec<RecordLine> {
    let log = LogEngine::open_with(dir, SEG).unwrap();
    for i in 1..=10 {
        append(&log, i, true);
    }
    drop(log);
    let recs = in_segment(dir, 1);
    assert_eq!(recs.len(), 10);
    recs
}

/// Small segments that rotate every few records, with old entries purged
/// so segments are dropped: returns the segments left.
fn rotating(dir: &Path) -> Vec<u64> {
    let log = LogEngine::open_with(dir, 1024).unwrap();
    for i in 1..=40u64 {
        let b = log.batch();
        b.append(1, i, &[i as u8; 100]);
        b.put_meta(1, 1, &i.to_le_bytes());
        b.purge(1, i.saturating_sub(3));
        b.commit(true).unwrap();
    }
    let segs = log.segments();
    assert!(segs.len() >= 2, "{segs:?}");
    segs
}

#[test]
fn a_byte_flipped_in_a_middle_record_of_an_older_segment_refuses_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let segs = rotating(dir.path());
    let older = segs[segs.len() - 2];
    let recs = in_segment(dir.path(), older);
    assert!(recs.len() >= 3, "{recs:?}");
    let mid = &recs[recs.len() / 2];
    flip(dir.path(), older, mid.at + mid.len - 3);
    let d = refused(dir.path(), 1024, RecoveryMode::TolerateTailCorruption);
    assert_eq!((d.file.clone(), d.offset, d.refusal), (segment::path(dir.path(), older), mid.at, Refusal::Damage));
    assert!(d.what.contains("not a whole record"), "{d}");
}

#[test]
fn a_zeroed_header_in_an_older_segment_refuses_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let segs = rotating(dir.path());
    let older = segs[segs.len() - 2];
    let recs = in_segment(dir.path(), older);
    let mid = &recs[recs.len() / 2];
    zero(dir.path(), older, mid.at, record::HEADER as u64);
    let d = refused(dir.path(), 1024, RecoveryMode::TolerateTailCorruption);
    assert_eq!((d.file.clone(), d.offset), (segment::path(dir.path(), older), mid.at));
    assert!(d.what.contains("end early"), "{d}");
}

/// An older segment whose last record is zeroed whole reads as a clean end
/// by its bytes alone; the next segment's header says where it ended.
#[test]
fn a_zeroed_last_record_of_an_older_segment_refuses_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let segs = rotating(dir.path());
    let older = segs[segs.len() - 2];
    let last = in_segment(dir.path(), older).pop().unwrap();
    zero(dir.path(), older, last.at, last.len);
    let d = refused(dir.path(), 1024, RecoveryMode::TolerateTailCorruption);
    assert_eq!((d.file.clone(), d.offset), (segment::path(dir.path(), older), last.at));
}

#[test]
fn a_byte_flipped_in_the_newest_segment_with_records_behind_refuses_the_open() {
    for victim in [0, 4] {
        let dir = tempfile::tempdir().unwrap();
        let recs = ten_synced(dir.path());
        let r = &recs[victim];
        flip(dir.path(), 1, r.at + r.len / 2);
        let d = refused(dir.path(), SEG, RecoveryMode::TolerateTailCorruption);
        assert_eq!((d.file.clone(), d.offset, d.refusal), (segment::path(dir.path(), 1), r.at, Refusal::Damage));
        assert!(d.what.contains("not torn by a crash"), "{d}");
        // A zeroed header there is no clean end either.
        let dir = tempfile::tempdir().unwrap();
        let recs = ten_synced(dir.path());
        zero(dir.path(), 1, recs[victim].at, record::HEADER as u64);
        let d = refused(dir.path(), SEG, RecoveryMode::TolerateTailCorruption);
        assert_eq!(d.offset, recs[victim].at);
    }
}

#[test]
fn a_tail_cut_mid_record_opens_and_absolute_consistency_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = LogEngine::open_with(dir.path(), SEG).unwrap();
        for i in 1..=5 {
            append(&log, i, true);
        }
        // Lazy, like an apply's marks: it may be torn by a power cut.
        append(&log, 6, false);
    }
    let last = in_segment(dir.path(), 1).pop().unwrap();
    let cut = last.at + last.len / 2;
    zero(dir.path(), 1, cut, last.at + last.len - cut);

    let d = refused(dir.path(), SEG, RecoveryMode::AbsoluteConsistency);
    assert_eq!((d.offset, d.refusal), (last.at, Refusal::TornTail));
    let report = check::check(dir.path(), |_| {}).unwrap();
    assert!(report.opens(), "{report}");
    assert_eq!(report.segments[0].torn_tail, Some((last.at, last.len / 2)), "the half left: {report}");

    let torn_before = metrics::RAFT_LOG_TORN_TAILS.get();
    {
        let log = LogEngine::open_with(dir.path(), SEG).unwrap();
        assert!(metrics::RAFT_LOG_TORN_TAILS.get() > torn_before, "a dropped tail is counted");
        assert_eq!(all(&log, 1), [1, 2, 3, 4, 5]);
        assert_eq!(log.meta(1, 1), Some(5u64.to_le_bytes().to_vec()));
        append(&log, 6, true);
    }
    let log = LogEngine::open_in(dir.path(), SEG, RecoveryMode::AbsoluteConsistency).unwrap();
    assert_eq!(all(&log, 1), [1, 2, 3, 4, 5, 6], "the dropped tail was zeroed and writing went on");
}

/// Lazy records after the last sync can lose any of their pages: a hole
/// with a whole record behind it is still a torn tail when the record
/// behind was written before anything past the hole was synced.
#[test]
fn lazy_records_behind_a_hole_are_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = LogEngine::open_with(dir.path(), SEG).unwrap();
        append(&log, 1, true);
        append(&log, 2, false);
        append(&log, 3, false);
    }
    let recs = in_segment(dir.path(), 1);
    zero(dir.path(), 1, recs[1].at, recs[1].len);
    let log = LogEngine::open_with(dir.path(), SEG).unwrap();
    assert_eq!(all(&log, 1), [1]);
    drop(log);
    assert_eq!(in_segment(dir.path(), 1).len(), 1, "the record behind the hole is zeroed too");
}

/// Records written since the open carry a watermark that covers what the
/// last run left: the open synced it.
#[test]
fn records_after_a_reopen_vouch_for_the_ones_before() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = LogEngine::open_with(dir.path(), SEG).unwrap();
        append(&log, 1, false);
        append(&log, 2, false);
    }
    {
        let log = LogEngine::open_with(dir.path(), SEG).unwrap();
        append(&log, 3, false);
    }
    let recs = in_segment(dir.path(), 1);
    assert_eq!(recs[2].synced, Some(recs[2].at));
    flip(dir.path(), 1, recs[0].at + 20);
    let d = refused(dir.path(), SEG, RecoveryMode::TolerateTailCorruption);
    assert_eq!(d.offset, recs[0].at);
}

/// Entries never purged: every rotation keeps the segment before it.
#[test]
fn a_missing_segment_the_log_needs_refuses_the_open_and_a_leftover_before_them_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let segs = {
        let log = LogEngine::open_with(dir.path(), 1024).unwrap();
        for i in 1..=30u64 {
            append(&log, i, true);
        }
        log.segments()
    };
    assert!(segs.len() >= 3, "{segs:?}");
    // A deletion of old segments cut short leaves one below a gap: it is
    // not needed, and the log opens.
    let leftover = segs[0] - 2;
    drop(segment::create(dir.path(), leftover, 0, leftover, 1024).unwrap());
    let log = LogEngine::open_with(dir.path(), 1024).unwrap();
    assert_eq!(all(&log, 1), (1..=30).collect::<Vec<_>>());
    drop(log);
    let middle = segs[segs.len() - 2];
    std::fs::remove_file(segment::path(dir.path(), middle)).unwrap();
    let d = refused(dir.path(), 1024, RecoveryMode::TolerateTailCorruption);
    assert_eq!((d.file.clone(), d.offset), (segment::path(dir.path(), middle), 0));
    assert!(d.what.contains("missing"), "{d}");
}

/// A segment below a gap was in the dead prefix a rotation deleted (a
/// prefix goes oldest first, but its unlinks may reach the disk in any
/// order): the truncations, purges and clears its entries needed may have
/// been in the segments deleted, so replaying it brings back what the log
/// dropped, here a destroyed region's entries.
#[test]
fn a_leftover_below_a_gap_is_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let segs = rotating(dir.path());
    let leftover = segs[0] - 2;
    {
        let f = segment::create(dir.path(), leftover, 0, leftover, 1024).unwrap();
        let mut rec = record::RecordBuf::default();
        rec.append(9, 1, b"a destroyed region's entry");
        rec.seal(segment::HEADER as u64);
        f.write_all_at(&rec.bytes, segment::HEADER as u64).unwrap();
        f.sync_all().unwrap();
    }
    let log = LogEngine::open_with(dir.path(), 1024).unwrap();
    assert!(!log.has_state(9), "the leftover's entries stay dropped");
    assert_eq!(all(&log, 1), [38, 39, 40]);
    assert!(!log.segments().contains(&leftover), "{:?}", log.segments());
}

#[test]
fn a_segment_out_of_place_refuses_the_open() {
    let dir = tempfile::tempdir().unwrap();
    ten_synced(dir.path());
    std::fs::rename(segment::path(dir.path(), 1), segment::path(dir.path(), 2)).unwrap();
    let d = refused(dir.path(), SEG, RecoveryMode::TolerateTailCorruption);
    assert_eq!((d.file.clone(), d.offset), (segment::path(dir.path(), 2), 0));
    assert!(d.what.contains("out of place"), "{d}");
}

#[test]
fn a_newest_segment_whose_creation_was_cut_short_gets_its_header_again() {
    let dir = tempfile::tempdir().unwrap();
    let segs = rotating(dir.path());
    let newest = *segs.last().unwrap();
    let next = segment::path(dir.path(), newest + 1);
    std::fs::write(&next, &segment::MAGIC[..5]).unwrap();
    {
        let log = LogEngine::open_with(dir.path(), 1024).unwrap();
        assert_eq!(all(&log, 1), [38, 39, 40]);
        append(&log, 41, true);
    }
    let log = LogEngine::open_with(dir.path(), 1024).unwrap();
    assert_eq!(all(&log, 1), [38, 39, 40, 41]);
    // Written again as a rotation creates a segment: at its full size, so
    // its syncs write into blocks already allocated.
    assert_eq!(std::fs::metadata(&next).unwrap().len(), 1024);
}

/// A store killed while a rotation zeroed or synced the new segment, or
/// before it synced the directory, leaves it whole in the page cache: the
/// next run sees a valid header and writes acknowledged records into it,
/// so its open must make the segment's name durable, or a power cut later
/// loses the file and every record in it without a trace.
#[test]
fn an_open_makes_the_newest_segments_name_durable() {
    let dir = tempfile::tempdir().unwrap();
    let segs = rotating(dir.path());
    let newest = *segs.last().unwrap();
    let prev_end = in_segment(dir.path(), newest).last().map(|r| r.at + r.len).unwrap();
    let next = segment::path(dir.path(), newest + 1);
    std::fs::write(&next, segment::header(newest + 1, prev_end, newest)).unwrap();
    let before = segment::DIR_SYNCS.with(std::cell::Cell::get);
    let log = LogEngine::open_with(dir.path(), 1024).unwrap();
    assert_eq!(log.segments().last(), Some(&(newest + 1)));
    assert!(segment::DIR_SYNCS.with(std::cell::Cell::get) > before, "the open synced the log's directory");
}

/// A segment of the format before (`RAFTLOG1`, records with no
/// watermark) replays, and the next write goes to a new segment.
#[test]
fn a_segment_of_the_old_format_replays_and_is_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let old = |region: u64, index: u64, entry: &[u8]| {
        let mut r = record::RecordBuf::default();
        r.append(region, index, entry);
        let ops = &r.bytes[record::HEADER..];
        let mut bytes = (ops.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&crc32fast::hash(ops).to_le_bytes());
        bytes.extend_from_slice(ops);
        bytes
    };
    let mut seg = segment::MAGIC_V1.to_vec();
    seg.extend(old(1, 1, b"one"));
    seg.extend(old(1, 2, b"two"));
    seg.extend([9, 9, 9]); // a torn tail
    seg.resize(4096, 0);
    std::fs::write(segment::path(dir.path(), 1), &seg).unwrap();
    {
        let log = LogEngine::open_with(dir.path(), SEG).unwrap();
        assert_eq!(log.segments(), [1, 2]);
        assert_eq!(all(&log, 1), [1, 2]);
        append(&log, 3, true);
    }
    let log = LogEngine::open_with(dir.path(), SEG).unwrap();
    assert_eq!(all(&log, 1), [1, 2, 3]);
    assert_eq!(log.entries(1, 2, 3).unwrap(), [(2, b"two".to_vec())]);
}

#[test]
fn the_check_reports_records_and_damage_without_opening() {
    let dir = tempfile::tempdir().unwrap();
    let recs = ten_synced(dir.path());
    let report = check::check(dir.path(), |_| {}).unwrap();
    assert!(report.opens(), "{report}");
    assert_eq!((report.segments[0].records, report.regions, report.entries), (10, 1, 10));
    flip(dir.path(), 1, recs[3].at + 30);
    let mut seen = 0;
    let report = check::check(dir.path(), |_| seen += 1).unwrap();
    assert_eq!(seen, 3, "the records before the damage");
    let d = report.damage.clone().expect("damage reported");
    assert_eq!((d.file, d.offset), (segment::path(dir.path(), 1), recs[3].at));
    assert!(report.to_string().contains("DAMAGED"), "{report}");
}

#[test]
fn the_check_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = LogEngine::open_with(dir.path(), 4096).unwrap();
        append(&log, 1, true);
        append(&log, 2, false);
    }
    let last = in_segment(dir.path(), 1).pop().unwrap();
    zero(dir.path(), 1, last.at + 10, 20);
    let before = std::fs::read(segment::path(dir.path(), 1)).unwrap();
    let report = check::check(dir.path(), |_| {}).unwrap();
    assert_eq!(report.segments[0].torn_tail.map(|(at, _)| at), Some(last.at), "{report}");
    assert_eq!(std::fs::read(segment::path(dir.path(), 1)).unwrap(), before, "the torn tail is only reported");
}
