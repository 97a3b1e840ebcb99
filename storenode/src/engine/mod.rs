//! The storage engine: per store, an append-only raft log (`raftlog/`, the
//! raft entries and marks of every region, [`log_engine`]) and a redb file
//! (`store.redb`) for everything else.
//!
//! | where | table | key | value |
//! |---|---|---|---|
//! | raftlog | entries | (region id, index) | a raft entry (postcard) |
//! | raftlog | marks | (region id, kind) | vote, committed, last purged log id |
//! | store | `region_state` | region id | `raftpb.RegionLocalState` |
//! | store | `apply_state` | region id | last applied log id, membership, log clock |
//! | store | `sessions` | (region id, client id) | a client's write outcomes ([`crate::raft::session`]) |
//! | store | `data` | user key | user value |
//! | store | `store_meta` | name | the store's identity |
//!
//! All regions share one data table, so a split never copies data: it only
//! changes which region owns which keys. Every write goes through the
//! [`GroupWriter`], which commits both per batch, the log durably and the
//! data lazily (its module doc says why that is safe); data reads open their
//! own read transaction, which sees a consistent snapshot, and log reads go
//! through the log's index. If the writer dies, the engine can no longer be
//! written and the store must stop ([`GroupWriter::died`]).
//!
//! A store whose raft log is still in a redb file (`raft.redb`, or
//! `store.redb` in an older layout) has it moved into `raftlog/` when it
//! opens.
//!
//! Region snapshot files live outside the database, in `snapshots/` next to
//! it ([`crate::raft::snapshot`]).

pub mod log_engine;
mod log_move;
mod tombstone_sweep;
pub mod txn;
pub mod writer;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;
use proto::raftpb;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

pub use log_engine::{LogBatch, LogEngine, RecoveryMode};
pub use txn::Txn;
pub use writer::{Failpoints, GroupWriter};

/// The raft tables of the redb layouts before `raftlog/`, read only to move
/// them there.
const RAFT_LOG: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("raft_log");
const RAFT_META: TableDefinition<(u64, u8), &[u8]> = TableDefinition::new("raft_meta");
pub const REGION_STATE: TableDefinition<u64, &[u8]> = TableDefinition::new("region_state");
pub const APPLY_STATE: TableDefinition<u64, &[u8]> = TableDefinition::new("apply_state");
pub const SESSIONS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("sessions");
pub const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");
pub const STORE_META: TableDefinition<&str, &[u8]> = TableDefinition::new("store_meta");

const STORE_IDENT: &str = "ident";

/// The user keys of `[start, end)` in the data table (empty `end`: to the
/// end of the key space), in key order.
///
/// # Errors
///
/// Read failures.
pub fn data_range<'t>(
    t: &'t impl ReadableTable<&'static [u8], &'static [u8]>,
    start: &[u8],
    end: &[u8],
) -> io::Result<redb::Range<'t, &'static [u8], &'static [u8]>> {
    if end.is_empty() { t.range(start..) } else { t.range(start..end) }.map_err(io_err)
}

/// redb's own default: the page cache is most of a store's memory, and
/// grows to this as data is written or read.
pub const DEFAULT_CACHE_BYTES: usize = 1024 * 1024 * 1024;

pub fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// The data file's name under a store's directory.
pub const DATA_FILE: &str = "store.redb";
/// The raft log's directory under a store's directory.
pub const LOG_DIR: &str = "raftlog";
/// The raft log file of the layout before [`LOG_DIR`].
const OLD_LOG_FILE: &str = "raft.redb";

pub struct Engine {
    /// The data file: user keys, applied state, sessions, region states.
    pub db: Arc<Database>,
    /// The raft log: entries, votes and marks of every region.
    pub log: Arc<LogEngine>,
    pub writer: GroupWriter,
    /// Region snapshot files ([`crate::raft::snapshot`]), next to the
    /// database so a rename into it never crosses file systems.
    pub snapshot_dir: PathBuf,
}

impl Engine {
    /// Opens (creating if needed) the store's database under `dir`.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened (another process holds it, corrupt)
    /// or the tables cannot be created.
    pub fn open(dir: &Path) -> io::Result<Arc<Engine>> {
        Self::open_with(dir, DEFAULT_CACHE_BYTES, RecoveryMode::default(), Failpoints::default())
    }

    /// As [`Engine::open`], with a page cache of `cache_bytes`, the raft
    /// log opened in `recovery` mode, and test failpoints armed in the
    /// writer.
    ///
    /// # Errors
    ///
    /// As [`Engine::open`]; a damaged raft log (or, in
    /// `absolute-consistency`, a torn tail) refuses the open with
    /// `InvalidData` carrying a [`log_engine::LogDamage`].
    pub fn open_with(
        dir: &Path,
        cache_bytes: usize,
        recovery: RecoveryMode,
        failpoints: Failpoints,
    ) -> io::Result<Arc<Engine>> {
        std::fs::create_dir_all(dir)?;
        let disk = crate::disk::current();
        let db = disk.open_redb(&dir.join(DATA_FILE), cache_bytes)?;
        // Snapshot files are named durably in this directory before a
        // region's state names them; the directory's own name must be
        // durable first, with the data file's.
        let snapshot_dir = dir.join("snapshots");
        std::fs::create_dir_all(&snapshot_dir)?;
        // So is the log's directory: its segments' names are synced within
        // it, which helps nothing if its own name can be lost.
        std::fs::create_dir_all(dir.join(LOG_DIR))?;
        // A data file just created is not there after a power cut until its
        // directory is synced; the log would outlive it.
        disk.sync_dir(dir)?;
        let log = LogEngine::open_in(&dir.join(LOG_DIR), log_engine::SEGMENT_BYTES, recovery)?;
        log_move::move_log_tables(&db, &log)?;
        log_move::move_old_log_file(&dir.join(OLD_LOG_FILE), &log)?;
        let tx = db.begin_write().map_err(io_err)?;
        tx.open_table(REGION_STATE).map_err(io_err)?;
        tx.open_table(APPLY_STATE).map_err(io_err)?;
        tx.open_table(DATA).map_err(io_err)?;
        tx.open_table(SESSIONS).map_err(io_err)?;
        tx.open_table(STORE_META).map_err(io_err)?;
        tx.commit().map_err(io_err)?;
        tombstone_sweep::clear_tombstones_raft_state(&db, &log)?;
        let db = Arc::new(db);
        let writer = GroupWriter::start_with(log.clone(), db.clone(), failpoints);
        Ok(Arc::new(Engine { db, log, writer, snapshot_dir }))
    }

    /// Begins a batch on the log and the data file outside the writer, for
    /// tests that drive a job's body directly (commit with
    /// [`Txn::commit_now`]).
    ///
    /// # Errors
    ///
    /// redb's.
    pub fn begin_txn(&self) -> io::Result<Txn> {
        Txn::begin(&self.log, &self.db)
    }

    /// The store id PD gave this store, once it has one.
    ///
    /// # Errors
    ///
    /// Read or decode failures.
    pub fn store_id(&self) -> io::Result<Option<u64>> {
        let tx = self.db.begin_read().map_err(io_err)?;
        let t = tx.open_table(STORE_META).map_err(io_err)?;
        match t.get(STORE_IDENT).map_err(io_err)? {
            None => Ok(None),
            Some(v) => Ok(Some(raftpb::StoreIdent::decode(v.value()).map_err(io_err)?.store_id)),
        }
    }

    /// # Errors
    ///
    /// Write failures.
    pub async fn set_store_id(&self, store_id: u64) -> io::Result<()> {
        let bytes = raftpb::StoreIdent { store_id }.encode_to_vec();
        self.writer
            .write(move |tx| {
                tx.open_table(STORE_META).map_err(io_err)?.insert(STORE_IDENT, bytes.as_slice()).map_err(io_err)?;
                Ok(())
            })
            .await
    }

    /// Every region this store has a local state for.
    ///
    /// # Errors
    ///
    /// Read or decode failures.
    pub fn region_states(&self) -> io::Result<Vec<raftpb::RegionLocalState>> {
        let tx = self.db.begin_read().map_err(io_err)?;
        let t = tx.open_table(REGION_STATE).map_err(io_err)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(io_err)? {
            let (_, v) = row.map_err(io_err)?;
            out.push(raftpb::RegionLocalState::decode(v.value()).map_err(io_err)?);
        }
        Ok(out)
    }

    /// One region's local state, if this store has one.
    ///
    /// # Errors
    ///
    /// Read or decode failures.
    pub fn region_state(&self, region_id: u64) -> io::Result<Option<raftpb::RegionLocalState>> {
        let tx = self.db.begin_read().map_err(io_err)?;
        let t = tx.open_table(REGION_STATE).map_err(io_err)?;
        match t.get(region_id).map_err(io_err)? {
            None => Ok(None),
            Some(v) => Ok(Some(raftpb::RegionLocalState::decode(v.value()).map_err(io_err)?)),
        }
    }

    /// Whether the region has raft data here: an applied state (entries
    /// applied or a snapshot installed) or any raft log entry (a bootstrap
    /// membership, entries from its leader not applied yet). A peer with
    /// neither holds no data of its range and claims none.
    ///
    /// # Errors
    ///
    /// Read failures.
    pub fn has_raft_data(&self, region_id: u64) -> io::Result<bool> {
        let tx = self.db.begin_read().map_err(io_err)?;
        if tx.open_table(APPLY_STATE).map_err(io_err)?.get(region_id).map_err(io_err)?.is_some() {
            return Ok(true);
        }
        Ok(self.log.has_entries(region_id))
    }

    /// # Errors
    ///
    /// Write failures.
    pub async fn save_region_state(&self, state: raftpb::RegionLocalState) -> io::Result<()> {
        let id = state.region.as_ref().map_or(0, |r| r.id);
        let bytes = state.encode_to_vec();
        self.writer
            .write(move |tx| {
                tx.open_table(REGION_STATE).map_err(io_err)?.insert(id, bytes.as_slice()).map_err(io_err)?;
                Ok(())
            })
            .await
    }

    /// Reads one user key.
    ///
    /// # Errors
    ///
    /// Read failures.
    pub fn get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        let tx = self.db.begin_read().map_err(io_err)?;
        let t = tx.open_table(DATA).map_err(io_err)?;
        Ok(t.get(key).map_err(io_err)?.map(|v| v.value().to_vec()))
    }

    /// User keys in `[start, end)` (empty end = unbounded), at most `limit`.
    ///
    /// # Errors
    ///
    /// Read failures.
    pub fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let tx = self.db.begin_read().map_err(io_err)?;
        let t = tx.open_table(DATA).map_err(io_err)?;
        let range = data_range(&t, start, end)?;
        let mut out = Vec::new();
        for row in range.take(limit) {
            let (k, v) = row.map_err(io_err)?;
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Size of the data file and the log's segments: the store's used space.
    pub fn used_bytes(dir: &Path) -> u64 {
        std::fs::metadata(dir.join(DATA_FILE)).map_or(0, |m| m.len()) + LogEngine::disk_bytes(&dir.join(LOG_DIR))
    }
}

#[cfg(test)]
mod tests {
    use redb::TableHandle;

    use super::*;

    /// A region's entries and marks in the log.
    fn rows(log: &LogEngine, region: u64) -> (usize, usize) {
        let marks = (0..=u8::MAX).filter(|&k| log.meta(region, k).is_some()).count();
        (log.entries(region, 0, u64::MAX).unwrap().len(), marks)
    }

    fn write_raft_rows(db: &Database, region: u64) {
        let tx = db.begin_write().unwrap();
        {
            let mut log = tx.open_table(RAFT_LOG).unwrap();
            log.insert((region, 1), b"e1".as_slice()).unwrap();
            log.insert((region, 2), b"e2".as_slice()).unwrap();
            tx.open_table(RAFT_META).unwrap().insert((region, 1), b"vote".as_slice()).unwrap();
        }
        tx.commit().unwrap();
    }

    #[test]
    fn a_store_with_its_raft_log_in_the_data_file_has_it_moved_to_the_log() {
        let dir = tempfile::tempdir().unwrap();
        {
            let old = Database::create(dir.path().join(DATA_FILE)).unwrap();
            write_raft_rows(&old, 7);
            let tx = old.begin_write().unwrap();
            tx.open_table(DATA).unwrap().insert(b"k".as_slice(), b"v".as_slice()).unwrap();
            tx.commit().unwrap();
        }
        let engine = Engine::open(dir.path()).unwrap();
        assert_eq!(rows(&engine.log, 7), (2, 1), "entries and marks moved");
        assert_eq!(engine.log.entries(7, 2, 3).unwrap(), [(2, b"e2".to_vec())]);
        assert_eq!(engine.log.meta(7, 1).as_deref(), Some(b"vote".as_slice()));
        let tx = engine.db.begin_read().unwrap();
        let names: Vec<String> = tx.list_tables().unwrap().map(|t| t.name().to_string()).collect();
        assert!(!names.iter().any(|n| n == RAFT_LOG.name() || n == RAFT_META.name()), "{names:?}");
        assert_eq!(engine.get(b"k").unwrap().as_deref(), Some(b"v".as_slice()), "data untouched");
    }

    #[test]
    fn a_store_with_a_raft_redb_has_it_moved_to_the_log_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        write_raft_rows(&Database::create(dir.path().join(OLD_LOG_FILE)).unwrap(), 7);
        {
            let engine = Engine::open(dir.path()).unwrap();
            assert_eq!(rows(&engine.log, 7), (2, 1), "entries and marks moved");
        }
        assert!(!dir.path().join(OLD_LOG_FILE).exists(), "the old file is gone");
        // The writer thread lets go of the log once it sees the engine gone.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let log = loop {
            match LogEngine::open(&dir.path().join(LOG_DIR)) {
                Ok(log) => break log,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(rows(&log, 7), (2, 1), "and the move lasts");
    }

    #[test]
    fn raft_state_a_tombstone_left_behind_is_cleared_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let data = Database::create(dir.path().join(DATA_FILE)).unwrap();
            let tx = data.begin_write().unwrap();
            {
                let mut states = tx.open_table(REGION_STATE).unwrap();
                for (id, state) in [(7, raftpb::PeerState::Tombstone), (8, raftpb::PeerState::Normal)] {
                    let row = raftpb::RegionLocalState {
                        region: Some(proto::metapb::Region { id, ..Default::default() }),
                        state: state as i32,
                        peer_id: id * 10,
                        ..Default::default()
                    };
                    states.insert(id, row.encode_to_vec().as_slice()).unwrap();
                }
            }
            tx.commit().unwrap();
            let log = Database::create(dir.path().join(OLD_LOG_FILE)).unwrap();
            write_raft_rows(&log, 7);
            write_raft_rows(&log, 8);
        }
        let engine = Engine::open(dir.path()).unwrap();
        assert_eq!(rows(&engine.log, 7), (0, 0), "the tombstone's log is gone");
        assert_eq!(rows(&engine.log, 8), (2, 1), "a live region keeps its log");
        assert!(!engine.has_raft_data(7).unwrap());
        assert!(engine.has_raft_data(8).unwrap());
    }
}
