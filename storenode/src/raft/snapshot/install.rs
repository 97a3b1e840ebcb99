//! Installing a snapshot file in bounded steps, crash-safe.
//!
//! One transaction for a whole region would hold the group-commit writer,
//! and with it every other region's appends on the store, for as long as
//! the region takes to write. The install is instead many writer jobs, each
//! bounded by [`StepLimits`], so other jobs queue between them.
//!
//! The steps are not atomic together, so the install is made restartable
//! the way TiKV's is:
//!
//! 1. the file is verified whole (trailer counts and checksum; a file
//!    whose checksum the receiver checked as it arrived is not read again
//!    for this) and given its final name, durably: the directory is
//!    synced before the mark below names the file, or a power cut could
//!    keep the mark and lose the name;
//! 2. one durable job sets the region's local state to `APPLYING`, naming
//!    the file;
//! 3. lazy jobs delete the region's range, then write the pairs (a crash
//!    loses at most some of them: the `APPLYING` mark is durable and the
//!    install starts over from step 3);
//! 4. the last job, durable, replaces the region's sessions and writes the
//!    applied state (log id, membership, log clock) and the local state
//!    back to `NORMAL` together.
//!
//! A store that restarts with a region in `APPLYING` [`resume`]s before the
//! region's raft starts; without an intact file it refuses to start the
//! peer rather than serve a half-written range.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use proto::{metapb, raftpb};

use super::format::{Record, SnapshotHead, SnapshotReader};
use super::{SnapshotFile, file_name, temp_path};
use crate::disk::{self, Open};
use crate::engine::{APPLY_STATE, DATA, Engine, REGION_STATE, SESSIONS, data_range, io_err};
use crate::raft::apply_state::ApplyState;
use crate::raft::fence::Fence;
use crate::raft::{SnapshotMeta, encode, session};

/// How much one writer job of an install may do.
#[derive(Debug, Clone, Copy)]
pub struct StepLimits {
    /// Key and value bytes written or deleted.
    pub bytes: usize,
    pub keys: usize,
}

/// Small enough that a job takes milliseconds, large enough that the
/// per-job commit cost stays small next to the data.
pub const STEP: StepLimits = StepLimits { bytes: 4 << 20, keys: 10_000 };

/// What an install left behind.
#[derive(Debug)]
pub struct Installed {
    pub region: metapb::Region,
    pub applied: ApplyState,
    pub meta: SnapshotMeta,
    /// The snapshot's final path: the region's current snapshot now.
    pub path: PathBuf,
    pub keys: u64,
    pub size: u64,
    /// Writer jobs the install took, the `APPLYING` mark included.
    pub jobs: u64,
    /// Where the time went.
    pub took: Phases,
}

/// How long each step of an install took.
#[derive(Debug, Default, Clone, Copy)]
pub struct Phases {
    /// Verifying the file, naming it, and the durable `APPLYING` mark.
    pub begin: Duration,
    /// Deleting what the range held.
    pub clear: Duration,
    /// Reading the pairs and writing them, lazily.
    pub write: Duration,
    /// The durable commit, which waits for everything written before it.
    pub commit: Duration,
}

/// Why a region's interrupted install could not resume: its range holds
/// partial data, so the peer must not start.
#[derive(Debug, thiserror::Error)]
#[error("region {region_id} was installing snapshot {file} when the store stopped, and cannot resume: {reason}")]
pub struct ResumeFailed {
    pub region_id: u64,
    pub file: String,
    pub reason: String,
}

/// Installs `snapshot` (whose meta openraft says is `meta`) as region
/// `region_id`'s state; the file becomes the region's current snapshot.
/// Every writer job checks `fence` first: a peer being destroyed writes
/// no step after the destroy began, its `NORMAL` mark least of all.
///
/// # Errors
///
/// A file that is damaged, of another region or another log position
/// (nothing is written then), a raised fence, or storage failures (the
/// region may be left `APPLYING`; a restart resumes it).
pub async fn install(
    engine: &Arc<Engine>,
    region_id: u64,
    peer_id: u64,
    meta: &SnapshotMeta,
    snapshot: SnapshotFile,
    limits: StepLimits,
    fence: &Fence,
) -> io::Result<Installed> {
    let started = Instant::now();
    let (file, path, _) = begin(engine, region_id, peer_id, meta, snapshot, fence).await?;
    let begun = started.elapsed();
    let mut installed = apply_file(engine, region_id, peer_id, file, limits, fence).await?;
    installed.path = path;
    installed.jobs += 1;
    installed.took.begin = begun;
    Ok(installed)
}

/// Steps 1 and 2: verifies the file, gives it its final name and marks the
/// region `APPLYING`. Returns the file rewound, its path and head.
///
/// # Errors
///
/// As [`install`].
pub async fn begin(
    engine: &Arc<Engine>,
    region_id: u64,
    peer_id: u64,
    meta: &SnapshotMeta,
    mut snapshot: SnapshotFile,
    fence: &Fence,
) -> io::Result<(File, PathBuf, SnapshotHead)> {
    let mut file = snapshot.file.try_clone()?;
    let checked = snapshot.is_verified();
    let (file, head) = blocking(move || {
        file.rewind()?;
        // A file checked as it arrived is not read an extra time; the
        // install's own read checks it again as it goes.
        let head = if checked { read_head(&mut file)? } else { verify(&mut file)? };
        file.rewind()?;
        Ok((file, head))
    })
    .await?;
    let region = metapb::Region::decode(head.region.as_slice()).map_err(io_err)?;
    if region.id != region_id {
        return Err(io_err(format!("snapshot of region {} sent to region {region_id}", region.id)));
    }
    if head.meta != *meta {
        return Err(io_err(format!("snapshot file is at {}, its sender said {meta}", head.meta)));
    }
    let dir = engine.snapshot_dir.clone();
    let name = file_name(region_id, meta.last_log_id.map_or(0, |l| l.index()));
    let path = dir.join(&name);
    let from = snapshot.path.clone();
    let file = blocking({
        let path = path.clone();
        move || name_durably(&dir, &from, &path, file)
    })
    .await?;
    snapshot.keep(path.clone());
    let local = raftpb::RegionLocalState {
        region: Some(region),
        state: raftpb::PeerState::Applying as i32,
        peer_id,
        applying_snapshot: name,
    };
    let (fence, bytes) = (fence.clone(), local.encode_to_vec());
    engine
        .writer
        .write(move |tx| {
            fence.check(region_id, "install")?;
            tx.open_table(REGION_STATE).map_err(io_err)?.insert(region_id, bytes.as_slice()).map_err(io_err)?;
            Ok(())
        })
        .await?;
    Ok((file, path, head))
}

/// Gives the snapshot at `from` (open as `file`, its bytes already synced
/// by whoever wrote it) the final name `path` in `dir`, and syncs `dir`:
/// the `APPLYING` mark that names the file comes after this, so a power
/// cut can never leave the mark durable and the name lost. Returns a
/// handle on the file under its final name.
///
/// # Errors
///
/// File failures; a copy left half made is removed.
fn name_durably(dir: &Path, from: &Path, path: &Path, file: File) -> io::Result<File> {
    let disk = disk::current();
    let file = if from == path {
        file
    } else if from.parent() == Some(dir) {
        disk.rename(from, path)?;
        file
    } else {
        // Not ours (another store's directory in tests): copied in, so a
        // restart finds it.
        let tmp = temp_path(dir, "copy");
        let copied = (|| {
            let mut out = disk.open(&tmp, Open::Truncate)?;
            io::copy(&mut BufReader::with_capacity(1 << 20, File::open(from)?), &mut out)?;
            out.sync_all()?;
            disk.rename(&tmp, path)
        })();
        if let Err(e) = copied {
            let _ = disk.remove_file(&tmp);
            return Err(e);
        }
        File::open(path)?
    };
    disk.sync_dir(dir)?;
    Ok(file)
}

/// Finishes an install a restart interrupted, from the file `state` names.
///
/// # Errors
///
/// [`ResumeFailed`] (as `InvalidData`) when the file is missing or damaged;
/// storage failures.
pub async fn resume(engine: &Arc<Engine>, state: &raftpb::RegionLocalState) -> io::Result<Installed> {
    let region_id = state.region.as_ref().map_or(0, |r| r.id);
    let failed = |reason: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            ResumeFailed { region_id, file: state.applying_snapshot.clone(), reason },
        )
    };
    if state.applying_snapshot.is_empty() || state.applying_snapshot.contains(['/', '\\']) {
        return Err(failed("the local state names no snapshot file".into()));
    }
    let path = engine.snapshot_dir.join(&state.applying_snapshot);
    let mut file = File::open(&path).map_err(|e| failed(e.to_string()))?;
    let file = blocking(move || {
        verify(&mut file)?;
        file.rewind()?;
        Ok(file)
    })
    .await
    .map_err(|e| failed(e.to_string()))?;
    tracing::info!(region_id, file = %path.display(), "resuming an interrupted snapshot install");
    // Before the peer's raft starts: nothing can destroy it yet.
    let mut installed = apply_file(engine, region_id, state.peer_id, file, STEP, &Fence::default()).await?;
    installed.path = path;
    Ok(installed)
}

/// Reads just the head.
fn read_head(file: &mut File) -> io::Result<SnapshotHead> {
    Ok(SnapshotReader::new(BufReader::with_capacity(64 << 10, file))?.0)
}

/// Reads the whole file: its head if the trailer checks out.
fn verify(file: &mut File) -> io::Result<SnapshotHead> {
    let (head, mut r) = SnapshotReader::new(BufReader::with_capacity(1 << 20, file))?;
    while r.next_record()?.is_some() {}
    Ok(head)
}

/// Steps 3 and 4 from a verified file.
async fn apply_file(
    engine: &Arc<Engine>,
    region_id: u64,
    peer_id: u64,
    file: File,
    limits: StepLimits,
    fence: &Fence,
) -> io::Result<Installed> {
    let (head, reader) = blocking(move || SnapshotReader::new(BufReader::with_capacity(1 << 20, file))).await?;
    let region = metapb::Region::decode(head.region.as_slice()).map_err(io_err)?;
    if region.id != region_id {
        return Err(io_err(format!("snapshot of region {} installed as region {region_id}", region.id)));
    }
    let mut took = Phases::default();
    let clearing = Instant::now();
    let mut jobs = clear_range(engine, &region, limits, fence).await?;
    took.clear = clearing.elapsed();
    let writing = Instant::now();
    // Write the pairs, one bounded job at a time; sessions come last in the
    // file and go into the final job.
    let (mut keys, mut size) = (0u64, 0u64);
    let mut sessions = Vec::new();
    let mut reader = Some(reader);
    loop {
        let mut r = reader.take().expect("reader is put back after each step");
        let (r, Step { pairs, sessions: step_sessions, done }) = blocking(move || {
            let step = read_step(&mut r, limits)?;
            Ok((r, step))
        })
        .await?;
        reader = Some(r);
        sessions.extend(step_sessions);
        keys += pairs.len() as u64;
        size += pairs.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum::<u64>();
        if !pairs.is_empty() {
            write_pairs(engine, region_id, pairs, fence).await?;
            jobs += 1;
        }
        if done {
            break;
        }
    }
    took.write = writing.elapsed();
    let committing = Instant::now();
    let applied = commit(engine, peer_id, &region, &head, sessions, fence).await?;
    took.commit = committing.elapsed();
    jobs += 1;
    Ok(Installed { region, applied, meta: head.meta, path: PathBuf::new(), keys, size, jobs, took })
}

/// One bounded step's records, read from a snapshot.
struct Step {
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    sessions: Vec<(u64, Vec<u8>)>,
    /// The reader reached the verified end.
    done: bool,
}

/// Reads records until `limits` are reached or the snapshot ends.
///
/// # Errors
///
/// As [`SnapshotReader::next_record`].
fn read_step<R: Read>(r: &mut SnapshotReader<R>, limits: StepLimits) -> io::Result<Step> {
    let mut step = Step { pairs: Vec::new(), sessions: Vec::new(), done: false };
    let mut bytes = 0;
    while step.pairs.len() < limits.keys && bytes < limits.bytes {
        match r.next_record()? {
            None => {
                step.done = true;
                break;
            }
            Some(Record::Pair(k, v)) => {
                bytes += k.len() + v.len();
                step.pairs.push((k, v));
            }
            Some(Record::Session(c, s)) => {
                bytes += s.len();
                step.sessions.push((c, s));
            }
        }
    }
    Ok(step)
}

/// Deletes every key of the region's range, one bounded job at a time;
/// returns the jobs it took.
///
/// # Errors
///
/// Storage failures.
async fn clear_range(
    engine: &Arc<Engine>,
    region: &metapb::Region,
    limits: StepLimits,
    fence: &Fence,
) -> io::Result<u64> {
    let mut jobs = 0u64;
    loop {
        let (start, end) = (region.start_key.clone(), region.end_key.clone());
        let (fence, region_id) = (fence.clone(), region.id);
        let more = engine
            .writer
            .write_lazy(move |tx| {
                fence.check(region_id, "install")?;
                let mut data = tx.open_table(DATA).map_err(io_err)?;
                let mut doomed = Vec::new();
                let mut bytes = 0;
                {
                    let range = data_range(&data, &start, &end)?;
                    for row in range {
                        let (k, v) = row.map_err(io_err)?;
                        bytes += k.value().len() + v.value().len();
                        doomed.push(k.value().to_vec());
                        if doomed.len() >= limits.keys || bytes >= limits.bytes {
                            break;
                        }
                    }
                }
                for k in &doomed {
                    data.remove(k.as_slice()).map_err(io_err)?;
                }
                Ok(doomed.len() >= limits.keys || bytes >= limits.bytes)
            })
            .await?;
        jobs += 1;
        if !more {
            return Ok(jobs);
        }
    }
}

/// Writes one bounded step's pairs, lazily (the install's commit makes
/// them durable).
///
/// # Errors
///
/// Storage failures.
async fn write_pairs(engine: &Engine, region_id: u64, pairs: Vec<(Vec<u8>, Vec<u8>)>, fence: &Fence) -> io::Result<()> {
    let fence = fence.clone();
    engine
        .writer
        .write_lazy(move |tx| {
            fence.check(region_id, "install")?;
            let mut data = tx.open_table(DATA).map_err(io_err)?;
            for (k, v) in &pairs {
                data.insert(k.as_slice(), v.as_slice()).map_err(io_err)?;
            }
            Ok(())
        })
        .await
}

/// The install's commit point, one durable job: the region's sessions,
/// its applied state (log id, membership, log clock) and its local state
/// back to `NORMAL` change together, so everything the region's readers
/// and raft look at moves at once.
///
/// # Errors
///
/// Storage failures.
async fn commit(
    engine: &Engine,
    peer_id: u64,
    region: &metapb::Region,
    head: &SnapshotHead,
    sessions: Vec<(u64, Vec<u8>)>,
    fence: &Fence,
) -> io::Result<ApplyState> {
    let region_id = region.id;
    let applied = ApplyState {
        last_applied: head.meta.last_log_id,
        membership: head.meta.last_membership.clone(),
        clock_ms: head.clock_ms,
        last_sweep_ms: head.last_sweep_ms,
    };
    let apply_bytes = encode(&applied)?;
    let local = raftpb::RegionLocalState {
        region: Some(region.clone()),
        state: raftpb::PeerState::Normal as i32,
        peer_id,
        applying_snapshot: String::new(),
    };
    let fence = fence.clone();
    engine
        .writer
        .write(move |tx| {
            fence.check(region_id, "install")?;
            session::replace(&mut tx.open_table(SESSIONS).map_err(io_err)?, region_id, &sessions)?;
            tx.open_table(APPLY_STATE).map_err(io_err)?.insert(region_id, apply_bytes.as_slice()).map_err(io_err)?;
            tx.open_table(REGION_STATE)
                .map_err(io_err)?
                .insert(region_id, local.encode_to_vec().as_slice())
                .map_err(io_err)?;
            Ok(())
        })
        .await?;
    Ok(applied)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(io_err)?
}
