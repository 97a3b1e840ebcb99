//! Bad split and operator requests get their documented error through gRPC,
//! HTTP and pdctl, and change nothing: unknown regions, split keys outside
//! a region or at its start, stale epochs, a region already under an
//! operator, unknown operators, followers, an unbootstrapped cluster, and an
//! operator that times out.
//!
//! No storage nodes: stores are registered by hand, so no region has a
//! leader, and a split operator stays RUNNING (waiting for a leader) until
//! it is cancelled or times out.

use std::time::Duration;

use cluster_tests::pd_cluster::PdCluster;
use cluster_tests::test_store::register_store;
use cluster_tests::{http_request, pdctl, pdctl_spawn, pdctl_wait, phase, wait_for};
use pd::error::PdError;
use proto::{metapb, pdpb};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

/// An HTTP call answering (status, JSON body).
async fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (status, text) = http_request(addr, method, path, body.as_bytes()).await.expect("http");
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text:?}")))
}

fn region_at<'a>(routes: &'a pdpb::RouteSnapshot, start: &[u8]) -> &'a metapb::Region {
    routes
        .regions
        .iter()
        .filter_map(|r| r.region.as_ref())
        .find(|r| r.start_key == start)
        .expect("region with that start key")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_and_operator_requests_are_validated_everywhere() {
    phase("a 3-member PD group bootstrapped into [-inf, m) and [m, +inf), no leaders");
    let mut cluster = PdCluster::start(3, &["--bootstrap-split-keys", "m", "--split-check-interval-ms", "0"]).await;
    let pd = cluster.client();
    for port in [21160, 21170, 21180] {
        register_store(&pd, port).await;
    }
    let routes =
        wait_for("bootstrap", WAIT, || async { pd.list_routes().await.ok().filter(|r| r.regions.len() == 2) }).await;
    let left = region_at(&routes, b"").clone();
    let right = region_at(&routes, b"m").clone();
    let leader_id = cluster.wait_members(3).await;
    let leader_http = cluster.member(leader_id).http();
    let follower = cluster.members.iter().find(|m| m.id != leader_id).expect("a follower");
    let (follower_grpc, follower_http) = (follower.grpc(), follower.http());
    let ep = cluster.endpoints().join(",");

    phase("gRPC: unknown region, bad keys, stale epoch");
    assert!(matches!(pd.split_region(0, b"a", None).await, Err(PdError::InvalidArgument(_))));
    assert!(matches!(pd.split_region(999_999, b"a", None).await, Err(PdError::RegionNotFound(999_999))));
    for (region, key) in [(&right, &b"m"[..]), (&right, b"a"), (&left, b"m"), (&left, b"z")] {
        let err = pd.split_region(region.id, key, None).await.unwrap_err();
        assert!(matches!(err, PdError::InvalidSplitKey(_)), "{key:?} in region {}: {err}", region.id);
    }
    let long = vec![b'a'; 5000];
    assert!(
        matches!(pd.split_region(left.id, &long, None).await, Err(PdError::InvalidSplitKey(m)) if m.contains("limit"))
    );
    let stale = metapb::RegionEpoch { conf_ver: 1, version: 99 };
    assert!(matches!(pd.split_region(left.id, b"c", Some(stale)).await, Err(PdError::StaleEpoch(_))));
    assert!(pd.list_operators(true).await.expect("list").is_empty(), "refused splits leave no operator");

    phase("gRPC: one operator per region; get, list, cancel");
    let op = pd.split_region(left.id, b"c", left.region_epoch).await.expect("split starts");
    assert_eq!(op.status(), pdpb::OperatorStatus::Running);
    assert_eq!(op.source, "admin");
    assert_eq!(op.split_key, b"c");
    let err = pd.split_region(left.id, b"d", None).await.unwrap_err();
    assert!(matches!(&err, PdError::OperatorExists(m) if m.contains(&format!("operator {}", op.id))), "{err}");
    let got = pd.get_operator(op.id).await.expect("get");
    assert!(got.step.contains("waiting for region"), "{}", got.step);
    assert_eq!(pd.list_operators(false).await.expect("list").iter().map(|o| o.id).collect::<Vec<_>>(), vec![op.id]);
    assert!(matches!(pd.get_operator(999_999).await, Err(PdError::OperatorNotFound(999_999))));
    assert!(matches!(pd.cancel_operator(999_999).await, Err(PdError::OperatorNotFound(999_999))));
    assert!(matches!(pd.get_operator(0).await, Err(PdError::InvalidArgument(_))));
    let cancelled = pd.cancel_operator(op.id).await.expect("cancel");
    assert_eq!(cancelled.status(), pdpb::OperatorStatus::Cancelled);
    assert!(cancelled.finished_ms > 0);
    assert_eq!(pd.cancel_operator(op.id).await.expect("cancel again").finished_ms, cancelled.finished_ms);
    assert!(pd.list_operators(false).await.expect("list").is_empty());
    assert_eq!(pd.list_operators(true).await.expect("list all").len(), 1);

    phase("gRPC: a follower refuses and names the leader");
    let mut raw = pdpb::pd_client::PdClient::new(pd::client::channel(&follower_grpc).expect("channel"));
    let resp = raw
        .split_region(pdpb::SplitRegionRequest { region_id: left.id, split_key: b"c".to_vec(), region_epoch: None })
        .await
        .expect("rpc")
        .into_inner();
    let err = resp.header.and_then(|h| h.error).expect("follower must refuse");
    assert_eq!(err.r#type(), pdpb::ErrorType::NotLeader);
    assert_eq!(err.leader.expect("hint").address, cluster.member(leader_id).grpc());
    let resp = raw.list_operators(pdpb::ListOperatorsRequest { include_finished: true }).await.expect("rpc");
    assert_eq!(resp.into_inner().header.and_then(|h| h.error).expect("refused").r#type(), pdpb::ErrorType::NotLeader);

    phase("HTTP: the same errors with their status codes");
    let split = |id: u64| format!("/api/v1/regions/{id}/split");
    let cases: [(String, &str, u16, &str); 8] = [
        (split(999_999), r#"{"key": "a"}"#, 404, "REGION_NOT_FOUND"),
        ("/api/v1/regions/abc/split".into(), "", 400, "INVALID_ARGUMENT"),
        (split(right.id), r#"{"key": "a"}"#, 400, "INVALID_SPLIT_KEY"),
        (split(right.id), r#"{"key_hex": "6D"}"#, 400, "INVALID_SPLIT_KEY"),
        (split(left.id), r#"{"key_hex": "zz"}"#, 400, "INVALID_ARGUMENT"),
        (split(left.id), r#"{"key": "a", "key_hex": "61"}"#, 400, "INVALID_ARGUMENT"),
        (split(left.id), r#"{"splitkey": "a"}"#, 400, "INVALID_ARGUMENT"),
        (split(left.id), r#"{"key": "c", "region_epoch": {"conf_ver": 1, "version": 99}}"#, 409, "STALE_EPOCH"),
    ];
    for (path, body, status, ty) in &cases {
        let (got, v) = http(&leader_http, "POST", path, body).await;
        assert_eq!((got, v["type"].as_str().unwrap_or("")), (*status, *ty), "POST {path} {body}: {v}");
    }
    let (status, v) = http(&leader_http, "POST", &split(left.id), r#"{"key": "c"}"#).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["status"], "RUNNING");
    assert_eq!(v["split_key"], "63");
    let id = v["id"].as_u64().expect("operator id");
    let (status, v) = http(&leader_http, "POST", &split(left.id), "").await;
    assert_eq!((status, v["type"].as_str()), (409, Some("OPERATOR_EXISTS")), "{v}");
    let (status, v) = http(&leader_http, "GET", "/api/v1/operators", "").await;
    assert_eq!((status, v["count"].as_u64()), (200, Some(1)), "{v}");
    let (status, v) = http(&leader_http, "GET", &format!("/api/v1/operators/{id}"), "").await;
    assert_eq!((status, v["status"].as_str()), (200, Some("RUNNING")), "{v}");
    let (status, v) = http(&leader_http, "GET", "/api/v1/operators/999999", "").await;
    assert_eq!((status, v["type"].as_str()), (404, Some("OPERATOR_NOT_FOUND")), "{v}");
    let (status, v) = http(&leader_http, "GET", "/api/v1/operators?bogus=1", "").await;
    assert_eq!((status, v["type"].as_str()), (400, Some("INVALID_ARGUMENT")), "{v}");
    let (status, v) = http(&leader_http, "DELETE", &format!("/api/v1/operators/{id}"), "").await;
    assert_eq!((status, v["status"].as_str()), (200, Some("CANCELLED")), "{v}");
    let (status, v) = http(&leader_http, "GET", "/api/v1/operators?all=true", "").await;
    assert_eq!((status, v["count"].as_u64()), (200, Some(2)), "{v}");
    for (method, path) in [("POST", split(left.id)), ("GET", "/api/v1/operators".into())] {
        let (status, v) = http(&follower_http, method, &path, "").await;
        assert_eq!((status, v["type"].as_str()), (503, Some("NOT_LEADER")), "{method} {path} on a follower: {v}");
    }

    phase("pdctl: errors exit non-zero with the message");
    let left_id = left.id.to_string();
    let (code, _, err) = pdctl(&["--pd", &ep, "region", "split", "999999", "--key", "a"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("region 999999 not found"), "{err}");
    let (code, _, err) = pdctl(&["--pd", &ep, "region", "split", &right.id.to_string(), "--key", "a"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.matches("invalid split key").count(), 1, "the kind is said once: {err}");
    let (code, _, err) = pdctl(&["--pd", &ep, "region", "split", &left_id, "--key", "zz", "--hex"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("hex"), "{err}");
    let (code, _, err) = pdctl(&["--pd", &ep, "region", "split", &left_id, "--hex"]);
    assert_eq!(code, 2, "--hex without --key is a usage error: {err}");
    let (code, out, err) = pdctl(&["--pd", &ep, "region", "split", &left_id, "--key", "63", "--hex", "--no-wait"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("started") && out.contains("RUNNING"), "{out}");
    let (code, _, err) = pdctl(&["--pd", &ep, "region", "split", &left_id, "--key", "d"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("operator exists"), "{err}");
    let running = pd.list_operators(false).await.expect("list");
    let op_id = running[0].id.to_string();
    let (code, out, err) = pdctl(&["--pd", &ep, "operator", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&op_id) && out.contains("RUNNING"), "{out}");
    let (code, out, _) = pdctl(&["--pd", &ep, "-o", "json", "operator", "show", &op_id]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["status"], "RUNNING");
    let (code, out, err) = pdctl(&["--pd", &ep, "operator", "cancel", &op_id]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("CANCELLED"), "{out}");
    let (code, _, err) = pdctl(&["--pd", &ep, "operator", "show", "999999"]);
    assert_eq!(code, 1);
    assert!(err.contains("operator 999999 not found"), "{err}");
    let (code, out, _) = pdctl(&["--pd", &ep, "operator", "list", "--all"]);
    assert_eq!(code, 0);
    assert_eq!(out.matches("CANCELLED").count(), 3, "{out}");

    phase("pdctl: a waiting split ends non-zero when its operator is cancelled");
    let waiting = pdctl_spawn(&["--pd", &ep, "region", "split", &left_id, "--key", "e"]);
    let op = wait_for("the waiting split's operator", WAIT, || async {
        pd.list_operators(false).await.ok().and_then(|ops| ops.into_iter().next())
    })
    .await;
    pd.cancel_operator(op.id).await.expect("cancel");
    let (code, out, err) = pdctl_wait(waiting, WAIT).await;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains(&format!("operator {} CANCELLED", op.id)), "{err}");

    phase("nothing changed");
    let after = pd.list_routes().await.expect("routes");
    assert_eq!(after.version, routes.version);
    assert_eq!(after.regions, routes.regions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splits_wait_for_bootstrap_and_time_out_without_a_leader() {
    phase("a single PD member, one replica per region, a 1.5 s split timeout");
    let cluster = PdCluster::start(
        1,
        &["--max-replicas", "1", "--split-operator-timeout-ms", "1500", "--split-check-interval-ms", "0"],
    )
    .await;
    let pd = cluster.client();
    let ep = cluster.endpoints().join(",");
    let http_addr = cluster.members[0].http();

    phase("before bootstrap: NOT_BOOTSTRAPPED everywhere");
    assert!(matches!(pd.split_region(2, b"k", None).await, Err(PdError::NotBootstrapped)));
    let (status, text) = http_request(&http_addr, "POST", "/api/v1/regions/2/split", b"").await.expect("http");
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("NOT_BOOTSTRAPPED"), "{text}");
    let (code, _, err) = pdctl(&["--pd", &ep, "region", "split", "2"]);
    assert_eq!(code, 1);
    assert!(err.contains("not bootstrapped"), "{err}");

    phase("bootstrapped; a split with nobody to carry it out times out");
    register_store(&pd, 22160).await;
    let routes =
        wait_for("bootstrap", WAIT, || async { pd.list_routes().await.ok().filter(|r| !r.regions.is_empty()) }).await;
    let region_id = routes.regions[0].region.as_ref().expect("region").id.to_string();
    let (code, out, err) = pdctl(&["--pd", &ep, "region", "split", &region_id, "--key", "k"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains("waiting for region"), "progress shows the step: {out}");
    assert!(err.contains("TIMED_OUT") && err.contains("1500 ms"), "{err}");
    let ops = pd.list_operators(true).await.expect("list");
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].status(), pdpb::OperatorStatus::TimedOut);
    assert!(
        pd.split_region(routes.regions[0].region.as_ref().unwrap().id, b"k", None).await.is_ok(),
        "region free again"
    );
}
