//! `pdctl region move`: asks the PD leader to move a region's replica from
//! one store to another and, unless `--no-wait`, follows the operator step
//! by step (leadership off the source, learner added on the target, caught
//! up, promoted while the source is demoted, source removed) until every Up
//! store has the new routes, then prints the region. Any end other than
//! SUCCEEDED, and giving up after `--timeout`, is a failure (exit status 1)
//! with the reason.

use std::time::{Duration, Instant};

use pd::client::PdClient;

use crate::split::follow;
use crate::{Failure, Output, peer_change_done, say_to};

pub struct MoveArgs {
    pub id: u64,
    pub from: u64,
    pub to: u64,
    pub no_wait: bool,
    pub timeout_secs: u64,
}

pub async fn run(client: &PdClient, out: Output, args: MoveArgs) -> Result<(), Failure> {
    if args.from == args.to {
        return Err(Failure::Usage(format!("--from and --to are both store {}", args.from)));
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let op = client.move_region(args.id, args.from, args.to).await?;
    let say = say_to(out);
    say(format!(
        "operator {}: move of region {} from store {} to store {} (new peer {}) started",
        op.id, op.region_id, args.from, args.to, op.new_peer_id
    ));
    if args.no_wait {
        return peer_change_done(client, out, op, false).await;
    }
    let op = follow(client, op, deadline, &say).await?;
    peer_change_done(client, out, op, true).await
}
