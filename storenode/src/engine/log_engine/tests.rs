use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::FileExt;

use super::*;

const HEADER_LEN: usize = segment::HEADER;

fn all(log: &LogEngine, region: u64) -> Vec<(u64, Vec<u8>)> {
    log.entries(region, 0, u64::MAX).unwrap()
}

fn write(log: &Arc<LogEngine>, sync: bool, f: impl FnOnce(&LogBatch)) {
    let b = log.batch();
    f(&b);
    b.commit(sync).unwrap();
}

#[test]
fn writes_read_back_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let check = |log: &LogEngine| {
        assert_eq!(all(log, 7), [(2, b"two".to_vec()), (3, b"three'".to_vec())]);
        assert_eq!(log.meta(7, 1).as_deref(), Some(b"vote2".as_slice()));
        assert_eq!(log.last_entry(7).unwrap(), Some((3, b"three'".to_vec())));
        assert!(!log.has_state(8), "cleared");
        assert_eq!(log.entries(7, 3, 10).unwrap().len(), 1);
    };
    {
        let log = LogEngine::open(dir.path()).unwrap();
        write(&log, true, |b| {
            for (i, e) in [(1, "one"), (2, "two"), (3, "three"), (4, "four")] {
                b.append(7, i, e.as_bytes());
            }
            b.put_meta(7, 1, b"vote1");
            b.append(8, 1, b"other");
            b.put_meta(8, 1, b"v");
        });
        write(&log, false, |b| {
            b.truncate(7, 3);
            b.append(7, 3, b"three'");
            b.purge(7, 1);
            b.put_meta(7, 1, b"vote2");
            b.clear(8);
        });
        check(&log);
        log.sync().unwrap();
    }
    check(&LogEngine::open(dir.path()).unwrap());
}

#[test]
fn a_batch_reads_its_own_marks_first() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogEngine::open(dir.path()).unwrap();
    write(&log, true, |b| b.put_meta(1, 1, b"old"));
    let b = log.batch();
    assert_eq!(b.meta(1, 1).as_deref(), Some(b"old".as_slice()));
    b.put_meta(1, 1, b"new");
    assert_eq!(b.meta(1, 1).as_deref(), Some(b"new".as_slice()));
    b.clear(1);
    assert_eq!(b.meta(1, 1), None);
    assert_eq!(log.meta(1, 1).as_deref(), Some(b"old".as_slice()), "nothing is visible before the commit");
}

#[test]
fn a_record_cut_short_at_the_end_is_dropped_and_writing_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = LogEngine::open(dir.path()).unwrap();
        write(&log, true, |b| b.append(1, 1, b"kept"));
    }
    let seg = segment::path(dir.path(), 1);
    let end = (HEADER_LEN + record::HEADER + 1 + 8 + 8 + 4 + 4) as u64;
    let torn = [64, 0, 0, 0, 1, 2, 3, 4, 5];
    // Half a record where the next would go: a header that promises more
    // than follows.
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().write_all_at(&torn, end).unwrap();
    {
        let log = LogEngine::open(dir.path()).unwrap();
        assert_eq!(all(&log, 1), [(1, b"kept".to_vec())]);
        assert_eq!(log.active.lock().unwrap().len, end, "writing goes on where the records end");
        let mut back = [1u8; 9];
        std::fs::File::open(&seg).unwrap().read_exact_at(&mut back, end).unwrap();
        assert_eq!(back, [0; 9], "the torn bytes are zeroed");
        write(&log, true, |b| b.append(1, 2, b"after"));
    }
    let log = LogEngine::open(dir.path()).unwrap();
    assert_eq!(all(&log, 1), [(1, b"kept".to_vec()), (2, b"after".to_vec())]);
}

/// Four appends of 100 bytes into 64-byte segments: each starts a new
/// one, with nothing to carry but the entries.
fn append_four_over_rotations(dir: &std::path::Path) {
    let log = LogEngine::open_with(dir, 64).unwrap();
    for i in 1..=4 {
        write(&log, true, |b| b.append(1, i, &[7; 100]));
    }
    assert!(log.segments().len() > 1);
}

#[test]
fn a_damaged_record_in_an_older_segment_refuses_the_open() {
    let dir = tempfile::tempdir().unwrap();
    append_four_over_rotations(dir.path());
    let first = segment::list(dir.path()).unwrap()[0];
    let seg = segment::path(dir.path(), first);
    let mut bytes = std::fs::read(&seg).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&seg, bytes).unwrap();
    let e = LogEngine::open_with(dir.path(), 64).err().expect("refused");
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(e.to_string().contains("not a whole record"), "{e}");
    let d = LogDamage::of(&e).expect("typed");
    assert_eq!(d.file, seg);
}

#[test]
fn rotation_carries_an_idle_regions_entries_and_deletes_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogEngine::open_with(dir.path(), 4096).unwrap();
    write(&log, true, |b| {
        b.append(1, 1, b"idle entry");
        b.put_meta(1, 1, b"idle vote");
    });
    for i in 1..=400u64 {
        write(&log, true, |b| {
            b.append(2, i, &[i as u8; 200]);
            b.put_meta(2, 3, &i.to_le_bytes());
            b.purge(2, i.saturating_sub(3));
        });
    }
    let segments = log.segments();
    assert!(segments[0] > 10, "old segments were deleted: {segments:?}");
    assert!(segments.len() <= 4, "{segments:?}");
    let expect = |log: &LogEngine| {
        assert_eq!(all(log, 1), [(1, b"idle entry".to_vec())]);
        assert_eq!(log.meta(1, 1).as_deref(), Some(b"idle vote".as_slice()));
        assert_eq!(all(log, 2).iter().map(|(i, _)| *i).collect::<Vec<_>>(), [398, 399, 400]);
        assert_eq!(log.meta(2, 3), Some(400u64.to_le_bytes().to_vec()));
    };
    expect(&log);
    drop(log);
    expect(&LogEngine::open_with(dir.path(), 4096).unwrap());
}

/// A small seeded generator: the model test must replay the same way.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Default, Clone)]
struct Model {
    entries: BTreeMap<u64, Vec<u8>>,
    marks: BTreeMap<u8, Vec<u8>>,
}

/// Random appends, truncations, purges, clears and marks over a few regions,
/// in batches synced or not, with small segments so rotations and deletions
/// happen often; after every reopen the log must equal the model.
#[test]
fn the_log_matches_a_model_across_rotations_and_reopens() {
    for seed in [1u64, 2, 3, 0x5eed] {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut model: HashMap<u64, Model> = HashMap::new();
        let mut log = LogEngine::open_with(dir.path(), 2048).unwrap();
        for step in 0..1500 {
            let b = log.batch();
            for _ in 0..=rng.below(3) {
                let r = 1 + rng.below(5);
                let m = model.entry(r).or_default();
                let last = m.entries.keys().next_back().copied().unwrap_or(0);
                match rng.below(10) {
                    0..=4 => {
                        for i in 0..=rng.below(3) {
                            let v: Vec<u8> = (0..rng.below(120)).map(|_| rng.next() as u8).collect();
                            b.append(r, last + 1 + i, &v);
                            m.entries.insert(last + 1 + i, v);
                        }
                    }
                    5 => {
                        let from = rng.below(last + 2);
                        b.truncate(r, from);
                        m.entries.retain(|&i, _| i < from);
                    }
                    6 => {
                        let upto = rng.below(last + 1);
                        b.purge(r, upto);
                        m.entries.retain(|&i, _| i > upto);
                    }
                    7 if rng.below(4) == 0 => {
                        b.clear(r);
                        model.remove(&r);
                    }
                    _ => {
                        let kind = 1 + rng.below(3) as u8;
                        let v = rng.next().to_le_bytes().to_vec();
                        b.put_meta(r, kind, &v);
                        m.marks.insert(kind, v);
                    }
                }
            }
            b.commit(true).unwrap();
            if step % 100 == 99 {
                drop(log);
                log = LogEngine::open_with(dir.path(), 2048).unwrap();
                for r in 1..=5 {
                    let m = model.get(&r).cloned().unwrap_or_default();
                    assert_eq!(
                        all(&log, r),
                        m.entries.into_iter().collect::<Vec<_>>(),
                        "seed {seed} step {step} region {r}"
                    );
                    for kind in 1..=3 {
                        assert_eq!(
                            log.meta(r, kind),
                            m.marks.get(&kind).cloned(),
                            "seed {seed} step {step} region {r}"
                        );
                    }
                }
                assert!(log.segments().len() <= 4, "seed {seed}: {:?}", log.segments());
            }
        }
    }
}

#[test]
fn a_failed_write_refuses_every_later_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogEngine::open(dir.path()).unwrap();
    log.active.lock().unwrap().failed = Some("injected".into());
    let b = log.batch();
    b.append(1, 1, b"x");
    let e = b.commit(true).unwrap_err();
    assert!(e.to_string().contains("refuses writes"), "{e}");
    assert!(!log.has_entries(1));
}

#[test]
fn a_log_open_elsewhere_refuses_a_second_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogEngine::open(dir.path()).unwrap();
    let e = LogEngine::open(dir.path()).err().expect("refused");
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
    drop(log);
    LogEngine::open(dir.path()).expect("free again once closed");
}

/// A rotation with no marks and nothing to carry writes no carry record:
/// an empty one would read as the zeros where records end, and hide every
/// record after it.
#[test]
fn a_rotation_with_nothing_to_carry_hides_no_later_record() {
    let dir = tempfile::tempdir().unwrap();
    append_four_over_rotations(dir.path());
    let log = LogEngine::open_with(dir.path(), 64).unwrap();
    assert_eq!(all(&log, 1).iter().map(|(i, _)| *i).collect::<Vec<_>>(), [1, 2, 3, 4]);
}

#[test]
fn marks_of_any_size_and_kind_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let long = vec![9u8; 100];
    {
        let log = LogEngine::open(dir.path()).unwrap();
        write(&log, true, |b| {
            for kind in 1..=5u8 {
                b.put_meta(1, kind, &[kind; 3]);
            }
            b.put_meta(1, 4, &long);
            b.put_meta(1, 2, b"");
        });
        assert_eq!(log.meta(1, 4), Some(long.clone()), "a long one, past the slots");
    }
    let log = LogEngine::open(dir.path()).unwrap();
    let got: Vec<Option<Vec<u8>>> = (1..=6u8).map(|k| log.meta(1, k)).collect();
    assert_eq!(got, [Some(vec![1; 3]), Some(vec![]), Some(vec![3; 3]), Some(long), Some(vec![5; 3]), None]);
}
