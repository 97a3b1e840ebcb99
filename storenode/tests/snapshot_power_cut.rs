//! A received snapshot's install across power cuts, on the write-back
//! disk: a cut at each step (receiving, received, named and marked
//! `APPLYING`, half written, installed) leaves the region either with its
//! old state whole or able to finish the install from a whole file at the
//! next start; never a file named by a durable mark that is gone.
//!
//! Its own test binary: the write-back disk is the whole process's, and a
//! cut drops every file's unsynced writes, so the tests take turns.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use proto::{metapb, raftpb};
use redb::ReadableDatabase;
use storenode::disk::{self, Disk, PowerCut, PowerCutConfig, WriteBack};
use storenode::engine::{APPLY_STATE, DATA, Engine, io_err};
use storenode::raft::TypeConfig;
use storenode::raft::apply_state::ApplyState;
use storenode::raft::fence::Fence;
use storenode::raft::snapshot::install::{self, StepLimits};
use storenode::raft::snapshot::{self, SnapshotFile, build, receive};
use storenode::raft::state_machine::RegionStateMachine;

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// The process's write-back disk, installed by the first test to ask.
fn write_back() -> Arc<WriteBack> {
    static WB: OnceLock<Arc<WriteBack>> = OnceLock::new();
    WB.get_or_init(|| {
        let wb = Arc::new(WriteBack::new(PowerCutConfig { model: PowerCut::Pages, seed: 5, skip_log_sync: false }));
        disk::install(Disk::WriteBack(wb.clone())).unwrap();
        wb
    })
    .clone()
}

/// One test at a time: a cut reaches every file of the process.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Chunks small enough that a snapshot takes many of them.
const CHUNK: usize = 4096;
const SMALL: StepLimits = StepLimits { bytes: 1 << 20, keys: 50 };
const NEW_INDEX: u64 = 100;

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

/// An engine holding region 1 with `data` and an applied state at
/// `index`, all durable.
async fn engine_with(dir: &Path, data: Pairs, index: u64) -> Arc<Engine> {
    let engine = Engine::open(dir).unwrap();
    let state = raftpb::RegionLocalState {
        region: Some(region()),
        state: raftpb::PeerState::Normal as i32,
        peer_id: 1,
        ..Default::default()
    };
    engine.save_region_state(state).await.unwrap();
    let applied =
        ApplyState { last_applied: Some(openraft::testing::log_id::<TypeConfig>(2, 1, index)), ..Default::default() };
    let applied = postcard::to_allocvec(&applied).unwrap();
    engine
        .writer
        .write(move |tx| {
            let mut t = tx.open_table(DATA).map_err(io_err)?;
            for (k, v) in &data {
                t.insert(k.as_slice(), v.as_slice()).map_err(io_err)?;
            }
            tx.open_table(APPLY_STATE).map_err(io_err)?.insert(1, applied.as_slice()).map_err(io_err)?;
            Ok(())
        })
        .await
        .unwrap();
    engine
}

/// The power cut, and the restart: every unsynced write and name under
/// `dir` is lost, and the store opens again.
///
/// The engine is closed first (its log holds a lock a second open in this
/// process would refuse). A close makes the data file's lazy commits
/// durable: what is cut here is what the snapshot paths left unsynced.
async fn cut(wb: &WriteBack, engine: Arc<Engine>, dir: &Path) -> Arc<Engine> {
    let (db, log) = (Arc::downgrade(&engine.db), Arc::downgrade(&engine.log));
    drop(engine);
    // The writer thread lets go of both once it sees its queue close.
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.strong_count() > 0 || log.strong_count() > 0 {
        assert!(Instant::now() < deadline, "the engine did not close");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wb.cut(dir).unwrap();
    Engine::open(dir).unwrap()
}

/// `path`'s bytes as chunks of a snapshot stream.
fn chunks_of(path: &Path) -> Vec<std::io::Result<Vec<u8>>> {
    std::fs::read(path).unwrap().chunks(CHUNK).map(|c| Ok(c.to_vec())).collect()
}

/// The snapshot directory's entries, by name.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = disk::current()
        .read_dir(dir)
        .unwrap()
        .into_iter()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_while_receiving_leaves_no_file() {
    let _turn = TURN.lock().await;
    let wb = write_back();
    let (src_dir, dst_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let src = engine_with(src_dir.path(), pairs(2000, "new"), NEW_INDEX).await;
    let built = build::build(&src, 1, &src.db.begin_read().unwrap()).unwrap();
    let dst = engine_with(dst_dir.path(), pairs(50, "old"), 10).await;
    let mut chunks = chunks_of(&built.path);
    assert!(chunks.len() > 10, "{} chunks", chunks.len());
    chunks.truncate(chunks.len() / 2);
    // Half the stream arrives, then the sender goes quiet: the power goes
    // while the file is half written.
    let waiting = Arc::new(AtomicBool::new(false));
    let quiet = {
        let waiting = waiting.clone();
        futures::stream::poll_fn(move |_| {
            waiting.store(true, Ordering::Release);
            std::task::Poll::Pending
        })
    };
    let stream = futures::stream::iter(chunks).chain(quiet);
    let dir = dst.snapshot_dir.clone();
    let receiving = tokio::spawn(async move { receive::receive(&dir, 1, Box::pin(stream)).await.map(|_| ()) });
    while !waiting.load(Ordering::Acquire) {
        tokio::task::yield_now().await;
    }
    assert_eq!(names_in(&dst.snapshot_dir).len(), 1, "the file being received: {:?}", names_in(&dst.snapshot_dir));
    let dst = cut(&wb, dst, dst_dir.path()).await;
    receiving.abort();
    assert_eq!(names_in(&dst.snapshot_dir), Vec::<String>::new(), "a never synced name outlived the cut");
    assert_eq!(dst.region_state(1).unwrap().unwrap().state, raftpb::PeerState::Normal as i32);
    assert_eq!(dst.scan(b"a", b"m", usize::MAX).unwrap(), pairs(50, "old"));
}

/// Where the power goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The file received and synced, not yet renamed.
    Received,
    /// Renamed to its final name and the `APPLYING` mark durable.
    Marked,
    /// The same for a file copied in from another directory.
    MarkedFromCopy,
    /// After part of the range was cleared and written, lazily.
    HalfWritten,
    /// The install done, `NORMAL` durable.
    Installed,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_at_each_step_of_an_install_leaves_a_whole_region() {
    let _turn = TURN.lock().await;
    let wb = write_back();
    for step in [Step::Received, Step::Marked, Step::MarkedFromCopy, Step::HalfWritten, Step::Installed] {
        let (src_dir, dst_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let new = pairs(700, "new");
        let src = engine_with(src_dir.path(), new.clone(), NEW_INDEX).await;
        let built = build::build(&src, 1, &src.db.begin_read().unwrap()).unwrap();
        let old = pairs(900, "old");
        let dst = engine_with(dst_dir.path(), old.clone(), 10).await;
        let snap = if step == Step::MarkedFromCopy {
            SnapshotFile::open(built.path.clone()).unwrap()
        } else {
            let stream = futures::stream::iter(chunks_of(&built.path));
            let (snap, bytes) = receive::receive(&dst.snapshot_dir, 1, stream).await.unwrap();
            assert!(snap.is_verified());
            assert_eq!(bytes, built.bytes);
            snap
        };
        let fence = Fence::default();
        // A file still held when the power goes: a cut runs no destructor.
        let mut held = None;
        match step {
            Step::Received => held = Some(snap),
            Step::Marked | Step::MarkedFromCopy => {
                install::begin(&dst, 1, 1, &built.meta, snap, &fence).await.unwrap();
            }
            Step::HalfWritten => {
                install::begin(&dst, 1, 1, &built.meta, snap, &fence).await.unwrap();
                let half: Pairs = new[..350].to_vec();
                dst.writer
                    .write_lazy(move |tx| {
                        let mut t = tx.open_table(DATA).map_err(io_err)?;
                        t.retain_in(b"b".as_slice()..b"c".as_slice(), |_, _| false).map_err(io_err)?;
                        for (k, v) in &half {
                            t.insert(k.as_slice(), v.as_slice()).map_err(io_err)?;
                        }
                        Ok(())
                    })
                    .await
                    .unwrap();
            }
            Step::Installed => {
                install::install(&dst, 1, 1, &built.meta, snap, SMALL, &fence).await.unwrap();
            }
        }
        let dst = cut(&wb, dst, dst_dir.path()).await;
        std::mem::forget(held);

        // The restart: stale files go, then the region opens (resuming an
        // interrupted install from the file its mark names).
        let state = dst.region_state(1).unwrap().unwrap();
        if state.state == raftpb::PeerState::Applying as i32 {
            assert!(matches!(step, Step::Marked | Step::MarkedFromCopy | Step::HalfWritten), "{step:?}");
            let named = dst.snapshot_dir.join(&state.applying_snapshot);
            assert!(named.exists(), "{step:?}: the mark names {} and the cut lost it", named.display());
        }
        snapshot::clean_dir(&dst.snapshot_dir, &dst.region_states().unwrap()).unwrap();
        let sm = RegionStateMachine::open(dst.clone(), region(), 1).await;
        assert!(sm.is_ok(), "{step:?}: the region did not open: {:?}", sm.err());
        let state = dst.region_state(1).unwrap().unwrap();
        assert_eq!(state.state, raftpb::PeerState::Normal as i32, "{step:?}");
        let data = dst.scan(b"a", b"m", usize::MAX).unwrap();
        let files = names_in(&dst.snapshot_dir);
        if step == Step::Received {
            assert_eq!(data, old, "{step:?}: the old state, whole");
            assert_eq!(files, Vec::<String>::new(), "{step:?}: the unnamed file is gone");
        } else {
            assert_eq!(data, new, "{step:?}: the snapshot's state, whole");
            assert_eq!(files, vec![snapshot::file_name(1, NEW_INDEX)], "{step:?}: the installed file is current");
            let current = snapshot::latest(&dst.snapshot_dir, 1).unwrap().map(|(m, _)| m);
            assert_eq!(current, Some(built.meta.clone()), "{step:?}");
        }
    }
}
