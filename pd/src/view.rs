//! JSON views of stores, regions and routes, shared by the HTTP API and
//! `pdctl --output json`. Keys are upper-case hex, as in PD's own API.

use proto::{metapb, pdpb};
use serde_json::{Value, json};

use crate::catalog::keys;

pub fn store_state_name(state: i32) -> &'static str {
    match metapb::StoreState::try_from(state) {
        Ok(metapb::StoreState::Up) => "Up",
        Ok(metapb::StoreState::Offline) => "Offline",
        Ok(metapb::StoreState::Tombstone) => "Tombstone",
        Err(_) => "Unknown",
    }
}

pub fn role_name(role: i32) -> &'static str {
    match metapb::PeerRole::try_from(role) {
        Ok(metapb::PeerRole::Voter) => "Voter",
        Ok(metapb::PeerRole::Learner) => "Learner",
        Ok(metapb::PeerRole::IncomingVoter) => "IncomingVoter",
        Ok(metapb::PeerRole::DemotingVoter) => "DemotingVoter",
        Err(_) => "Unknown",
    }
}

/// A byte count for people: `0`, `812B`, `3.5KiB`, `96.0MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return if bytes == 0 { "0".into() } else { format!("{bytes}B") };
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1}{}", UNITS[unit])
}

/// A store's capacity or available space with a space before the unit, as
/// operators read disk sizes: "1.8 TiB", "512 B", "0 B".
pub fn human_space(bytes: u64) -> String {
    if bytes == 0 {
        return "0 B".into();
    }
    let text = human_size(bytes);
    match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => format!("{} {}", &text[..at], &text[at..]),
        None => text,
    }
}

pub fn peer(p: &metapb::Peer) -> Value {
    json!({"id": p.id, "store_id": p.store_id, "role_name": role_name(p.role)})
}

pub fn store(s: &metapb::Store) -> Value {
    let labels: Vec<Value> = s.labels.iter().map(|l| json!({"key": l.key, "value": l.value})).collect();
    json!({
        "id": s.id,
        "address": s.address,
        "http_address": s.http_address,
        "state_name": store_state_name(s.state),
        "labels": labels,
        "version": s.version,
    })
}

pub fn store_info(info: &pdpb::StoreInfo) -> Value {
    let stats = info.stats.unwrap_or_default();
    json!({
        "store": info.store.as_ref().map(store),
        "status": {
            "region_count": info.region_count,
            "leader_count": info.leader_count,
            "capacity": stats.capacity,
            "available": stats.available,
            "used_size": stats.used_size,
            "bytes_written": stats.bytes_written,
            "keys_written": stats.keys_written,
            "bytes_read": stats.bytes_read,
            "keys_read": stats.keys_read,
            "route_version": stats.route_version,
            "last_heartbeat_ts": info.last_heartbeat_ms,
            "down": info.down,
        },
    })
}

pub fn region(route: &pdpb::RegionRoute, stats: Option<&pdpb::RegionStats>) -> Value {
    let mut v = region_meta(&route.region.clone().unwrap_or_default());
    let stats = stats.copied().unwrap_or_default();
    v["leader"] = json!(route.leader.as_ref().map(peer));
    v["approximate_size"] = json!(stats.approximate_size);
    v["approximate_keys"] = json!(stats.approximate_keys);
    v["bytes_written"] = json!(stats.bytes_written);
    v["keys_written"] = json!(stats.keys_written);
    v["bytes_read"] = json!(stats.bytes_read);
    v["keys_read"] = json!(stats.keys_read);
    v["interval_ms"] = json!(stats.interval_ms);
    v
}

/// `region` with the pending and down peers its leader last reported.
pub fn region_health(mut region: Value, pending: &[metapb::Peer], down: &[metapb::Peer]) -> Value {
    region["pending_peers"] = json!(pending.iter().map(peer).collect::<Vec<_>>());
    region["down_peers"] = json!(down.iter().map(peer).collect::<Vec<_>>());
    region
}

pub fn regions<'a>(routes: impl Iterator<Item = (&'a pdpb::RegionRoute, Option<pdpb::RegionStats>)>) -> Value {
    let list: Vec<Value> = routes.map(|(r, s)| region(r, s.as_ref())).collect();
    json!({"count": list.len(), "regions": list})
}

pub fn routes(snapshot: &pdpb::RouteSnapshot) -> Value {
    json!({
        "version": snapshot.version,
        "count": snapshot.regions.len(),
        "stores": snapshot.stores.iter().map(store).collect::<Vec<_>>(),
        "regions": snapshot.regions.iter().map(|r| region(r, None)).collect::<Vec<_>>(),
    })
}

/// A region as the catalog holds it, without stats.
pub fn region_meta(r: &metapb::Region) -> Value {
    let epoch = r.region_epoch.unwrap_or_default();
    json!({
        "id": r.id,
        "start_key": keys::hex(&r.start_key),
        "end_key": keys::hex(&r.end_key),
        "epoch": {"conf_ver": epoch.conf_ver, "version": epoch.version},
        "peers": r.peers.iter().map(peer).collect::<Vec<_>>(),
    })
}

pub fn operator_status_name(status: i32) -> &'static str {
    pdpb::OperatorStatus::try_from(status).map_or("UNKNOWN", |s| s.as_str_name())
}

pub fn operator(op: &pdpb::Operator) -> Value {
    let epoch = op.region_epoch.unwrap_or_default();
    json!({
        "id": op.id,
        "region_id": op.region_id,
        "kind": pdpb::OperatorKind::try_from(op.kind).map_or("UNKNOWN", |k| k.as_str_name()),
        "status": operator_status_name(op.status),
        "step": op.step,
        "error": op.error.as_ref().map(|e| json!({"type": e.r#type().as_str_name(), "message": e.message})),
        "source": op.source,
        "region_epoch": {"conf_ver": epoch.conf_ver, "version": epoch.version},
        "split_key": keys::hex(&op.split_key),
        "new_region_id": op.new_region_id,
        "target_store_id": op.target_store_id,
        "source_store_id": op.source_store_id,
        "new_peer_id": op.new_peer_id,
        "steps": op.steps,
        "step_index": op.step_index,
        "timeout_ms": op.timeout_ms,
        "result_version": op.result_version,
        "converged_stores": op.converged_stores,
        "total_stores": op.total_stores,
        "created_ms": op.created_ms,
        "finished_ms": op.finished_ms,
        "converged_ms": op.converged_ms,
        "result": op.result.iter().map(region_meta).collect::<Vec<_>>(),
    })
}

pub fn operators(ops: &[pdpb::Operator]) -> Value {
    json!({"count": ops.len(), "operators": ops.iter().map(operator).collect::<Vec<_>>()})
}

/// The replica checkers' plans, in the order they were made.
pub fn checker_plans(plans: &[crate::schedule::replica_checks::CheckedPlan]) -> Value {
    use crate::schedule::plan::PlanKind;
    let one = |p: &crate::schedule::replica_checks::CheckedPlan| {
        let (from, to) = match p.plan.kind {
            PlanKind::Move { from, to } => (Some(from), Some(to)),
            PlanKind::AddPeer { store } => (None, Some(store)),
            PlanKind::RemovePeer { store } => (Some(store), None),
            PlanKind::LeaveJoint => (None, None),
        };
        json!({
            "checker": p.checker.as_str(),
            "region_id": p.plan.region_id,
            "kind": p.plan.kind.label(),
            "from_store": from,
            "to_store": to,
            "reason": p.plan.reason,
        })
    };
    json!({"count": plans.len(), "plans": plans.iter().map(one).collect::<Vec<_>>()})
}

pub fn members(m: &pdpb::GetMembersResponse) -> Value {
    let member = |x: &pdpb::Member| json!({"id": x.id, "address": x.address, "http_address": x.http_address});
    json!({
        "members": m.members.iter().map(member).collect::<Vec<_>>(),
        "leader": m.leader.as_ref().map(member),
        "term": m.term,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_for_people() {
        assert_eq!(human_size(0), "0");
        assert_eq!(human_size(812), "812B");
        assert_eq!(human_size(3584), "3.5KiB");
        assert_eq!(human_size(96 << 20), "96.0MiB");
        assert_eq!(human_size(3 << 40), "3.0TiB");
    }

    #[test]
    fn store_space_reads_like_a_disk_size() {
        assert_eq!(human_space(0), "0 B");
        assert_eq!(human_space(812), "812 B");
        assert_eq!(human_space(1_979_120_929_996), "1.8 TiB");
        assert_eq!(human_space(10 << 30), "10.0 GiB");
        assert_eq!(human_space(64 << 20), "64.0 MiB");
    }
}
