//! `pdctl region split`: asks the PD leader for a split operator and, unless
//! `--no-wait`, follows it: each step as it changes, then "converged on
//! N/M stores" until every Up store's route version covers the split, then
//! the resulting regions. Any end other than SUCCEEDED, and giving up after
//! `--timeout`, is a failure (exit status 1) with the reason.
//!
//! Progress goes to stdout in table mode and to stderr with `-o json`, so
//! stdout stays one JSON document: `{"operator": ..., "regions": [...]}`.

use std::time::{Duration, Instant};

use pd::catalog::keys;
use pd::client::PdClient;
use pd::error::PdError;
use pd::view;
use proto::pdpb;
use serde_json::json;

use crate::operator::{details, ending, split_key};
use crate::{Failure, Output, print, region_table};

/// Long enough for PD's split timeout (60 s by default) and convergence
/// after it.
pub const DEFAULT_WAIT_SECS: u64 = 120;
/// How often the operator is polled: splits take a few hundred ms.
const POLL: Duration = Duration::from_millis(200);

pub struct SplitArgs {
    pub id: u64,
    pub key: Option<String>,
    pub hex: bool,
    pub no_wait: bool,
    pub timeout_secs: u64,
}

pub async fn run(client: &PdClient, out: Output, args: SplitArgs) -> Result<(), Failure> {
    let key = match (&args.key, args.hex) {
        (None, _) => Vec::new(),
        (Some(k), _) if k.is_empty() => {
            return Err(Failure::Usage("--key must not be empty; leave it out to split at the middle".into()));
        }
        (Some(k), false) => k.clone().into_bytes(),
        (Some(k), true) => keys::from_hex(k)
            .ok_or_else(|| Failure::Usage(format!("--key {k:?} is not an even number of hex digits")))?,
    };
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let op = client.split_region(args.id, &key, None).await?;
    let say = |line: String| match out {
        Output::Table => println!("{line}"),
        Output::Json => eprintln!("{line}"),
    };
    say(format!("operator {}: split of region {} at {} started", op.id, op.region_id, split_key(&op.split_key)));
    if args.no_wait {
        print(out, &view::operator(&op), || details(&op));
        return Ok(());
    }
    let op = follow(client, op, deadline, &say).await?;
    let mut regions = Vec::new();
    for r in &op.result {
        let resp = client.get_region_by_id(r.id).await?;
        regions.push((resp.route.unwrap_or_default(), resp.stats.unwrap_or_default()));
    }
    let json = json!({
        "operator": view::operator(&op),
        "regions": regions.iter().map(|(r, s)| view::region(r, Some(s))).collect::<Vec<_>>(),
    });
    print(out, &json, || region_table(&regions));
    Ok(())
}

/// Polls the operator until it succeeded and every Up store has its
/// routes; reports each new step and convergence count through `say`.
pub async fn follow(
    client: &PdClient,
    mut op: pdpb::Operator,
    deadline: Instant,
    say: &impl Fn(String),
) -> Result<pdpb::Operator, Failure> {
    let id = op.id;
    let mut last_step = String::new();
    let mut last_index = None;
    let mut last_converged = None;
    loop {
        let status = pdpb::OperatorStatus::try_from(op.status).unwrap_or(pdpb::OperatorStatus::Failed);
        match status {
            // Membership operators: each planned step once, as it starts.
            // Steps passed between two polls are printed too, in order.
            pdpb::OperatorStatus::Running if !op.steps.is_empty() => {
                let i = op.step_index as usize;
                let now = (i, op.steps.get(i).cloned().unwrap_or_default());
                if last_index.as_ref() != Some(&now) {
                    let from = match &last_index {
                        Some((last, _)) if *last < i => last + 1,
                        _ => i,
                    };
                    for (j, step) in op.steps.iter().enumerate().take(i + 1).skip(from) {
                        say(format!("operator {id}: step {}/{}: {step}", j + 1, op.steps.len()));
                    }
                    last_index = Some(now);
                }
            }
            pdpb::OperatorStatus::Running => {
                if op.step != last_step {
                    say(format!("operator {id}: {}", op.step));
                    last_step = op.step.clone();
                }
            }
            pdpb::OperatorStatus::Succeeded => {
                // Said here rather than from the step, which may already
                // read "converged" when pdctl first sees the success.
                if last_converged.is_none() {
                    // Steps done since the last poll, in order.
                    let from = last_index.as_ref().map_or(0, |(last, _)| last + 1);
                    for (j, step) in op.steps.iter().enumerate().skip(from) {
                        say(format!("operator {id}: step {}/{}: {step}", j + 1, op.steps.len()));
                    }
                    let what = match pdpb::OperatorKind::try_from(op.kind) {
                        Ok(pdpb::OperatorKind::TransferLeader) => "leader transfer",
                        Ok(pdpb::OperatorKind::Move) => "move",
                        Ok(pdpb::OperatorKind::AddPeer) => "add-peer",
                        Ok(pdpb::OperatorKind::RemovePeer) => "remove-peer",
                        Ok(pdpb::OperatorKind::LeaveJoint) => "leave-joint",
                        Ok(pdpb::OperatorKind::Split) | Err(_) => "split",
                    };
                    say(format!("operator {id}: {what} applied at catalog version {}", op.result_version));
                }
                let now = (op.converged_stores, op.total_stores);
                if last_converged != Some(now) {
                    say(format!("operator {id}: converged on {}/{} stores", now.0, now.1));
                    last_converged = Some(now);
                }
                if now.1 > 0 && now.0 == now.1 {
                    return Ok(op);
                }
            }
            pdpb::OperatorStatus::Failed | pdpb::OperatorStatus::TimedOut | pdpb::OperatorStatus::Cancelled => {
                return Err(Failure::Operator(ending(&op)));
            }
        }
        if Instant::now() >= deadline {
            return Err(Failure::Operator(format!("gave up waiting; {} (it goes on without pdctl)", ending(&op))));
        }
        tokio::time::sleep(POLL).await;
        op = client.get_operator(id).await.map_err(|e| match e {
            PdError::OperatorNotFound(_) => Failure::Operator(format!(
                "operator {id} is gone: PD's leader changed, and operators live in the leader's memory; \
                 `pdctl region show {}` tells whether the change happened",
                op.region_id
            )),
            other => Failure::Pd(other),
        })?;
    }
}
