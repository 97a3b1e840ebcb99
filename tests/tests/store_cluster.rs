//! PD and three storage nodes as real processes on loopback: writes through
//! one store, reads through the others and the client library, a killed
//! leader store, and a full restart.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cluster_tests::cluster::Cluster;
use cluster_tests::{phase, wait_for};
use proto::kvpb::{self, kv_client::KvClient};
use tokio::sync::Mutex;

const KEYS: usize = 10_000;
/// Concurrent requests when loading or checking many keys.
const PARALLEL: usize = 32;
const WAIT: Duration = Duration::from_secs(60);

fn key(i: usize) -> Vec<u8> {
    format!("key{i:06}").into_bytes()
}

fn value(i: usize) -> Vec<u8> {
    format!("value-{i}-{}", "x".repeat(i % 50)).into_bytes()
}

async fn store_client(addr: &str) -> KvClient<tonic::transport::Channel> {
    KvClient::new(pd::client::channel(addr).expect("channel"))
}

/// Runs `f(i)` for every i in 0..n, `PARALLEL` at a time.
async fn for_each_key<F, Fut>(n: usize, f: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let f = Arc::new(f);
    let mut tasks = Vec::new();
    for w in 0..PARALLEL {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < n {
                f(i).await;
                i += PARALLEL;
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicated_writes_survive_a_killed_leader_and_a_full_restart() {
    phase("PD and three stores");
    let mut cluster = Cluster::start(1, 3, &[]).await;
    let addrs: Vec<String> = cluster.stores.iter().map(|s| s.grpc()).collect();

    phase("write 10,000 keys through store 1");
    let s1 = store_client(&addrs[0]).await;
    for_each_key(KEYS, move |i| {
        let mut c = s1.clone();
        async move {
            let resp = c.put(kvpb::PutRequest { context: None, key: key(i), value: value(i) }).await.expect("rpc");
            let r = resp.into_inner();
            assert!(r.region_error.is_none() && r.error.is_none(), "put {i}: {r:?}");
        }
    })
    .await;

    phase("read every key back through stores 2 and 3");
    for addr in &addrs[1..] {
        let c = store_client(addr).await;
        for_each_key(KEYS, move |i| {
            let mut c = c.clone();
            async move {
                let r = c.get(kvpb::GetRequest { context: None, key: key(i) }).await.expect("rpc").into_inner();
                assert!(r.region_error.is_none() && r.error.is_none(), "get {i}: {r:?}");
                assert!(r.found, "key {i} missing");
                assert_eq!(r.value, value(i));
            }
        })
        .await;
    }

    phase("read every key back through the client library");
    let client = Arc::new(cluster.client().await);
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(500) {
        let keys: Vec<Vec<u8>> = chunk.iter().map(|&i| key(i)).collect();
        let got = client.batch_get(&keys).await.expect("batch get");
        assert_eq!(got.len(), chunk.len());
        for (k, v) in got {
            let i: usize = String::from_utf8(k[3..].to_vec()).unwrap().parse().unwrap();
            assert_eq!(v, value(i));
        }
    }

    phase("kill -9 the leader's store while the client writes");
    let pd = pd::client::PdClient::new(&cluster.pd_endpoints()).expect("pd");
    let leader_store = wait_for("a reported region leader", WAIT, || async {
        pd.list_routes().await.ok()?.regions.first()?.leader.map(|l| l.store_id)
    })
    .await;
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, acked, stop) = (client.clone(), acked.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let k = format!("after{i:06}").into_bytes();
                // Users must see success, not region errors, across the kill.
                client.put(&k, &value(i)).await.unwrap_or_else(|e| panic!("put after{i}: {e}"));
                acked.lock().await.insert(i);
                i += 1;
            }
        })
    };
    wait_for("writes before the kill", WAIT, || async { (acked.lock().await.len() >= 20).then_some(()) }).await;
    cluster.store(leader_store).kill();
    let at_kill = acked.lock().await.len();
    wait_for("writes to resume after the kill", WAIT, || async {
        (acked.lock().await.len() >= at_kill + 50).then_some(())
    })
    .await;
    let new_leader = wait_for("a new leader reported to PD", WAIT, || async {
        pd.list_routes().await.ok()?.regions.first()?.leader.map(|l| l.store_id).filter(|s| *s != leader_store)
    })
    .await;
    eprintln!("leader moved from store {leader_store} to store {new_leader}");
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
    let acked: Vec<usize> = acked.lock().await.iter().copied().collect();

    phase("no acknowledged write is missing");
    for &i in &acked {
        let k = format!("after{i:06}").into_bytes();
        assert_eq!(client.get(&k).await.expect("get"), Some(value(i)), "acknowledged write after{i} lost");
    }

    phase("restart every process: data and routes come back");
    let routes_before = pd.list_routes().await.expect("routes");
    drop(client);
    for s in &mut cluster.stores {
        s.kill();
    }
    for p in &mut cluster.pd {
        p.kill();
    }
    for p in &mut cluster.pd {
        p.restart();
    }
    for s in &mut cluster.stores {
        s.restart();
    }
    cluster.wait_serving().await;
    let pd = pd::client::PdClient::new(&cluster.pd_endpoints()).expect("pd");
    let routes_after = pd.list_routes().await.expect("routes");
    assert_eq!(routes_after.regions.len(), routes_before.regions.len());
    assert!(routes_after.version >= routes_before.version, "routes went back in time");
    let client = cluster.client().await;
    let all = client.scan(b"key", b"kez", KEYS + 1).await.expect("scan");
    assert_eq!(all.len(), KEYS);
    for (i, (k, v)) in all.iter().enumerate() {
        assert_eq!((k, v), (&key(i), &value(i)));
    }
    for &i in &acked {
        let k = format!("after{i:06}").into_bytes();
        assert_eq!(client.get(&k).await.expect("get"), Some(value(i)), "after{i} lost in restart");
    }
}
