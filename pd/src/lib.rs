//! The placement driver (PD).
//!
//! PD owns the **route catalog** ([`catalog`]): stores, regions and a catalog
//! version. The catalog is the state machine of PD's own raft group
//! ([`raft`]), so it survives the loss of a minority of PD members and every
//! change is durable before it is acknowledged. Storage nodes keep one
//! streaming heartbeat open to the PD leader ([`server::heartbeat`]): they
//! report store and region state up, and PD pushes versioned routes (full
//! snapshots, or deltas of what changed since the store's version:
//! [`routes`]) and directives down. Clients read routes with unary calls or watch them
//! with a stream. Operators use `pdctl` ([`client`] underneath).
//!
//! Placement changes are [`operator`]s the leader runs: a split operator
//! sends a split directive to the region's leader and finishes when the
//! catalog holds the result. The split checker ([`schedule`]) starts them
//! on its own for regions past their size or key thresholds; admins start
//! them through the API or `pdctl region split`.
//!
//! Membership operators move, add and remove replicas and transfer
//! leadership ([`operator::move_peer`], [`operator::add_peer`],
//! [`operator::remove_peer`], [`operator::transfer_leader`],
//! [`operator::leave_joint`]): each step is a directive to the region's
//! leader, confirmed by the leader's next region report. Stores are
//! decommissioned through their catalog state (Up -> Offline -> Tombstone,
//! [`server::delete_store`]); the replica checkers
//! ([`schedule::replica_checks`]) start the operators that repair replicas
//! lost to Down stores, drain Offline ones and drive half-done joint
//! changes out of their joint state.
//!
//! Not done yet: leader and region balancing, region merge, placement
//! labels.

pub mod bench;
pub mod byte_size;
pub mod catalog;
pub mod cli;
pub mod client;
pub mod config;
pub mod duration_text;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod operator;
pub mod raft;
pub mod routes;
pub mod schedule;
pub mod server;
pub mod view;

pub use error::{PdError, Result};
