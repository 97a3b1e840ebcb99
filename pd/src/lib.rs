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
//! Not done yet: schedulers and operators (split and move directives are
//! defined in the protocol but not issued), store decommissioning.

pub mod byte_size;
pub mod catalog;
pub mod cli;
pub mod client;
pub mod config;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod raft;
pub mod server;
pub mod view;

pub use error::{PdError, Result};
