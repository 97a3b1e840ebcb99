//! Protocol buffers of the cluster and the tonic/prost code generated from
//! them. Nothing else lives here.
//!
//! - [`metapb`]: stores, regions, peers and region epochs.
//! - [`pdpb`]: the placement driver's API (catalog reads and writes, the store
//!   heartbeat stream, route watches) and the directives PD sends to region
//!   leaders.
//! - [`pdraftpb`]: traffic between the members of PD's own raft group.
//! - [`kvpb`]: the storage node's KV API and its structured region errors.
//! - [`raftpb`]: raft traffic between storage nodes and per-region local state.
//! - [`etcdserverpb`]: the subset of etcd's KV API the load generator drives,
//!   to measure etcd side by side.
//!
//! The `.proto` files are compiled at build time by `protox`, so no system
//! `protoc` is needed.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod metapb {
    tonic::include_proto!("metapb");
}

pub mod pdpb {
    tonic::include_proto!("pdpb");
}

pub mod pdraftpb {
    tonic::include_proto!("pdraftpb");
}

pub mod kvpb {
    tonic::include_proto!("kvpb");
}

pub mod raftpb {
    tonic::include_proto!("raftpb");
}

pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}
