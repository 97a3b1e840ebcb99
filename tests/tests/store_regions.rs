//! A cluster bootstrapped with several regions, and a fourth store that
//! hosts none: each region elects its own leader and serves its own keys;
//! a store without the key's region forwards, never loses a request.

use std::time::Duration;

use cluster_tests::cluster::{Cluster, StoreProcess};
use cluster_tests::{phase, wait_for};
use proto::kvpb::{self, kv_client::KvClient};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn regions_elect_and_serve_independently_and_requests_are_forwarded() {
    phase("PD pre-splits at g, n, t; three stores");
    let mut cluster = Cluster::start(1, 3, &["--bootstrap-split-keys", "g,n,t"]).await;
    let pd = pd::client::PdClient::new(&cluster.pd_endpoints()).expect("pd");

    phase("every region elects its own leader");
    let routes = wait_for("4 regions with leaders", WAIT, || async {
        let r = pd.list_routes().await.ok()?;
        (r.regions.len() == 4 && r.regions.iter().all(|r| r.leader.is_some())).then_some(r)
    })
    .await;
    let mut ids: Vec<u64> = routes.regions.iter().map(|r| r.region.as_ref().unwrap().id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 4);

    phase("a fourth store registers; it hosts no region");
    let dir = cluster.dir.path().join("store4");
    let store4 = StoreProcess::spawn("store4", dir, &cluster.pd_endpoints(), &[]);
    let status_url = store4.http();
    let (_, body) = cluster_tests::http_get(&status_url, "/status").await.expect("status");
    let status: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(status["region_count"], 0, "{body}");
    let mut via4 = KvClient::new(pd::client::channel(&store4.grpc()).expect("channel"));
    cluster.stores.push(store4);

    phase("keys of every region written and read through the store that hosts none");
    for prefix in ["a", "h", "p", "z"] {
        for i in 0..50 {
            let key = format!("{prefix}{i:03}").into_bytes();
            let r = via4
                .put(kvpb::PutRequest { context: None, key: key.clone(), value: key.clone() })
                .await
                .expect("rpc")
                .into_inner();
            assert!(r.region_error.is_none() && r.error.is_none(), "{r:?}");
        }
    }
    for prefix in ["a", "h", "p", "z"] {
        for i in 0..50 {
            let key = format!("{prefix}{i:03}").into_bytes();
            let r = via4.get(kvpb::GetRequest { context: None, key: key.clone() }).await.expect("rpc").into_inner();
            assert!(r.found && r.value == key, "{r:?}");
        }
    }

    phase("each region holds exactly its own keys");
    let client = cluster.client().await;
    for route in &routes.regions {
        let region = route.region.as_ref().unwrap();
        let keys = client.scan(&region.start_key, &region.end_key, 1000).await.expect("scan");
        assert_eq!(keys.len(), 50, "region {} [{:?}, {:?})", region.id, region.start_key, region.end_key);
    }
    let everything = client.scan(b"", b"", 1000).await.expect("scan all");
    assert_eq!(everything.len(), 200, "a scan crosses region boundaries");
    let r = via4
        .scan(kvpb::ScanRequest { context: None, start_key: b"a".to_vec(), end_key: Vec::new(), limit: 1000 })
        .await
        .expect("rpc")
        .into_inner();
    assert_eq!(r.pairs.len(), 50, "one scan call answers within one region");
    assert_eq!(r.region_end_key, b"g");

    phase("killing one region's leader store leaves the others serving");
    let leader_of_a = routes.regions[0].leader.unwrap().store_id;
    cluster.store(leader_of_a).kill();
    for prefix in ["a", "h", "p", "z"] {
        let key = format!("{prefix}-after-kill").into_bytes();
        client.put(&key, b"v").await.expect("put after kill");
        assert_eq!(client.get(&key).await.expect("get"), Some(b"v".to_vec()));
    }
}
