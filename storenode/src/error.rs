//! The one error enum of the storage node and its mapping to the wire.
//!
//! Sorted by what the caller must do: retry elsewhere or after refreshing
//! routes (the region errors: `NotLeader`, `EpochNotMatch`,
//! `KeyNotInRegion`, `RegionNotFound`, `ServerBusy`, `StaleCommand`), fix the
//! request (`InvalidArgument`), or give up on this store (`Unavailable`).

use proto::{kvpb, metapb};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    #[error("region {region_id}: not the leader{}", leader_note(.leader, .address))]
    NotLeader { region_id: u64, leader: Option<metapb::Peer>, address: String },
    #[error("region epoch does not match; current regions {:?}", .0.iter().map(|r| r.id).collect::<Vec<_>>())]
    EpochNotMatch(Vec<metapb::Region>),
    #[error("key {} is not in region {region_id}", pd::catalog::keys::display(.key))]
    KeyNotInRegion { key: Vec<u8>, region_id: u64, start_key: Vec<u8>, end_key: Vec<u8> },
    #[error("region {0} not found on this store")]
    RegionNotFound(u64),
    #[error("server busy: {0}")]
    ServerBusy(String),
    #[error("the write may have been proposed but its outcome is unknown (leader change or commit timeout)")]
    StaleCommand,
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
}

fn leader_note(leader: &Option<metapb::Peer>, address: &str) -> String {
    match leader {
        Some(l) => format!("; leader is peer {} on store {} ({address})", l.id, l.store_id),
        None => String::new(),
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// The wire form: a region error, or a plain error. Every variant is
    /// mapped explicitly.
    pub fn to_pb(&self) -> (Option<kvpb::RegionError>, Option<kvpb::Error>) {
        use kvpb::region_error::Kind;
        let region = |kind| Some(kvpb::RegionError { message: self.to_string(), kind: Some(kind) });
        match self {
            StoreError::NotLeader { region_id, leader, address } => (
                region(Kind::NotLeader(kvpb::NotLeader {
                    region_id: *region_id,
                    leader: *leader,
                    leader_address: address.clone(),
                })),
                None,
            ),
            StoreError::EpochNotMatch(current) => {
                (region(Kind::EpochNotMatch(kvpb::EpochNotMatch { current_regions: current.clone() })), None)
            }
            StoreError::KeyNotInRegion { key, region_id, start_key, end_key } => (
                region(Kind::KeyNotInRegion(kvpb::KeyNotInRegion {
                    key: key.clone(),
                    region_id: *region_id,
                    start_key: start_key.clone(),
                    end_key: end_key.clone(),
                })),
                None,
            ),
            StoreError::RegionNotFound(id) => {
                (region(Kind::RegionNotFound(kvpb::RegionNotFound { region_id: *id })), None)
            }
            StoreError::ServerBusy(reason) => {
                (region(Kind::ServerBusy(kvpb::ServerBusy { reason: reason.clone() })), None)
            }
            StoreError::StaleCommand => (region(Kind::StaleCommand(kvpb::StaleCommand {})), None),
            StoreError::InvalidArgument(m) => {
                (None, Some(kvpb::Error { kind: kvpb::ErrorKind::InvalidArgument as i32, message: m.clone() }))
            }
            StoreError::Unavailable(m) => {
                (None, Some(kvpb::Error { kind: kvpb::ErrorKind::Unavailable as i32, message: m.clone() }))
            }
        }
    }

    /// The client-side view of a response's error fields.
    pub fn from_pb(region_error: Option<&kvpb::RegionError>, error: Option<&kvpb::Error>) -> Option<StoreError> {
        use kvpb::region_error::Kind;
        if let Some(re) = region_error {
            return Some(match &re.kind {
                Some(Kind::NotLeader(n)) => StoreError::NotLeader {
                    region_id: n.region_id,
                    leader: n.leader,
                    address: n.leader_address.clone(),
                },
                Some(Kind::EpochNotMatch(e)) => StoreError::EpochNotMatch(e.current_regions.clone()),
                Some(Kind::KeyNotInRegion(k)) => StoreError::KeyNotInRegion {
                    key: k.key.clone(),
                    region_id: k.region_id,
                    start_key: k.start_key.clone(),
                    end_key: k.end_key.clone(),
                },
                Some(Kind::RegionNotFound(r)) => StoreError::RegionNotFound(r.region_id),
                Some(Kind::ServerBusy(b)) => StoreError::ServerBusy(b.reason.clone()),
                Some(Kind::StaleCommand(_)) => StoreError::StaleCommand,
                None => StoreError::Unavailable(format!("region error without a kind: {}", re.message)),
            });
        }
        let e = error?;
        Some(match kvpb::ErrorKind::try_from(e.kind) {
            Ok(kvpb::ErrorKind::InvalidArgument) => StoreError::InvalidArgument(e.message.clone()),
            Ok(kvpb::ErrorKind::None) => return None,
            Ok(kvpb::ErrorKind::Unavailable) | Err(_) => StoreError::Unavailable(e.message.clone()),
        })
    }

    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            StoreError::NotLeader { .. } => "not_leader",
            StoreError::EpochNotMatch(_) => "epoch_not_match",
            StoreError::KeyNotInRegion { .. } => "key_not_in_region",
            StoreError::RegionNotFound(_) => "region_not_found",
            StoreError::ServerBusy(_) => "server_busy",
            StoreError::StaleCommand => "stale_command",
            StoreError::InvalidArgument(_) => "invalid_argument",
            StoreError::Unavailable(_) => "unavailable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_round_trips_through_the_wire() {
        let peer = metapb::Peer { id: 5, store_id: 2, role: 0 };
        let cases = vec![
            StoreError::NotLeader { region_id: 3, leader: Some(peer), address: "h:1".into() },
            StoreError::NotLeader { region_id: 3, leader: None, address: String::new() },
            StoreError::EpochNotMatch(vec![metapb::Region { id: 9, ..Default::default() }]),
            StoreError::KeyNotInRegion { key: b"k".to_vec(), region_id: 1, start_key: b"a".to_vec(), end_key: vec![] },
            StoreError::RegionNotFound(7),
            StoreError::ServerBusy("queue full".into()),
            StoreError::StaleCommand,
            StoreError::InvalidArgument("empty key".into()),
            StoreError::Unavailable("shutting down".into()),
        ];
        for e in cases {
            let (re, err) = e.to_pb();
            assert_eq!(StoreError::from_pb(re.as_ref(), err.as_ref()), Some(e.clone()), "{e}");
        }
        assert_eq!(StoreError::from_pb(None, None), None);
    }
}
