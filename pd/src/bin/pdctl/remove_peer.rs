//! `pdctl region remove-peer`: asks the PD leader to remove a region's peer
//! from a store and, unless `--no-wait`, follows the operator step by step
//! (leadership moved off the store, the voter demoted, the peer removed)
//! until every Up store that heartbeats has the new routes, then prints the region. Any end
//! other than SUCCEEDED, and giving up after `--timeout`, is a failure
//! (exit status 1) with the reason.

use std::time::{Duration, Instant};

use pd::client::PdClient;

use crate::split::follow;
use crate::{Failure, Output, peer_change_done, say_to};

pub struct RemovePeerArgs {
    pub id: u64,
    pub store: u64,
    pub no_wait: bool,
    pub timeout_secs: u64,
}

pub async fn run(client: &PdClient, out: Output, args: RemovePeerArgs) -> Result<(), Failure> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let op = client.remove_region_peer(args.id, args.store).await?;
    let say = say_to(out);
    say(format!("operator {}: remove-peer of region {} from store {} started", op.id, op.region_id, args.store));
    if args.no_wait {
        return peer_change_done(client, out, op, false).await;
    }
    let op = follow(client, op, deadline, &say).await?;
    peer_change_done(client, out, op, true).await
}
