//! Region split end to end: an operator splits a region while clients
//! write, a follower misses the split behind a partition and catches up,
//! and a whole cluster restarts after several splits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cluster_tests::cluster::Cluster;
use cluster_tests::split::{local_scan, split_region, wait_converged};
use cluster_tests::{binary, http_request, phase, wait_for};
use pd::client::PdClient;

const WAIT: Duration = Duration::from_secs(60);

/// A writer's acknowledged values by key, and the errors it saw.
type Writer = tokio::task::JoinHandle<(BTreeMap<Vec<u8>, Vec<u8>>, Vec<String>)>;

/// Writers putting keys on both sides of `m` until told to stop; each
/// returns every value it had acknowledged, by key, and its errors.
fn start_writers(client: Arc<storenode::client::Client>, stop: Arc<AtomicBool>) -> Vec<Writer> {
    ["a", "f", "p", "w"]
        .into_iter()
        .map(|prefix| {
            let (client, stop) = (client.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut acked, mut errors) = (BTreeMap::new(), Vec::new());
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("{prefix}{:03}", i % 200).into_bytes();
                    let value = format!("v{i}").into_bytes();
                    match client.put(&key, &value).await {
                        Ok(()) => {
                            acked.insert(key, value);
                        }
                        Err(e) => errors.push(e.to_string()),
                    }
                    i += 1;
                }
                (acked, errors)
            })
        })
        .collect()
}

async fn stop_writers(stop: &AtomicBool, writers: Vec<Writer>) -> BTreeMap<Vec<u8>, Vec<u8>> {
    stop.store(true, Ordering::Relaxed);
    let mut all = BTreeMap::new();
    for w in writers {
        let (acked, errors) = w.await.expect("writer");
        assert!(errors.is_empty(), "clients saw errors during the split: {errors:?}");
        all.extend(acked);
    }
    all
}

async fn assert_all_readable(client: &storenode::client::Client, acked: &BTreeMap<Vec<u8>, Vec<u8>>) {
    for (k, v) in acked {
        let got = client.get(k).await.expect("get");
        assert_eq!(got.as_ref(), Some(v), "key {} lost its acknowledged value", String::from_utf8_lossy(k));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pdctl_splits_a_region_under_writes_without_errors() {
    phase("one region on three stores, four writers on both sides of m");
    let cluster = Cluster::start(1, 3, &[]).await;
    let client = Arc::new(cluster.client().await);
    let pd = PdClient::new(&cluster.pd_endpoints()).expect("pd");
    let before = pd.list_routes().await.expect("routes");
    assert_eq!(before.regions.len(), 1);
    let region_id = before.regions[0].region.as_ref().unwrap().id;
    let stop = Arc::new(AtomicBool::new(false));
    let writers = start_writers(client.clone(), stop.clone());
    wait_for("writes on both sides", WAIT, || async { client.get(b"w005").await.ok().flatten() }).await;

    phase("pdctl region split at m: returns once every store serves both halves");
    let out = std::process::Command::new(binary("pdctl"))
        .args(["--pd", &cluster.pd_endpoints().join(","), "region", "split", &region_id.to_string(), "--key", "m"])
        .output()
        .expect("pdctl runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "pdctl failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("converged on 3/3 stores"), "no convergence line in: {stdout}");

    phase("writers keep going on both halves, then stop: no errors, nothing lost");
    let after_split = client.get(b"p000").await.expect("get");
    assert!(after_split.is_some());
    let acked = stop_writers(&stop, writers).await;
    assert_all_readable(&client, &acked).await;

    phase("two regions, three replicas and a leader each; every store on PD's version");
    let routes = wait_converged(&cluster, 3, WAIT).await;
    assert_eq!(routes.regions.len(), 2);
    let left = routes.regions[0].region.clone().unwrap();
    let right = routes.regions[1].region.clone().unwrap();
    assert_eq!((left.start_key.as_slice(), left.end_key.as_slice()), (b"".as_slice(), b"m".as_slice()));
    assert_eq!((right.start_key.as_slice(), right.end_key.as_slice()), (b"m".as_slice(), b"".as_slice()));
    assert_eq!(right.id, region_id, "the original region keeps the right part");
    assert_eq!(right.region_epoch.unwrap().version, left.region_epoch.unwrap().version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_partitioned_during_a_split_catches_up() {
    phase("three stores with fault injection");
    let cluster = Cluster::start_with(1, 3, &[], &["--fault-injection"]).await;
    let client = cluster.client().await;
    let pd = PdClient::new(&cluster.pd_endpoints()).expect("pd");
    for i in 0..100 {
        client.put(format!("k{i:03}").as_bytes(), b"before").await.expect("put");
    }
    let route = wait_for("a leader", WAIT, || async {
        pd.list_routes().await.ok()?.regions.first().filter(|r| r.leader.is_some()).cloned()
    })
    .await;
    let region = route.region.unwrap();
    let leader = route.leader.unwrap().store_id;
    let follower = cluster.stores.iter().find(|s| s.store_id != leader).unwrap();
    let others: Vec<u64> = cluster.stores.iter().map(|s| s.store_id).filter(|s| *s != follower.store_id).collect();

    phase("cut one follower off from the other stores (not from PD) and split");
    let body = format!("{{\"stores\":{others:?},\"pd\":false}}");
    let (status, _) =
        http_request(&follower.http(), "PUT", "/debug/partition", body.as_bytes()).await.expect("partition");
    assert_eq!(status, 200);
    let op = split_region(&pd, region.id, b"k050", WAIT).await.expect("split");
    let new_id = op.new_region_id;
    for i in 0..100 {
        client.put(format!("k{i:03}").as_bytes(), format!("after{i}").as_bytes()).await.expect("put");
    }

    phase("heal: the follower's copies of both halves catch up, no divergence");
    let (status, _) = http_request(&follower.http(), "DELETE", "/debug/partition", b"").await.expect("heal");
    assert_eq!(status, 200);
    let expected: Vec<(Vec<u8>, Vec<u8>)> =
        (0..100).map(|i| (format!("k{i:03}").into_bytes(), format!("after{i}").into_bytes())).collect();
    for store in &cluster.stores {
        let grpc = store.grpc();
        wait_for(&format!("store {} to hold both halves", store.store_id), WAIT, || async {
            let left = local_scan(&grpc, new_id, b"k", b"k050").await?;
            let right = local_scan(&grpc, region.id, b"k050", b"l").await?;
            let all: Vec<_> = left.into_iter().chain(right).collect();
            (all == expected).then_some(())
        })
        .await;
    }
    wait_converged(&cluster, 3, WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn routes_and_data_survive_a_restart_after_several_splits() {
    phase("three splits, keys everywhere");
    let mut cluster = Cluster::start(1, 3, &[]).await;
    let client = cluster.client().await;
    let pd = PdClient::new(&cluster.pd_endpoints()).expect("pd");
    for i in 0..200 {
        client.put(format!("r{i:03}").as_bytes(), format!("v{i}").as_bytes()).await.expect("put");
    }
    for key in ["r150", "r050", "r100"] {
        let id = pd.get_region(key.as_bytes()).await.expect("region").route.unwrap().region.unwrap().id;
        split_region(&pd, id, key.as_bytes(), WAIT).await.expect("split");
    }
    let before = wait_converged(&cluster, 3, WAIT).await;
    assert_eq!(before.regions.len(), 4);

    phase("stop every store and PD member, start them again");
    for s in &mut cluster.stores {
        s.stop(Duration::from_secs(10));
    }
    for m in &mut cluster.pd {
        m.stop(Duration::from_secs(10));
    }
    for m in &mut cluster.pd {
        m.restart();
    }
    for s in &mut cluster.stores {
        s.restart();
    }

    phase("the same routes, every key readable");
    let after = wait_converged(&cluster, 3, WAIT).await;
    let ranges = |r: &proto::pdpb::RouteSnapshot| {
        r.regions
            .iter()
            .map(|r| r.region.clone().unwrap())
            .map(|r| (r.id, r.start_key, r.end_key, r.region_epoch))
            .collect::<Vec<_>>()
    };
    assert_eq!(ranges(&after), ranges(&before));
    let client = cluster.client().await;
    for i in 0..200 {
        let got = client.get(format!("r{i:03}").as_bytes()).await.expect("get");
        assert_eq!(got, Some(format!("v{i}").into_bytes()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sustained_writes_split_regions_until_all_are_under_the_max() {
    phase("PD splits at 64 KiB (max 96 KiB), checking every 200 ms");
    let pd_args = ["--split-check-interval-ms", "200", "--region-split-size", "64KiB", "--region-max-size", "96KiB"];
    let cluster = Cluster::start(1, 3, &pd_args).await;
    let client = Arc::new(cluster.client().await);
    let pd = PdClient::new(&cluster.pd_endpoints()).expect("pd");

    phase("four writers put 1 KiB values on spread keys: about 1 MiB");
    let value = vec![b'x'; 1024];
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let (client, value) = (client.clone(), value.clone());
            tokio::spawn(async move {
                for i in (w..1000).step_by(4) {
                    let key = format!("auto{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                    client.put(key.as_bytes(), &value).await.expect("put");
                }
            })
        })
        .collect();
    for w in writers {
        w.await.expect("writer");
    }

    phase("regions split by themselves until every one is under 96 KiB");
    let max = 96 * 1024;
    let sizes = wait_for("every region under the max size", Duration::from_secs(120), || async {
        let routes = pd.list_routes().await.ok()?;
        let mut sizes = Vec::new();
        for r in &routes.regions {
            let id = r.region.as_ref()?.id;
            let stats = pd.get_region_by_id(id).await.ok()?.stats?;
            if stats.approximate_size >= max {
                return None;
            }
            sizes.push(stats.approximate_size);
        }
        (sizes.len() >= 8 && sizes.iter().sum::<u64>() >= 1000 * 1024).then_some(sizes)
    })
    .await;
    eprintln!("region sizes: {sizes:?}");
    wait_converged(&cluster, 3, WAIT).await;
    for i in (0..1000u64).step_by(37) {
        let key = format!("auto{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        assert_eq!(client.get(key.as_bytes()).await.expect("get"), Some(value.clone()));
    }
}
