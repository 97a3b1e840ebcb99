//! Why this store refuses to create a peer or to give one data.
//!
//! These refusals never reach a KV client: they answer raft traffic from
//! other stores (the response's `error`), or are logged when PD's routes or
//! the engine name a peer that may not start. So they are their own enum,
//! not [`crate::error::StoreError`].

use pd::catalog::keys;
use proto::{metapb, raftpb};

use super::range_index::{RangeConflict, RangeIndex, fmt_epoch, is_older};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerRefused {
    /// The region's keys (some of them) belong to an initialized local
    /// region whose epoch is not older: the region meta asked for is stale,
    /// or the local region must change (split, destroy) first.
    #[error(
        "region {region_id} (epoch {}) overlaps local region {existing_region} (epoch {})",
        fmt_epoch(.epoch),
        fmt_epoch(.existing_epoch)
    )]
    Overlaps { region_id: u64, epoch: metapb::RegionEpoch, existing_region: u64, existing_epoch: metapb::RegionEpoch },
    /// This store destroyed peer `tombstone_peer_id` of the region; a peer
    /// id not above it is that peer (a stale message) or an older one.
    #[error("region {region_id}: peer {peer_id} is not newer than the destroyed peer {tombstone_peer_id}")]
    Tombstoned { region_id: u64, peer_id: u64, tombstone_peer_id: u64 },
    /// The region was destroyed here at an epoch the request does not go
    /// past: it comes from before the destruction.
    #[error(
        "region {region_id}: epoch {} is not newer than the destroyed peer's {}",
        fmt_epoch(.epoch),
        fmt_epoch(.tombstone_epoch)
    )]
    StaleEpoch { region_id: u64, epoch: metapb::RegionEpoch, tombstone_epoch: metapb::RegionEpoch },
    /// A snapshot's file covers another range or region version than its
    /// header names: the file was chosen before a split the header already
    /// shows (or after one it does not). Installing it would clear and
    /// write the file's range while the header's was checked and claimed.
    #[error(
        "region {region_id}: snapshot file covers [{}, {}) at version {file_version}, its header names [{}, {}) at version {header_version}",
        keys::display(.file_start),
        keys::display(.file_end),
        keys::display(.header_start),
        keys::display(.header_end)
    )]
    SnapshotMismatch {
        region_id: u64,
        header_start: Vec<u8>,
        header_end: Vec<u8>,
        header_version: u64,
        file_start: Vec<u8>,
        file_end: Vec<u8>,
        file_version: u64,
    },
    /// The peer's destroy has begun (its fence is raised): it may claim no
    /// range, or the claim would outlive it as a range no peer serves.
    #[error("region {region_id}: peer {peer_id} is being destroyed here")]
    Destroyed { region_id: u64, peer_id: u64 },
    /// The range index refused the range the peer would own.
    #[error(transparent)]
    Range(#[from] RangeConflict),
}

impl PeerRefused {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            PeerRefused::Overlaps { .. } => "overlaps",
            PeerRefused::Tombstoned { .. } => "tombstoned",
            PeerRefused::StaleEpoch { .. } => "stale_epoch",
            PeerRefused::SnapshotMismatch { .. } => "snapshot_mismatch",
            PeerRefused::Destroyed { .. } => "destroyed",
            PeerRefused::Range(c) => c.label(),
        }
    }

    /// Every value [`PeerRefused::label`] can take, so the metric starts
    /// with all of them at zero.
    pub const LABELS: [&'static str; 7] =
        ["overlaps", "tombstoned", "stale_epoch", "snapshot_mismatch", "destroyed", "invalid_range", "not_indexed"];
}

/// Whether a snapshot file whose head names `file` may stand for the
/// snapshot whose header names `header`: the same region, range and
/// version. `conf_ver` may differ (a file built before a member was added,
/// sent once the leader's view includes it).
///
/// # Errors
///
/// `SnapshotMismatch` naming both.
pub fn check_snapshot_file(header: &metapb::Region, file: &metapb::Region) -> Result<(), PeerRefused> {
    let version = |r: &metapb::Region| r.region_epoch.unwrap_or_default().version;
    let same = header.id == file.id
        && header.start_key == file.start_key
        && header.end_key == file.end_key
        && version(header) == version(file);
    if same {
        return Ok(());
    }
    Err(PeerRefused::SnapshotMismatch {
        region_id: header.id,
        header_start: header.start_key.clone(),
        header_end: header.end_key.clone(),
        header_version: version(header),
        file_start: file.start_key.clone(),
        file_end: file.end_key.clone(),
        file_version: version(file),
    })
}

/// Why a peer did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartPeerError {
    #[error(transparent)]
    Refused(#[from] PeerRefused),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Whether peer `peer_id` of `region` may be created on this store, given
/// the region's local state row (if any) and the initialized regions.
///
/// The peer owns no range yet (it is uninitialized until data arrives), so
/// this does not claim one; it keeps out what must never start:
///
/// - a destroyed peer coming back: the row is a tombstone and the peer id is
///   not above the destroyed one, or the epoch does not go past the
///   tombstone's. A new peer of the same region (re-added later, so a higher
///   id and a newer epoch) is allowed.
/// - a peer from a stale view of the keys: an initialized local region of
///   another id overlaps it with an epoch version not older. An older local
///   region does not refuse it: the newer region's peer may wait,
///   uninitialized, until the local one changes (its data is claimed only
///   when the overlap is gone).
///
/// # Errors
///
/// The first refusal found, in that order.
pub fn check_new_peer(
    index: &RangeIndex,
    local: Option<&raftpb::RegionLocalState>,
    region: &metapb::Region,
    peer_id: u64,
) -> Result<(), PeerRefused> {
    let epoch = region.region_epoch.unwrap_or_default();
    if !keys::is_valid_range(&region.start_key, &region.end_key) {
        return Err(RangeConflict::InvalidRange {
            region_id: region.id,
            start_key: region.start_key.clone(),
            end_key: region.end_key.clone(),
        }
        .into());
    }
    if let Some(tomb) = local.filter(|s| s.state == raftpb::PeerState::Tombstone as i32) {
        if peer_id <= tomb.peer_id {
            return Err(PeerRefused::Tombstoned { region_id: region.id, peer_id, tombstone_peer_id: tomb.peer_id });
        }
        let tombstone_epoch = tomb.region.as_ref().and_then(|r| r.region_epoch).unwrap_or_default();
        if is_older(&epoch, &tombstone_epoch) || epoch == tombstone_epoch {
            return Err(PeerRefused::StaleEpoch { region_id: region.id, epoch, tombstone_epoch });
        }
    }
    let newer = index
        .overlapping(&region.start_key, &region.end_key)
        .find(|r| r.region_id != region.id && r.epoch.version >= epoch.version);
    match newer {
        Some(r) => Err(PeerRefused::Overlaps {
            region_id: region.id,
            epoch,
            existing_region: r.region_id,
            existing_epoch: r.epoch,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(id: u64, start: &str, end: &str, conf_ver: u64, version: u64) -> metapb::Region {
        metapb::Region {
            id,
            start_key: start.as_bytes().to_vec(),
            end_key: end.as_bytes().to_vec(),
            region_epoch: Some(metapb::RegionEpoch { conf_ver, version }),
            ..Default::default()
        }
    }

    fn tombstone(region: metapb::Region, peer_id: u64) -> raftpb::RegionLocalState {
        raftpb::RegionLocalState {
            region: Some(region),
            state: raftpb::PeerState::Tombstone as i32,
            peer_id,
            ..Default::default()
        }
    }

    /// Region 1 [b, m) at version 3 is initialized here.
    fn index() -> RangeIndex {
        let mut idx = RangeIndex::new();
        idx.insert(&region(1, "b", "m", 1, 3)).unwrap();
        idx
    }

    #[test]
    fn a_peer_over_free_keys_is_allowed() {
        let idx = index();
        check_new_peer(&idx, None, &region(2, "m", "", 1, 1), 7).unwrap();
        check_new_peer(&idx, None, &region(2, "", "b", 1, 1), 7).unwrap();
        check_new_peer(&RangeIndex::new(), None, &region(2, "", "", 1, 1), 7).unwrap();
    }

    #[test]
    fn overlapping_a_newer_or_equal_local_region_is_refused() {
        let idx = index();
        for (r, what) in [
            (region(2, "a", "c", 1, 3), "left overlap, equal version"),
            (region(2, "l", "", 5, 2), "right overlap to the end, older version"),
            (region(2, "c", "d", 1, 1), "inside"),
            (region(2, "", "", 1, 3), "everything"),
        ] {
            assert!(
                matches!(
                    check_new_peer(&idx, None, &r, 7),
                    Err(PeerRefused::Overlaps { region_id: 2, existing_region: 1, .. })
                ),
                "{what}"
            );
        }
    }

    #[test]
    fn overlapping_an_older_local_region_is_allowed() {
        // The newer region's peer is created uninitialized; it owns nothing
        // until the older local region has given up the keys.
        check_new_peer(&index(), None, &region(2, "a", "z", 1, 4), 7).unwrap();
    }

    #[test]
    fn the_same_region_does_not_overlap_itself() {
        check_new_peer(&index(), None, &region(1, "b", "m", 1, 3), 7).unwrap();
    }

    #[test]
    fn an_invalid_range_is_refused() {
        let r = check_new_peer(&RangeIndex::new(), None, &region(2, "m", "b", 1, 1), 7);
        assert!(matches!(r, Err(PeerRefused::Range(RangeConflict::InvalidRange { .. }))));
    }

    #[test]
    fn a_tombstone_refuses_the_same_or_an_older_peer_id() {
        let idx = RangeIndex::new();
        let tomb = tombstone(region(5, "x", "y", 2, 1), 7);
        for peer_id in [7, 6, 1] {
            let r = check_new_peer(&idx, Some(&tomb), &region(5, "x", "y", 9, 9), peer_id);
            assert_eq!(r, Err(PeerRefused::Tombstoned { region_id: 5, peer_id, tombstone_peer_id: 7 }));
        }
    }

    #[test]
    fn a_tombstone_refuses_an_epoch_not_past_it() {
        let idx = RangeIndex::new();
        let tomb = tombstone(region(5, "x", "y", 2, 3), 7);
        for (conf_ver, version) in [(2, 3), (1, 3), (2, 2), (1, 9), (9, 1)] {
            let r = check_new_peer(&idx, Some(&tomb), &region(5, "x", "y", conf_ver, version), 8);
            assert!(matches!(r, Err(PeerRefused::StaleEpoch { region_id: 5, .. })), "{conf_ver}/{version}");
        }
    }

    #[test]
    fn a_tombstone_allows_a_newer_peer_at_a_newer_epoch() {
        let idx = RangeIndex::new();
        let tomb = tombstone(region(5, "x", "y", 2, 3), 7);
        check_new_peer(&idx, Some(&tomb), &region(5, "x", "y", 4, 3), 8).unwrap();
        check_new_peer(&idx, Some(&tomb), &region(5, "x", "y", 2, 4), 8).unwrap();
    }

    #[test]
    fn a_normal_row_is_no_tombstone() {
        let mut row = tombstone(region(5, "x", "y", 2, 3), 7);
        row.state = raftpb::PeerState::Normal as i32;
        check_new_peer(&RangeIndex::new(), Some(&row), &region(5, "x", "y", 2, 3), 7).unwrap();
    }

    #[test]
    fn labels_cover_every_refusal() {
        let e = metapb::RegionEpoch::default();
        let all = [
            PeerRefused::Overlaps { region_id: 1, epoch: e, existing_region: 2, existing_epoch: e },
            PeerRefused::Tombstoned { region_id: 1, peer_id: 1, tombstone_peer_id: 1 },
            PeerRefused::StaleEpoch { region_id: 1, epoch: e, tombstone_epoch: e },
            RangeConflict::Overlaps { region_id: 1, existing_region: 2, existing_start: vec![], existing_end: vec![] }
                .into(),
            RangeConflict::StaleEpoch { region_id: 1, indexed: e, epoch: e }.into(),
            RangeConflict::InvalidRange { region_id: 1, start_key: vec![], end_key: vec![] }.into(),
            RangeConflict::NotIndexed { region_id: 1 }.into(),
            PeerRefused::Destroyed { region_id: 1, peer_id: 1 },
            PeerRefused::SnapshotMismatch {
                region_id: 1,
                header_start: vec![],
                header_end: vec![],
                header_version: 1,
                file_start: vec![],
                file_end: vec![],
                file_version: 1,
            },
        ];
        for r in all {
            assert!(PeerRefused::LABELS.contains(&r.label()), "{r}");
        }
    }
}
