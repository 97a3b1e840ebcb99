//! PD's side of a replica move, end to end, against stores played by the
//! test over real heartbeat streams: `pdctl region move` off the region's
//! leader makes PD transfer leadership first, then add a learner on the
//! target with a PD-allocated peer id, wait while the leader reports it
//! pending, promote it and demote the source in one `ChangePeers`, leave the
//! joint state the region is reported in, and remove the source's peer;
//! each directive goes out only once the scripted leader reports the
//! previous step's result. Then a remove-peer that would lose the quorum to
//! a down peer is refused.

use std::time::Duration;

use cluster_tests::pd_cluster::PdCluster;
use cluster_tests::test_store::{HeartbeatStream, register_store};
use cluster_tests::{pdctl, pdctl_spawn, pdctl_wait, phase, wait_for};
use pd::client::PdClient;
use pd::error::PdError;
use proto::{metapb, pdpb};

const WAIT: Duration = Duration::from_secs(20);
const LEARNER: i32 = metapb::PeerRole::Learner as i32;
const VOTER: i32 = metapb::PeerRole::Voter as i32;

/// The region's leader on `s` reports it, with pending and down peers.
async fn report(
    s: &HeartbeatStream,
    region: &metapb::Region,
    term: u64,
    pending: &[metapb::Peer],
    down: &[metapb::Peer],
) {
    s.send(pdpb::store_heartbeat_request::Payload::Region(pdpb::RegionHeartbeat {
        region: Some(region.clone()),
        leader: Some(s.peer_of(region)),
        term,
        stats: Some(pdpb::RegionStats { approximate_size: 1 << 20, approximate_keys: 1000, ..Default::default() }),
        pending_peers: pending.to_vec(),
        down_peers: down.to_vec(),
    }))
    .await;
}

/// The next directive matching `pred`, skipping re-sends of earlier ones.
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

/// Waits until the catalog holds the region at `conf_ver` led from `store`.
async fn catalog_has(pd: &PdClient, region_id: u64, conf_ver: u64, store: u64) -> pdpb::GetRegionResponse {
    wait_for(&format!("region {region_id} at conf_ver {conf_ver} led from store {store}"), WAIT, || async {
        let resp = pd.get_region_by_id(region_id).await.ok()?;
        let route = resp.route.as_ref()?;
        let epoch = route.region.as_ref()?.region_epoch?;
        (epoch.conf_ver == conf_ver && route.leader?.store_id == store).then_some(resp)
    })
    .await
}

fn bump(region: &mut metapb::Region) {
    region.region_epoch.as_mut().expect("epoch").conf_ver += 1;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_goes_step_by_step_as_the_leader_reports_each_result() {
    phase("one PD member, four scripted stores, the region on three, led from the first");
    let cluster = PdCluster::start(1, &["--split-check-interval-ms", "0"]).await;
    let pd = cluster.client();
    let ep = cluster.endpoints().join(",");
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(register_store(&pd, 24160 + 10 * i).await);
    }
    let routes =
        wait_for("bootstrap", WAIT, || async { pd.list_routes().await.ok().filter(|r| !r.regions.is_empty()) }).await;
    ids.push(register_store(&pd, 24190).await);
    let mut streams = Vec::new();
    for id in &ids {
        let mut s = HeartbeatStream::open(&pd, *id).await.expect("stream");
        s.next_routes(WAIT).await.expect("first routes");
        streams.push(s);
    }
    let mut region = routes.regions[0].region.clone().expect("region");
    let at = |store: u64| ids.iter().position(|id| *id == store).expect("known store");
    let source = region.peers[0].store_id;
    let target = *ids.iter().find(|id| !region.peers.iter().any(|p| p.store_id == **id)).expect("a free store");
    report(&streams[at(source)], &region, 1, &[], &[]).await;
    catalog_has(&pd, region.id, 1, source).await;

    phase("pdctl asks for the move; the leader on the source is asked to hand over first");
    let child = pdctl_spawn(&[
        "--pd",
        &ep,
        "region",
        "move",
        &region.id.to_string(),
        "--from",
        &source.to_string(),
        "--to",
        &target.to_string(),
    ]);
    let d = streams[at(source)].next_directive(WAIT).await.expect("directive");
    let Some(pdpb::directive::Kind::TransferLeader(t)) = &d.kind else { panic!("transfer first: {d:?}") };
    let heir = t.peer.expect("peer");
    assert_ne!(heir.store_id, source);
    assert_eq!(d.region_epoch, region.region_epoch, "directives carry the region's epoch");
    let op_id = d.id;
    let op = pd.get_operator(op_id).await.expect("the directive id is the operator id");
    assert_eq!(op.kind(), pdpb::OperatorKind::Move);
    assert_eq!((op.source_store_id, op.target_store_id), (source, target));
    assert_eq!(op.steps.len(), 5, "{:?}", op.steps);
    // The default base plus the reported 1 MiB at 8 MiB/s.
    assert_eq!(op.timeout_ms, 120_000 + 125, "the timeout grows with the region");

    phase("the heir reports itself leader; the learner goes to the target");
    let h = at(heir.store_id);
    report(&streams[h], &region, 2, &[], &[]).await;
    let d = directive_where(&mut streams[h], |d| matches!(d.kind, Some(pdpb::directive::Kind::AddLearner(_)))).await;
    let Some(pdpb::directive::Kind::AddLearner(a)) = &d.kind else { unreachable!() };
    let learner = a.peer.expect("peer");
    assert_eq!((learner.store_id, learner.role, learner.id), (target, LEARNER, op.new_peer_id));
    assert_eq!(d.id, op_id);

    phase("the learner is in, but pending: PD waits, and lookups show it pending");
    region.peers.push(learner);
    bump(&mut region);
    report(&streams[h], &region, 2, &[learner], &[]).await;
    let resp = catalog_has(&pd, region.id, 2, heir.store_id).await;
    let resp = if resp.pending_peers.is_empty() {
        wait_for("the pending learner in lookups", WAIT, || async {
            pd.get_region_by_id(region.id).await.ok().filter(|r| !r.pending_peers.is_empty())
        })
        .await
    } else {
        resp
    };
    assert_eq!(resp.pending_peers, vec![learner]);
    let op = wait_for("the catch-up step", WAIT, || async {
        pd.get_operator(op_id).await.ok().filter(|op| op.step_index == 2)
    })
    .await;
    assert!(op.step.contains("catch up"), "{}", op.step);
    let (code, out, err) = pdctl(&["--pd", &ep, "region", "show", &region.id.to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("pending peers: {}@{target}", learner.id)), "{out}");
    let (code, out, err) = pdctl(&["--pd", &ep, "operator", "show", &op_id.to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("3. wait for learner") && out.contains("<- now"), "{out}");

    phase("caught up: one ChangePeers promotes the learner and demotes the source");
    report(&streams[h], &region, 2, &[], &[]).await;
    let d = directive_where(&mut streams[h], |d| matches!(d.kind, Some(pdpb::directive::Kind::ChangePeers(_)))).await;
    let Some(pdpb::directive::Kind::ChangePeers(c)) = &d.kind else { unreachable!() };
    let kinds: Vec<(pdpb::ChangeKind, u64)> =
        c.changes.iter().map(|c| (c.kind(), c.peer.expect("peer").store_id)).collect();
    assert_eq!(kinds, vec![(pdpb::ChangeKind::AddVoter, target), (pdpb::ChangeKind::DemoteVoter, source)]);
    assert_eq!(d.region_epoch, region.region_epoch, "the epoch the learner brought");

    phase("the region is reported joint (leadership lost halfway): PD asks it to leave");
    for p in &mut region.peers {
        if p.store_id == target {
            p.role = metapb::PeerRole::IncomingVoter as i32;
        } else if p.store_id == source {
            p.role = metapb::PeerRole::DemotingVoter as i32;
        }
    }
    bump(&mut region);
    report(&streams[h], &region, 3, &[], &[]).await;
    let d = directive_where(
        &mut streams[h],
        |d| matches!(&d.kind, Some(pdpb::directive::Kind::ChangePeers(c)) if c.changes.is_empty()),
    )
    .await;
    assert_eq!(d.region_epoch, region.region_epoch);

    phase("out of the joint state: the source's peer, now a learner, is removed");
    for p in &mut region.peers {
        p.role = if p.store_id == source { LEARNER } else { VOTER };
    }
    bump(&mut region);
    report(&streams[h], &region, 3, &[], &[]).await;
    let d = directive_where(&mut streams[h], |d| matches!(d.kind, Some(pdpb::directive::Kind::RemovePeer(_)))).await;
    let Some(pdpb::directive::Kind::RemovePeer(r)) = &d.kind else { unreachable!() };
    assert_eq!(r.peer.expect("peer").store_id, source);
    region.peers.retain(|p| p.store_id != source);
    bump(&mut region);
    report(&streams[h], &region, 3, &[], &[]).await;

    phase("done: the operator succeeds, every store claims the routes, pdctl printed each step");
    let op = wait_for("success", WAIT, || async {
        pd.get_operator(op_id).await.ok().filter(|op| op.status() == pdpb::OperatorStatus::Succeeded)
    })
    .await;
    for s in streams.iter_mut() {
        let r = s.routes_until(WAIT, |r| r.version >= op.result_version).await;
        s.report_route_version(r.version).await;
    }
    let (code, out, err) = pdctl_wait(child, WAIT).await;
    assert_eq!(code, 0, "{out}\n{err}");
    // In order, each once; the total grows (the leave-joint step joined
    // the plan when the region was reported joint), said once before any
    // step is numbered against the new total.
    let (before, after) = out.split_once("the plan now has 6 steps, not 5 (new: leave the joint").expect(&out);
    assert!(!before.contains("/6:") && !after.contains("/5:"), "numbered against the wrong plan: {out}");
    let printed: Vec<&str> = out.lines().filter_map(|l| l.split_once(": step ").map(|(_, s)| s)).collect();
    let want = ["transfer leadership", "add learner", "wait for learner", "promote", "leave the joint", "remove peer"];
    assert_eq!(printed.len(), want.len(), "{out}");
    for (i, (line, what)) in printed.iter().zip(want).enumerate() {
        let (n, desc) = line.split_once(": ").expect("step N/M: what");
        assert!(n.starts_with(&format!("{}/", i + 1)) && desc.starts_with(what), "{line:?}, not {what:?}: {out}");
    }
    assert!(out.contains("move applied at catalog version"), "{out}");
    let now = pd.get_region_by_id(region.id).await.expect("region").route.and_then(|r| r.region).expect("region");
    assert!(now.peers.iter().all(|p| p.store_id != source && p.role == VOTER), "{now:?}");

    phase("a remove-peer that would leave one healthy voter of two is refused");
    let down = *now.peers.iter().find(|p| p.store_id != heir.store_id).expect("another voter");
    report(&streams[h], &now, 3, &[], &[down]).await;
    let resp = wait_for("the down peer in lookups", WAIT, || async {
        pd.get_region_by_id(region.id).await.ok().filter(|r| !r.down_peers.is_empty())
    })
    .await;
    assert_eq!(resp.down_peers, vec![down]);
    let third = now.peers.iter().find(|p| p.store_id != heir.store_id && p.id != down.id).expect("third").store_id;
    let err = pd.remove_region_peer(region.id, third).await.unwrap_err();
    assert!(matches!(err, PdError::QuorumAtRisk(_)), "{err}");
    let (code, _, err) = pdctl(&["--pd", &ep, "region", "remove-peer", &region.id.to_string(), &third.to_string()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("quorum at risk"), "{err}");
}
