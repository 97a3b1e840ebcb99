//! pdctl's split and transfer-leader return once the operator is done and
//! the stores that heartbeat have the routes, naming a paused store (still
//! Up in PD's catalog) instead of waiting for it until `--timeout`.

use std::time::Duration;

use cluster_tests::cluster::Cluster;
use cluster_tests::{pdctl_spawn, pdctl_wait, phase, wait_for};
use pd::client::PdClient;

const WAIT: Duration = Duration::from_secs(60);
/// pdctl's own deadline: far beyond the wait the test allows it, so a
/// pdctl that waits for the paused store runs into the test's deadline.
const PDCTL_TIMEOUT: &str = "300";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pdctl_does_not_wait_for_a_paused_store() {
    phase("three stores (heartbeating every 500 ms), one region");
    let mut cluster = Cluster::start(1, 3, &[]).await;
    let pd = PdClient::new(&cluster.pd_endpoints()).expect("pd");
    let ep = cluster.pd_endpoints().join(",");
    let (region_id, leader) = wait_for("PD names the region's leader", WAIT, || async {
        let routes = pd.list_routes().await.ok()?;
        let route = routes.regions.first()?;
        Some((route.region.as_ref()?.id, route.leader?.store_id))
    })
    .await;
    let mut followers = cluster.stores.iter().map(|s| s.store_id).filter(|s| *s != leader);
    let (paused, live) = (followers.next().expect("a follower"), followers.next().expect("another"));

    phase("SIGSTOP a follower's store: still Up in PD, no more heartbeats");
    cluster.store(paused).signal("STOP");

    phase("pdctl region split returns once the live stores have the routes");
    let split = pdctl_spawn(&[
        "--pd",
        &ep,
        "region",
        "split",
        &region_id.to_string(),
        "--key",
        "m",
        "--timeout",
        PDCTL_TIMEOUT,
    ]);
    let (code, out, err) = pdctl_wait(split, WAIT).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("converged on 2/3 stores"), "{out}");
    assert!(out.contains(&format!("not waiting for store {paused} (no heartbeat for")), "{out}");

    phase("pdctl region transfer-leader too");
    let transfer = pdctl_spawn(&[
        "--pd",
        &ep,
        "region",
        "transfer-leader",
        &region_id.to_string(),
        &live.to_string(),
        "--timeout",
        PDCTL_TIMEOUT,
    ]);
    let (code, out, err) = pdctl_wait(transfer, WAIT).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("not waiting for store {paused}")), "{out}");

    phase("resumed, the store takes the routes");
    cluster.store(paused).signal("CONT");
}
