//! The nemesis: seeded faults on real processes.
//!
//! One fault at a time, each held for a random while and then healed:
//!
//! | kind | what |
//! |---|---|
//! | `kill-store` | `kill -9` a random store, restart it on the same data |
//! | `kill-leader-store` | `kill -9` the store leading a region (by PD's routes) while writes are in flight, restart it within a second or two |
//! | `pause-store` | SIGSTOP a random store, SIGCONT it later |
//! | `partition-store` | cut a random store off from the other stores and from PD (both directions, through the stores' fault-injection switch) |
//! | `kill-pd` | `kill -9` a random PD member, restart it |
//! | `kill-pd-leader` | `kill -9` the PD leader, restart it |
//! | `transfer-leader` | move a random region's leadership to another of its voters' stores through PD's admin API, and wait for the operator |
//! | `split` | split a random region at a random key between the workload's keys (one in four at its middle), through PD's admin API, and wait for the operator |
//! | `move` | move a random replica of a random region to a store that holds none (the run then has four stores), through PD's admin API, and wait for the operator |
//! | `down-store` | `kill -9` a store holding replicas and keep it down until PD has declared it Down and its replica repair has re-created every replica elsewhere (four stores, a short `max-store-down-time`), then restart it: its stale peers must be destroyed |
//! | `split-pause-move` | split a random region, SIGSTOP one of its followers within milliseconds (the split appended there, likely not applied), move that follower's replica of the region off its store to one without the region, then SIGCONT it: the resumed store applies the split while its routes show it removed, so the destroy races the split's apply |
//! | `dormant` | pause the workload until every region on every store is dormant (its raft groups shut down), then `kill -9` the store leading a random region and resume the workload at once: requests revive the regions while the dead leader's followers revive, elect and serve; restart the store a second or two later |
//!
//! A run starts with each operation in its schedule once (a split, a
//! leader transfer, a move, a store down for good, a dormant cluster, a
//! split whose paused follower is moved away). With `split` in the schedule, one in three of the
//! other faults also starts a split while it is held, so splits run into
//! leader kills, pauses and partitions.

use std::fmt;
use std::time::Duration;

use pd::client::PdClient;
use tokio::sync::watch;

use crate::cluster::Cluster;
use crate::http_request;
use storenode::bench::rng::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    KillStore,
    KillLeaderStore,
    PauseStore,
    PartitionStore,
    KillPd,
    KillPdLeader,
    Split,
    TransferLeader,
    Move,
    DownStore,
    Dormant,
    SplitPauseMove,
}

impl FaultKind {
    /// The operations among the kinds: run once each at the start of a run.
    pub const OPERATIONS: [FaultKind; 6] = [
        FaultKind::Split,
        FaultKind::TransferLeader,
        FaultKind::Move,
        FaultKind::DownStore,
        FaultKind::Dormant,
        FaultKind::SplitPauseMove,
    ];

    pub const ALL: [FaultKind; 12] = [
        FaultKind::KillStore,
        FaultKind::KillLeaderStore,
        FaultKind::PauseStore,
        FaultKind::PartitionStore,
        FaultKind::KillPd,
        FaultKind::KillPdLeader,
        FaultKind::Split,
        FaultKind::TransferLeader,
        FaultKind::Move,
        FaultKind::DownStore,
        FaultKind::Dormant,
        FaultKind::SplitPauseMove,
    ];

    /// Whether the run needs a fourth store: a move needs a store without
    /// the region, replica repair a store to re-create replicas on.
    pub fn needs_spare_store(self) -> bool {
        matches!(self, FaultKind::Move | FaultKind::DownStore | FaultKind::SplitPauseMove)
    }

    /// How long the fault is held before healing, in ms.
    fn hold_ms(self) -> (u64, u64) {
        match self {
            // "Restarted within a second or two": the hard case for a
            // leader's lease and its lazily persisted state.
            FaultKind::KillStore | FaultKind::KillLeaderStore => (200, 2_000),
            FaultKind::PauseStore => (500, 3_000),
            FaultKind::PartitionStore => (1_000, 4_000),
            FaultKind::KillPd | FaultKind::KillPdLeader => (300, 2_000),
            // How long to wait for the split or transfer operator.
            FaultKind::Split | FaultKind::TransferLeader => (10_000, 15_000),
            // A move is several raft changes and a snapshot.
            FaultKind::Move => (20_000, 30_000),
            // How long to wait for the repair: the down time, then moves.
            FaultKind::DownStore => (30_000, 40_000),
            // How long the killed leader's store stays down.
            FaultKind::Dormant => (1_000, 2_000),
            // How long to wait for the split, then for the move.
            FaultKind::SplitPauseMove => (20_000, 30_000),
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FaultKind::KillStore => "kill-store",
            FaultKind::KillLeaderStore => "kill-leader-store",
            FaultKind::PauseStore => "pause-store",
            FaultKind::PartitionStore => "partition-store",
            FaultKind::KillPd => "kill-pd",
            FaultKind::KillPdLeader => "kill-pd-leader",
            FaultKind::Split => "split",
            FaultKind::TransferLeader => "transfer-leader",
            FaultKind::Move => "move",
            FaultKind::DownStore => "down-store",
            FaultKind::Dormant => "dormant",
            FaultKind::SplitPauseMove => "split-pause-move",
        })
    }
}

/// One fault as applied: when (ns since the run started) and to what.
#[derive(Debug, Clone)]
pub struct FaultRecord {
    pub kind: FaultKind,
    pub target: String,
    pub start: u64,
    pub end: u64,
}

pub struct Nemesis {
    pub cluster: Cluster,
    rng: Rng,
    kinds: Vec<FaultKind>,
    /// Holds the workload's workers while true.
    pause: watch::Sender<bool>,
    /// Split operations run so far.
    splits_done: usize,
}

/// How long every region may take to go dormant once the workload pauses:
/// hibernation, then two maximum election timeouts of quiet.
const DORMANT_WAIT: Duration = Duration::from_secs(20);

impl Nemesis {
    pub fn new(cluster: Cluster, rng: Rng, kinds: Vec<FaultKind>, pause: watch::Sender<bool>) -> Nemesis {
        assert!(!kinds.is_empty(), "a nemesis needs at least one fault kind");
        Nemesis { cluster, rng, kinds, pause, splits_done: 0 }
    }

    /// Applies faults until `now()` passes `until`, each healed before the
    /// next, and at least each operation in the schedule once however long
    /// those take; returns what it did.
    pub async fn run(&mut self, now: impl Fn() -> u64, until: u64) -> Vec<FaultRecord> {
        let mut done = Vec::new();
        // A run starts with each operation in its schedule (a split, a
        // leader transfer, a move, a store down for good) once, so every
        // such run does each, even a short one.
        let operations: Vec<FaultKind> = FaultKind::OPERATIONS.into_iter().filter(|k| self.kinds.contains(k)).collect();
        loop {
            tokio::time::sleep(millis(&mut self.rng, 300, 1_500)).await;
            if now() >= until && done.len() >= operations.len() {
                return done;
            }
            let kind = match operations.get(done.len()) {
                Some(k) => *k,
                None => *self.rng.pick(&self.kinds),
            };
            let (lo, hi) = kind.hold_ms();
            let hold = millis(&mut self.rng, lo, hi);
            let start = now();
            let target = self.inject(kind, hold).await;
            crate::phase(&format!("nemesis: {kind} {target} for {hold:?}"));
            done.push(FaultRecord { kind, target, start, end: now() });
        }
    }

    /// Applies one fault, holds it, heals it; returns its target's name.
    /// With splits in the schedule, one in three faults (not the operations
    /// themselves) also split a region while held; that split's outcome
    /// joins the name.
    async fn inject(&mut self, kind: FaultKind, hold: Duration) -> String {
        let operation = FaultKind::OPERATIONS.contains(&kind);
        let with_split = !operation && self.kinds.contains(&FaultKind::Split) && self.rng.below(3) == 0;
        let split = with_split.then(|| {
            let (pd, key) = (self.cluster.pd_endpoints(), self.split_key());
            tokio::spawn(async move { split_at(&pd, &key, Duration::from_secs(15)).await })
        });
        let target = self.inject_one(kind, hold).await;
        match split {
            Some(task) => format!("{target} (with a split: {})", task.await.unwrap_or_else(|e| e.to_string())),
            None => target,
        }
    }

    async fn inject_one(&mut self, kind: FaultKind, hold: Duration) -> String {
        match kind {
            FaultKind::TransferLeader => self.transfer_leader(hold).await,
            FaultKind::Move => self.move_replica(hold).await,
            FaultKind::DownStore => self.down_store(hold).await,
            FaultKind::Dormant => self.dormant(hold).await,
            FaultKind::SplitPauseMove => self.split_pause_move(hold).await,
            FaultKind::Split => {
                // The run's first split comes before the workload has
                // written much: a region's middle may not exist yet.
                let key = if self.splits_done == 0 { self.split_key_between() } else { self.split_key() };
                self.splits_done += 1;
                let outcome = split_at(&self.cluster.pd_endpoints(), &key, hold).await;
                format!("at {:?}: {outcome}", String::from_utf8_lossy(&key))
            }
            FaultKind::KillStore | FaultKind::KillLeaderStore => {
                let id = if kind == FaultKind::KillLeaderStore { self.leader_store().await } else { None };
                let id = id.unwrap_or_else(|| self.random_store());
                let store = self.cluster.store(id);
                store.kill();
                tokio::time::sleep(hold).await;
                tokio::task::block_in_place(|| store.restart());
                format!("store {id}")
            }
            FaultKind::PauseStore => {
                let id = self.random_store();
                let store = self.cluster.store(id);
                store.signal("STOP");
                tokio::time::sleep(hold).await;
                store.signal("CONT");
                format!("store {id}")
            }
            FaultKind::PartitionStore => {
                let id = self.random_store();
                self.isolate(id).await;
                tokio::time::sleep(hold).await;
                self.heal_partitions().await;
                format!("store {id}")
            }
            FaultKind::KillPd | FaultKind::KillPdLeader => {
                let id = if kind == FaultKind::KillPdLeader { self.pd_leader().await } else { None };
                let id = id.unwrap_or_else(|| self.rng.below(self.cluster.pd.len() as u64) + 1);
                let member = self.cluster.pd.iter_mut().find(|m| m.id == id).expect("pd member");
                member.kill();
                tokio::time::sleep(hold).await;
                tokio::task::block_in_place(|| member.restart());
                format!("pd {id}")
            }
        }
    }

    /// A key between the workload's keys (`k0`..`kN`): `k` and two digits,
    /// so it never equals one; empty one time in four (the region's middle).
    fn split_key(&mut self) -> Vec<u8> {
        if self.rng.below(4) == 0 {
            return Vec::new();
        }
        self.split_key_between()
    }

    /// A key between the workload's keys, never empty.
    fn split_key_between(&mut self) -> Vec<u8> {
        format!("k{}{}", self.rng.below(5), self.rng.below(10)).into_bytes()
    }

    /// Moves a random region's leadership to another voter's store and
    /// waits up to `wait`; says how it went (a refusal is an outcome).
    async fn transfer_leader(&mut self, wait: Duration) -> String {
        let Ok(pd) = PdClient::new(&self.cluster.pd_endpoints()) else { return "no PD".into() };
        let pd = pd.with_deadline(Duration::from_secs(3));
        let Ok(routes) = pd.list_routes().await else { return "no routes".into() };
        let regions: Vec<_> = routes.regions.iter().filter(|r| r.region.is_some()).cloned().collect();
        if regions.is_empty() {
            return "no regions".into();
        }
        let route = self.rng.pick(&regions).clone();
        let region = route.region.unwrap_or_default();
        let leader = route.leader.map(|l| l.store_id);
        let others: Vec<u64> = region.peers.iter().map(|p| p.store_id).filter(|s| Some(*s) != leader).collect();
        if others.is_empty() {
            return format!("region {}: no other voter", region.id);
        }
        let to = *self.rng.pick(&others);
        let outcome = match pd.transfer_leader(region.id, to).await {
            Ok(op) => match crate::split::wait_operator(&pd, op.id, wait).await {
                Ok(_) => "led from there".to_string(),
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        format!("region {} to store {to}: {outcome}", region.id)
    }

    /// Moves a random replica of a random region to a store holding none
    /// and waits up to `wait`; says how it went (a refusal is an outcome).
    async fn move_replica(&mut self, wait: Duration) -> String {
        let Ok(pd) = PdClient::new(&self.cluster.pd_endpoints()) else { return "no PD".into() };
        let pd = pd.with_deadline(Duration::from_secs(3));
        let Ok(routes) = pd.list_routes().await else { return "no routes".into() };
        let regions: Vec<_> = routes.regions.iter().filter_map(|r| r.region.clone()).collect();
        if regions.is_empty() {
            return "no regions".into();
        }
        let region = self.rng.pick(&regions).clone();
        let holders: Vec<u64> = region.peers.iter().map(|p| p.store_id).collect();
        let free: Vec<u64> = self.cluster.stores.iter().map(|s| s.store_id).filter(|s| !holders.contains(s)).collect();
        if free.is_empty() || holders.is_empty() {
            return format!("region {}: no store to move to", region.id);
        }
        let (from, to) = (*self.rng.pick(&holders), *self.rng.pick(&free));
        let outcome = match crate::moves::start_move(&pd, region.id, from, to).await {
            Ok(op) => match crate::split::wait_operator(&pd, op.id, wait).await {
                Ok(_) => "moved".to_string(),
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        format!("region {} from store {from} to store {to}: {outcome}", region.id)
    }

    /// Splits a random region and pauses one of its followers within
    /// milliseconds, so the split is in that store's log and likely not
    /// applied; moves the follower's replica of the region to a store
    /// without it (waiting up to `wait` for each operator), then resumes
    /// the follower. Its first act is to apply the split while the routes
    /// it hears show its replica removed: the destroy races the split's
    /// apply. Says how it went (a refusal is an outcome).
    async fn split_pause_move(&mut self, wait: Duration) -> String {
        let Ok(pd) = PdClient::new(&self.cluster.pd_endpoints()) else { return "no PD".into() };
        let pd = pd.with_deadline(Duration::from_secs(3));
        let key = self.split_key_between();
        let Some(route) = pd.get_region(&key).await.ok().and_then(|r| r.route) else { return "no route".into() };
        let Some(region) = route.region else { return "no route".into() };
        let leader = route.leader.map(|l| l.store_id);
        let followers: Vec<u64> = region.peers.iter().map(|p| p.store_id).filter(|s| Some(*s) != leader).collect();
        let holders: Vec<u64> = region.peers.iter().map(|p| p.store_id).collect();
        let free: Vec<u64> = self.cluster.stores.iter().map(|s| s.store_id).filter(|s| !holders.contains(s)).collect();
        if followers.is_empty() || free.is_empty() {
            return format!("region {}: no follower, or no store to move to", region.id);
        }
        let (follower, to) = (*self.rng.pick(&followers), *self.rng.pick(&free));
        let split = match pd.split_region(region.id, &key, None).await {
            Ok(op) => op,
            Err(e) => return format!("region {}: split refused: {e}", region.id),
        };
        tokio::time::sleep(millis(&mut self.rng, 1, 20)).await;
        self.cluster.store(follower).signal("STOP");
        // Neither operator converges on the paused store: wait for each to
        // succeed, not for every store to take its routes.
        let outcome = match operator_succeeded(&pd, split.id, wait).await {
            Ok(()) => match crate::moves::start_move(&pd, region.id, follower, to).await {
                Ok(op) => match operator_succeeded(&pd, op.id, wait).await {
                    Ok(()) => "split, then moved off the paused store".to_string(),
                    Err(e) => format!("split; move: {e}"),
                },
                Err(e) => format!("split; move: {e}"),
            },
            Err(e) => format!("split: {e}"),
        };
        self.cluster.store(follower).signal("CONT");
        format!(
            "region {} at {:?}, follower store {follower} to store {to}: {outcome}",
            region.id,
            String::from_utf8_lossy(&key)
        )
    }

    /// Kills a store holding replicas, waits up to `wait` for PD to
    /// re-create all of them elsewhere, restarts it; says how it went.
    async fn down_store(&mut self, wait: Duration) -> String {
        let Ok(pd) = PdClient::new(&self.cluster.pd_endpoints()) else { return "no PD".into() };
        let pd = pd.with_deadline(Duration::from_secs(3));
        let holds = |routes: &proto::pdpb::RouteSnapshot, id: u64| {
            routes.regions.iter().filter_map(|r| r.region.as_ref()).any(|r| r.peers.iter().any(|p| p.store_id == id))
        };
        let Ok(routes) = pd.list_routes().await else { return "no routes".into() };
        let holders: Vec<u64> =
            self.cluster.stores.iter().map(|s| s.store_id).filter(|id| holds(&routes, *id)).collect();
        if holders.is_empty() {
            return "no store holds a replica".into();
        }
        let id = *self.rng.pick(&holders);
        let store = self.cluster.store(id);
        store.kill();
        let deadline = tokio::time::Instant::now() + wait;
        let outcome = loop {
            if pd.list_routes().await.is_ok_and(|r| !holds(&r, id)) {
                break "repaired".to_string();
            }
            if tokio::time::Instant::now() > deadline {
                break "not repaired in time".to_string();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let store = self.cluster.store(id);
        tokio::task::block_in_place(|| store.restart());
        format!("store {id}: {outcome}")
    }

    /// Pauses the workload until every store's regions are all dormant (or
    /// `DORMANT_WAIT` passes), kills the store leading a random region,
    /// resumes the workload, and restarts the store after `hold`; says how
    /// many regions went dormant.
    async fn dormant(&mut self, hold: Duration) -> String {
        self.pause.send_replace(true);
        let deadline = tokio::time::Instant::now() + DORMANT_WAIT;
        let dormant = loop {
            let counts = self.dormant_counts().await;
            // A store may hold none (its replicas repaired away).
            if counts.iter().all(|(regions, dormant)| regions == dormant) && counts.iter().any(|(r, _)| *r > 0) {
                break Some(counts.iter().map(|(_, d)| d).sum::<u64>());
            }
            if tokio::time::Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let id = self.leader_store().await.unwrap_or_else(|| self.random_store());
        let store = self.cluster.store(id);
        store.kill();
        self.pause.send_replace(false);
        tokio::time::sleep(hold).await;
        let store = self.cluster.store(id);
        tokio::task::block_in_place(|| store.restart());
        match dormant {
            Some(n) => format!("{n} peers dormant; then leader store {id} killed"),
            None => format!("not all dormant in {DORMANT_WAIT:?}; then leader store {id} killed"),
        }
    }

    /// Each running store's (regions, dormant regions), from `/status`.
    async fn dormant_counts(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        for s in self.cluster.stores.iter().filter(|s| s.is_running()) {
            let status = crate::store_status::status(&s.http()).await;
            let count = |field: &str| status.as_ref().and_then(|v| v[field].as_u64()).unwrap_or(0);
            out.push((count("region_count"), count("dormant_region_count")));
        }
        out
    }

    fn random_store(&mut self) -> u64 {
        let ids: Vec<u64> = self.cluster.stores.iter().map(|s| s.store_id).collect();
        *self.rng.pick(&ids)
    }

    /// The store leading a random region, as PD's routes say.
    async fn leader_store(&mut self) -> Option<u64> {
        let pd = PdClient::new(&self.cluster.pd_endpoints()).ok()?.with_deadline(Duration::from_secs(2));
        let routes = pd.list_routes().await.ok()?;
        let leaders: Vec<u64> = routes.regions.iter().filter_map(|r| r.leader.map(|l| l.store_id)).collect();
        (!leaders.is_empty()).then(|| *self.rng.pick(&leaders))
    }

    async fn pd_leader(&self) -> Option<u64> {
        let pd = PdClient::new(&self.cluster.pd_endpoints()).ok()?.with_deadline(Duration::from_secs(2));
        pd.get_members().await.ok()?.leader.map(|l| l.id)
    }

    /// Cuts store `id` off from every other store and from PD, in both
    /// directions.
    async fn isolate(&self, id: u64) {
        let others: Vec<u64> = self.cluster.stores.iter().map(|s| s.store_id).filter(|s| *s != id).collect();
        for s in &self.cluster.stores {
            let spec = if s.store_id == id {
                serde_json::json!({"stores": others, "pd": true})
            } else {
                serde_json::json!({"stores": [id], "pd": false})
            };
            set_partition(&s.http(), "PUT", spec.to_string().as_bytes()).await;
        }
    }

    async fn heal_partitions(&self) {
        for s in &self.cluster.stores {
            set_partition(&s.http(), "DELETE", b"").await;
        }
    }

    /// Leaves every process running and every link up.
    pub async fn heal_all(&mut self) {
        for s in &mut self.cluster.stores {
            if !s.is_running() {
                tokio::task::block_in_place(|| s.restart());
            }
        }
        for m in &mut self.cluster.pd {
            if !m.is_running() {
                tokio::task::block_in_place(|| m.restart());
            }
        }
        self.heal_partitions().await;
    }
}

/// Splits the region holding `key` (its middle when `key` is empty: the
/// first region) and waits up to `wait`; says how it went. Refusals (the key
/// is a boundary already, an operator is running) are outcomes, not errors.
async fn split_at(pd: &[String], key: &[u8], wait: Duration) -> String {
    let Ok(pd) = PdClient::new(pd) else { return "no PD".into() };
    let pd = pd.with_deadline(Duration::from_secs(3));
    let region = match pd.get_region(key).await.ok().and_then(|r| r.route?.region) {
        Some(r) => r,
        None => return "no route".into(),
    };
    match crate::split::split_region(&pd, region.id, key, wait).await {
        Ok(op) => format!("region {} split into {}", region.id, op.new_region_id),
        Err(e) => format!("region {}: {e}", region.id),
    }
}

/// Waits up to `wait` for operator `id` to succeed, whether or not every
/// store has taken its routes yet.
async fn operator_succeeded(pd: &PdClient, id: u64, wait: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let op = pd
            .call(|mut c| async move { c.get_operator(proto::pdpb::GetOperatorRequest { operator_id: id }).await })
            .await
            .map_err(|e| e.to_string())?
            .operator
            .ok_or_else(|| format!("operator {id} unknown"))?;
        match proto::pdpb::OperatorStatus::try_from(op.status) {
            Ok(proto::pdpb::OperatorStatus::Succeeded) => return Ok(()),
            Ok(proto::pdpb::OperatorStatus::Running) => {}
            status => return Err(format!("operator {id} ended as {status:?}: {:?}", op.error)),
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("operator {id} still at step {:?}", op.step));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Uniform in `lo..hi` milliseconds.
fn millis(rng: &mut Rng, lo: u64, hi: u64) -> Duration {
    Duration::from_millis(lo + rng.below(hi - lo))
}

/// Sets or heals a store's partition switch; a store that is down or paused
/// is retried until the deadline (it must not keep an old partition).
async fn set_partition(http: &str, method: &str, body: &[u8]) {
    crate::wait_for("a store to take a partition change", Duration::from_secs(30), || async {
        let res = tokio::time::timeout(Duration::from_secs(2), http_request(http, method, "/debug/partition", body));
        matches!(res.await, Ok(Ok((200, _)))).then_some(())
    })
    .await;
}
