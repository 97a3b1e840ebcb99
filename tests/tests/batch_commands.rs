//! `Kv.BatchCommands` on real processes: the client library's point
//! requests share stream messages when many are in flight, every one gets
//! its own answer, and a malformed command is refused alone while the
//! stream goes on.

use std::time::Duration;

use cluster_tests::cluster::Cluster;
use cluster_tests::{http_get, metric_value, phase, wait_for};
use proto::kvpb::{self, command, command_reply, kv_client::KvClient};

const WAIT: Duration = Duration::from_secs(60);
const WRITES: usize = 300;

/// `store_kv_batch_{messages,commands}_total` summed over the stores.
async fn batch_counters(cluster: &Cluster) -> (f64, f64) {
    let (mut messages, mut commands) = (0.0, 0.0);
    for s in &cluster.stores {
        let (_, body) = http_get(&s.http(), "/metrics").await.expect("metrics");
        messages += metric_value(&body, "store_kv_batch_messages_total").unwrap_or(0.0);
        commands += metric_value(&body, "store_kv_batch_commands_total").unwrap_or(0.0);
    }
    (messages, commands)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_point_requests_share_messages_and_each_gets_its_answer() {
    phase("PD and three stores");
    let cluster = Cluster::start(1, 3, &[]).await;
    let client = cluster.client().await;
    wait_for("a first write", WAIT, || async { client.put(b"warm", b"up").await.ok() }).await;
    let (messages_before, commands_before) = batch_counters(&cluster).await;

    phase("300 puts at once, then 300 gets and 300 compare-and-swaps at once");
    let key = |i: usize| format!("batch{i:04}").into_bytes();
    let value = |i: usize| format!("value-{i}").into_bytes();
    let puts = futures::future::join_all((0..WRITES).map(|i| {
        let client = &client;
        async move { client.put(&key(i), &value(i)).await }
    }))
    .await;
    for (i, r) in puts.into_iter().enumerate() {
        r.unwrap_or_else(|e| panic!("put {i}: {e}"));
    }
    let gets = futures::future::join_all((0..WRITES).map(|i| {
        let client = &client;
        async move { client.get(&key(i)).await }
    }))
    .await;
    for (i, r) in gets.into_iter().enumerate() {
        assert_eq!(r.unwrap_or_else(|e| panic!("get {i}: {e}")), Some(value(i)), "key {i}");
    }
    // Odd keys expect their value and swap; even keys expect another.
    let swaps = futures::future::join_all((0..WRITES).map(|i| {
        let client = &client;
        let expected = if i % 2 == 1 { value(i) } else { b"other".to_vec() };
        async move { client.compare_and_swap(&key(i), Some(&expected), b"swapped").await }
    }))
    .await;
    for (i, r) in swaps.into_iter().enumerate() {
        let (succeeded, previous) = r.unwrap_or_else(|e| panic!("cas {i}: {e}"));
        assert_eq!(succeeded, i % 2 == 1, "cas {i}");
        assert_eq!(previous, Some(value(i)), "cas {i} previous");
    }
    for i in [0, 1, WRITES - 2, WRITES - 1] {
        let want = if i % 2 == 1 { b"swapped".to_vec() } else { value(i) };
        assert_eq!(client.get(&key(i)).await.expect("get"), Some(want), "key {i} after the swaps");
    }

    phase("the requests travelled in fewer messages than requests");
    let (messages, commands) = batch_counters(&cluster).await;
    let (messages, commands) = (messages - messages_before, commands - commands_before);
    assert!(commands >= (3 * WRITES) as f64, "{commands} commands counted for {} requests", 3 * WRITES);
    assert!(messages < commands, "{messages} messages carried {commands} commands: nothing was batched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_command_without_a_request_is_refused_alone() {
    phase("PD and three stores");
    let cluster = Cluster::start(1, 3, &[]).await;
    let client = cluster.client().await;
    wait_for("a first write", WAIT, || async { client.put(b"warm", b"up").await.ok() }).await;

    phase("one message: an empty command and a put; then a get on the same stream");
    let mut kv = KvClient::new(pd::client::channel(&cluster.stores[1].grpc()).expect("channel"));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut replies =
        kv.batch_commands(tokio_stream::wrappers::UnboundedReceiverStream::new(rx)).await.expect("open").into_inner();
    let put = kvpb::PutRequest { context: None, key: b"k".to_vec(), value: b"v".to_vec() };
    tx.send(kvpb::BatchCommandsRequest {
        commands: vec![
            kvpb::Command { id: 7, request: None },
            kvpb::Command { id: 8, request: Some(command::Request::Put(put)) },
        ],
    })
    .expect("send");
    let mut answers = std::collections::BTreeMap::new();
    while answers.len() < 2 {
        let m = tokio::time::timeout(WAIT, replies.message()).await.expect("in time").expect("stream").expect("open");
        for r in m.replies {
            answers.insert(r.id, r.response.expect("a response"));
        }
    }
    match &answers[&7] {
        command_reply::Response::Error(e) => assert_eq!(e.kind, kvpb::ErrorKind::InvalidArgument as i32, "{e:?}"),
        other => panic!("empty command answered {other:?}"),
    }
    match &answers[&8] {
        command_reply::Response::Put(r) => assert!(r.region_error.is_none() && r.error.is_none(), "{r:?}"),
        other => panic!("put answered {other:?}"),
    }
    tx.send(kvpb::BatchCommandsRequest {
        commands: vec![kvpb::Command {
            id: 9,
            request: Some(command::Request::Get(kvpb::GetRequest { context: None, key: b"k".to_vec() })),
        }],
    })
    .expect("send");
    let m = tokio::time::timeout(WAIT, replies.message()).await.expect("in time").expect("stream").expect("open");
    assert_eq!(m.replies.len(), 1);
    assert_eq!(m.replies[0].id, 9);
    match &m.replies[0].response {
        Some(command_reply::Response::Get(r)) => assert!(r.found && r.value == b"v", "{r:?}"),
        other => panic!("get answered {other:?}"),
    }
}
