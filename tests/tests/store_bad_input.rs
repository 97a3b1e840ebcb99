//! Bad input to a storage node gets a clear, typed error and changes
//! nothing.

use cluster_tests::cluster::Cluster;
use cluster_tests::{http_get, phase};
use proto::kvpb::{self, kv_client::KvClient};
use storenode::client::ClientError;
use storenode::config::{MAX_KEY_SIZE, MAX_VALUE_SIZE};
use storenode::error::StoreError;

fn err_of(re: Option<&kvpb::RegionError>, e: Option<&kvpb::Error>) -> StoreError {
    StoreError::from_pb(re, e).expect("an error")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_typed_errors_and_change_nothing() {
    phase("a cluster with one key");
    let cluster = Cluster::start(1, 3, &[]).await;
    let client = cluster.client().await;
    client.put(b"k", b"v").await.expect("put");
    let mut store = KvClient::new(pd::client::channel(&cluster.stores[0].grpc()).expect("channel"));
    let pd = pd::client::PdClient::new(&cluster.pd_endpoints()).expect("pd");
    let region = pd.get_region(b"k").await.expect("region").route.unwrap().region.unwrap();

    phase("empty and oversized keys and values");
    let r =
        store.put(kvpb::PutRequest { context: None, key: vec![], value: b"x".to_vec() }).await.unwrap().into_inner();
    assert!(
        matches!(err_of(r.region_error.as_ref(), r.error.as_ref()), StoreError::InvalidArgument(m) if m.contains("empty"))
    );
    let big_key = vec![b'k'; MAX_KEY_SIZE + 1];
    let r = store.get(kvpb::GetRequest { context: None, key: big_key.clone() }).await.unwrap().into_inner();
    assert!(
        matches!(err_of(r.region_error.as_ref(), r.error.as_ref()), StoreError::InvalidArgument(m) if m.contains("limit"))
    );
    let big_value = vec![0u8; MAX_VALUE_SIZE + 1];
    let r = store
        .put(kvpb::PutRequest { context: None, key: b"k".to_vec(), value: big_value.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(err_of(r.region_error.as_ref(), r.error.as_ref()), StoreError::InvalidArgument(_)));
    assert!(matches!(client.put(b"", b"x").await, Err(ClientError::InvalidArgument(_))));
    assert!(matches!(client.put(b"k", &big_value).await, Err(ClientError::InvalidArgument(_))));

    phase("a stale epoch");
    let mut stale = region.region_epoch.unwrap();
    stale.version += 7;
    let ctx = kvpb::Context { region_id: region.id, region_epoch: Some(stale), ..Default::default() };
    let r = store
        .put(kvpb::PutRequest { context: Some(ctx), key: b"k".to_vec(), value: b"changed".to_vec() })
        .await
        .unwrap()
        .into_inner();
    match err_of(r.region_error.as_ref(), r.error.as_ref()) {
        StoreError::EpochNotMatch(current) => assert_eq!(current[0].id, region.id),
        other => panic!("expected EpochNotMatch, got {other}"),
    }

    phase("an unknown region id");
    let ctx = kvpb::Context { region_id: 987_654, forwarded: true, ..Default::default() };
    let r = store.get(kvpb::GetRequest { context: Some(ctx), key: b"k".to_vec() }).await.unwrap().into_inner();
    assert_eq!(err_of(r.region_error.as_ref(), r.error.as_ref()), StoreError::RegionNotFound(987_654));

    phase("a key outside the named region");
    let other = kvpb::Context { region_id: region.id, region_epoch: region.region_epoch, ..Default::default() };
    if !region.end_key.is_empty() {
        let r = store
            .get(kvpb::GetRequest { context: Some(other), key: region.end_key.clone() })
            .await
            .unwrap()
            .into_inner();
        assert!(matches!(err_of(r.region_error.as_ref(), r.error.as_ref()), StoreError::KeyNotInRegion { .. }));
    }

    phase("scan with start above end");
    let r = store
        .scan(kvpb::ScanRequest { context: None, start_key: b"z".to_vec(), end_key: b"a".to_vec(), limit: 10 })
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(err_of(r.region_error.as_ref(), r.error.as_ref()), StoreError::InvalidArgument(_)));
    assert!(matches!(client.scan(b"z", b"a", 10).await, Err(ClientError::InvalidArgument(_))));
    let (status, _) = http_get(&cluster.stores[1].http(), "/scan?start=z&end=a").await.expect("http");
    assert_eq!(status, 400);

    phase("nothing changed");
    assert_eq!(client.get(b"k").await.expect("get"), Some(b"v".to_vec()));
    assert_eq!(client.scan(b"", b"", 100).await.expect("scan").len(), 1);
    let (status, body) = http_get(&cluster.stores[2].http(), "/kv/k").await.expect("http");
    assert_eq!((status, body.as_str()), (200, "v"));
}
