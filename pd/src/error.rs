//! The one error enum of the PD crate and its mapping to the wire.
//!
//! Errors are sorted by what the caller must do: retry elsewhere
//! ([`PdError::NotLeader`]), retry later ([`PdError::Unavailable`]), fix the
//! request (everything about ids, keys, epochs and arguments), report a PD
//! bug ([`PdError::InvariantViolation`]: the command was refused, nothing
//! changed), or stop ([`PdError::Storage`], [`PdError::Fatal`]: the member is
//! broken).

use proto::pdpb;
use serde::{Deserialize, Serialize};

/// A PD member as named in errors and membership listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderHint {
    pub id: u64,
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum PdError {
    /// This member is not the PD leader; ask the hinted one.
    #[error("not the PD leader{}", .0.as_ref().map(|l| format!("; leader is {} at {}", l.id, l.address)).unwrap_or_default())]
    NotLeader(Option<LeaderHint>),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("store {0} not found")]
    StoreNotFound(u64),
    #[error("region {0} not found")]
    RegionNotFound(u64),
    #[error("no region contains key {0:?}")]
    KeyNotCovered(String),
    #[error("cluster is not bootstrapped")]
    NotBootstrapped,
    #[error("cluster is already bootstrapped")]
    AlreadyBootstrapped,
    #[error("store conflict: {0}")]
    StoreConflict(String),
    #[error("stale region epoch: {0}")]
    StaleEpoch(String),
    #[error("route conflict: {0}")]
    RouteConflict(String),
    #[error("need {need} up stores, have {have}")]
    NotEnoughStores { need: usize, have: usize },
    /// A command passed validation but applying it would have broken a
    /// catalog invariant. Applying is deterministic, so every member refuses
    /// it alike and keeps its catalog as it was: a bug to report, not a
    /// reason to stop the group.
    #[error("refused: would break catalog invariant: {0}")]
    InvariantViolation(String),
    /// The split key is outside the region, equal to its start, or the
    /// region has no key to split at.
    #[error("invalid split key: {0}")]
    InvalidSplitKey(String),
    /// The region is under another operator; retry when it ends.
    #[error("operator exists: {0}")]
    OperatorExists(String),
    #[error("operator {0} not found")]
    OperatorNotFound(u64),
    /// The target store already holds a peer of the region.
    #[error("peer exists: {0}")]
    PeerExists(String),
    /// The store holds no peer of the region.
    #[error("peer not found: {0}")]
    PeerNotFound(String),
    /// The store is Down, Offline or Tombstone and cannot take the change.
    #[error("store unavailable: {0}")]
    StoreUnavailable(String),
    /// The change would leave fewer than a quorum of healthy voters.
    #[error("quorum at risk: {0}")]
    QuorumAtRisk(String),
    #[error("PD unavailable: {0}")]
    Unavailable(String),
    #[error("storage error: {0}")]
    Storage(String),
    #[error("fatal: {0}")]
    Fatal(String),
}

pub type Result<T, E = PdError> = std::result::Result<T, E>;

impl From<redb::Error> for PdError {
    fn from(e: redb::Error) -> Self {
        PdError::Storage(e.to_string())
    }
}

macro_rules! storage_from {
    ($($t:ty),*) => {$(
        impl From<$t> for PdError {
            fn from(e: $t) -> Self {
                PdError::Storage(e.to_string())
            }
        }
    )*};
}
storage_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    prost::DecodeError
);

impl PdError {
    /// The wire form. Every variant is mapped explicitly so a new variant
    /// cannot silently reach clients as something generic.
    pub fn to_pb(&self) -> pdpb::Error {
        use pdpb::ErrorType as T;
        let (ty, leader) = match self {
            PdError::NotLeader(hint) => (
                T::NotLeader,
                hint.as_ref().map(|h| pdpb::Member {
                    id: h.id,
                    address: h.address.clone(),
                    http_address: String::new(),
                }),
            ),
            PdError::InvalidArgument(_) => (T::InvalidArgument, None),
            PdError::StoreNotFound(_) => (T::StoreNotFound, None),
            PdError::RegionNotFound(_) | PdError::KeyNotCovered(_) => (T::RegionNotFound, None),
            PdError::NotBootstrapped => (T::NotBootstrapped, None),
            PdError::AlreadyBootstrapped => (T::AlreadyBootstrapped, None),
            PdError::StoreConflict(_) => (T::StoreConflict, None),
            PdError::StaleEpoch(_) => (T::StaleEpoch, None),
            PdError::RouteConflict(_) => (T::RouteConflict, None),
            PdError::NotEnoughStores { .. } => (T::NotEnoughStores, None),
            PdError::InvariantViolation(_) => (T::InvariantViolation, None),
            PdError::InvalidSplitKey(_) => (T::InvalidSplitKey, None),
            PdError::OperatorExists(_) => (T::OperatorExists, None),
            PdError::OperatorNotFound(_) => (T::OperatorNotFound, None),
            PdError::PeerExists(_) => (T::PeerExists, None),
            PdError::PeerNotFound(_) => (T::PeerNotFound, None),
            PdError::StoreUnavailable(_) => (T::StoreUnavailable, None),
            PdError::QuorumAtRisk(_) => (T::QuorumAtRisk, None),
            PdError::Unavailable(_) | PdError::Storage(_) | PdError::Fatal(_) => (T::Unavailable, None),
        };
        pdpb::Error { r#type: ty as i32, message: self.to_string(), leader }
    }

    /// A response header carrying this error.
    pub fn header(&self) -> Option<pdpb::ResponseHeader> {
        Some(pdpb::ResponseHeader { error: Some(self.to_pb()) })
    }

    /// The client-side view of a wire error. The wire message is the
    /// error's whole text, its kind's prefix included; the variant adds
    /// that prefix again when shown, so it is taken off here (else
    /// `invalid split key: invalid split key: ...`).
    pub fn from_pb(e: &pdpb::Error) -> PdError {
        use pdpb::ErrorType as T;
        let raw = e.message.as_str();
        let detail = |make: fn(String) -> PdError| {
            let prefix = make(String::new()).to_string();
            make(raw.strip_prefix(prefix.as_str()).unwrap_or(raw).to_string())
        };
        match T::try_from(e.r#type).unwrap_or(T::Unavailable) {
            T::Ok => PdError::Fatal(format!("error header with type OK: {raw}")),
            T::NotLeader => PdError::NotLeader(
                e.leader
                    .as_ref()
                    .filter(|l| !l.address.is_empty())
                    .map(|l| LeaderHint { id: l.id, address: l.address.clone() }),
            ),
            T::InvalidArgument => detail(PdError::InvalidArgument),
            T::StoreNotFound => PdError::StoreNotFound(id_in(raw)),
            T::RegionNotFound => PdError::RegionNotFound(id_in(raw)),
            T::NotBootstrapped => PdError::NotBootstrapped,
            T::AlreadyBootstrapped => PdError::AlreadyBootstrapped,
            T::StoreConflict => detail(PdError::StoreConflict),
            T::StaleEpoch => detail(PdError::StaleEpoch),
            T::RouteConflict => detail(PdError::RouteConflict),
            T::NotEnoughStores => {
                let n = numbers_in(raw);
                PdError::NotEnoughStores {
                    need: n.first().copied().unwrap_or(0) as usize,
                    have: n.get(1).copied().unwrap_or(0) as usize,
                }
            }
            T::InvariantViolation => detail(PdError::InvariantViolation),
            T::InvalidSplitKey => detail(PdError::InvalidSplitKey),
            T::OperatorExists => detail(PdError::OperatorExists),
            T::OperatorNotFound => PdError::OperatorNotFound(id_in(raw)),
            T::PeerExists => detail(PdError::PeerExists),
            T::PeerNotFound => detail(PdError::PeerNotFound),
            T::StoreUnavailable => detail(PdError::StoreUnavailable),
            T::QuorumAtRisk => detail(PdError::QuorumAtRisk),
            T::Unavailable => detail(PdError::Unavailable),
        }
    }

    /// Whether retrying the same request (after following a leader hint or
    /// waiting) can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, PdError::NotLeader(_) | PdError::Unavailable(_))
    }
}

/// The first number in an error message ("store 7 not found" -> 7), 0 if none.
fn id_in(msg: &str) -> u64 {
    numbers_in(msg).first().copied().unwrap_or(0)
}

/// Every number in an error message, in order.
fn numbers_in(msg: &str) -> Vec<u64> {
    msg.split(|c: char| !c.is_ascii_digit()).filter_map(|s| s.parse().ok()).collect()
}

/// Turns a response header into a result.
pub fn check_header(header: &Option<pdpb::ResponseHeader>) -> Result<()> {
    match header.as_ref().and_then(|h| h.error.as_ref()) {
        None => Ok(()),
        Some(e) => Err(PdError::from_pb(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_survives_the_wire() {
        let cases = [
            PdError::NotLeader(Some(LeaderHint { id: 2, address: "h:1".into() })),
            PdError::NotLeader(None),
            PdError::InvalidArgument("bad".into()),
            PdError::StoreNotFound(7),
            PdError::RegionNotFound(9),
            PdError::NotBootstrapped,
            PdError::AlreadyBootstrapped,
            PdError::StoreConflict("taken".into()),
            PdError::StaleEpoch("old".into()),
            PdError::RouteConflict("gap".into()),
            PdError::NotEnoughStores { need: 3, have: 1 },
            PdError::InvariantViolation("overlap".into()),
            PdError::InvalidSplitKey("at start".into()),
            PdError::OperatorExists("region 2 is under split operator 7".into()),
            PdError::OperatorNotFound(7),
            PdError::PeerExists("store 4 holds peer 9 of region 2".into()),
            PdError::PeerNotFound("store 4 holds no peer of region 2".into()),
            PdError::StoreUnavailable("store 4 is Down".into()),
            PdError::QuorumAtRisk("region 2 would keep 1 healthy voter of 3".into()),
            PdError::Unavailable("no quorum".into()),
        ];
        for e in cases {
            let back = PdError::from_pb(&e.to_pb());
            assert_eq!(back, e);
            assert_eq!(back.to_string(), e.to_string(), "shown once, prefix and all");
        }
        assert!(check_header(&None).is_ok());
    }

    #[test]
    fn a_message_without_its_prefix_is_kept_whole() {
        let e = pdpb::Error {
            r#type: pdpb::ErrorType::InvalidSplitKey as i32,
            message: "key \"m\" is the region's start".into(),
            leader: None,
        };
        assert_eq!(PdError::from_pb(&e).to_string(), "invalid split key: key \"m\" is the region's start");
    }

    #[test]
    fn storage_and_fatal_errors_reach_clients_as_unavailable_with_their_kind() {
        for e in [PdError::Storage("disk full".into()), PdError::Fatal("log damaged".into())] {
            let back = PdError::from_pb(&e.to_pb());
            assert_eq!(back, PdError::Unavailable(e.to_string()));
        }
    }
}
