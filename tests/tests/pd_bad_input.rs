//! Bad input to PD gets a clear, typed error and changes nothing: unknown
//! ids, malformed ranges and stores, writes sent to a follower, heartbeat
//! streams from unknown stores, and pdctl against missing ids or an
//! unreachable PD.

use std::process::Command;
use std::time::Duration;

use cluster_tests::pd_cluster::PdCluster;
use cluster_tests::test_store::{HeartbeatStream, register_store};
use cluster_tests::{binary, phase, wait_for};
use pd::error::PdError;
use proto::{metapb, pdpb};

const WAIT: Duration = Duration::from_secs(15);

fn pdctl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary("pdctl")).args(args).output().expect("run pdctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_typed_errors_and_changes_nothing() {
    phase("a bootstrapped 3-member PD group");
    let mut cluster = PdCluster::start(3, &[]).await;
    let pd = cluster.client();
    let mut stores = Vec::new();
    for port in [20160, 20170, 20180] {
        stores.push(register_store(&pd, port).await);
    }
    let before =
        wait_for("bootstrap", WAIT, || async { pd.list_routes().await.ok().filter(|r| r.regions.len() == 1) }).await;

    phase("bootstrap happens once");
    assert!(pd.is_bootstrapped().await.expect("is bootstrapped"));
    assert!(matches!(pd.bootstrap().await, Err(PdError::AlreadyBootstrapped)));

    phase("unknown ids");
    assert!(matches!(pd.get_region_by_id(999_999).await, Err(PdError::RegionNotFound(999_999))));
    assert!(matches!(pd.get_store(999_999).await, Err(PdError::StoreNotFound(999_999))));
    assert!(matches!(pd.get_region_by_id(0).await, Err(PdError::InvalidArgument(_))));

    phase("malformed key range");
    assert!(matches!(pd.scan_regions(b"z", b"a", 0).await, Err(PdError::InvalidArgument(_))));

    phase("malformed stores");
    let unallocated = metapb::Store { id: 1 << 40, address: "127.0.0.1:1".into(), ..Default::default() };
    assert!(matches!(pd.put_store(unallocated).await, Err(PdError::InvalidArgument(m)) if m.contains("not allocated")));
    let id = pd.alloc_id().await.expect("alloc");
    let no_port = metapb::Store { id, address: "nohost".into(), ..Default::default() };
    assert!(matches!(pd.put_store(no_port).await, Err(PdError::InvalidArgument(_))));
    let taken = metapb::Store { id, address: "127.0.0.1:20160".into(), ..Default::default() };
    assert!(matches!(pd.put_store(taken).await, Err(PdError::StoreConflict(_))));

    phase("a write sent to a follower names the leader");
    let leader_id = cluster.wait_members(3).await;
    let leader_addr = cluster.member(leader_id).grpc().clone();
    let follower = cluster.members.iter().find(|m| m.id != leader_id).expect("a follower").grpc().clone();
    let mut raw = pdpb::pd_client::PdClient::new(pd::client::channel(&follower).expect("channel"));
    let resp = raw.alloc_id(pdpb::AllocIdRequest { count: 1 }).await.expect("rpc").into_inner();
    let err = resp.header.and_then(|h| h.error).expect("follower must refuse");
    assert_eq!(err.r#type(), pdpb::ErrorType::NotLeader);
    assert_eq!(err.leader.expect("leader hint").address, leader_addr);
    let resp = raw
        .put_store(pdpb::PutStoreRequest {
            store: Some(metapb::Store { id, address: "127.0.0.1:9".into(), ..Default::default() }),
        })
        .await
        .expect("rpc")
        .into_inner();
    assert_eq!(resp.header.and_then(|h| h.error).expect("refused").r#type(), pdpb::ErrorType::NotLeader);

    phase("a heartbeat stream from an unknown store is refused");
    let mut hb = HeartbeatStream::open(&pd, 999_999).await.expect("stream opens");
    assert!(matches!(hb.next_routes(WAIT).await, Err(PdError::StoreNotFound(999_999))));

    phase("a malformed region report changes nothing");
    let mut hb = HeartbeatStream::open(&pd, stores[0]).await.expect("stream");
    hb.next_routes(WAIT).await.expect("snapshot");
    let mut bad = before.regions[0].region.clone().expect("region");
    bad.start_key = b"z".to_vec();
    bad.end_key = b"a".to_vec();
    bad.region_epoch.as_mut().unwrap().version += 1;
    hb.report_region(&bad, 1).await;
    // A valid report after it on the same stream: once it shows, the bad
    // one has been handled.
    let mut good = before.regions[0].region.clone().expect("region");
    good.region_epoch.as_mut().unwrap().conf_ver += 1;
    hb.report_region(&good, 1).await;
    let r = hb.routes_until(WAIT, |r| r.version > before.version).await;
    assert_eq!(r.version, before.version + 1);
    assert_eq!(r.regions.len(), 1);
    assert_eq!(r.regions[0].region.as_ref().unwrap().start_key, b"");

    phase("pdctl: unknown ids and an unreachable PD fail clearly");
    let ep = cluster.endpoints().join(",");
    let (code, out, _) = pdctl(&["--pd", &ep, "--output", "json", "store", "list"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["count"], 3);
    let (code, out, _) = pdctl(&["--pd", &ep, "region", "key", "anything"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("-inf") && out.contains("+inf"), "{out}");
    let (code, _, err) = pdctl(&["--pd", &ep, "region", "show", "999999"]);
    assert_eq!(code, 1);
    assert!(err.contains("region 999999 not found"), "{err}");
    let (code, _, err) = pdctl(&["--pd", &ep, "store", "show", "424242"]);
    assert_eq!(code, 1);
    assert!(err.contains("store 424242 not found"), "{err}");
    let (code, _, err) = pdctl(&["--pd", "127.0.0.1:1", "members"]);
    assert_eq!(code, 1);
    assert!(err.contains("127.0.0.1:1"), "{err}");
    let (code, out, _) = pdctl(&["--pd", &ep, "routes", "--watch", "--count", "1"]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("catalog version {}", before.version + 1)), "{out}");
}
