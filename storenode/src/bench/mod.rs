//! The load generator behind `kvbench`: a fixed number of clients, each
//! issuing one request at a time for a set duration or operation count,
//! against this store (the client library) or an etcd cluster (its v3 KV
//! API), so both are measured the same way in one run.
//!
//! - [`ycsb`]: YCSB's core workloads A-F; [`mix`], [`op`]: operation mixes.
//! - [`chooser`]: which record an operation touches, by [`distribution`]:
//!   uniform, [`scrambled`] zipfian ([`zipfian`]) or [`latest`].
//! - [`load`]: the load phase; [`run`]: the measured run; [`inserts`]:
//!   record numbers for inserts during it.
//! - [`histogram`]: latency percentiles; [`report`]: what a run returns.
//! - [`keygen`]: keys and values; [`rng`]: the seeded generator.
//! - [`presplit`]: splitting the key space through PD first.

pub mod backend;
pub mod chooser;
pub mod config;
pub mod distribution;
pub mod histogram;
pub mod inserts;
pub mod keygen;
pub mod latest;
pub mod load;
pub mod mix;
pub mod op;
pub mod presplit;
pub mod report;
pub mod rng;
pub mod run;
pub mod scan_length;
pub mod scrambled;
pub mod ycsb;
pub mod zipfian;

pub use backend::Backend;
pub use config::BenchConfig;
pub use load::load;
pub use report::Report;
pub use run::run;
