//! Snapshot files end to end: built from one engine, installed into another
//! in bounded steps, and an interrupted install resumed after a restart.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::storage::RaftSnapshotBuilder;
use proto::{metapb, raftpb};
use redb::ReadableDatabase;

use super::install::{self, StepLimits};
use crate::engine::{APPLY_STATE, DATA, Engine, SESSIONS, io_err};
use crate::raft::apply_state::ApplyState;
use crate::raft::fence::{self, Fence};
use crate::raft::state_machine::RegionStateMachine;
use crate::raft::{Snapshot, TypeConfig, decode, encode, session};

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn region() -> metapb::Region {
    metapb::Region {
        id: 1,
        start_key: b"a".to_vec(),
        end_key: b"m".to_vec(),
        region_epoch: Some(metapb::RegionEpoch { conf_ver: 1, version: 3 }),
        peers: vec![metapb::Peer { id: 1, store_id: 1, role: 0 }],
    }
}

fn pairs(n: usize, tag: &str) -> Pairs {
    (0..n).map(|i| (format!("b{i:06}").into_bytes(), format!("{tag}-{i}").repeat(10).into_bytes())).collect()
}

/// An engine holding region 1 with `data` (plus a key outside its range),
/// two sessions, and an applied state at index `index`.
async fn engine_with(dir: &Path, data: Pairs, index: u64) -> Arc<Engine> {
    let engine = Engine::open(dir).unwrap();
    engine
        .save_region_state(raftpb::RegionLocalState {
            region: Some(region()),
            state: raftpb::PeerState::Normal as i32,
            peer_id: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    let applied = encode(&ApplyState {
        last_applied: Some(openraft::testing::log_id::<TypeConfig>(2, 1, index)),
        clock_ms: 77 + index,
        last_sweep_ms: 60,
        ..Default::default()
    })
    .unwrap();
    engine
        .writer
        .write(move |tx| {
            let mut t = tx.open_table(DATA).map_err(io_err)?;
            for (k, v) in &data {
                t.insert(k.as_slice(), v.as_slice()).map_err(io_err)?;
            }
            t.insert(b"z-outside".as_slice(), format!("outside-{index}").as_bytes()).map_err(io_err)?;
            let mut s = tx.open_table(SESSIONS).map_err(io_err)?;
            for client in [5u64, 6] {
                s.insert((1, client), format!("session-{client}-{index}").as_bytes()).map_err(io_err)?;
            }
            tx.open_table(APPLY_STATE).map_err(io_err)?.insert(1, applied.as_slice()).map_err(io_err)?;
            Ok(())
        })
        .await
        .unwrap();
    engine
}

async fn build(engine: &Arc<Engine>) -> Snapshot {
    let mut sm = RegionStateMachine::open(engine.clone(), region(), 1).await.unwrap();
    sm.build_snapshot().await.unwrap()
}

/// Region 1's keys, sessions, applied state and local state.
fn contents(engine: &Engine) -> (Pairs, Vec<(u64, Vec<u8>)>, ApplyState, raftpb::RegionLocalState) {
    let data = engine.scan(b"a", b"m", usize::MAX).unwrap();
    let tx = engine.db.begin_read().unwrap();
    let sessions = session::export(&tx.open_table(SESSIONS).unwrap(), 1).unwrap();
    let applied = decode(tx.open_table(APPLY_STATE).unwrap().get(1).unwrap().unwrap().value()).unwrap();
    (data, sessions, applied, engine.region_state(1).unwrap().unwrap())
}

/// Drops `engine` and opens its directory again, as a restart would.
async fn reopen(engine: Arc<Engine>, dir: &Path) -> Arc<Engine> {
    drop(engine);
    // The writer thread lets go of the database once it sees the queue close.
    for _ in 0..100 {
        if let Ok(e) = Engine::open(dir) {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("engine did not reopen");
}

const SMALL: StepLimits = StepLimits { bytes: 1 << 20, keys: 50 };

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_larger_than_a_step_installs_in_several_jobs() {
    let (src_dir, dst_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let src = engine_with(src_dir.path(), pairs(1000, "new"), 100).await;
    let snap = build(&src).await;
    let expected = contents(&src);

    // The target has older data in the range, some of it under keys the
    // snapshot does not have, and a key outside the range.
    let mut old = pairs(1200, "old");
    old.push((b"c-stale".to_vec(), b"x".to_vec()));
    let dst = engine_with(dst_dir.path(), old, 10).await;
    let installed = install::install(&dst, 1, 1, &snap.meta, snap.snapshot, SMALL, &Fence::default()).await.unwrap();
    assert!(installed.jobs >= 1000 / SMALL.keys as u64, "took {} jobs", installed.jobs);
    assert_eq!((installed.keys, installed.meta), (1000, snap.meta));

    let got = contents(&dst);
    assert_eq!(got.0, expected.0, "the range holds exactly the snapshot's pairs");
    assert_eq!(got.1, expected.1, "sessions replaced");
    assert_eq!((got.2.last_applied, got.2.clock_ms), (expected.2.last_applied, expected.2.clock_ms));
    assert_eq!((got.3.state, got.3.applying_snapshot.as_str()), (raftpb::PeerState::Normal as i32, ""));
    assert_eq!(dst.get(b"z-outside").unwrap().as_deref(), Some(b"outside-10".as_slice()), "outside untouched");
    assert!(installed.path.starts_with(&dst.snapshot_dir) && installed.path.exists(), "kept as current");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_writes_complete_while_an_install_runs() {
    let (src_dir, dst_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let src = engine_with(src_dir.path(), pairs(5000, "new"), 100).await;
    let snap = build(&src).await;
    let dst = engine_with(dst_dir.path(), Vec::new(), 10).await;
    let limits = StepLimits { bytes: 1 << 20, keys: 10 };
    let job = {
        let dst = dst.clone();
        tokio::spawn(
            async move { install::install(&dst, 1, 1, &snap.meta, snap.snapshot, limits, &Fence::default()).await },
        )
    };
    while dst.region_state(1).unwrap().unwrap().state != raftpb::PeerState::Applying as i32 {
        assert!(!job.is_finished(), "install ended before it was seen applying");
        tokio::task::yield_now().await;
    }
    // Another region's durable write, submitted mid-install.
    let other = raftpb::RegionLocalState {
        region: Some(metapb::Region { id: 2, start_key: b"m".to_vec(), ..Default::default() }),
        peer_id: 2,
        ..Default::default()
    };
    dst.save_region_state(other).await.unwrap();
    assert!(!job.is_finished(), "another region's write waited for the whole install");
    let installed = job.await.unwrap().unwrap();
    assert!(installed.jobs > 500, "took {} jobs", installed.jobs);
    assert_eq!(contents(&dst).0, contents(&src).0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_install_resumes_when_the_region_opens() {
    let (src_dir, dst_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let src = engine_with(src_dir.path(), pairs(700, "new"), 100).await;
    let snap = build(&src).await;
    let expected = contents(&src);
    let dst = engine_with(dst_dir.path(), pairs(900, "old"), 10).await;

    // Marked applying, then only part written before the "crash".
    install::begin(&dst, 1, 1, &snap.meta, snap.snapshot, &Fence::default()).await.unwrap();
    let half: Pairs = expected.0[..350].to_vec();
    dst.writer
        .write(move |tx| {
            let mut t = tx.open_table(DATA).map_err(io_err)?;
            t.retain_in(b"b".as_slice()..b"c".as_slice(), |_, _| false).map_err(io_err)?;
            for (k, v) in &half {
                t.insert(k.as_slice(), v.as_slice()).map_err(io_err)?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let dst = reopen(dst, dst_dir.path()).await;
    assert_eq!(dst.region_state(1).unwrap().unwrap().state, raftpb::PeerState::Applying as i32);

    let sm = RegionStateMachine::open(dst.clone(), region(), 1).await.unwrap();
    let got = contents(&dst);
    assert_eq!(got.0, expected.0);
    assert_eq!(got.1, expected.1);
    assert_eq!(got.2.last_applied, expected.2.last_applied);
    assert_eq!(got.3.state, raftpb::PeerState::Normal as i32);
    assert_eq!(sm.shared().approximate_keys.load(std::sync::atomic::Ordering::Relaxed), 700);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_install_without_its_file_refuses_to_open() {
    let (src_dir, dst_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let src = engine_with(src_dir.path(), pairs(50, "new"), 100).await;
    let snap = build(&src).await;
    let dst = engine_with(dst_dir.path(), pairs(50, "old"), 10).await;
    let (_, path, _) = install::begin(&dst, 1, 1, &snap.meta, snap.snapshot, &Fence::default()).await.unwrap();
    std::fs::remove_file(&path).unwrap();
    let dst = reopen(dst, dst_dir.path()).await;
    let err = RegionStateMachine::open(dst.clone(), region(), 1).await.err().expect("must not open");
    assert!(err.get_ref().is_some_and(|e| e.is::<install::ResumeFailed>()), "{err}");
    assert_eq!(dst.region_state(1).unwrap().unwrap().state, raftpb::PeerState::Applying as i32, "still marked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_file_is_refused_before_anything_is_written() {
    let (src_dir, dst_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let src = engine_with(src_dir.path(), pairs(50, "new"), 100).await;
    let snap = build(&src).await;
    let len = std::fs::metadata(&snap.snapshot.path).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&snap.snapshot.path).unwrap().set_len(len - 3).unwrap();
    let dst = engine_with(dst_dir.path(), pairs(50, "old"), 10).await;
    let before = contents(&dst);
    assert!(install::install(&dst, 1, 1, &snap.meta, snap.snapshot, SMALL, &Fence::default()).await.is_err());
    let after = contents(&dst);
    assert_eq!((after.0, after.3.state), (before.0, raftpb::PeerState::Normal as i32));
}

#[test]
fn names_round_trip_and_others_are_ignored() {
    assert_eq!(super::parse_name(&super::file_name(12, 345)), Some((12, 345)));
    assert_eq!(super::parse_name("region-1-build.1.2.tmp"), None);
    assert_eq!(super::parse_name("region-1-2.snap.tmp"), None);
}

/// A destroy that begins mid-install: the install's next job fails on the
/// writer thread, and nothing after it is written (the `NORMAL` mark
/// least of all, which would bring the destroyed peer back at a restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_whose_peer_is_being_destroyed_writes_nothing_more() {
    let (src_dir, dst_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let src = engine_with(src_dir.path(), pairs(50, "new"), 100).await;
    let snap = build(&src).await;
    let dst = engine_with(dst_dir.path(), pairs(50, "old"), 10).await;
    let before = contents(&dst);
    let fence = Fence::default();
    fence.raise().await;
    let e = install::install(&dst, 1, 1, &snap.meta, snap.snapshot, SMALL, &fence).await.expect_err("fenced");
    assert!(fence::is_fenced(&e), "{e}");
    let after = contents(&dst);
    assert_eq!(after.0, before.0, "no pair written or cleared");
    assert_eq!(after.1, before.1, "sessions untouched");
    assert_eq!(after.2.last_applied, before.2.last_applied, "applied state untouched");
    assert_eq!(after.3.state, raftpb::PeerState::Normal as i32, "not even the APPLYING mark");
}
