//! `pdctl`: the operator's command line for PD.
//!
//! ```text
//! pdctl --pd 127.0.0.1:2379 store list
//! pdctl store show 1
//! pdctl store delete 2 [--no-wait] [--timeout SECS]
//! pdctl region list | region show 4 | region key user42
//! pdctl region split 4 [--key user5 [--hex]] [--no-wait] [--timeout SECS]
//! pdctl region transfer-leader 4 2 [--no-wait] [--timeout SECS]
//! pdctl region move 4 --from 1 --to 5 [--no-wait] [--timeout SECS]
//! pdctl region add-peer 4 5 [--no-wait] [--timeout SECS]
//! pdctl region remove-peer 4 1 [--no-wait] [--timeout SECS]
//! pdctl operator list [--all] | operator show 17 | operator cancel 17
//! pdctl routes [--watch [--count N]]
//! pdctl members
//! ```
//!
//! `--pd` (or `PD_ADDR`) takes one or more PD gRPC addresses, comma
//! separated; pdctl finds the leader itself. `--output json` prints the same
//! JSON as PD's HTTP API. Exit status: 0 on success, 1 when PD refuses or
//! cannot be reached or an operator ends other than SUCCEEDED, 2 on usage
//! errors.
//!
//! One file per command family: [`split`] (start a split and follow it),
//! [`transfer_leader`] (start a leader transfer and follow it),
//! [`move_region`], [`add_peer`], [`remove_peer`] (start a membership
//! change and follow it step by step), [`operator`] (list, show, cancel).
//! Tables show PD's Unix-millisecond times as ages ([`age`]); JSON keeps
//! the milliseconds.

mod add_peer;
mod age;
mod delete_store;
mod hot_regions;
mod move_region;
mod operator;
mod progress;
mod remove_peer;
mod split;
mod transfer_leader;

use std::fmt;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use pd::catalog::keys;
use pd::client::PdClient;
use pd::error::PdError;
use pd::view;
use proto::pdpb;
use serde_json::Value;

#[derive(Parser, Debug)]
#[command(name = "pdctl", version, about = "Inspect and drive the placement driver")]
struct Args {
    /// PD gRPC addresses, comma separated.
    #[arg(long, env = "PD_ADDR", default_value = "127.0.0.1:2379", value_delimiter = ',', global = true)]
    pd: Vec<String>,
    #[arg(long, short, value_enum, default_value_t = Output::Table, global = true)]
    output: Output,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Stores: `list`, `show <id>` or `delete <id>`.
    Store {
        #[command(subcommand)]
        cmd: StoreCmd,
    },
    /// Regions: `list`, `show <id>` or `key <key>`.
    Region {
        #[command(subcommand)]
        cmd: RegionCmd,
    },
    /// Operators the PD leader runs or ran recently: `list`, `show <id>`,
    /// `cancel <id>`.
    Operator {
        #[command(subcommand)]
        cmd: OperatorCmd,
    },
    /// The route table and its catalog version.
    Routes {
        /// Keep printing every new version.
        #[arg(long)]
        watch: bool,
        /// With --watch: exit after this many snapshots.
        #[arg(long)]
        count: Option<u64>,
    },
    /// PD members and the leader.
    Members,
}

#[derive(Subcommand, Debug)]
enum StoreCmd {
    List,
    Show {
        id: u64,
    },
    /// Decommission a store: it goes Offline, its replicas move to other
    /// stores, then it is Tombstone (at once if it holds none). Waits until
    /// it is Tombstone, printing how many regions are left.
    Delete {
        id: u64,
        /// Print the store as it is now and return at once.
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this many seconds (the decommission goes on).
        #[arg(long, default_value_t = delete_store::DEFAULT_WAIT_SECS)]
        timeout: u64,
    },
}

#[derive(Subcommand, Debug)]
enum RegionCmd {
    /// Every region, or the N hottest by written or read bytes per second
    /// over their last report interval.
    List {
        #[arg(long, value_name = "N")]
        top_write: Option<usize>,
        #[arg(long, value_name = "N")]
        top_read: Option<usize>,
    },
    Show {
        id: u64,
    },
    /// The region containing a key (UTF-8).
    Key {
        key: String,
    },
    /// Split a region at a key, or at its middle by size (no --key): waits
    /// until every Up store that heartbeats has the new routes, then prints the regions.
    Split {
        id: u64,
        /// The split key: the new region takes [start, key). UTF-8 unless
        /// --hex. Without it, the region's leader picks the middle by size.
        #[arg(long)]
        key: Option<String>,
        /// --key is hex (for keys that are not text).
        #[arg(long, requires = "key")]
        hex: bool,
        /// Print the operator and return at once.
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this many seconds (the operator goes on).
        #[arg(long, default_value_t = split::DEFAULT_WAIT_SECS)]
        timeout: u64,
    },
    /// Move a region's leadership to its voter on a store: waits until every
    /// Up store has the routes naming the new leader.
    TransferLeader {
        id: u64,
        /// The store that is to lead: it must hold a voter of the region.
        store: u64,
        /// Print the operator and return at once.
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this many seconds (the operator goes on).
        #[arg(long, default_value_t = split::DEFAULT_WAIT_SECS)]
        timeout: u64,
    },
    /// Move a region's replica from one store to another: waits, printing
    /// each step as it starts, until every Up store that heartbeats has the new routes.
    Move {
        id: u64,
        /// The store that loses its peer.
        #[arg(long)]
        from: u64,
        /// The store that gains one: Up, holding no peer of the region.
        #[arg(long)]
        to: u64,
        /// Print the operator and return at once.
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this many seconds (the operator goes on).
        #[arg(long, default_value_t = PEER_WAIT_SECS)]
        timeout: u64,
    },
    /// Add a voter of a region on a store (a learner first, promoted once
    /// caught up): waits, printing each step as it starts.
    AddPeer {
        id: u64,
        /// Up, holding no peer of the region.
        store: u64,
        /// Print the operator and return at once.
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this many seconds (the operator goes on).
        #[arg(long, default_value_t = PEER_WAIT_SECS)]
        timeout: u64,
    },
    /// Remove a region's peer from a store (leadership moved away and a
    /// voter demoted first): waits, printing each step as it starts.
    RemovePeer {
        id: u64,
        /// The store holding the peer.
        store: u64,
        /// Print the operator and return at once.
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this many seconds (the operator goes on).
        #[arg(long, default_value_t = PEER_WAIT_SECS)]
        timeout: u64,
    },
}

/// Long enough for a membership operator's default timeout on a full-size
/// region (two minutes and its data at 8 MiB/s) and convergence after it.
const PEER_WAIT_SECS: u64 = 300;

#[derive(Subcommand, Debug)]
enum OperatorCmd {
    /// Running operators; with --all, also those finished in the last ten
    /// minutes.
    List {
        #[arg(long)]
        all: bool,
    },
    Show {
        id: u64,
    },
    /// Stop a running operator (a step a store already took stays taken).
    Cancel {
        id: u64,
    },
}

/// Why pdctl failed; decides the exit status.
#[derive(Debug)]
pub enum Failure {
    /// PD refused or could not be reached (an invalid argument PD refused
    /// counts as a usage error).
    Pd(PdError),
    /// The command line makes no sense.
    Usage(String),
    /// An operator ended other than SUCCEEDED, or waiting for it gave up.
    Operator(String),
}

impl From<PdError> for Failure {
    fn from(e: PdError) -> Self {
        Failure::Pd(e)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Pd(e) => write!(f, "{e}"),
            Failure::Usage(m) | Failure::Operator(m) => f.write_str(m),
        }
    }
}

impl Failure {
    fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Pd(PdError::InvalidArgument(_)) | Failure::Usage(_) => ExitCode::from(2),
            Failure::Pd(_) | Failure::Operator(_) => ExitCode::FAILURE,
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pdctl: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pdctl: {e}");
            e.exit_code()
        }
    }
}

async fn run(args: Args) -> Result<(), Failure> {
    let client = PdClient::new(&args.pd)?;
    let out = args.output;
    match args.cmd {
        Cmd::Store { cmd: StoreCmd::List } => {
            let stores = client.list_stores().await?;
            let json: Vec<Value> = stores.iter().map(view::store_info).collect();
            print(out, &serde_json::json!({"count": json.len(), "stores": json}), || store_table(&stores));
        }
        Cmd::Store { cmd: StoreCmd::Show { id } } => {
            let info = client.get_store(id).await?;
            print(out, &view::store_info(&info), || store_table(std::slice::from_ref(&info)));
        }
        Cmd::Store { cmd: StoreCmd::Delete { id, no_wait, timeout } } => {
            delete_store::run(&client, out, delete_store::DeleteArgs { id, no_wait, timeout_secs: timeout }).await?;
        }
        Cmd::Region { cmd: RegionCmd::List { top_write, top_read } } => {
            let ranking = hot_regions::ranking(top_write, top_read)?;
            let regions = client.scan_regions_with_stats(b"", b"", 0).await?;
            match ranking {
                Some((flow, n)) => {
                    let hot = hot_regions::top(regions, flow, n);
                    print(out, &hot_regions::json(&hot), || hot_regions::table_text(&hot));
                }
                None => {
                    print(out, &view::regions(regions.iter().map(|(r, s)| (r, Some(*s)))), || region_table(&regions))
                }
            }
        }
        Cmd::Region { cmd: RegionCmd::Show { id } } => {
            let resp = client.get_region_by_id(id).await?;
            show_region(out, &resp);
        }
        Cmd::Region { cmd: RegionCmd::Key { key } } => {
            let resp = client.get_region(key.as_bytes()).await?;
            show_region(out, &resp);
        }
        Cmd::Region { cmd: RegionCmd::Split { id, key, hex, no_wait, timeout } } => {
            split::run(&client, out, split::SplitArgs { id, key, hex, no_wait, timeout_secs: timeout }).await?;
        }
        Cmd::Region { cmd: RegionCmd::TransferLeader { id, store, no_wait, timeout } } => {
            let args = transfer_leader::TransferArgs { id, store, no_wait, timeout_secs: timeout };
            transfer_leader::run(&client, out, args).await?;
        }
        Cmd::Region { cmd: RegionCmd::Move { id, from, to, no_wait, timeout } } => {
            let args = move_region::MoveArgs { id, from, to, no_wait, timeout_secs: timeout };
            move_region::run(&client, out, args).await?;
        }
        Cmd::Region { cmd: RegionCmd::AddPeer { id, store, no_wait, timeout } } => {
            let args = add_peer::AddPeerArgs { id, store, no_wait, timeout_secs: timeout };
            add_peer::run(&client, out, args).await?;
        }
        Cmd::Region { cmd: RegionCmd::RemovePeer { id, store, no_wait, timeout } } => {
            let args = remove_peer::RemovePeerArgs { id, store, no_wait, timeout_secs: timeout };
            remove_peer::run(&client, out, args).await?;
        }
        Cmd::Operator { cmd: OperatorCmd::List { all } } => operator::list(&client, out, all).await?,
        Cmd::Operator { cmd: OperatorCmd::Show { id } } => operator::show(&client, out, id).await?,
        Cmd::Operator { cmd: OperatorCmd::Cancel { id } } => operator::cancel(&client, out, id).await?,
        Cmd::Routes { watch: false, .. } => {
            let snapshot = client.list_routes().await?;
            print(out, &view::routes(&snapshot), || routes_table(&snapshot));
        }
        Cmd::Routes { watch: true, count } => watch_routes(&client, out, count).await?,
        Cmd::Members => {
            let m = client.get_members().await?;
            print(out, &view::members(&m), || members_table(&m));
        }
    }
    Ok(())
}

/// A region with its stats, and the pending and down peers its leader last
/// reported.
fn show_region(out: Output, resp: &pdpb::GetRegionResponse) {
    let route = resp.route.clone().unwrap_or_default();
    let stats = resp.stats.unwrap_or_default();
    let json = view::region_health(view::region(&route, Some(&stats)), &resp.pending_peers, &resp.down_peers);
    print(out, &json, || {
        let peers = |ps: &[proto::metapb::Peer]| {
            if ps.is_empty() {
                "-".to_string()
            } else {
                ps.iter().map(|p| format!("{}@{}", p.id, p.store_id)).collect::<Vec<_>>().join(",")
            }
        };
        format!(
            "{}
pending peers: {}
down peers:    {}",
            region_table(&[(route.clone(), stats)]),
            peers(&resp.pending_peers),
            peers(&resp.down_peers)
        )
    });
}

/// Where progress lines go: stdout in table mode, stderr with `-o json`
/// (stdout stays one JSON document).
pub fn say_to(out: Output) -> impl Fn(String) {
    move |line: String| match out {
        Output::Table => println!("{line}"),
        Output::Json => eprintln!("{line}"),
    }
}

/// The end of a membership command: the operator alone without waiting,
/// else the operator and the region as PD holds it now.
pub async fn peer_change_done(client: &PdClient, out: Output, op: pdpb::Operator, waited: bool) -> Result<(), Failure> {
    if !waited {
        print(out, &view::operator(&op), || operator::details(&op));
        return Ok(());
    }
    let resp = client.get_region_by_id(op.region_id).await?;
    let regions = vec![(resp.route.unwrap_or_default(), resp.stats.unwrap_or_default())];
    let json = serde_json::json!({
        "operator": view::operator(&op),
        "regions": regions.iter().map(|(r, s)| view::region(r, Some(s))).collect::<Vec<_>>(),
    });
    print(out, &json, || region_table(&regions));
    Ok(())
}

/// Prints every route snapshot as it arrives, reopening the stream on the
/// new leader after a PD failover.
async fn watch_routes(client: &PdClient, out: Output, count: Option<u64>) -> Result<(), PdError> {
    let mut since = 0;
    let mut printed = 0;
    loop {
        let mut stream = client.watch_routes(since).await?;
        loop {
            match stream.message().await {
                Ok(Some(msg)) => {
                    if let Some(h) = msg.header.as_ref().and_then(|h| h.error.as_ref()) {
                        return Err(PdError::from_pb(h));
                    }
                    let Some(snapshot) = msg.routes else { continue };
                    since = snapshot.version;
                    match out {
                        Output::Json => println!("{}", view::routes(&snapshot)),
                        Output::Table => println!("{}", routes_table(&snapshot)),
                    }
                    printed += 1;
                    if count.is_some_and(|c| printed >= c) {
                        return Ok(());
                    }
                }
                Ok(None) => break,
                Err(status) => {
                    let e = pd::client::status_error(client.leader_address().as_deref().unwrap_or("?"), &status);
                    if !e.is_retryable() {
                        return Err(e);
                    }
                    client.leader_failed(&e);
                    eprintln!("pdctl: watch interrupted ({e}); reconnecting");
                    break;
                }
            }
        }
    }
}

pub fn print(out: Output, json: &Value, table: impl FnOnce() -> String) {
    match out {
        Output::Json => println!("{}", serde_json::to_string_pretty(json).unwrap_or_default()),
        Output::Table => println!("{}", table()),
    }
}

/// Left-aligned columns sized to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        parts.join("  ").trim_end().to_string()
    };
    let mut lines = vec![line(header.to_vec())];
    lines.extend(rows.iter().map(|r| line(r.iter().map(String::as_str).collect())));
    lines.join("\n")
}

pub fn store_table(stores: &[pdpb::StoreInfo]) -> String {
    let now = age::now_ms();
    let rows: Vec<Vec<String>> = stores
        .iter()
        .map(|i| {
            let s = i.store.clone().unwrap_or_default();
            let stats = i.stats.unwrap_or_default();
            vec![
                s.id.to_string(),
                s.address,
                view::store_state_name(s.state).to_string(),
                if i.down { "down".into() } else { "-".into() },
                // A zero capacity is no disk: the store has not reported yet.
                if stats.capacity == 0 { "-".into() } else { view::human_space(stats.capacity) },
                if stats.capacity == 0 { "-".into() } else { view::human_space(stats.available) },
                i.region_count.to_string(),
                i.leader_count.to_string(),
                age::ago(i.last_heartbeat_ms, now),
            ]
        })
        .collect();
    table(&["ID", "ADDRESS", "STATE", "DOWN", "CAPACITY", "AVAILABLE", "REGIONS", "LEADERS", "LAST_HEARTBEAT"], &rows)
}

pub fn show_key(k: &[u8], empty: &str) -> String {
    if k.is_empty() { empty.to_string() } else { keys::display(k) }
}

/// Regions with their last reported size and key count.
pub fn region_table(regions: &[(pdpb::RegionRoute, pdpb::RegionStats)]) -> String {
    let rows: Vec<Vec<String>> = regions
        .iter()
        .map(|(route, stats)| {
            let mut row = route_row(route);
            row.push(view::human_size(stats.approximate_size));
            row.push(stats.approximate_keys.to_string());
            row
        })
        .collect();
    table(&["ID", "START", "END", "CONF_VER/VERSION", "PEERS(id@store)", "LEADER", "SIZE", "KEYS"], &rows)
}

/// Regions as the route table holds them (no stats).
fn route_table(routes: &[pdpb::RegionRoute]) -> String {
    let rows: Vec<Vec<String>> = routes.iter().map(route_row).collect();
    table(&["ID", "START", "END", "CONF_VER/VERSION", "PEERS(id@store)", "LEADER"], &rows)
}

pub fn route_row(route: &pdpb::RegionRoute) -> Vec<String> {
    let r = route.region.clone().unwrap_or_default();
    let epoch = r.region_epoch.unwrap_or_default();
    let peers: Vec<String> = r
        .peers
        .iter()
        .map(|p| {
            let learner = if p.role == proto::metapb::PeerRole::Learner as i32 { "(L)" } else { "" };
            format!("{}@{}{learner}", p.id, p.store_id)
        })
        .collect();
    vec![
        r.id.to_string(),
        show_key(&r.start_key, "-inf"),
        show_key(&r.end_key, "+inf"),
        format!("{}/{}", epoch.conf_ver, epoch.version),
        peers.join(","),
        route.leader.map_or("-".into(), |l| format!("{}@{}", l.id, l.store_id)),
    ]
}

fn routes_table(s: &pdpb::RouteSnapshot) -> String {
    format!(
        "catalog version {} ({} regions, {} stores)\n{}",
        s.version,
        s.regions.len(),
        s.stores.len(),
        route_table(&s.regions)
    )
}

fn members_table(m: &pdpb::GetMembersResponse) -> String {
    let leader = m.leader.as_ref().map(|l| l.id);
    let rows: Vec<Vec<String>> = m
        .members
        .iter()
        .map(|x| {
            vec![
                x.id.to_string(),
                x.address.clone(),
                x.http_address.clone(),
                if Some(x.id) == leader { "leader".into() } else { "follower".into() },
            ]
        })
        .collect();
    table(&["ID", "ADDRESS", "HTTP", "ROLE"], &rows)
}
