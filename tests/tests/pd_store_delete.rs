//! Decommissioning a store through `pdctl store delete` (and HTTP), against
//! a real three-member PD group and stores played by heartbeat streams: an
//! empty store goes straight to Tombstone and may not reconnect; refusals are
//! typed; a store holding a region goes Offline, the decommission checker
//! starts its move, and once the region's leader reports the peer moved PD
//! marks the store Tombstone while `pdctl` prints the regions left.

use std::time::Duration;

use cluster_tests::pd_cluster::PdCluster;
use cluster_tests::pdctl_run::PdctlRun;
use cluster_tests::test_store::{HeartbeatStream, register_store};
use cluster_tests::{http_request, pdctl, phase, wait_for};
use pd::error::PdError;
use proto::{metapb, pdpb};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pdctl_store_delete_drains_a_store_to_tombstone() {
    phase("a bootstrapped 3-member PD group with three stores");
    let cluster = PdCluster::start(3, &["--replica-check-interval-ms", "100"]).await;
    let pd = cluster.client();
    let ep = cluster.endpoints().join(",");
    let mut stores = Vec::new();
    for port in [20160, 20170, 20180] {
        stores.push(register_store(&pd, port).await);
    }
    let routes =
        wait_for("bootstrap", WAIT, || async { pd.list_routes().await.ok().filter(|r| r.regions.len() == 1) }).await;
    let region = routes.regions[0].region.clone().expect("region");
    let leader_store = HeartbeatStream::open(&pd, stores[1]).await.expect("stream of store 2");
    let mut leaving = HeartbeatStream::open(&pd, stores[0]).await.expect("stream of store 1");

    phase("an empty store goes straight to Tombstone and may not reconnect");
    let empty = register_store(&pd, 20190).await;
    let (code, out, err) = pdctl(&["--pd", &ep, "store", "delete", &empty.to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("store {empty}: Tombstone")), "{out}");
    let mut refused = HeartbeatStream::open(&pd, empty).await.expect("stream opens, to be refused");
    let err = refused.next_routes(WAIT).await.expect_err("a Tombstone store's stream is refused");
    assert!(matches!(err, PdError::StoreConflict(_)), "{err}");
    let (code, _, err) = pdctl(&["--pd", &ep, "store", "delete", &empty.to_string()]);
    assert_eq!(code, 1);
    assert!(err.contains("already Tombstone"), "{err}");

    phase("over HTTP: the leader deletes, followers name it");
    let members: Vec<String> = cluster.members.iter().map(|m| m.http()).collect();
    let via_http = register_store(&pd, 20210).await;
    let mut answers = Vec::new();
    for http in &members {
        let (code, body) =
            http_request(http, "DELETE", &format!("/api/v1/stores/{via_http}"), b"").await.expect("http delete");
        answers.push(code);
        if code == 200 {
            let v: serde_json::Value = serde_json::from_str(&body).expect("json");
            assert_eq!(v["store"]["state_name"], "Tombstone", "{body}");
        } else {
            assert!(body.contains("NOT_LEADER"), "{code} {body}");
        }
    }
    answers.sort_unstable();
    assert_eq!(answers, vec![200, 503, 503]);
    let (code, body) = http_request(&members[0], "DELETE", "/api/v1/stores/nope", b"").await.expect("http delete");
    assert_eq!(code, 400, "{body}");

    phase("refusals: unknown store, too few Up stores left");
    let (code, _, err) = pdctl(&["--pd", &ep, "store", "delete", "424242"]);
    assert_eq!(code, 1);
    assert!(err.contains("store 424242 not found"), "{err}");
    let (code, _, err) = pdctl(&["--pd", &ep, "store", "delete", &stores[0].to_string()]);
    assert_eq!(code, 1);
    assert!(err.contains("need 3 up stores, have 2"), "{err}");

    phase("with a fourth store, store 1 goes Offline and keeps its region");
    let spare = register_store(&pd, 20200).await;
    let (code, out, err) = pdctl(&["--pd", &ep, "store", "delete", &stores[0].to_string(), "--no-wait"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("store {}: Offline, 1 region left", stores[0])), "{out}");
    let (code, _, err) = pdctl(&["--pd", &ep, "store", "delete", &stores[0].to_string(), "--timeout", "1"]);
    assert_eq!(code, 1);
    assert!(err.contains("gave up waiting after 1s"), "{err}");
    let (code, out, _) = pdctl(&["--pd", &ep, "-o", "json", "store", "list"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let listed = v["stores"].as_array().expect("stores").iter().find(|s| s["store"]["id"] == stores[0]).cloned();
    let listed = listed.expect("store 1 listed");
    assert_eq!(listed["store"]["state_name"], "Offline");
    assert_eq!(listed["status"]["down"], false);

    phase("the decommission checker starts the move to the spare store");
    let op = wait_for("a decommission move on the leader", WAIT, || async {
        pd.list_operators(false).await.ok()?.into_iter().find(|o| {
            o.source == "decommission"
                && o.kind == pdpb::OperatorKind::Move as i32
                && (o.region_id, o.source_store_id, o.target_store_id) == (region.id, stores[0], spare)
        })
    })
    .await;
    assert_ne!(op.new_peer_id, 0, "{op:?}");

    phase("pdctl waits while the region's leader reports the peer moved");
    let mut waiting = PdctlRun::spawn(&["--pd", &ep, "store", "delete", &stores[0].to_string(), "--timeout", "30"]);
    // The move is reported only once pdctl is following the store: a report
    // before it starts would leave it only the end state to print.
    waiting.line_containing(&format!("store {}: Offline, 1 region left", stores[0]), WAIT).await;
    // The region as its leader reports it once the move is done: the new
    // peer (the id PD allocated for it) in place of store 1's.
    let peer_id = op.new_peer_id;
    let mut moved = region.clone();
    let old = moved.peers.iter_mut().find(|p| p.store_id == stores[0]).expect("peer on store 1");
    *old = metapb::Peer { id: peer_id, store_id: spare, role: metapb::PeerRole::Voter as i32 };
    moved.region_epoch.as_mut().expect("epoch").conf_ver += 1;
    leader_store.report_region(&moved, 1).await;
    waiting.line_containing(&format!("store {}: Tombstone", stores[0]), WAIT).await;
    let (code, out, err) = waiting.finish(WAIT).await;
    assert_eq!(code, 0, "{out}{err}");

    phase("the tombstoned store's open stream hears so, then is refused");
    let deadline = tokio::time::Instant::now() + WAIT;
    let refusal = loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match leaving.next_routes(left).await {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert!(matches!(refusal, PdError::StoreConflict(_)), "{refusal}");
    let info = pd.get_store(stores[0]).await.expect("get store");
    assert_eq!(info.store.expect("store").state, metapb::StoreState::Tombstone as i32);
    assert_eq!(info.region_count, 0);
}
