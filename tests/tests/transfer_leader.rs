//! Leader transfer end to end: `pdctl region transfer-leader` moves a
//! region's leadership to each other store in turn while clients write, and
//! bad requests get their documented errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cluster_tests::cluster::Cluster;
use cluster_tests::split::wait_converged;
use cluster_tests::{pdctl, phase, wait_for};
use pd::client::PdClient;
use pd::error::PdError;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pdctl_moves_leadership_to_every_store_under_writes() {
    phase("one region on three of four stores, a writer running");
    let cluster = Cluster::start(1, 4, &[]).await;
    let client = Arc::new(cluster.client().await);
    let pd = PdClient::new(&cluster.pd_endpoints()).expect("pd");
    let endpoints = cluster.pd_endpoints().join(",");
    let route = wait_for("a region leader", WAIT, || async {
        pd.list_routes().await.ok()?.regions.first().filter(|r| r.leader.is_some()).cloned()
    })
    .await;
    let region = route.region.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move {
            let mut errors = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Err(e) = client.put(format!("t{:03}", i % 100).as_bytes(), format!("v{i}").as_bytes()).await {
                    errors.push(e.to_string());
                }
                i += 1;
            }
            (i, errors)
        })
    };

    phase("transfer to each voter's store in turn: pdctl returns once every store has the routes");
    let voters: Vec<u64> = region.peers.iter().map(|p| p.store_id).collect();
    let mut order = voters.clone();
    order.rotate_left(1);
    for to in order {
        let (code, out, err) =
            pdctl(&["--pd", &endpoints, "region", "transfer-leader", &region.id.to_string(), &to.to_string()]);
        assert_eq!(code, 0, "{out}\n{err}");
        assert!(out.contains("converged on 4/4 stores"), "no convergence line in: {out}");
        let led = pd.get_region_by_id(region.id).await.expect("region").route.unwrap().leader.unwrap();
        assert_eq!(led.store_id, to, "PD's routes name the new leader");
        let store = cluster.stores.iter().find(|s| s.store_id == to).unwrap();
        let (_, metrics) = cluster_tests::http_get(&store.http(), "/metrics").await.expect("metrics");
        assert_eq!(cluster_tests::metric_value(&metrics, "store_leaders"), Some(1.0), "store {to} leads the region");
    }

    phase("the writer saw no errors");
    stop.store(true, Ordering::Relaxed);
    let (writes, errors) = writer.await.expect("writer");
    assert!(errors.is_empty(), "clients saw errors during transfers: {errors:?}");
    assert!(writes > 0);
    wait_converged(&cluster, 3, WAIT).await;

    phase("bad requests: each with its error, pdctl exits non-zero");
    let outsider = cluster.stores.iter().map(|s| s.store_id).find(|s| !voters.contains(s)).unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["region", "transfer-leader", "999", "1"], "region 999 not found"),
        (&["region", "transfer-leader", &region.id.to_string(), "99"], "store 99 not found"),
        (&["region", "transfer-leader", &region.id.to_string(), &outsider.to_string()], "holds no voter"),
        (&["region", "transfer-leader", &region.id.to_string(), "0"], "must not be 0"),
    ];
    for (args, want) in cases {
        let mut full = vec!["--pd", endpoints.as_str()];
        full.extend_from_slice(args);
        let (code, out, err) = pdctl(&full);
        assert_ne!(code, 0, "{args:?} succeeded: {out}");
        assert!(err.contains(want), "{args:?}: stderr lacks {want:?}: {err}");
    }
    let pd_http = cluster.pd[0].http();
    let path = format!("/api/v1/regions/{}/transfer-leader", region.id);
    for (body, want_status, want_type) in [
        (&br#"{"store_id": 99}"#[..], 404, "STORE_NOT_FOUND"),
        (br#"{"store": 1}"#, 400, "INVALID_ARGUMENT"),
        (b"not json", 400, "INVALID_ARGUMENT"),
    ] {
        let (status, text) = cluster_tests::http_request(&pd_http, "POST", &path, body).await.expect("http");
        assert_eq!(status, want_status, "{text}");
        assert!(text.contains(want_type), "{text}");
    }
    let back = voters[0].to_string();
    let (status, text) =
        cluster_tests::http_request(&pd_http, "POST", &path, format!("{{\"store_id\": {back}}}").as_bytes())
            .await
            .expect("http");
    assert_eq!(status, 201, "{text}");
    assert!(text.contains("TRANSFER_LEADER"), "{text}");
    assert!(matches!(pd.transfer_leader(999, 1).await, Err(PdError::RegionNotFound(999))));
    assert!(matches!(pd.transfer_leader(region.id, 99).await, Err(PdError::StoreNotFound(99))));
    assert!(matches!(pd.transfer_leader(region.id, outsider).await, Err(PdError::InvalidArgument(_))));
}
