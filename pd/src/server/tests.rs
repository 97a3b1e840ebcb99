//! A real three-member PD group in one process: each member started by
//! [`PdServer::start`] as the binary does, with openraft, redb in a temp dir
//! and gRPC on an OS-chosen loopback port.
//!
//! In process rather than as child processes so a test can hand the leader's
//! raft handle a command no client API can send: the test-only
//! `CatalogCommand::Unvalidated`, standing in for a command whose validation
//! has a bug.

use std::time::Duration;

use openraft::ServerState;
use proto::metapb;

use super::PdServer;
use crate::catalog::{CatalogCommand, RawEdit, RouteCatalog};
use crate::client::PdClient;
use crate::config::PdConfig;
use crate::error::PdError;
use crate::metrics;

/// Election, joins and replication on loopback take a few seconds at most;
/// the margin absorbs a split vote or a loaded machine.
const DEADLINE: Duration = Duration::from_secs(20);

async fn start_group(dirs: &[tempfile::TempDir]) -> Vec<PdServer> {
    let mut servers: Vec<PdServer> = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let config = PdConfig {
            node_id: i as u64 + 1,
            data_dir: dir.path().join("pd"),
            grpc_addr: "127.0.0.1:0".into(),
            http_addr: "127.0.0.1:0".into(),
            // The first member starts the group, the others join through it.
            join: servers.first().map(|s| vec![s.advertise_grpc_addr.clone()]).unwrap_or_default(),
            ..PdConfig::default()
        };
        config.validate().expect("valid config");
        servers.push(PdServer::start(config).await.expect("member starts"));
    }
    for s in &servers {
        s.ctx
            .raft
            .wait(Some(DEADLINE))
            .voter_ids([1, 2, 3], "all three members are voters")
            .await
            .expect("group forms");
        s.ctx
            .raft
            .wait(Some(DEADLINE))
            .metrics(|m| m.current_leader.is_some(), "a leader is known")
            .await
            .expect("leader");
    }
    servers
}

/// The member leading now, waiting out an election if one is under way.
async fn leader(servers: &[PdServer]) -> &PdServer {
    let m = servers[0]
        .ctx
        .raft
        .wait(Some(DEADLINE))
        .metrics(|m| m.current_leader.is_some(), "a leader is known")
        .await
        .expect("leader elected");
    let s = servers.iter().find(|s| Some(s.ctx.node_id) == m.current_leader).expect("the leader is a member");
    s.ctx.raft.wait(Some(DEADLINE)).state(ServerState::Leader, "the leader knows it leads").await.expect("leads");
    s
}

fn catalog(s: &PdServer) -> RouteCatalog {
    s.ctx.catalog.read().catalog.clone()
}

/// Waits until every member has applied the log up to `index`.
async fn all_applied(servers: &[PdServer], index: u64) {
    for s in servers {
        s.ctx
            .raft
            .wait(Some(DEADLINE))
            .applied_index_at_least(Some(index), format!("member {} applies {index}", s.ctx.node_id))
            .await
            .expect("member catches up");
    }
}

fn last_applied(s: &PdServer) -> u64 {
    s.ctx.catalog.read().last_applied.map_or(0, |l| l.index())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_violating_command_is_refused_by_every_member_and_the_group_keeps_serving() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("temp dir")).collect();
    let servers = start_group(&dirs).await;
    let addrs: Vec<String> = servers.iter().map(|s| s.advertise_grpc_addr.clone()).collect();
    let pd = PdClient::new(&addrs).expect("client").with_deadline(DEADLINE);

    // A catalog worth protecting: three stores and, once they are up, the
    // bootstrap region the leader creates on its own.
    for port in [20160, 20170, 20180] {
        let id = pd.alloc_id().await.expect("alloc id");
        let store = metapb::Store { id, address: format!("127.0.0.1:{port}"), ..Default::default() };
        pd.put_store(store).await.expect("put store");
    }
    let mut routes = leader(&servers).await.ctx.catalog.subscribe();
    let ctx = leader(&servers).await.ctx.clone();
    tokio::time::timeout(DEADLINE, routes.wait_for(|_| ctx.catalog.read().catalog.region_count() > 0))
        .await
        .expect("bootstrapped in time")
        .expect("routes channel open");
    let spare_id = pd.alloc_id().await.expect("alloc id");
    all_applied(&servers, last_applied(leader(&servers).await)).await;
    let before: Vec<RouteCatalog> = servers.iter().map(catalog).collect();
    assert!(before.iter().all(|c| *c == before[0]), "members agree before the test");
    let refusals_before = metrics::CATALOG_INVARIANT_REFUSALS.get();

    // A region over [a, k) on top of the bootstrap region, which covers
    // everything: it passes no validation, because it never meets any.
    let mut overlapping = before[0].regions().next().expect("bootstrap region").region.clone();
    overlapping.id = spare_id;
    overlapping.start_key = b"a".to_vec();
    overlapping.end_key = b"k".to_vec();
    let crafted = CatalogCommand::Unvalidated { edits: vec![RawEdit::PutRegion(overlapping)] };
    let resp = leader(&servers).await.ctx.raft.client_write(crafted).await.expect("committed");
    let index = resp.log_id.index();
    match resp.data {
        Err(PdError::InvariantViolation(m)) => assert!(m.contains("overlap"), "{m}"),
        other => panic!("expected an invariant refusal, got {other:?}"),
    }

    // The same refusal through the path request handlers use.
    let version = before[0].version();
    let crafted = CatalogCommand::Unvalidated { edits: vec![RawEdit::SetVersion(version - 1)] };
    let err = leader(&servers).await.ctx.propose(crafted).await.expect_err("refused");
    assert!(matches!(err, PdError::InvariantViolation(ref m) if m.contains("went backwards")), "{err}");
    assert!(!err.is_retryable());

    // Every member applied both entries, refused both, and kept its catalog.
    // The counter is one registry for the whole process: three members, two
    // refusals each.
    all_applied(&servers, last_applied(leader(&servers).await)).await;
    for (s, was) in servers.iter().zip(&before) {
        assert!(last_applied(s) > index, "member {} moved past the refused entries", s.ctx.node_id);
        assert_eq!(catalog(s), *was, "member {} changed its catalog", s.ctx.node_id);
        assert_eq!(s.ctx.catalog.routes().version, version, "member {} published a new version", s.ctx.node_id);
    }
    assert_eq!(metrics::CATALOG_INVARIANT_REFUSALS.get() - refusals_before, 6);

    // The group keeps serving: a new store registers through the client API
    // and every member applies it.
    let id = pd.alloc_id().await.expect("alloc id after the refusals");
    let store = metapb::Store { id, address: "127.0.0.1:20190".into(), ..Default::default() };
    let new_version = pd.put_store(store).await.expect("put store after the refusals");
    assert_eq!(new_version, version + 1);
    all_applied(&servers, last_applied(leader(&servers).await)).await;
    for s in &servers {
        let c = catalog(s);
        assert!(c.store(id).is_some(), "member {} has the new store", s.ctx.node_id);
        assert_eq!(c.version(), version + 1);
    }

    for s in servers {
        s.shutdown().await;
    }
}
