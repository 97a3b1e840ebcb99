//! `pdctl region split`: asks the PD leader for a split operator and, unless
//! `--no-wait`, follows it: each step as it changes, then "converged on
//! N/M stores" until every Up store that heartbeats has routes covering the
//! split (silent ones are named, not waited for), then the resulting
//! regions. Any end other than SUCCEEDED, and giving up after
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
use crate::progress::{StepReport, StoreWatch};
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

/// Polls the operator until it succeeded and every Up store that
/// heartbeats has its routes (see [`crate::progress`]); reports each new
/// step and convergence count through `say`, and names the silent stores
/// it did not wait for.
pub async fn follow(
    client: &PdClient,
    mut op: pdpb::Operator,
    deadline: Instant,
    say: &impl Fn(String),
) -> Result<pdpb::Operator, Failure> {
    let id = op.id;
    let mut last_step = String::new();
    let mut steps = StepReport::default();
    let mut stores = StoreWatch::default();
    let mut applied = false;
    let mut last_converged = None;
    loop {
        let status = pdpb::OperatorStatus::try_from(op.status).unwrap_or(pdpb::OperatorStatus::Failed);
        match status {
            // Membership operators: each planned step once, as it starts.
            pdpb::OperatorStatus::Running if !op.steps.is_empty() => steps.running(&op).into_iter().for_each(say),
            pdpb::OperatorStatus::Running => {
                if op.step != last_step {
                    say(format!("operator {id}: {}", op.step));
                    last_step = op.step.clone();
                }
            }
            pdpb::OperatorStatus::Succeeded => {
                // Said here rather than from the step, which may already
                // read "converged" when pdctl first sees the success.
                if !applied {
                    applied = true;
                    steps.finished(&op).into_iter().for_each(say);
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
                let c = stores.observe(&client.list_stores().await?, op.result_version);
                let now = (c.converged.clone(), c.done());
                if last_converged.as_ref().map(|(n, _)| n) != Some(&now) {
                    let line = c.describe(id, op.result_version);
                    say(line.clone());
                    last_converged = Some((now, line));
                }
                if c.done() {
                    return Ok(op);
                }
            }
            pdpb::OperatorStatus::Failed | pdpb::OperatorStatus::TimedOut | pdpb::OperatorStatus::Cancelled => {
                return Err(Failure::Operator(ending(&op)));
            }
        }
        if Instant::now() >= deadline {
            let stores = last_converged.map(|(_, line)| format!("; {line}")).unwrap_or_default();
            return Err(Failure::Operator(format!(
                "gave up waiting; {}{stores} (it goes on without pdctl)",
                ending(&op)
            )));
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
