//! The payload of a region's raft log entries and the answers applying
//! them gives.

use std::fmt;

use proto::metapb;
use serde::{Deserialize, Serialize};

/// A write proposed to a region. `epoch_version` is the region's range
/// version the leader checked the keys against; applying refuses the command
/// if the region's range changed since (a split committed in between), so a
/// key is never written through a region that no longer owns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvCommand {
    pub epoch_version: u64,
    pub op: KvOp,
    /// The client's id for this logical write: a repeat is answered from
    /// the session table instead of applied again.
    pub request: Option<RequestId>,
    /// The leader's reading of log time when it proposed: sessions expire
    /// by log time, carried in the log, so every replica expires the same
    /// sessions at the same log position (see [`super::log_clock`]).
    pub clock: super::command_clock::CommandClock,
}

/// `kvpb.RequestId` in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestId {
    pub client_id: u64,
    pub seq: u64,
    pub acked_below: u64,
}

impl RequestId {
    /// The wire id, if the request carries a usable one.
    pub fn from_pb(id: Option<&proto::kvpb::RequestId>) -> Option<RequestId> {
        let id = id?;
        (id.client_id != 0 && id.seq != 0).then_some(RequestId {
            client_id: id.client_id,
            seq: id.seq,
            acked_below: id.acked_below,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvOp {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        key: Vec<u8>,
    },
    /// All or nothing.
    BatchPut {
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// Write `value` if the current value is `expected` (`None`: absent).
    Cas {
        key: Vec<u8>,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    },
    /// Admin: split the region (see [`super::split`]). Touches no user key.
    Split(super::split::SplitCommand),
}

impl KvOp {
    /// Every key the operation touches.
    pub fn keys(&self) -> Vec<&[u8]> {
        match self {
            KvOp::Put { key, .. } | KvOp::Delete { key } | KvOp::Cas { key, .. } => {
                vec![key.as_slice()]
            }
            KvOp::BatchPut { pairs } => pairs.iter().map(|(k, _)| k.as_slice()).collect(),
            KvOp::Split(_) => Vec::new(),
        }
    }
}

impl fmt::Display for KvCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.op {
            KvOp::Put { key, value } => {
                write!(f, "put({} B key, {} B value)", key.len(), value.len())
            }
            KvOp::Delete { key } => write!(f, "delete({} B key)", key.len()),
            KvOp::BatchPut { pairs } => write!(f, "batch-put({} pairs)", pairs.len()),
            KvOp::Cas { key, .. } => write!(f, "cas({} B key)", key.len()),
            KvOp::Split(s) => write!(f, "split(into region {}, {} B key)", s.new_region_id, s.split_key.len()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum KvReply {
    /// Blank and membership entries.
    Nothing,
    Written,
    Deleted {
        existed: bool,
    },
    Cas {
        succeeded: bool,
        previous: Option<Vec<u8>>,
    },
    /// A split applied: the new (left) region's id.
    Split {
        new_region_id: u64,
    },
    /// Not applied: the region's range changed after the command was
    /// proposed.
    EpochNotMatch {
        current: metapb::Region,
    },
    /// Not applied: a key is outside the region.
    KeyNotInRegion {
        key: Vec<u8>,
        region: metapb::Region,
    },
    /// Not applied: a repeat of a write whose outcome the client already
    /// acknowledged (its sequence number is below the client's
    /// `acked_below`), so nobody is waiting for it.
    Forgotten,
}

impl KvReply {
    /// Whether the command took effect (and its outcome must be remembered
    /// for repeats). Refusals change nothing, so a repeat may still apply.
    pub fn applied(&self) -> bool {
        match self {
            KvReply::Written | KvReply::Deleted { .. } | KvReply::Cas { .. } | KvReply::Split { .. } => true,
            KvReply::Nothing | KvReply::EpochNotMatch { .. } | KvReply::KeyNotInRegion { .. } | KvReply::Forgotten => {
                false
            }
        }
    }
}
