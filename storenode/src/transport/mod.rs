//! Raft traffic between stores over gRPC (`raftpb.RaftTransport`).
//!
//! One HTTP/2 channel per peer store carries every region's messages. A
//! message names its region, the sending and receiving peers, the receiving
//! store, and the sender's view of the region, so the receiver can create a
//! peer for a region it does not know yet. openraft's requests travel as
//! postcard bytes; snapshots are streamed in chunks.
//!
//! - [`client`]: the sending side, used by each region's raft network.
//! - [`pipe`]: the long-lived stream to one store that small messages
//!   (appends, votes) travel on.
//! - [`service`]: the receiving side, which hands messages to the local peer.
//! - [`snapshot_limits`]: the shared snapshot send rate and how many
//!   snapshots move at once.

pub mod client;
pub mod pipe;
pub mod service;
pub mod snapshot_limits;

/// Why a message could not be delivered; openraft treats it as the peer
/// being unreachable and backs off.
pub type SendError = String;

/// Snapshot bytes per chunk: small enough to interleave with other traffic
/// on the shared connection, large enough to keep per-message cost low.
pub const SNAPSHOT_CHUNK: usize = 1 << 20;
/// Largest single raft message: an append of many large entries.
pub const MAX_MESSAGE: usize = 64 << 20;
/// HTTP/2 receive window of one stream on the store's gRPC server: a few
/// snapshot chunks in flight, so a sender never waits a round trip per
/// chunk (hyper's default is one chunk's worth).
pub const STREAM_WINDOW: u32 = 4 << 20;
/// HTTP/2 receive window of one connection: every region's raft traffic
/// from a store shares the connection, and a snapshot's chunks must not
/// fill the whole window and hold the other regions' appends behind them.
pub const CONNECTION_WINDOW: u32 = 16 << 20;
