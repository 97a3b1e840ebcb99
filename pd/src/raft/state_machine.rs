//! The catalog as openraft's state machine, persisted in redb.
//!
//! Applying a batch of committed entries changes the in-memory
//! [`RouteCatalog`], then writes exactly the rows it changed plus the last
//! applied log id and membership in one durable transaction, then answers
//! the waiting proposers, then publishes the new catalog version if it
//! moved. Each version's change is kept in a bounded history
//! ([`RouteHistory`]), so streams can push route deltas
//! ([`SharedCatalog::push_since`]); full snapshots are built when asked
//! for, once per version. A crash between apply and persist only means the
//! entries are applied again on restart, which is deterministic.
//!
//! A command the catalog refuses still consumes its entry: the proposer gets
//! the typed refusal, and an invariant refusal is also logged and counted
//! (`pd_catalog_invariant_refusals_total`) on every member.
//!
//! A raft snapshot is the whole catalog encoded as a
//! `pdraftpb.CatalogSnapshot`; the latest one is kept in the same file.

use std::io;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use prost::Message;
use proto::{metapb, pdpb, pdraftpb};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::watch;
use tracing::error;

use super::{CommandReply, LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig, io_err};
use crate::catalog::{Dirty, RegionRecord, RouteCatalog};
use crate::error::PdError;
use crate::metrics;
use crate::routes::{RouteHistory, RoutePush, build_delta};

const SM_META: TableDefinition<&str, &[u8]> = TableDefinition::new("catalog_meta");
const SM_STORES: TableDefinition<u64, &[u8]> = TableDefinition::new("catalog_stores");
const SM_REGIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("catalog_regions");
const CATALOG: &str = "catalog";
const APPLIED: &str = "last_applied";
const MEMBERSHIP: &str = "membership";
const SNAPSHOT_META: &str = "snapshot_meta";
const SNAPSHOT_DATA: &str = "snapshot_data";

/// The applied state every reader sees.
#[derive(Debug, Default)]
pub struct CatalogState {
    pub catalog: RouteCatalog,
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
}

/// Shared between the state machine (writer) and PD's request handlers
/// (readers).
pub struct SharedCatalog {
    state: RwLock<CatalogState>,
    /// What the versions since `oldest()` changed. Written under the state's
    /// write lock, so a reader holding the read lock sees it at the same
    /// version as the catalog.
    history: Mutex<RouteHistory>,
    /// The applied catalog version, published after each applied batch.
    version: watch::Sender<u64>,
    /// The full snapshot of the newest version anyone asked for: built once
    /// per version however many streams need it.
    full: Mutex<Arc<pdpb::RouteSnapshot>>,
}

impl SharedCatalog {
    fn new(state: CatalogState, history_versions: usize) -> Self {
        let version = state.catalog.version();
        SharedCatalog {
            history: Mutex::new(RouteHistory::new(history_versions, version)),
            version: watch::channel(version).0,
            full: Mutex::new(Arc::new(pdpb::RouteSnapshot::default())),
            state: RwLock::new(state),
        }
    }

    /// A consistent view of the applied catalog. Do not hold it across an
    /// `.await`.
    pub fn read(&self) -> RwLockReadGuard<'_, CatalogState> {
        self.state.read().unwrap()
    }

    /// The applied catalog version now, then every time it moves.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Every store and region at the current version.
    pub fn routes(&self) -> Arc<pdpb::RouteSnapshot> {
        let state = self.read();
        let mut full = self.full.lock().unwrap();
        if full.version != state.catalog.version() {
            *full = Arc::new(state.catalog.route_snapshot());
        }
        full.clone()
    }

    /// The regions changed after version `from` up to `to`, while the
    /// history reaches back that far.
    pub fn changed_regions(&self, from: u64, to: u64) -> Option<std::collections::BTreeSet<u64>> {
        self.history.lock().unwrap().changes_between(from, to).map(|c| c.regions)
    }

    /// What brings a receiver holding version `have` (`None`: nothing) to
    /// the current version: a delta when `deltas` is allowed and the
    /// history covers `have`, else the full snapshot. `None` when it holds
    /// the current version or a newer one (this member has not applied it
    /// yet).
    pub fn push_since(&self, have: Option<u64>, deltas: bool) -> Option<RoutePush> {
        {
            let state = self.read();
            let current = state.catalog.version();
            if have.is_some_and(|v| v >= current) {
                return None;
            }
            if let Some(from) = have.filter(|_| deltas)
                && let Some(changes) = self.history.lock().unwrap().changes_between(from, current)
            {
                return Some(RoutePush::Delta(build_delta(&state.catalog, from, &changes)));
            }
        }
        Some(RoutePush::Full(self.routes()))
    }

    fn publish_if_moved(&self) {
        let version = self.read().catalog.version();
        self.version.send_if_modified(|v| std::mem::replace(v, version) != version);
    }
}

#[derive(Clone)]
pub struct CatalogStateMachine {
    db: Arc<Database>,
    shared: Arc<SharedCatalog>,
}

impl CatalogStateMachine {
    /// Opens the catalog tables in `db` and loads the applied state.
    ///
    /// # Errors
    ///
    /// When the tables cannot be read or the stored catalog breaks an
    /// invariant.
    /// `history_versions`: how many recent versions' changes to keep for
    /// route deltas.
    pub fn open(db: Arc<Database>, history_versions: usize) -> io::Result<Self> {
        let tx = db.begin_write().map_err(io_err)?;
        tx.open_table(SM_META).map_err(io_err)?;
        tx.open_table(SM_STORES).map_err(io_err)?;
        tx.open_table(SM_REGIONS).map_err(io_err)?;
        tx.commit().map_err(io_err)?;
        let state = load(&db)?;
        Ok(CatalogStateMachine { db, shared: Arc::new(SharedCatalog::new(state, history_versions)) })
    }

    pub fn shared(&self) -> Arc<SharedCatalog> {
        self.shared.clone()
    }

    async fn persist(&self, rows: Rows) -> io::Result<()> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || rows.write(&db)).await.map_err(io_err)?
    }
}

fn load(db: &Database) -> io::Result<CatalogState> {
    let tx = db.begin_read().map_err(io_err)?;
    let meta_table = tx.open_table(SM_META).map_err(io_err)?;
    let get = |key: &str| -> io::Result<Option<Vec<u8>>> {
        Ok(meta_table.get(key).map_err(io_err)?.map(|v| v.value().to_vec()))
    };
    let Some(meta) = get(CATALOG)? else {
        return Ok(CatalogState::default());
    };
    let meta = pdraftpb::CatalogMeta::decode(meta.as_slice()).map_err(io_err)?;
    let mut stores = Vec::new();
    for row in tx.open_table(SM_STORES).map_err(io_err)?.iter().map_err(io_err)? {
        let (_, v) = row.map_err(io_err)?;
        stores.push(metapb::Store::decode(v.value()).map_err(io_err)?);
    }
    let mut regions = Vec::new();
    for row in tx.open_table(SM_REGIONS).map_err(io_err)?.iter().map_err(io_err)? {
        let (_, v) = row.map_err(io_err)?;
        regions
            .push(RegionRecord::from_pb(pdraftpb::RegionRecord::decode(v.value()).map_err(io_err)?).map_err(io_err)?);
    }
    let catalog = RouteCatalog::from_parts(meta, stores, regions).map_err(io_err)?;
    let last_applied = match get(APPLIED)? {
        Some(b) => serde_json::from_slice(&b).map_err(io_err)?,
        None => None,
    };
    let membership = match get(MEMBERSHIP)? {
        Some(b) => serde_json::from_slice(&b).map_err(io_err)?,
        None => StoredMembership::default(),
    };
    Ok(CatalogState { catalog, last_applied, membership })
}

/// Rows to write in one transaction. Built under the state lock, written
/// without it.
#[derive(Default)]
struct Rows {
    meta: Vec<(&'static str, Vec<u8>)>,
    /// `None` deletes the row.
    stores: Vec<(u64, Option<Vec<u8>>)>,
    regions: Vec<(u64, Option<Vec<u8>>)>,
    /// Replace every store and region row (snapshot install).
    clear_all: bool,
}

impl Rows {
    fn applied(state: &CatalogState, dirty: &Dirty) -> io::Result<Rows> {
        let mut rows = Rows::default();
        rows.meta.push((APPLIED, serde_json::to_vec(&state.last_applied).map_err(io_err)?));
        rows.meta.push((MEMBERSHIP, serde_json::to_vec(&state.membership).map_err(io_err)?));
        if dirty.meta {
            rows.meta.push((CATALOG, state.catalog.meta_pb().encode_to_vec()));
        }
        for id in &dirty.stores {
            rows.stores.push((*id, state.catalog.store(*id).map(Message::encode_to_vec)));
        }
        for id in &dirty.regions {
            rows.regions.push((*id, state.catalog.region(*id).map(|r| r.to_pb().encode_to_vec())));
        }
        Ok(rows)
    }

    fn everything(state: &CatalogState) -> io::Result<Rows> {
        let snapshot = state.catalog.to_snapshot();
        let mut rows = Rows {
            clear_all: true,
            stores: snapshot.stores.iter().map(|s| (s.id, Some(s.encode_to_vec()))).collect(),
            regions: snapshot
                .regions
                .iter()
                .map(|r| (r.region.as_ref().map_or(0, |r| r.id), Some(r.encode_to_vec())))
                .collect(),
            ..Rows::default()
        };
        rows.meta.push((CATALOG, state.catalog.meta_pb().encode_to_vec()));
        rows.meta.push((APPLIED, serde_json::to_vec(&state.last_applied).map_err(io_err)?));
        rows.meta.push((MEMBERSHIP, serde_json::to_vec(&state.membership).map_err(io_err)?));
        Ok(rows)
    }

    fn write(self, db: &Database) -> io::Result<()> {
        let tx = db.begin_write().map_err(io_err)?;
        {
            let mut meta = tx.open_table(SM_META).map_err(io_err)?;
            for (k, v) in &self.meta {
                meta.insert(*k, v.as_slice()).map_err(io_err)?;
            }
            let mut stores = tx.open_table(SM_STORES).map_err(io_err)?;
            let mut regions = tx.open_table(SM_REGIONS).map_err(io_err)?;
            if self.clear_all {
                stores.retain(|_, _| false).map_err(io_err)?;
                regions.retain(|_, _| false).map_err(io_err)?;
            }
            for (id, row) in &self.stores {
                match row {
                    Some(v) => stores.insert(*id, v.as_slice()).map(drop),
                    None => stores.remove(*id).map(drop),
                }
                .map_err(io_err)?;
            }
            for (id, row) in &self.regions {
                match row {
                    Some(v) => regions.insert(*id, v.as_slice()).map(drop),
                    None => regions.remove(*id).map(drop),
                }
                .map_err(io_err)?;
            }
        }
        tx.commit().map_err(io_err)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for CatalogStateMachine {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let (meta, data) = {
            let state = self.shared.read();
            let meta = SnapshotMeta { last_log_id: state.last_applied, last_membership: state.membership.clone() };
            (meta, state.catalog.to_snapshot().encode_to_vec())
        };
        let rows = Rows {
            meta: vec![(SNAPSHOT_META, serde_json::to_vec(&meta).map_err(io_err)?), (SNAPSHOT_DATA, data.clone())],
            ..Rows::default()
        };
        self.persist(rows).await?;
        Ok(Snapshot { meta, snapshot: data })
    }
}

impl RaftStateMachine<TypeConfig> for CatalogStateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        let state = self.shared.read();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        let mut batch = Vec::new();
        while let Some(item) = entries.try_next().await? {
            batch.push(item);
        }
        if batch.is_empty() {
            return Ok(());
        }
        let mut replies = Vec::with_capacity(batch.len());
        let rows = {
            let mut state = self.shared.state.write().unwrap();
            for (entry, responder) in batch {
                state.last_applied = Some(entry.log_id);
                let reply: CommandReply = match entry.payload {
                    EntryPayload::Blank => Ok(None),
                    EntryPayload::Normal(cmd) => {
                        let res = state.catalog.apply(&cmd);
                        if let Err(e @ PdError::InvariantViolation(_)) = &res {
                            // Loud, because it is a bug; not fatal, because
                            // every member refuses the entry alike.
                            metrics::CATALOG_INVARIANT_REFUSALS.inc();
                            error!(index = entry.log_id.index(), command = %cmd, error = %e, "catalog command refused");
                        }
                        res.map(Some)
                    }
                    EntryPayload::Membership(m) => {
                        state.membership = StoredMembership::new(Some(entry.log_id), m);
                        Ok(None)
                    }
                };
                replies.push((responder, reply));
            }
            let dirty = state.catalog.take_dirty();
            let mut history = self.shared.history.lock().unwrap();
            for change in state.catalog.take_route_changes() {
                history.record(change);
            }
            drop(history);
            Rows::applied(&state, &dirty)?
        };
        // Durable before anyone hears of it.
        self.persist(rows).await?;
        for (responder, reply) in replies {
            if let Some(r) = responder {
                r.send(reply);
            }
        }
        self.shared.publish_if_moved();
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: Vec<u8>) -> io::Result<()> {
        let decoded = pdraftpb::CatalogSnapshot::decode(snapshot.as_slice()).map_err(io_err)?;
        let catalog = RouteCatalog::from_snapshot(decoded).map_err(io_err)?;
        let new_state =
            CatalogState { catalog, last_applied: meta.last_log_id, membership: meta.last_membership.clone() };
        let mut rows = Rows::everything(&new_state)?;
        rows.meta.push((SNAPSHOT_META, serde_json::to_vec(meta).map_err(io_err)?));
        rows.meta.push((SNAPSHOT_DATA, snapshot));
        self.persist(rows).await?;
        {
            let mut state = self.shared.state.write().unwrap();
            // The catalog jumped: what changed on the way is not known here.
            self.shared.history.lock().unwrap().reset(new_state.catalog.version());
            *state = new_state;
        }
        self.shared.publish_if_moved();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        let tx = self.db.begin_read().map_err(io_err)?;
        let table = tx.open_table(SM_META).map_err(io_err)?;
        let (Some(meta), Some(data)) =
            (table.get(SNAPSHOT_META).map_err(io_err)?, table.get(SNAPSHOT_DATA).map_err(io_err)?)
        else {
            return Ok(None);
        };
        let meta: SnapshotMeta = serde_json::from_slice(meta.value()).map_err(io_err)?;
        Ok(Some(Snapshot { meta, snapshot: data.value().to_vec() }))
    }
}
