//! `pdctl region add-peer`: asks the PD leader to add a voter of a region on
//! a store and, unless `--no-wait`, follows the operator step by step
//! (learner added, caught up, promoted) until every Up store has the new
//! routes, then prints the region. Any end other than SUCCEEDED, and giving
//! up after `--timeout`, is a failure (exit status 1) with the reason.

use std::time::{Duration, Instant};

use pd::client::PdClient;

use crate::split::follow;
use crate::{Failure, Output, peer_change_done, say_to};

pub struct AddPeerArgs {
    pub id: u64,
    pub store: u64,
    pub no_wait: bool,
    pub timeout_secs: u64,
}

pub async fn run(client: &PdClient, out: Output, args: AddPeerArgs) -> Result<(), Failure> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let op = client.add_region_peer(args.id, args.store).await?;
    let say = say_to(out);
    say(format!(
        "operator {}: add-peer of region {} on store {} (new peer {}) started",
        op.id, op.region_id, args.store, op.new_peer_id
    ));
    if args.no_wait {
        return peer_change_done(client, out, op, false).await;
    }
    let op = follow(client, op, deadline, &say).await?;
    peer_change_done(client, out, op, true).await
}
