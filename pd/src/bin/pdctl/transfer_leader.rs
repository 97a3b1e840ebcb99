//! `pdctl region transfer-leader`: asks the PD leader to move a region's
//! leadership to its voter on a store and, unless `--no-wait`, follows the
//! operator until every Up store that heartbeats has routes naming the new leader, then prints
//! the region. Any end other than SUCCEEDED, and giving up after
//! `--timeout`, is a failure (exit status 1) with the reason.

use std::time::{Duration, Instant};

use pd::client::PdClient;
use pd::view;
use serde_json::json;

use crate::operator::details;
use crate::split::follow;
use crate::{Failure, Output, print, region_table};

pub struct TransferArgs {
    pub id: u64,
    pub store: u64,
    pub no_wait: bool,
    pub timeout_secs: u64,
}

pub async fn run(client: &PdClient, out: Output, args: TransferArgs) -> Result<(), Failure> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let op = client.transfer_leader(args.id, args.store).await?;
    let say = |line: String| match out {
        Output::Table => println!("{line}"),
        Output::Json => eprintln!("{line}"),
    };
    say(format!("operator {}: transfer of region {} leadership to store {} started", op.id, op.region_id, args.store));
    if args.no_wait {
        print(out, &view::operator(&op), || details(&op));
        return Ok(());
    }
    let op = follow(client, op, deadline, &say).await?;
    let resp = client.get_region_by_id(args.id).await?;
    let regions = vec![(resp.route.unwrap_or_default(), resp.stats.unwrap_or_default())];
    let json = json!({
        "operator": view::operator(&op),
        "regions": regions.iter().map(|(r, s)| view::region(r, Some(s))).collect::<Vec<_>>(),
    });
    print(out, &json, || region_table(&regions));
    Ok(())
}
