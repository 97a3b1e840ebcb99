//! The storage node.
//!
//! A store hosts one raft peer per region it replicates (multi-raft on
//! openraft). All regions share one redb engine ([`engine`]): raft logs keyed
//! by region, per-region meta and applied state, and a single data table of
//! user keys, so a split never copies data. Every durable write of every
//! region goes through one group-commit writer: one transaction and one
//! fsync per batch.
//!
//! Requests ([`kv`]) may arrive at any store: the store runs them on its
//! local leader, or forwards them to the leader's store using the routes PD
//! pushes down the heartbeat stream ([`pd_worker`], [`routes`]). Raft traffic
//! between stores shares one gRPC connection per store pair ([`transport`]).
//! [`client`] is the Rust client library applications use.
//!
//! Writes are exactly-once: each carries a request id ([`request_id`]) that
//! the region's session table ([`raft::session`]) deduplicates, so every
//! retry the policy in [`retry`] allows is safe. [`fault`] is the
//! fault-injection switch the nemesis tests drive.
//!
//! Splits are metadata only: PD's split directive reaches the region's
//! leader ([`node::split_directive`]), every replica applies the split entry
//! in one transaction and seeds the new region's raft state
//! ([`raft::split`]), and the node starts the new peer and reports the
//! result ([`node::split`]).
//!
//! Moves are raft membership changes PD drives step by step: the leader
//! adds a learner ([`node::add_learner_directive`]), which the store creates
//! on demand when its first raft message or snapshot arrives; one joint
//! change promotes and demotes, and an empty one leaves the joint state
//! ([`node::change_peers_directive`]); the removed peer is dropped
//! ([`node::remove_peer_directive`]) and destroyed with a tombstone
//! ([`node::destroy`]). Every replica rewrites the region's meta in the same
//! writer job as the membership entry's apply ([`raft::membership`]).
//!
//! Idle regions hibernate: their raft timers stop ([`node::hibernation`]),
//! and once they have slept long enough their raft groups shut down until
//! something wakes them ([`node::dormancy`]).

pub mod bench;
pub mod client;
pub mod config;
pub mod disk;
pub mod engine;
pub mod error;
pub mod fault;
pub mod http;
pub mod kv;
pub mod memory;
pub mod metrics;
pub mod node;
pub mod pd_worker;
pub mod raft;
pub mod request_id;
pub mod retry;
pub mod routes;
pub mod server;
pub mod space;
pub mod transport;
