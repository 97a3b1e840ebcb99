//! `pdbench`: PD at scale with simulated stores (see `pd::bench`).
//!
//! ```text
//! pdbench --pd 127.0.0.1:2379 --pd-http 127.0.0.1:2381 --stores 3 --regions 100000
//! ```
//!
//! Prints progress on stderr and the figures as `key value` lines on
//! stdout. Exit code 1 when the run fails, 2 for bad flags.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pd::bench::BenchConfig;

#[derive(Parser, Debug)]
#[command(name = "pdbench", version, about = "PD at scale: unchanged reports per second and route change latency")]
struct Args {
    /// PD gRPC endpoints, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pd: Vec<String>,
    /// The PD leader's HTTP address (metrics).
    #[arg(long, default_value = "127.0.0.1:2381")]
    pd_http: String,
    #[arg(long, default_value_t = 3)]
    stores: usize,
    #[arg(long, default_value_t = 100_000)]
    regions: usize,
    /// Regions per split report while creating them.
    #[arg(long, default_value_t = 1_000)]
    chunk: usize,
    /// Rounds of unchanged reports, one per region each.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Route changes to time.
    #[arg(long, default_value_t = 200)]
    trials: usize,
    /// Longest wait for any one step.
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
    /// First made-up port for the simulated stores' addresses.
    #[arg(long, default_value_t = 40_000)]
    base_port: u16,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = BenchConfig {
        pd: args.pd,
        pd_http: args.pd_http,
        stores: args.stores,
        regions: args.regions,
        chunk: args.chunk,
        rounds: args.rounds,
        trials: args.trials,
        timeout: Duration::from_secs(args.timeout_s),
        base_port: args.base_port,
    };
    if let Err(e) = cfg.validate() {
        eprintln!("pdbench: {e}");
        return ExitCode::from(2);
    }
    let runtime = match pd::cli::runtime("pdbench") {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(pd::bench::run(&cfg, |phase| eprintln!("pdbench: {phase}"))) {
        Ok(report) => {
            for line in report.lines() {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pdbench: {e}");
            ExitCode::FAILURE
        }
    }
}
