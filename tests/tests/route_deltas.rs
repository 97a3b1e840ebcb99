//! Route deltas, end to end against a real PD: a store or watcher that
//! missed versions gets exactly the regions changed since the version it
//! holds, one too far behind PD's history gets a full snapshot, a store
//! that asks for one gets it, and afterwards its routes equal PD's. Then
//! real storage nodes following a split by deltas, their routes equal to
//! PD's.

use std::time::Duration;

use cluster_tests::cluster::Cluster;
use cluster_tests::pd_cluster::PdCluster;
use cluster_tests::split::{split_region, store_route_version};
use cluster_tests::test_store::{HeartbeatStream, RouteUpdate, register_store};
use cluster_tests::{http_get, metric_value, phase, wait_for};
use pd::client::PdClient;
use pd::routes::apply_delta;
use proto::{metapb, pdpb};

const WAIT: Duration = Duration::from_secs(20);
/// Small, so a test gets beyond it with a handful of changes.
const HISTORY: u64 = 8;

fn pd_args(history: &str) -> Vec<&str> {
    vec![
        "--route-history-versions",
        history,
        "--bootstrap-split-keys",
        "b,d,f,h",
        // Nothing but the test changes routes.
        "--split-check-interval-ms",
        "0",
        "--replica-check-interval-ms",
        "0",
    ]
}

/// Three registered stores, the first one's stream open (it reports), and
/// the routes once the bootstrap's five regions are in.
async fn bootstrapped(pd: &PdClient) -> (Vec<u64>, HeartbeatStream, pdpb::RouteSnapshot) {
    let mut ids = Vec::new();
    for port in [20160, 20170, 20180] {
        ids.push(register_store(pd, port).await);
    }
    let reporter = HeartbeatStream::open(pd, ids[0]).await.expect("reporter stream");
    let routes =
        wait_for("bootstrap", WAIT, || async { pd.list_routes().await.ok().filter(|r| r.regions.len() == 5) }).await;
    (ids, reporter, routes)
}

fn region_at(routes: &pdpb::RouteSnapshot, key: &[u8]) -> metapb::Region {
    routes
        .regions
        .iter()
        .filter_map(|r| r.region.clone())
        .find(|r| pd::catalog::keys::contains(&r.start_key, &r.end_key, key))
        .expect("a region holds the key")
}

/// Waits until PD's routes are at `version`, and returns them.
async fn routes_at(pd: &PdClient, version: u64) -> pdpb::RouteSnapshot {
    wait_for(&format!("catalog version {version}"), WAIT, || async {
        pd.list_routes().await.ok().filter(|r| r.version == version)
    })
    .await
}

/// Reports the region at `key` led from `hb`'s store at `term`, and waits
/// for the version it makes.
async fn lead(pd: &PdClient, hb: &HeartbeatStream, key: &[u8], term: u64) -> pdpb::RouteSnapshot {
    let routes = pd.list_routes().await.expect("routes");
    hb.report_region(&region_at(&routes, key), term).await;
    routes_at(pd, routes.version + 1).await
}

/// Reports a split at `key` by `hb`'s store (leading the region at term
/// 1), the new region taking the left part; waits for its version.
async fn split(pd: &PdClient, hb: &HeartbeatStream, key: &[u8]) -> pdpb::RouteSnapshot {
    let routes = pd.list_routes().await.expect("routes");
    let old = region_at(&routes, key);
    let mut right = old.clone();
    right.start_key = key.to_vec();
    right.region_epoch.as_mut().expect("epoch").version += 1;
    let mut left = right.clone();
    left.id = pd.alloc_id().await.expect("id");
    left.start_key = old.start_key.clone();
    left.end_key = key.to_vec();
    for p in &mut left.peers {
        p.id = pd.alloc_id().await.expect("id");
    }
    hb.report_split(&[left, right], 1, 0, Vec::new()).await;
    routes_at(pd, routes.version + 1).await
}

fn ids(routes: &[pdpb::RegionRoute]) -> Vec<u64> {
    routes.iter().map(|r| r.region.as_ref().expect("region").id).collect()
}

async fn next_update(hb: &mut HeartbeatStream) -> RouteUpdate {
    hb.next_update(WAIT).await.expect("routes on the stream")
}

async fn next_watch(s: &mut tonic::Streaming<pdpb::WatchRoutesResponse>) -> pdpb::WatchRoutesResponse {
    tokio::time::timeout(WAIT, s.message())
        .await
        .expect("watch message in time")
        .expect("watch stream healthy")
        .expect("watch stream open")
}

async fn pd_metric(pd: &PdCluster, sample: &str) -> f64 {
    let (_, body) = http_get(&pd.members[0].http(), "/metrics").await.expect("PD metrics");
    metric_value(&body, sample).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_missed_versions_gets_exactly_the_regions_changed() {
    phase("a PD keeping 8 versions; three stores; five regions");
    let history = HISTORY.to_string();
    let cluster = PdCluster::start(1, &pd_args(&history)).await;
    let pd = cluster.client();
    let (stores, reporter, _) = bootstrapped(&pd).await;

    phase("the lagging store holds nothing: it gets the full snapshot");
    let mut lagging = HeartbeatStream::open_for_deltas(&pd, stores[1], 0).await.expect("stream");
    let RouteUpdate::Full(held) = next_update(&mut lagging).await else {
        panic!("a store with nothing gets a full snapshot")
    };
    assert_eq!(held, pd.list_routes().await.expect("routes"));
    drop(lagging);

    phase("while it is away: two leaders reported, then one of their regions splits");
    let b = region_at(&held, b"c");
    let f = region_at(&held, b"g");
    lead(&pd, &reporter, b"c", 1).await;
    lead(&pd, &reporter, b"g", 1).await;
    let now = split(&pd, &reporter, b"c").await;
    assert_eq!(now.version, held.version + 3);
    let born = region_at(&now, b"b").id;
    assert!(born != b.id);

    phase("it comes back naming its version: a delta of exactly those regions");
    let mut lagging = HeartbeatStream::open_for_deltas(&pd, stores[1], held.version).await.expect("stream");
    let RouteUpdate::Delta(delta) = next_update(&mut lagging).await else {
        panic!("a store within the history gets a delta")
    };
    assert_eq!((delta.from_version, delta.to_version), (held.version, now.version));
    // Region [b, d) changed twice and is there once; the split's new region
    // is there; the three untouched regions and the stores are not.
    assert_eq!(ids(&delta.upserted), vec![born, b.id, f.id], "in start-key order");
    assert!(delta.removed.is_empty() && delta.stores.is_empty(), "{delta:?}");
    assert_eq!(apply_delta(&held, &delta).expect("applies"), now, "routes equal PD's afterwards");

    phase("a watcher from the same version gets the same delta");
    let mut watch = pd.watch_route_deltas(held.version).await.expect("watch");
    let first = next_watch(&mut watch).await;
    assert!(first.routes.is_none());
    assert_eq!(first.delta.as_ref(), Some(&delta));

    phase("the next change reaches both as a one-region delta");
    let h = region_at(&now, b"x");
    let later = lead(&pd, &reporter, b"x", 1).await;
    let RouteUpdate::Delta(next) = next_update(&mut lagging).await else { panic!("a delta") };
    assert_eq!((next.from_version, next.to_version), (now.version, later.version));
    assert_eq!(ids(&next.upserted), vec![h.id]);
    assert_eq!(next_watch(&mut watch).await.delta, Some(next.clone()));
    assert_eq!(apply_delta(&now, &next).expect("applies"), later);

    phase("a store that asks for a full snapshot gets one");
    lagging.want_full_routes(held.version).await;
    let RouteUpdate::Full(full) = next_update(&mut lagging).await else { panic!("a full snapshot") };
    assert_eq!(full, later);

    assert!(pd_metric(&cluster, "pd_route_pushes_total{kind=\"delta\",stream=\"heartbeat\"}").await >= 2.0);
    assert!(pd_metric(&cluster, "pd_route_pushes_total{kind=\"delta\",stream=\"watch\"}").await >= 2.0);
    assert!(pd_metric(&cluster, "pd_route_resyncs_total").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_beyond_the_history_gets_a_full_snapshot_equal_to_pds_routes() {
    phase("a PD keeping 8 versions; three stores; five regions");
    let history = HISTORY.to_string();
    let cluster = PdCluster::start(1, &pd_args(&history)).await;
    let pd = cluster.client();
    let (stores, reporter, held) = bootstrapped(&pd).await;
    let other = HeartbeatStream::open(&pd, stores[2]).await.expect("second reporter");

    phase("ten leader changes while the lagging store is away: beyond the history");
    let changes = HISTORY + 2;
    let mut now = held.clone();
    for term in 1..=changes {
        let hb = if term % 2 == 1 { &reporter } else { &other };
        now = lead(&pd, hb, b"a", term).await;
    }
    assert_eq!(now.version, held.version + changes);

    phase("it comes back naming its version: a full snapshot, equal to PD's routes");
    let mut lagging = HeartbeatStream::open_for_deltas(&pd, stores[1], held.version).await.expect("stream");
    let RouteUpdate::Full(full) = next_update(&mut lagging).await else {
        panic!("beyond the history: a full snapshot")
    };
    assert_eq!(full, now);
    assert_eq!(full, pd.list_routes().await.expect("routes"));

    phase("a watcher as far behind gets a full snapshot; one within the history a delta");
    let mut far = pd.watch_route_deltas(held.version).await.expect("watch");
    let first = next_watch(&mut far).await;
    assert!(first.delta.is_none());
    assert_eq!(first.routes, Some(now.clone()));
    let mut near = pd.watch_route_deltas(now.version - 3).await.expect("watch");
    let delta = next_watch(&mut near).await.delta.expect("a delta within the history");
    assert_eq!(ids(&delta.upserted), vec![region_at(&now, b"a").id], "one region changed, three times");
    assert_eq!(delta.to_version, now.version);

    phase("the store on the full snapshot follows the next change by delta");
    let later = lead(&pd, &reporter, b"c", 1).await;
    let RouteUpdate::Delta(next) = next_update(&mut lagging).await else { panic!("a delta") };
    assert_eq!(next.from_version, now.version);
    assert_eq!(apply_delta(&full, &next).expect("applies"), later);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_nodes_follow_a_split_by_delta_and_hold_pds_routes() {
    phase("PD and three storage nodes");
    let cluster = Cluster::start(1, 3, &["--route-history-versions", "8"]).await;
    let pd = PdClient::new(&cluster.pd_endpoints()).expect("pd client");
    let pd_http = cluster.pd[0].http();
    let delta_pushes = "pd_route_pushes_total{kind=\"delta\",stream=\"heartbeat\"}";
    let before = {
        let (_, body) = http_get(&pd_http, "/metrics").await.expect("PD metrics");
        metric_value(&body, delta_pushes).unwrap_or(0.0)
    };

    phase("split the region at m");
    let routes = pd.list_routes().await.expect("routes");
    let region = region_at(&routes, b"m");
    split_region(&pd, region.id, b"m", WAIT).await.expect("split converges");

    phase("every store holds PD's routes, reached by applying deltas");
    let json = |body: String| serde_json::from_str::<serde_json::Value>(&body).ok();
    for store in &cluster.stores {
        let http = store.http();
        let held = wait_for(&format!("store {} to hold PD's routes", store.store_id), WAIT, || async {
            let pd_routes = json(http_get(&pd_http, "/api/v1/routes").await.ok()?.1)?;
            let held = json(http_get(&http, "/routes").await.ok()?.1)?;
            (held == pd_routes).then_some(held)
        })
        .await;
        assert_eq!(held["count"], 2, "the split's two regions");
        assert_eq!(store_route_version(&http).await, held["version"].as_u64());
        let (_, metrics) = http_get(&http, "/metrics").await.expect("store metrics");
        let applied = metric_value(&metrics, "store_route_updates_total{kind=\"delta\",result=\"applied\"}");
        assert!(applied.unwrap_or(0.0) >= 1.0, "store {} applied deltas", store.store_id);
        for refused in ["gap", "malformed"] {
            let sample = format!("store_route_updates_total{{kind=\"delta\",result=\"{refused}\"}}");
            assert_eq!(metric_value(&metrics, &sample).unwrap_or(0.0), 0.0, "store {}: {refused}", store.store_id);
        }
    }
    let (_, body) = http_get(&pd_http, "/metrics").await.expect("PD metrics");
    assert!(metric_value(&body, delta_pushes).unwrap_or(0.0) >= before + 3.0, "one delta per store at least");
}
