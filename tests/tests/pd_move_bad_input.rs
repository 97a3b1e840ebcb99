//! Bad move, add-peer and remove-peer requests get their documented error
//! through gRPC, HTTP and pdctl, and change nothing: zero and unknown ids,
//! the same store twice, a target that already holds a peer, a source that
//! holds none, the last voter, a region already under an operator.
//!
//! No storage nodes: stores are registered by hand, so the region has no
//! leader and an accepted operator waits (for a leader) until cancelled.

use std::time::Duration;

use cluster_tests::pd_cluster::PdCluster;
use cluster_tests::test_store::register_store;
use cluster_tests::{http_request, pdctl, phase, wait_for};
use pd::error::PdError;
use proto::pdpb;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

async fn http(addr: &str, path: &str, body: &str) -> (u16, Value) {
    let (status, text) = http_request(addr, "POST", path, body.as_bytes()).await.expect("http");
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {path}: {e}: {text:?}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_requests_are_validated_everywhere() {
    phase("three PD members, the region on three stores, a fourth store free, no leaders");
    let mut cluster = PdCluster::start(3, &["--split-check-interval-ms", "0"]).await;
    let pd = cluster.client();
    let ep = cluster.endpoints().join(",");
    let leader_id = cluster.wait_members(3).await;
    let http_addr = cluster.member(leader_id).http();
    let leader_grpc = cluster.member(leader_id).grpc();
    let follower = cluster.members.iter().find(|m| m.id != leader_id).expect("a follower");
    let (follower_grpc, follower_http) = (follower.grpc(), follower.http());
    for port in [25160, 25170, 25180] {
        register_store(&pd, port).await;
    }
    let routes =
        wait_for("bootstrap", WAIT, || async { pd.list_routes().await.ok().filter(|r| !r.regions.is_empty()) }).await;
    let free = register_store(&pd, 25190).await;
    let region = routes.regions[0].region.clone().expect("region");
    let (a, b) = (region.peers[0].store_id, region.peers[1].store_id);
    let id = region.id;
    let routes = pd.list_routes().await.expect("routes");

    phase("gRPC: each bad request has its error type");
    let cases: Vec<(&str, Result<pdpb::Operator, PdError>)> = vec![
        ("zero region", pd.move_region(0, a, free).await),
        ("unknown region", pd.move_region(999_999, a, free).await),
        ("same store", pd.move_region(id, a, a).await),
        ("unknown source", pd.move_region(id, 999_999, free).await),
        ("unknown target", pd.move_region(id, a, 999_999).await),
        ("no peer on source", pd.move_region(id, free, b).await),
        ("peer on target", pd.move_region(id, a, b).await),
        ("add on a store with a peer", pd.add_region_peer(id, a).await),
        ("add on an unknown store", pd.add_region_peer(id, 999_999).await),
        ("remove from a store without one", pd.remove_region_peer(id, free).await),
        ("remove with store 0", pd.remove_region_peer(id, 0).await),
    ];
    let want = [
        pdpb::ErrorType::InvalidArgument,
        pdpb::ErrorType::RegionNotFound,
        pdpb::ErrorType::InvalidArgument,
        pdpb::ErrorType::StoreNotFound,
        pdpb::ErrorType::StoreNotFound,
        pdpb::ErrorType::PeerNotFound,
        pdpb::ErrorType::PeerExists,
        pdpb::ErrorType::PeerExists,
        pdpb::ErrorType::StoreNotFound,
        pdpb::ErrorType::PeerNotFound,
        pdpb::ErrorType::InvalidArgument,
    ];
    for ((what, got), want) in cases.into_iter().zip(want) {
        let err = got.expect_err(what);
        assert_eq!(err.to_pb().r#type(), want, "{what}: {err}");
    }
    assert!(pd.list_operators(true).await.expect("list").is_empty(), "refused requests leave no operator");

    phase("gRPC: one operator per region");
    let op = pd.add_region_peer(id, free).await.expect("add-peer starts");
    assert_eq!(op.kind(), pdpb::OperatorKind::AddPeer);
    assert_eq!((op.target_store_id, op.status()), (free, pdpb::OperatorStatus::Running));
    assert!(op.new_peer_id > 0 && !op.steps.is_empty(), "{op:?}");
    let err = pd.move_region(id, a, free).await.unwrap_err();
    assert!(matches!(&err, PdError::OperatorExists(m) if m.contains(&format!("operator {}", op.id))), "{err}");
    assert!(matches!(pd.remove_region_peer(id, a).await, Err(PdError::OperatorExists(_))));

    phase("a follower refuses and names the leader");
    let mut raw = pdpb::pd_client::PdClient::new(pd::client::channel(&follower_grpc).expect("channel"));
    let resp = raw
        .move_region(pdpb::MoveRegionRequest { region_id: id, from_store_id: a, to_store_id: free })
        .await
        .expect("rpc")
        .into_inner();
    let err = resp.header.and_then(|h| h.error).expect("a follower must refuse");
    assert_eq!(err.r#type(), pdpb::ErrorType::NotLeader);
    assert_eq!(err.leader.expect("hint").address, leader_grpc);
    let resp = raw.add_region_peer(pdpb::AddRegionPeerRequest { region_id: id, store_id: free }).await.expect("rpc");
    assert_eq!(resp.into_inner().header.and_then(|h| h.error).expect("refused").r#type(), pdpb::ErrorType::NotLeader);
    let resp = raw.remove_region_peer(pdpb::RemoveRegionPeerRequest { region_id: id, store_id: a }).await.expect("rpc");
    assert_eq!(resp.into_inner().header.and_then(|h| h.error).expect("refused").r#type(), pdpb::ErrorType::NotLeader);
    let (status, v) =
        http(&follower_http, &format!("/api/v1/regions/{id}/add-peer"), &format!(r#"{{"store_id": {free}}}"#)).await;
    assert_eq!((status, v["type"].as_str()), (503, Some("NOT_LEADER")), "{v}");

    phase("HTTP: the same errors with their status codes");
    let path = |what: &str| format!("/api/v1/regions/{id}/{what}");
    let http_cases: Vec<(String, String, u16, &str)> = vec![
        (path("move"), format!(r#"{{"from_store_id": {a}, "to_store_id": {free}}}"#), 409, "OPERATOR_EXISTS"),
        (
            "/api/v1/regions/999999/move".into(),
            format!(r#"{{"from_store_id": {a}, "to_store_id": {free}}}"#),
            404,
            "REGION_NOT_FOUND",
        ),
        ("/api/v1/regions/x/move".into(), "{}".into(), 400, "INVALID_ARGUMENT"),
        (path("move"), r#"{"from": 1}"#.into(), 400, "INVALID_ARGUMENT"),
        (path("move"), "".into(), 400, "INVALID_ARGUMENT"),
        (path("add-peer"), r#"{"store_id": "one"}"#.into(), 400, "INVALID_ARGUMENT"),
        (path("remove-peer"), r#"{"store": 1}"#.into(), 400, "INVALID_ARGUMENT"),
    ];
    for (p, body, status, ty) in &http_cases {
        let (got, v) = http(&http_addr, p, body).await;
        assert_eq!((got, v["type"].as_str().unwrap_or("")), (*status, *ty), "POST {p} {body}: {v}");
    }
    pd.cancel_operator(op.id).await.expect("cancel");
    let more: Vec<(String, String, u16, &str)> = vec![
        (path("move"), format!(r#"{{"from_store_id": {a}, "to_store_id": {a}}}"#), 400, "INVALID_ARGUMENT"),
        (path("move"), format!(r#"{{"from_store_id": {a}, "to_store_id": {b}}}"#), 409, "PEER_EXISTS"),
        (path("move"), format!(r#"{{"from_store_id": {free}, "to_store_id": {b}}}"#), 404, "PEER_NOT_FOUND"),
        (path("add-peer"), r#"{"store_id": 999999}"#.into(), 404, "STORE_NOT_FOUND"),
        (path("remove-peer"), format!(r#"{{"store_id": {free}}}"#), 404, "PEER_NOT_FOUND"),
    ];
    for (p, body, status, ty) in &more {
        let (got, v) = http(&http_addr, p, body).await;
        assert_eq!((got, v["type"].as_str().unwrap_or("")), (*status, *ty), "POST {p} {body}: {v}");
    }
    let (status, v) = http(&http_addr, &path("remove-peer"), &format!(r#"{{"store_id": {a}}}"#)).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!((v["kind"].as_str(), v["source_store_id"].as_u64()), (Some("REMOVE_PEER"), Some(a)), "{v}");
    assert!(v["steps"].as_array().is_some_and(|s| !s.is_empty()), "{v}");
    pd.cancel_operator(v["id"].as_u64().expect("id")).await.expect("cancel");

    phase("pdctl: errors exit non-zero with the typed error");
    let rid = id.to_string();
    let (code, _, err) =
        pdctl(&["--pd", &ep, "region", "move", &rid, "--from", &a.to_string(), "--to", &a.to_string()]);
    assert_eq!(code, 2, "the same store twice is a usage error: {err}");
    let (code, _, err) =
        pdctl(&["--pd", &ep, "region", "move", &rid, "--from", &a.to_string(), "--to", &b.to_string()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("peer exists"), "{err}");
    let (code, _, err) = pdctl(&["--pd", &ep, "region", "remove-peer", &rid, &free.to_string()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("peer not found"), "{err}");
    let (code, _, err) = pdctl(&["--pd", &ep, "region", "add-peer", "999999", &free.to_string()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("region 999999 not found"), "{err}");
    let (code, out, err) = pdctl(&["--pd", &ep, "region", "add-peer", &rid, &free.to_string(), "--no-wait"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("started") && out.contains("RUNNING") && out.contains("1. add learner"), "{out}");
    let (code, _, err) = pdctl(&["--pd", &ep, "region", "remove-peer", &rid, &a.to_string()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("operator exists"), "{err}");
    for op in pd.list_operators(false).await.expect("list") {
        pd.cancel_operator(op.id).await.expect("cancel");
    }

    phase("nothing changed");
    let after = pd.list_routes().await.expect("routes");
    assert_eq!(after.version, routes.version);
    assert_eq!(after.regions, routes.regions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_voter_is_never_removed() {
    phase("one replica per region");
    let cluster = PdCluster::start(1, &["--max-replicas", "1", "--split-check-interval-ms", "0"]).await;
    let pd = cluster.client();
    let ep = cluster.endpoints().join(",");
    let store = register_store(&pd, 26160).await;
    let routes =
        wait_for("bootstrap", WAIT, || async { pd.list_routes().await.ok().filter(|r| !r.regions.is_empty()) }).await;
    let id = routes.regions[0].region.as_ref().expect("region").id;
    let err = pd.remove_region_peer(id, store).await.unwrap_err();
    assert!(matches!(&err, PdError::QuorumAtRisk(m) if m.contains("no voter")), "{err}");
    let (status, text) = http_request(
        &cluster.members[0].http(),
        "POST",
        &format!("/api/v1/regions/{id}/remove-peer"),
        format!(r#"{{"store_id": {store}}}"#).as_bytes(),
    )
    .await
    .expect("http");
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("QUORUM_AT_RISK"), "{text}");
    let (code, _, err) = pdctl(&["--pd", &ep, "region", "remove-peer", &id.to_string(), &store.to_string()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("quorum at risk"), "{err}");
}
