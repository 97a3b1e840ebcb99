//! Region heartbeats carry each region's written and read flow, and
//! `pdctl region list --top-write N | --top-read N` ranks regions by it:
//! with writes in one region and reads in another, each leads its list.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cluster_tests::cluster::Cluster;
use cluster_tests::split::split_region;
use cluster_tests::{pdctl, phase, wait_for};
use pd::client::PdClient;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);
/// Keys the load writes and reads: all below the split key.
const KEYS: usize = 50;

/// The id and field `rate` of the first region `pdctl -o json region list
/// <flag> 1` prints.
fn hottest(ep: &str, flag: &str, rate: &str) -> (u64, u64) {
    let (code, out, err) = pdctl(&["--pd", ep, "-o", "json", "region", "list", flag, "1"]);
    assert_eq!(code, 0, "{out}{err}");
    let json: Value = serde_json::from_str(&out).expect("pdctl prints JSON");
    assert_eq!(json["count"], 1, "{out}");
    let first = &json["regions"][0];
    (first["id"].as_u64().expect("region id"), first[rate].as_u64().expect("rate"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn written_and_read_regions_top_their_lists() {
    phase("three stores, the key space split at m");
    let cluster = Cluster::start(1, 3, &[]).await;
    let pd = PdClient::new(&cluster.pd_endpoints()).expect("pd");
    let ep = cluster.pd_endpoints().join(",");
    let first = pd.list_routes().await.expect("routes").regions[0].region.clone().expect("region").id;
    split_region(&pd, first, b"m", WAIT).await.expect("split");
    let routes = pd.list_routes().await.expect("routes");
    let id_of = |key: &[u8]| {
        routes
            .regions
            .iter()
            .filter_map(|r| r.region.as_ref())
            .find(|r| r.start_key.as_slice() <= key && (r.end_key.is_empty() || key < r.end_key.as_slice()))
            .expect("a region holds the key")
            .id
    };
    let (written, read) = (id_of(b"a"), id_of(b"z"));
    assert_ne!(written, read);

    phase("seed keys in z, then write under a and read under z until stopped");
    let client = cluster.client().await;
    for i in 0..KEYS {
        client.put(format!("z{i:03}").as_bytes(), &[1u8; 256]).await.expect("seed");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (client, stop) = (cluster.client().await, stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                for i in 0..KEYS {
                    client.put(format!("a{i:03}").as_bytes(), &[2u8; 256]).await.expect("put");
                    client.get(format!("z{i:03}").as_bytes()).await.expect("get").expect("seeded");
                }
            }
        })
    };

    phase("pdctl ranks the written region first by writes, the read one by reads");
    wait_for("the written region to top --top-write", WAIT, || async {
        let (id, rate) = hottest(&ep, "--top-write", "written_bytes_per_sec");
        (id == written && rate > 0).then_some(())
    })
    .await;
    wait_for("the read region to top --top-read", WAIT, || async {
        let (id, rate) = hottest(&ep, "--top-read", "read_bytes_per_sec");
        (id == read && rate > 0).then_some(())
    })
    .await;
    let (code, out, err) = pdctl(&["--pd", &ep, "region", "list", "--top-read", "2"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.lines().next().unwrap_or("").contains("READ_BYTES"), "{out}");
    assert!(out.lines().nth(1).unwrap_or("").starts_with(&format!("{read} ")), "{out}");

    phase("the stores' heartbeats carry the read totals");
    wait_for("a store reporting reads", WAIT, || async {
        let (_, out, _) = pdctl(&["--pd", &ep, "-o", "json", "store", "list"]);
        let json: Value = serde_json::from_str(&out).ok()?;
        json["stores"].as_array()?.iter().any(|s| s["status"]["bytes_read"].as_u64() > Some(0)).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    load.await.expect("load");

    phase("bad input: N = 0, both flags");
    let (code, _, err) = pdctl(&["--pd", &ep, "region", "list", "--top-write", "0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--top-write needs a number of regions of at least 1"), "{err}");
    let (code, _, err) = pdctl(&["--pd", &ep, "region", "list", "--top-write", "1", "--top-read", "1"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not both"), "{err}");
}
