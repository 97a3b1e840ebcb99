//! Log time under leaders whose clocks disagree, applied through a real
//! region state machine: the stamps come from [`LeaderClock`]s over
//! clocks the tests set.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::EntryPayload;
use openraft::storage::RaftStateMachine;
use proto::{metapb, raftpb};
use redb::ReadableDatabase;

use super::{LeaderClock, MonotonicClock};
use crate::engine::{Engine, SESSIONS};
use crate::raft::session::{self, SESSION_TTL_MS, SWEEP_INTERVAL_MS};
use crate::raft::state_machine::RegionStateMachine;
use crate::raft::{Entry, KvCommand, KvOp, RequestId, TypeConfig};

const MINUTE: u64 = 60 * 1000;

/// A clock the test moves by hand.
#[derive(Default)]
struct ManualClock(AtomicU64);

impl ManualClock {
    fn at(ms: u64) -> Arc<Self> {
        Arc::new(ManualClock(AtomicU64::new(ms)))
    }

    fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl MonotonicClock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// One leadership of region 7: peer `peer` in `term`, proposing with its
/// own clock.
struct Leader {
    term: u64,
    peer: u64,
    clock: Arc<LeaderClock>,
}

impl Leader {
    fn new(term: u64, peer: u64, clock: &Arc<ManualClock>) -> Self {
        Leader { term, peer, clock: Arc::new(LeaderClock::new(clock.clone())) }
    }

    /// The same peer, elected again in `term`.
    fn reelected(&self, term: u64) -> Self {
        Leader { term, peer: self.peer, clock: self.clock.clone() }
    }
}

/// Region 7 over the whole key space, voters 1, 2, 3; this replica is
/// peer 1, and applies every leader's entries in log order.
struct Replica {
    _dir: tempfile::TempDir,
    engine: Arc<Engine>,
    sm: RegionStateMachine,
    next_index: u64,
}

impl Replica {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let region = metapb::Region {
            id: 7,
            region_epoch: Some(metapb::RegionEpoch { conf_ver: 1, version: 1 }),
            peers: (1..=3).map(|i| metapb::Peer { id: i, store_id: i, role: 0 }).collect(),
            ..Default::default()
        };
        engine
            .save_region_state(raftpb::RegionLocalState {
                region: Some(region.clone()),
                state: raftpb::PeerState::Normal as i32,
                peer_id: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        let sm = RegionStateMachine::open(engine.clone(), region, 1).await.unwrap();
        Replica { _dir: dir, engine, sm, next_index: 1 }
    }

    fn log_time(&self) -> u64 {
        self.sm.shared().log_time_ms()
    }

    /// `leader` proposes a put of `key` = `value` by client `client`
    /// (sequence `seq`) and it applies here, in `appended_in`'s term.
    async fn put_in(&mut self, leader: &Leader, appended_in: &Leader, client: u64, seq: u64, key: &str, value: &str) {
        let cmd = KvCommand {
            epoch_version: 1,
            op: KvOp::Put { key: key.as_bytes().to_vec(), value: value.as_bytes().to_vec() },
            request: Some(RequestId { client_id: client, seq, acked_below: seq }),
            clock: crate::raft::command_clock::CommandClock::Stamp(leader.clock.stamp(
                leader.term,
                leader.peer,
                self.log_time(),
            )),
        };
        let log_id = openraft::testing::log_id::<TypeConfig>(appended_in.term, appended_in.peer, self.next_index);
        self.next_index += 1;
        let entry = Entry { log_id, payload: EntryPayload::Normal(cmd) };
        self.sm.apply(futures::stream::iter([Ok((entry, None))])).await.unwrap();
    }

    async fn put(&mut self, leader: &Leader, client: u64, seq: u64, key: &str, value: &str) {
        self.put_in(leader, leader, client, seq, key, value).await;
    }

    fn value(&self, key: &str) -> Option<Vec<u8>> {
        self.engine.get(key.as_bytes()).unwrap()
    }

    /// The clients with a session in region 7.
    fn sessions(&self) -> Vec<u64> {
        let tx = self.engine.db.begin_read().unwrap();
        session::export(&tx.open_table(SESSIONS).unwrap(), 7).unwrap().into_iter().map(|(c, _)| c).collect()
    }
}

/// Client 9's write of `k` = "first", then client 8 overwrites it: if a
/// retry of client 9's write applies again, `k` reads "first".
async fn first_write_then_overwrite(replica: &mut Replica, a: &Leader) {
    replica.put(a, 9, 1, "k", "first").await;
    replica.put(a, 8, 1, "k", "second").await;
}

#[tokio::test]
async fn a_leader_whose_clock_reads_fifteen_minutes_ahead_expires_no_session() {
    let mut replica = Replica::new().await;
    let a_clock = ManualClock::at(5_000_000);
    let a = Leader::new(2, 1, &a_clock);
    let start = replica.log_time();
    first_write_then_overwrite(&mut replica, &a).await;
    a_clock.advance(MINUTE);
    replica.put(&a, 8, 2, "other", "x").await;

    // Peer 2 takes over; its clock reads 15 minutes ahead of peer 1's.
    let b_clock = ManualClock::at(a_clock.now_ms() + 15 * MINUTE);
    let b = Leader::new(3, 2, &b_clock);
    for seq in 3..6 {
        replica.put(&b, 8, seq, "other", "y").await;
        b_clock.advance(MINUTE);
    }
    assert!(replica.sessions().contains(&9), "client 9's session is 4 minutes idle, not 19");

    // Client 9's retry of its first write, through the new leader.
    replica.put(&b, 9, 1, "k", "first").await;
    assert_eq!(replica.value("k").as_deref(), Some(b"second".as_slice()), "the retried write applied twice");
    assert_eq!(replica.log_time() - start, 4 * MINUTE, "one minute under peer 1, three under peer 2");
}

#[tokio::test]
async fn a_freshly_elected_leader_whose_clock_is_ahead_starts_from_the_log_time_it_applied() {
    let mut replica = Replica::new().await;
    let a_clock = ManualClock::at(1_000);
    let a = Leader::new(2, 1, &a_clock);
    first_write_then_overwrite(&mut replica, &a).await;
    a_clock.advance(30_000);
    replica.put(&a, 8, 2, "other", "x").await;
    let before = replica.log_time();

    // Peer 3 is elected with a clock an hour ahead; its first write
    // moves log time not at all, whatever its clock reads.
    let c_clock = ManualClock::at(a_clock.now_ms() + 60 * MINUTE);
    let c = Leader::new(3, 3, &c_clock);
    replica.put(&c, 8, 3, "other", "y").await;
    replica.put(&c, 9, 1, "k", "first").await;
    assert_eq!(replica.value("k").as_deref(), Some(b"second".as_slice()), "the retried write applied twice");
    assert_eq!(replica.log_time(), before);

    // Its clock then jumps far ahead between proposals (as a wall clock
    // stepped by NTP would): a stamp taken in term 3 but appended by the
    // leadership of term 4 moves nothing, and the stamp of term 4's own
    // first proposal starts from the log time again.
    c_clock.advance(15 * MINUTE);
    let d = c.reelected(4);
    replica.put_in(&c, &d, 8, 4, "other", "z").await;
    assert_eq!(replica.log_time(), before, "a stamp of term 3 counts only in term 3's entries");
    replica.put(&d, 8, 5, "other", "w").await;
    assert_eq!(replica.log_time(), before);
    assert_eq!(before, 30_000, "log time moved only with peer 1's 30 s");
}

#[tokio::test]
async fn a_clock_behind_never_moves_log_time_back_and_sessions_still_expire() {
    let mut replica = Replica::new().await;
    let a_clock = ManualClock::at(10 * 60 * MINUTE);
    let a = Leader::new(2, 1, &a_clock);
    replica.put(&a, 8, 1, "other", "x").await;
    a_clock.advance(5 * MINUTE);
    replica.put(&a, 9, 1, "k", "first").await;
    let written_at = replica.log_time();

    // The same leader's clock source read backward (stepped back): log
    // time holds.
    a_clock.set(0);
    replica.put(&a, 8, 2, "other", "y").await;
    assert_eq!(replica.log_time(), written_at, "log time never goes back");

    // Peer 2, whose clock reads far behind peer 1's, leads next: log
    // time holds at first, then moves at its clock's pace, and client
    // 9's idle session expires once the TTL has passed under it.
    let b_clock = ManualClock::at(10);
    let b = Leader::new(3, 2, &b_clock);
    replica.put(&b, 8, 3, "other", "z").await;
    assert_eq!(replica.log_time(), written_at);
    let mut seq = 4;
    while replica.log_time() <= written_at + SESSION_TTL_MS + SWEEP_INTERVAL_MS {
        b_clock.advance(MINUTE);
        replica.put(&b, 8, seq, "other", "z").await;
        seq += 1;
        assert!(seq < 100, "log time stopped moving at {}", replica.log_time());
    }
    assert_eq!(replica.sessions(), vec![8], "client 9's idle session expired; client 8's lives");
}
