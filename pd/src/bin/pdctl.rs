//! `pdctl`: the operator's command line for PD.
//!
//! ```text
//! pdctl --pd 127.0.0.1:2379 store list
//! pdctl store show 1
//! pdctl region list | region show 4 | region key user42
//! pdctl region split 4 [--key K [--hex]] [--no-wait]
//! pdctl operator list [--all] | operator show 7 | operator cancel 7
//! pdctl routes [--watch [--count N]]
//! pdctl members
//! ```
//!
//! `--pd` (or `PD_ADDR`) takes one or more PD gRPC addresses, comma
//! separated; pdctl finds the leader itself. `--output json` prints the same
//! JSON as PD's HTTP API. Exit status: 0 on success, 1 when PD refuses or
//! cannot be reached, 2 on usage errors.

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
enum Output {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Stores: `list` or `show <id>`.
    Store {
        #[command(subcommand)]
        cmd: StoreCmd,
    },
    /// Regions: `list`, `show <id>` or `key <key>`.
    Region {
        #[command(subcommand)]
        cmd: RegionCmd,
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
    /// Operators on the PD leader: `list`, `show <id>`, `cancel <id>`.
    Operator {
        #[command(subcommand)]
        cmd: OperatorCmd,
    },
}

#[derive(Subcommand, Debug)]
enum OperatorCmd {
    /// Running operators (with --all, the recently finished ones too).
    List {
        #[arg(long)]
        all: bool,
    },
    Show {
        id: u64,
    },
    Cancel {
        id: u64,
    },
}

#[derive(Subcommand, Debug)]
enum StoreCmd {
    List,
    Show { id: u64 },
}

#[derive(Subcommand, Debug)]
enum RegionCmd {
    List,
    Show {
        id: u64,
    },
    /// The region containing a key (UTF-8).
    Key {
        key: String,
    },
    /// Split a region at a key, or at its middle by size (picked by the
    /// region's leader). Waits until every store serves both parts.
    Split {
        id: u64,
        /// The first key of the right part (UTF-8, or hex with --hex).
        #[arg(long)]
        key: Option<String>,
        #[arg(long)]
        hex: bool,
        /// Return once the operator is created.
        #[arg(long)]
        no_wait: bool,
    },
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
            match e {
                PdError::InvalidArgument(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

async fn run(args: Args) -> Result<(), PdError> {
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
        Cmd::Region { cmd: RegionCmd::List } => {
            let routes = client.scan_regions(b"", b"", 0).await?;
            print(out, &view::regions(routes.iter().map(|r| (r, None))), || region_table(&routes));
        }
        Cmd::Region { cmd: RegionCmd::Show { id } } => {
            let resp = client.get_region_by_id(id).await?;
            show_region(out, &resp);
        }
        Cmd::Region { cmd: RegionCmd::Key { key } } => {
            let resp = client.get_region(key.as_bytes()).await?;
            show_region(out, &resp);
        }
        Cmd::Routes { watch: false, .. } => {
            let snapshot = client.list_routes().await?;
            print(out, &view::routes(&snapshot), || routes_table(&snapshot));
        }
        Cmd::Routes { watch: true, count } => watch_routes(&client, out, count).await?,
        Cmd::Members => {
            let m = client.get_members().await?;
            print(out, &view::members(&m), || members_table(&m));
        }
        Cmd::Region { cmd: RegionCmd::Split { id, key, hex, no_wait } } => {
            let key = match (key, hex) {
                (None, _) => Vec::new(),
                (Some(k), false) => k.into_bytes(),
                (Some(k), true) => decode_hex(&k)?,
            };
            let op = client.split_region(id, &key, None).await?;
            if no_wait {
                print(out, &view::operator(&op), || operator_table(std::slice::from_ref(&op)));
            } else {
                let op = wait_operator(&client, out, op).await?;
                print(out, &view::operator(&op), || format!("split into regions {}", regions_of(&op)));
            }
        }
        Cmd::Operator { cmd: OperatorCmd::List { all } } => {
            let ops = client.list_operators(all).await?;
            let json: Vec<Value> = ops.iter().map(view::operator).collect();
            print(out, &serde_json::json!({"count": json.len(), "operators": json}), || operator_table(&ops));
        }
        Cmd::Operator { cmd: OperatorCmd::Show { id } } => {
            let op = client.get_operator(id).await?;
            print(out, &view::operator(&op), || operator_table(std::slice::from_ref(&op)));
        }
        Cmd::Operator { cmd: OperatorCmd::Cancel { id } } => {
            let op = client.cancel_operator(id).await?;
            print(out, &view::operator(&op), || operator_table(std::slice::from_ref(&op)));
        }
    }
    Ok(())
}

/// Polls the operator, printing each new step (table output), until it
/// succeeded and every Up store converged; its failure is the error.
async fn wait_operator(client: &PdClient, out: Output, mut op: pdpb::Operator) -> Result<pdpb::Operator, PdError> {
    let mut last = String::new();
    loop {
        if out == Output::Table && op.step != last {
            println!("operator {}: {}", op.id, op.step);
            last = op.step.clone();
        }
        match pdpb::OperatorStatus::try_from(op.status) {
            Ok(pdpb::OperatorStatus::Succeeded) if op.converged_ms != 0 => return Ok(op),
            Ok(pdpb::OperatorStatus::Running | pdpb::OperatorStatus::Succeeded) => {}
            _ => {
                let status = pdpb::OperatorStatus::try_from(op.status).map_or("UNKNOWN", |s| s.as_str_name());
                return Err(match op.error {
                    Some(e) if e.r#type != pdpb::ErrorType::Ok as i32 => PdError::from_pb(&e),
                    Some(e) => PdError::Unavailable(format!("operator {} {status}: {}", op.id, e.message)),
                    None => PdError::Unavailable(format!("operator {} {status}", op.id)),
                });
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        op = client.get_operator(op.id).await?;
    }
}

fn regions_of(op: &pdpb::Operator) -> String {
    op.result
        .iter()
        .map(|r| format!("{} [{}, {})", r.id, show_key(&r.start_key, "-inf"), show_key(&r.end_key, "+inf")))
        .collect::<Vec<_>>()
        .join(" and ")
}

fn decode_hex(s: &str) -> Result<Vec<u8>, PdError> {
    let bad = || PdError::InvalidArgument(format!("{s:?} is not hex"));
    if !s.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2).ok_or_else(bad)?, 16).map_err(|_| bad()))
        .collect()
}

fn operator_table(ops: &[pdpb::Operator]) -> String {
    let rows: Vec<Vec<String>> = ops
        .iter()
        .map(|op| {
            let v = view::operator(op);
            vec![
                op.id.to_string(),
                op.region_id.to_string(),
                v["kind"].as_str().unwrap_or("").to_string(),
                v["status"].as_str().unwrap_or("").to_string(),
                op.source.clone(),
                op.step.clone(),
            ]
        })
        .collect();
    table(&["ID", "REGION", "KIND", "STATUS", "SOURCE", "STEP"], &rows)
}

fn show_region(out: Output, resp: &pdpb::GetRegionResponse) {
    let route = resp.route.clone().unwrap_or_default();
    print(out, &view::region(&route, resp.stats.as_ref()), || region_table(std::slice::from_ref(&route)));
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

fn print(out: Output, json: &Value, table: impl FnOnce() -> String) {
    match out {
        Output::Json => println!("{}", serde_json::to_string_pretty(json).unwrap_or_default()),
        Output::Table => println!("{}", table()),
    }
}

/// Left-aligned columns sized to their widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
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

fn store_table(stores: &[pdpb::StoreInfo]) -> String {
    let rows: Vec<Vec<String>> = stores
        .iter()
        .map(|i| {
            let s = i.store.clone().unwrap_or_default();
            vec![
                s.id.to_string(),
                s.address,
                view::store_state_name(s.state).to_string(),
                i.region_count.to_string(),
                i.leader_count.to_string(),
                if i.last_heartbeat_ms == 0 { "-".into() } else { i.last_heartbeat_ms.to_string() },
            ]
        })
        .collect();
    table(&["ID", "ADDRESS", "STATE", "REGIONS", "LEADERS", "LAST_HEARTBEAT_MS"], &rows)
}

fn show_key(k: &[u8], empty: &str) -> String {
    if k.is_empty() { empty.to_string() } else { keys::display(k) }
}

fn region_table(routes: &[pdpb::RegionRoute]) -> String {
    let rows: Vec<Vec<String>> = routes
        .iter()
        .map(|route| {
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
        })
        .collect();
    table(&["ID", "START", "END", "CONF_VER/VERSION", "PEERS(id@store)", "LEADER"], &rows)
}

fn routes_table(s: &pdpb::RouteSnapshot) -> String {
    format!(
        "catalog version {} ({} regions, {} stores)\n{}",
        s.version,
        s.regions.len(),
        s.stores.len(),
        region_table(&s.regions)
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
