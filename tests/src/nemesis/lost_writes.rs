//! Lost acknowledged writes, read from the replicas themselves.
//!
//! Once the workload has stopped, every replica of every key's region is
//! read locally (a stale read on its own store: no leader, no raft round),
//! and each value is checked as a final read appended to the key's
//! history. A write acknowledged by a majority must be on some replica:
//! when no replica holds a value the history allows last, an acknowledged
//! write is lost. This needs no live raft group, so it also judges stores
//! whose regions a power cut left unable to lead or serve; one lagging
//! replica alone is not a loss.

use std::collections::BTreeMap;
use std::time::Duration;

use proto::kvpb;

use super::checker::{self, Event, Op, Outcome};
use crate::cluster::Cluster;

/// How long a replica may take to answer a local read after its store
/// restarted.
const REPLICA_DEADLINE: Duration = Duration::from_secs(30);
/// The history's client id of the final replica reads.
const REPLICA_READER: usize = usize::MAX;

/// Each key's value on each replica that answered: (store id, value).
pub type ReplicaValues = BTreeMap<String, Vec<(u64, Option<String>)>>;

/// Reads every key on every store holding a replica of its region (by
/// PD's routes), retrying each until it answers or
/// [`REPLICA_DEADLINE`] passes.
pub async fn read_replicas(cluster: &Cluster, keys: &[String]) -> ReplicaValues {
    let pd = pd::client::PdClient::new(&cluster.pd_endpoints()).expect("pd client");
    let stores: BTreeMap<u64, String> = cluster.stores.iter().map(|s| (s.store_id, s.grpc())).collect();
    let deadline = tokio::time::Instant::now() + REPLICA_DEADLINE;
    let mut out = ReplicaValues::new();
    for key in keys {
        let region = loop {
            match pd.get_region(key.as_bytes()).await.ok().and_then(|r| r.route?.region) {
                Some(r) => break r,
                None if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
                None => panic!("PD names no region for {key:?}"),
            }
        };
        let mut values = Vec::new();
        for p in &region.peers {
            let Some(addr) = stores.get(&p.store_id) else { continue };
            loop {
                match read_local(addr, region.id, key).await {
                    Some(v) => {
                        values.push((p.store_id, v));
                        break;
                    }
                    None if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    None => break,
                }
            }
        }
        out.insert(key.clone(), values);
    }
    out
}

async fn read_local(addr: &str, region_id: u64, key: &str) -> Option<Option<String>> {
    let mut kv = kvpb::kv_client::KvClient::new(pd::client::channel(addr).ok()?);
    let ctx = kvpb::Context { region_id, stale_read: true, ..Default::default() };
    let req = kvpb::GetRequest { context: Some(ctx), key: key.as_bytes().to_vec() };
    let r = tokio::time::timeout(Duration::from_secs(2), kv.get(req)).await.ok()?.ok()?.into_inner();
    if r.region_error.is_some() || r.error.is_some() {
        return None;
    }
    Some(r.found.then(|| String::from_utf8_lossy(&r.value).into_owned()))
}

/// The keys whose every replica holds a value the history does not allow
/// last, each with what the replicas hold. A key no replica answered for
/// counts as lost too: its acknowledged writes are nowhere to be read.
pub fn lost_writes(history: &[Event], replicas: &ReplicaValues) -> Vec<String> {
    let end = history.iter().map(|e| e.complete).max().unwrap_or(0);
    let mut lost = Vec::new();
    for (key, values) in replicas {
        let events: Vec<&Event> = history.iter().filter(|e| &e.key == key).collect();
        let allowed = |value: &Option<String>| {
            let last = Event {
                client: REPLICA_READER,
                key: key.clone(),
                op: Op::Read { value: value.clone() },
                invoke: end + 1,
                complete: end + 2,
                outcome: Outcome::Ok,
            };
            let mut with_last = events.clone();
            with_last.push(&last);
            checker::check_key(key, &with_last).is_ok()
        };
        if !values.iter().any(|(_, v)| allowed(v)) {
            lost.push(format!("{key}: no replica holds what the history allows last; replicas hold {values:?}"));
        }
    }
    lost
}
