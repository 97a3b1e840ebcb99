//! The raft log across power cuts: on the write-back disk, every record
//! the log acknowledged as synced survives a cut, whatever the cut kept of
//! the unsynced ones (nothing, a random subset of pages, a torn page), and
//! the log opens.
//!
//! Its own test binary: the write-back disk is the whole process's, and a
//! cut drops every file's unsynced writes, so the tests take turns (a cut
//! from one test in the middle of the other's write and sync would leave a
//! log running past a loss no real power cut lets a process outlive).

use std::sync::{Arc, Mutex, OnceLock};

use storenode::disk::{self, Disk, PowerCut, PowerCutConfig, WriteBack};
use storenode::engine::{DATA_FILE, Engine, LogEngine};

/// The process's write-back disk, installed by the first test to ask.
fn write_back() -> Arc<WriteBack> {
    static WB: OnceLock<Arc<WriteBack>> = OnceLock::new();
    WB.get_or_init(|| {
        let wb = Arc::new(WriteBack::new(PowerCutConfig { model: PowerCut::Pages, seed: 11, skip_log_sync: false }));
        disk::install(Disk::WriteBack(wb.clone())).unwrap();
        wb
    })
    .clone()
}

/// Held by each test for its whole run.
static TURN: Mutex<()> = Mutex::new(());

/// Small segments, so the cuts also meet rotations.
const SEGMENT_BYTES: u64 = 64 * 1024;
const REGION: u64 = 1;

fn entry(round: u64, index: u64) -> Vec<u8> {
    format!("round {round} entry {index} ").repeat(1 + (index % 7) as usize).into_bytes()
}

#[test]
fn every_synced_record_survives_power_cuts() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let wb = write_back();
    let dir = tempfile::tempdir().unwrap();
    // What the log acknowledged as synced: (index, entry).
    let mut synced: Vec<(u64, Vec<u8>)> = Vec::new();
    for round in 0..40u64 {
        let log = LogEngine::open_with(dir.path(), SEGMENT_BYTES).unwrap();
        let got = log.entries(REGION, 0, u64::MAX).unwrap();
        assert!(got.len() >= synced.len(), "round {round}: synced entries lost: {} of {}", got.len(), synced.len());
        assert_eq!(got[..synced.len()], synced[..], "round {round}: a synced entry changed");
        // Unsynced entries that survived whole are the log's now: a later
        // append follows them, as raft would after its own replay.
        synced = got;
        let mut next = synced.last().map_or(1, |(i, _)| i + 1);
        for batch in 0..(3 + round % 5) {
            let b = log.batch();
            let mut written = Vec::new();
            for _ in 0..(1 + batch % 4) {
                let e = entry(round, next);
                b.append(REGION, next, &e);
                written.push((next, e));
                next += 1;
            }
            b.commit(true).unwrap();
            synced.extend(written);
        }
        for _ in 0..(1 + round % 3) {
            let b = log.batch();
            b.append(REGION, next, &entry(round, next));
            next += 1;
            b.commit(false).unwrap();
        }
        drop(log);
        wb.cut(dir.path()).unwrap();
    }
    assert!(synced.len() > 100, "the rounds wrote {} entries", synced.len());
}

#[test]
fn the_data_file_outlives_a_cut_right_after_the_first_open() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let wb = write_back();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    assert!(engine.store_id().unwrap().is_none());
    // The raft log's first segment is durable under its synced directory;
    // the data file must be too, or a store would restart with a log and
    // no data.
    wb.cut(dir.path()).unwrap();
    assert!(dir.path().join(DATA_FILE).exists(), "the data file's name was lost to the cut");
}
