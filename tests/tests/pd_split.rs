//! PD's side of a split, end to end, against stores played by the test over
//! real heartbeat streams: the directive reaches the region's leader with
//! the epoch and ids PD allocated, the split report swaps the regions in,
//! the operator succeeds and converges once every store claims the new
//! route version, and `pdctl region split` follows it all and prints the
//! result. Then the directive following a leader change, a passing store
//! error retried and a lasting one failing the operator, and the split
//! checker splitting a region that grew past its threshold exactly once.

use std::time::Duration;

use cluster_tests::pd_cluster::PdCluster;
use cluster_tests::test_store::{HeartbeatStream, register_store, split_regions};
use cluster_tests::{http_get, metric_value, pdctl_spawn, pdctl_wait, phase, wait_for};
use pd::client::PdClient;
use proto::{metapb, pdpb};

const WAIT: Duration = Duration::from_secs(20);

fn stats(size: u64, keys: u64) -> pdpb::RegionStats {
    pdpb::RegionStats { approximate_size: size, approximate_keys: keys, ..Default::default() }
}

/// Three registered stores with their heartbeat streams open, and the
/// bootstrap region they host.
async fn three_stores(pd: &PdClient, base_port: u16) -> (Vec<HeartbeatStream>, metapb::Region) {
    let mut streams = Vec::new();
    for i in 0..3 {
        let id = register_store(pd, base_port + 10 * i).await;
        streams.push(HeartbeatStream::open(pd, id).await.expect("stream"));
    }
    let routes =
        wait_for("bootstrap", WAIT, || async { pd.list_routes().await.ok().filter(|r| !r.regions.is_empty()) }).await;
    (streams, routes.regions[0].region.clone().expect("region"))
}

/// Every store reads routes up to `version` and claims it applied.
async fn converge(streams: &mut [HeartbeatStream], version: u64) {
    for s in streams.iter_mut() {
        let r = s.routes_until(WAIT, |r| r.version >= version).await;
        s.report_route_version(r.version).await;
    }
}

async fn region(pd: &PdClient, id: u64) -> metapb::Region {
    pd.get_region_by_id(id).await.expect("region").route.and_then(|r| r.region).expect("region")
}

/// Waits until the catalog names `store`'s peer as the region's leader.
async fn led_from(pd: &PdClient, region_id: u64, store: u64) {
    wait_for("the catalog to name the leader", WAIT, || async {
        let route = pd.get_region_by_id(region_id).await.ok()?.route?;
        (route.leader?.store_id == store).then_some(())
    })
    .await;
}

/// The next directive matching `pred`, skipping re-sends of older ones (a
/// directive goes again every two seconds without progress, so a slow test
/// machine may see one twice).
async fn directive_where(s: &mut HeartbeatStream, pred: impl Fn(&pdpb::Directive) -> bool) -> pdpb::Directive {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let d = s.next_directive(left).await.expect("a directive");
        if pred(&d) {
            return d;
        }
    }
}

async fn operator_status(pd: &PdClient, id: u64, want: pdpb::OperatorStatus) -> pdpb::Operator {
    wait_for(&format!("operator {id} to be {want:?}"), WAIT, || async {
        pd.get_operator(id).await.ok().filter(|op| op.status() == want)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_runs_from_pdctl_to_every_store() {
    phase("one PD member, three scripted stores, store 1 leads the region");
    let cluster = PdCluster::start(1, &["--split-check-interval-ms", "0"]).await;
    let pd = cluster.client();
    let ep = cluster.endpoints().join(",");
    let (mut stores, parent) = three_stores(&pd, 23160).await;
    for s in stores.iter_mut() {
        s.next_routes(WAIT).await.expect("first routes");
    }
    stores[0].report_region_with(&parent, 1, stats(64 << 20, 640_000)).await;
    led_from(&pd, parent.id, stores[0].store_id).await;

    phase("pdctl asks for a split at k; the leader's store gets the directive");
    let child = pdctl_spawn(&["--pd", &ep, "region", "split", &parent.id.to_string(), "--key", "k"]);
    let d = stores[0].next_directive(WAIT).await.expect("directive");
    assert_eq!(d.region_id, parent.id);
    assert_eq!(d.region_epoch, parent.region_epoch, "the directive carries the epoch PD saw");
    let Some(pdpb::directive::Kind::Split(split)) = &d.kind else { panic!("{d:?}") };
    assert_eq!(split.split_key, b"k");
    let ids = split.new_ids.clone().expect("ids");
    assert_eq!(ids.peer_ids.len(), parent.peers.len());
    let op = pd.get_operator(d.id).await.expect("the directive id is the operator id");
    assert_eq!(op.new_region_id, ids.region_id);
    assert!(op.step.contains(&format!("sent to store {}", stores[0].store_id)), "{}", op.step);

    phase("the store reports the split; the catalog swaps the regions in");
    let parts = split_regions(&parent, &d, b"k");
    stores[0].report_split(&parts, 1, d.id, vec![stats(20 << 20, 200_000), stats(44 << 20, 440_000)]).await;
    let op = operator_status(&pd, d.id, pdpb::OperatorStatus::Succeeded).await;
    assert_eq!(op.result.len(), 2);
    assert_eq!(op.result[0].end_key, b"k");
    assert_eq!(op.result[1].start_key, b"k");
    assert!(op.converged_stores < op.total_stores, "no store has claimed the new routes yet");

    phase("every store claims the new routes: converged, and pdctl prints the regions");
    converge(&mut stores, op.result_version).await;
    let op =
        wait_for("convergence", WAIT, || async { pd.get_operator(d.id).await.ok().filter(|op| op.converged_ms > 0) })
            .await;
    assert_eq!((op.converged_stores, op.total_stores), (3, 3));
    let (code, out, err) = pdctl_wait(child, WAIT).await;
    assert_eq!(code, 0, "{out}\n{err}");
    for want in [
        "split directive sent to store",
        "split applied at catalog version",
        "converged on 3/3 stores",
        "20.0MiB",
        "44.0MiB",
    ] {
        assert!(out.contains(want), "pdctl output lacks {want:?}:\n{out}");
    }

    phase("PD keeps the stats the split reported, not the pre-split size");
    let scanned = pd.scan_regions_with_stats(b"", b"", 0).await.expect("scan");
    let sizes: Vec<(u64, u64)> =
        scanned.iter().map(|(r, s)| (r.region.as_ref().unwrap().id, s.approximate_size)).collect();
    assert_eq!(sizes, vec![(ids.region_id, 20 << 20), (parent.id, 44 << 20)]);

    phase("a directive follows the region's leader to another store");
    let right = region(&pd, parent.id).await;
    let child = pdctl_spawn(&["--pd", &ep, "region", "split", &right.id.to_string(), "--key", "t"]);
    let first = directive_where(&mut stores[0], |d| d.region_epoch == right.region_epoch).await;
    stores[1].report_region(&right, 2).await;
    let again = directive_where(&mut stores[1], |d| d.id == first.id).await;
    assert_eq!((again.id, again.region_epoch), (first.id, first.region_epoch), "the same directive, re-sent");

    phase("a lasting store error fails the operator, and a waiting pdctl says why");
    stores[1].directive_failed(&again, pdpb::ErrorType::InvalidSplitKey, "t is past the last key").await;
    let failed = operator_status(&pd, first.id, pdpb::OperatorStatus::Failed).await;
    let err = failed.error.expect("error");
    assert_eq!(err.r#type(), pdpb::ErrorType::InvalidSplitKey);
    assert!(err.message.contains("past the last key"), "{}", err.message);
    let (code, out, err) = pdctl_wait(child, WAIT).await;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("FAILED: INVALID_SPLIT_KEY: t is past the last key"), "{err}");

    phase("a passing store error is retried; the retry succeeds");
    let op = pd.split_region(right.id, b"p", None).await.expect("third split");
    let d = directive_where(&mut stores[1], |d| d.id == op.id).await;
    stores[1].directive_failed(&d, pdpb::ErrorType::NotLeader, "stepping down").await;
    wait_for("the operator to note the answer", WAIT, || async {
        pd.get_operator(op.id).await.ok().filter(|op| op.step.contains("NOT_LEADER"))
    })
    .await;
    let d = directive_where(&mut stores[1], |d| d.id == op.id).await;
    let parts = split_regions(&right, &d, b"p");
    stores[1].report_split(&parts, 2, d.id, vec![stats(1 << 20, 10), stats(1 << 20, 10)]).await;
    let op = operator_status(&pd, op.id, pdpb::OperatorStatus::Succeeded).await;
    converge(&mut stores, op.result_version).await;
    assert_eq!(pd.list_routes().await.expect("routes").regions.len(), 3);

    phase("metrics count what happened");
    let (_, text) = http_get(&cluster.members[0].http(), "/metrics").await.expect("metrics");
    let value = |s: &str| metric_value(&text, s).unwrap_or_else(|| panic!("no {s} in metrics"));
    assert_eq!(value("pd_operators_created_total{kind=\"split\",source=\"admin\"}"), 3.0);
    assert_eq!(value("pd_operators_finished_total{kind=\"split\",outcome=\"succeeded\"}"), 2.0);
    assert_eq!(value("pd_operators_finished_total{kind=\"split\",outcome=\"failed\"}"), 1.0);
    assert_eq!(value("pd_operators_running{kind=\"split\"}"), 0.0);
    assert!(value("pd_directives_sent_total{kind=\"split\"}") >= 5.0);
    assert_eq!(value("pd_directives_failed_total{type=\"NOT_LEADER\"}"), 1.0);
    assert!(value("pd_split_converged_seconds_count") >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_split_checker_splits_a_region_past_its_threshold_once() {
    phase("PD checks every 100 ms and splits regions at 4 KiB");
    let cluster = PdCluster::start(
        1,
        &["--split-check-interval-ms", "100", "--region-split-size", "4KiB", "--region-max-size", "8KiB"],
    )
    .await;
    let pd = cluster.client();
    let http = cluster.members[0].http();
    let (mut stores, parent) = three_stores(&pd, 24160).await;
    for s in stores.iter_mut() {
        s.next_routes(WAIT).await.expect("first routes");
    }

    phase("a small region is left alone; once it reports 16 KiB it gets a split at its middle");
    stores[0].report_region_with(&parent, 1, stats(2048, 20)).await;
    led_from(&pd, parent.id, stores[0].store_id).await;
    let checks = |text: &str| metric_value(text, "pd_split_checks_total").expect("checks metric");
    let (_, text) = http_get(&http, "/metrics").await.expect("metrics");
    let from = checks(&text);
    wait_for("two split checks", WAIT, || async {
        let (_, text) = http_get(&http, "/metrics").await.ok()?;
        (checks(&text) >= from + 2.0).then_some(())
    })
    .await;
    assert!(pd.list_operators(true).await.expect("list").is_empty(), "2 KiB is below the threshold");
    stores[0].report_region_with(&parent, 1, stats(16 << 10, 160)).await;
    let d = stores[0].next_directive(WAIT).await.expect("split directive");
    let Some(pdpb::directive::Kind::Split(split)) = &d.kind else { panic!("{d:?}") };
    assert!(split.split_key.is_empty(), "the leader picks the middle");
    let op = pd.get_operator(d.id).await.expect("operator");
    assert_eq!(op.source, "split-checker");

    phase("the leader splits at m and reports both halves' sizes: no second split");
    let parts = split_regions(&parent, &d, b"m");
    stores[0].report_split(&parts, 1, d.id, vec![stats(3 << 10, 30), stats(3 << 10, 30)]).await;
    let op = operator_status(&pd, d.id, pdpb::OperatorStatus::Succeeded).await;
    assert_eq!(op.result[0].end_key, b"m");
    let (_, text) = http_get(&http, "/metrics").await.expect("metrics");
    let from = checks(&text);
    wait_for("three more split checks", WAIT, || async {
        let (_, text) = http_get(&http, "/metrics").await.ok()?;
        (checks(&text) >= from + 3.0).then_some(())
    })
    .await;
    let ops = pd.list_operators(true).await.expect("list");
    assert_eq!(ops.len(), 1, "the halves are below the threshold; the parent's 16 KiB is forgotten: {ops:?}");
    let sizes: Vec<u64> =
        pd.scan_regions_with_stats(b"", b"", 0).await.expect("scan").iter().map(|(_, s)| s.approximate_size).collect();
    assert_eq!(sizes, vec![3 << 10, 3 << 10]);
}
