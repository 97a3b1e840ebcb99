//! `pdctl store delete`: starts a store's decommission and, unless
//! `--no-wait`, follows it until the store is Tombstone, printing a line
//! each time the number of regions still on it changes:
//!
//! ```text
//! store 2: Offline, 5 regions left
//! store 2: Offline, 4 regions left
//! ...
//! store 2: Tombstone
//! ```
//!
//! Giving up after `--timeout` is a failure (exit status 1); the
//! decommission goes on in PD, and running the command again follows it
//! further. Progress goes to stdout in table mode and to stderr with
//! `-o json`, so stdout stays one JSON document: the store at the end.

use std::time::{Duration, Instant};

use pd::client::PdClient;
use pd::view;
use proto::{metapb, pdpb};

use crate::{Failure, Output, print, store_table};

/// Moving replicas copies whole regions: a store with many of them takes a
/// while to drain. The default covers a small store; pass more for a big one.
pub const DEFAULT_WAIT_SECS: u64 = 600;
/// How often the store is polled: a region moves in seconds, not less.
const POLL: Duration = Duration::from_secs(1);

pub struct DeleteArgs {
    pub id: u64,
    pub no_wait: bool,
    pub timeout_secs: u64,
}

pub async fn run(client: &PdClient, out: Output, args: DeleteArgs) -> Result<(), Failure> {
    if args.id == 0 {
        return Err(Failure::Usage("store id must not be 0".into()));
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let mut info = client.delete_store(args.id).await?;
    let say = |line: String| match out {
        Output::Table => println!("{line}"),
        Output::Json => eprintln!("{line}"),
    };
    let mut shown = progress(args.id, &info);
    say(shown.clone());
    if !args.no_wait {
        while state(&info) != metapb::StoreState::Tombstone {
            if Instant::now() >= deadline {
                return Err(Failure::Operator(format!(
                    "gave up waiting after {}s: {shown} (the decommission goes on; run the command again to follow it)",
                    args.timeout_secs
                )));
            }
            tokio::time::sleep(POLL).await;
            info = client.get_store(args.id).await?;
            let line = progress(args.id, &info);
            if line != shown {
                say(line.clone());
                shown = line;
            }
        }
    }
    print(out, &view::store_info(&info), || store_table(std::slice::from_ref(&info)));
    Ok(())
}

fn state(info: &pdpb::StoreInfo) -> metapb::StoreState {
    info.store.as_ref().and_then(|s| metapb::StoreState::try_from(s.state).ok()).unwrap_or_default()
}

/// "store 2: Offline, 5 regions left" (or "... 1 region left", "... Tombstone").
fn progress(id: u64, info: &pdpb::StoreInfo) -> String {
    let name = view::store_state_name(state(info) as i32);
    let down = if info.down { " (Down)" } else { "" };
    match (state(info), info.region_count) {
        (metapb::StoreState::Tombstone, _) => format!("store {id}: {name}"),
        (_, 1) => format!("store {id}: {name}{down}, 1 region left"),
        (_, n) => format!("store {id}: {name}{down}, {n} regions left"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(state: metapb::StoreState, regions: u64, down: bool) -> pdpb::StoreInfo {
        pdpb::StoreInfo {
            store: Some(metapb::Store { id: 2, state: state as i32, ..Default::default() }),
            region_count: regions,
            down,
            ..Default::default()
        }
    }

    #[test]
    fn progress_lines_count_the_regions_left() {
        assert_eq!(progress(2, &info(metapb::StoreState::Offline, 5, false)), "store 2: Offline, 5 regions left");
        assert_eq!(progress(2, &info(metapb::StoreState::Offline, 1, true)), "store 2: Offline (Down), 1 region left");
        assert_eq!(progress(2, &info(metapb::StoreState::Tombstone, 0, false)), "store 2: Tombstone");
    }
}
