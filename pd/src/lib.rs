//! The placement driver (PD).
//!
//! PD owns the **route catalog** ([`catalog`]): stores, regions and a catalog
//! version. The catalog is the state machine of PD's own raft group
//! ([`raft`]), so it survives the loss of a minority of PD members and every
//! change is durable before it is acknowledged. Storage nodes keep one
//! streaming heartbeat open to the PD leader ([`server::heartbeat`]): they
//! report store and region state up, and PD pushes versioned route snapshots
//! and directives down. Clients read routes with unary calls or watch them
//! with a stream. Operators use `pdctl` ([`client`] underneath).
//!
//! Changes to a region run as [`operator`]s on the leader: a split, asked
//! for by an admin call or by the split checker when a region grows past
//! its thresholds, goes to the region's leader as a directive.
//!
//! Not done yet: membership-change operators (move, add and remove peers,
//! leader transfer), store decommissioning.

pub mod byte_size;
pub mod catalog;
pub mod cli;
pub mod client;
pub mod config;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod operator;
pub mod raft;
pub mod server;
pub mod view;

pub use error::{PdError, Result};
