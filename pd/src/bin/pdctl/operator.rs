//! `pdctl operator list | show | cancel`, and how operators print.

use pd::client::PdClient;
use pd::view;
use proto::pdpb;

use crate::age;
use crate::{Failure, Output, print, show_key, table};

pub async fn list(client: &PdClient, out: Output, all: bool) -> Result<(), Failure> {
    let ops = client.list_operators(all).await?;
    print(out, &view::operators(&ops), || list_table(&ops));
    Ok(())
}

pub async fn show(client: &PdClient, out: Output, id: u64) -> Result<(), Failure> {
    let op = client.get_operator(id).await?;
    print(out, &view::operator(&op), || details(&op));
    Ok(())
}

/// Succeeds when the operator ends up CANCELLED (now or earlier); one that
/// had already ended otherwise is a failure naming how it ended.
pub async fn cancel(client: &PdClient, out: Output, id: u64) -> Result<(), Failure> {
    let op = client.cancel_operator(id).await?;
    if op.status != pdpb::OperatorStatus::Cancelled as i32 {
        return Err(Failure::Operator(format!(
            "operator {id} had already ended: {}",
            view::operator_status_name(op.status)
        )));
    }
    print(out, &view::operator(&op), || format!("operator {id} CANCELLED (last step: {})", op.step));
    Ok(())
}

/// "2/3" once there is a result to converge on, "-" before.
fn converged(op: &pdpb::Operator) -> String {
    if op.result_version == 0 { "-".into() } else { format!("{}/{}", op.converged_stores, op.total_stores) }
}

fn kind_name(op: &pdpb::Operator) -> &'static str {
    pdpb::OperatorKind::try_from(op.kind).map_or("UNKNOWN", |k| k.as_str_name())
}

/// The split key as asked for, or how the leader picks one.
pub fn split_key(key: &[u8]) -> String {
    if key.is_empty() { "(middle by size)".into() } else { show_key(key, "") }
}

/// How an operator ended, for error messages: status, error, last step.
pub fn ending(op: &pdpb::Operator) -> String {
    let mut s = format!("operator {} {}", op.id, view::operator_status_name(op.status));
    if let Some(e) = &op.error {
        s.push_str(&format!(": {}: {}", e.r#type().as_str_name(), e.message));
    }
    if !op.step.is_empty() {
        s.push_str(&format!(" (last step: {})", op.step));
    }
    s
}

fn list_table(ops: &[pdpb::Operator]) -> String {
    let now = age::now_ms();
    let rows: Vec<Vec<String>> = ops
        .iter()
        .map(|op| {
            vec![
                op.id.to_string(),
                op.region_id.to_string(),
                kind_name(op).to_string(),
                op.source.clone(),
                view::operator_status_name(op.status).to_string(),
                converged(op),
                age::ago(op.created_ms, now),
                op.step.clone(),
            ]
        })
        .collect();
    table(&["ID", "REGION", "KIND", "SOURCE", "STATUS", "CONVERGED", "CREATED", "STEP"], &rows)
}

/// One operator, a field per line.
pub fn details(op: &pdpb::Operator) -> String {
    let epoch = op.region_epoch.unwrap_or_default();
    let ms = |v: u64| if v == 0 { "-".to_string() } else { v.to_string() };
    let now = age::now_ms();
    // A running operator has not finished yet, nor has a succeeded one
    // converged; "never" is for one that ended otherwise.
    let may_still = matches!(
        pdpb::OperatorStatus::try_from(op.status),
        Ok(pdpb::OperatorStatus::Running | pdpb::OperatorStatus::Succeeded)
    );
    let when = |v: u64| if v == 0 && may_still { "not yet".to_string() } else { age::ago(v, now) };
    let mut lines = vec![
        ("id", op.id.to_string()),
        ("region", format!("{} (epoch {}/{})", op.region_id, epoch.conf_ver, epoch.version)),
        ("kind", kind_name(op).to_string()),
        ("source", op.source.clone()),
        ("status", view::operator_status_name(op.status).to_string()),
        ("step", op.step.clone()),
    ];
    let membership = matches!(
        pdpb::OperatorKind::try_from(op.kind),
        Ok(pdpb::OperatorKind::Move
            | pdpb::OperatorKind::AddPeer
            | pdpb::OperatorKind::RemovePeer
            | pdpb::OperatorKind::LeaveJoint)
    );
    if membership {
        lines.push(("source store", ms(op.source_store_id)));
        lines.push(("target store", ms(op.target_store_id)));
        lines.push(("new peer", ms(op.new_peer_id)));
        lines.push(("timeout ms", ms(op.timeout_ms)));
    } else {
        lines.push(("split key", split_key(&op.split_key)));
        lines.push(("new region", op.new_region_id.to_string()));
    }
    lines.extend([
        ("result version", ms(op.result_version)),
        ("converged stores", converged(op)),
        ("created", age::ago(op.created_ms, now)),
        ("finished", when(op.finished_ms)),
        ("converged", when(op.converged_ms)),
    ]);
    let running = op.status == pdpb::OperatorStatus::Running as i32;
    for (i, step) in op.steps.iter().enumerate() {
        let mark = if i == op.step_index as usize && running { " <- now" } else { "" };
        lines.push(("steps", format!("{}. {step}{mark}", i + 1)));
    }
    if let Some(e) = &op.error {
        lines.push(("error", format!("{}: {}", e.r#type().as_str_name(), e.message)));
    }
    for r in &op.result {
        lines.push((
            "result",
            format!("region {} [{}, {})", r.id, show_key(&r.start_key, "-inf"), show_key(&r.end_key, "+inf")),
        ));
    }
    lines.iter().map(|(k, v)| format!("{:<18}{v}", format!("{k}:"))).collect::<Vec<_>>().join("\n")
}
