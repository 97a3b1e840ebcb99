//! The split operator: one directive to the region's leader, done once the
//! catalog holds the new region.
//!
//! Steps:
//! 1. **Validate** the request against the catalog ([`validate`]): the key
//!    must lie strictly inside the region (empty: the leader picks the
//!    middle by size), the epoch must match when the caller names one.
//! 2. **Allocate ids** through the catalog ([`ids_needed`]): the operator's
//!    own id (also its directive's), the new region's, and one peer id per
//!    existing peer in the order of the region's peers, so every replica
//!    creates identical regions.
//! 3. **Send** `Directive{SplitRegion}` with the epoch PD saw to the store
//!    the catalog names as the region's leader; again when the leader moves,
//!    and every few seconds without progress (a store answers a repeated
//!    directive for a split it already applied by re-sending its report).
//! 4. **Done** when the catalog holds the new region over the left part
//!    ([`SplitPlan::result`]), whichever report put it there.

use std::time::Duration;

use proto::metapb;

use super::clock::Now;
pub use super::split_plan::SplitPlan;
use super::state::{Kind, Operator, Source};
use crate::catalog::{RegionRecord, keys};
use crate::error::{PdError, Result};

/// Checks a split request against the catalog's record of the region.
///
/// # Errors
///
/// `StaleEpoch` when `expected_epoch` is given and is not the catalog's;
/// `InvalidSplitKey` when a non-empty key is not strictly inside the region
/// (outside it, or its start key) or longer than a store accepts.
pub fn validate(rec: &RegionRecord, split_key: &[u8], expected_epoch: Option<&metapb::RegionEpoch>) -> Result<()> {
    let r = &rec.region;
    if let Some(expected) = expected_epoch
        && *expected != rec.epoch()
    {
        return Err(PdError::StaleEpoch(format!(
            "region {} is at epoch {}/{}, not {}/{}",
            r.id,
            rec.epoch().conf_ver,
            rec.epoch().version,
            expected.conf_ver,
            expected.version
        )));
    }
    if split_key.is_empty() {
        return Ok(());
    }
    if split_key.len() > keys::MAX_KEY_SIZE {
        return Err(PdError::InvalidSplitKey(format!(
            "split key of {} bytes exceeds the {}-byte key limit",
            split_key.len(),
            keys::MAX_KEY_SIZE
        )));
    }
    if !keys::contains(&r.start_key, &r.end_key, split_key) || split_key == r.start_key.as_slice() {
        return Err(PdError::InvalidSplitKey(format!(
            "key {:?} is not strictly inside region {} [{:?}, {:?})",
            keys::display(split_key),
            r.id,
            keys::display(&r.start_key),
            if r.end_key.is_empty() { "+inf".to_string() } else { keys::display(&r.end_key) }
        )));
    }
    Ok(())
}

/// Ids one split of `region` takes: the operator's, the new region's, and
/// one per peer.
pub fn ids_needed(region: &metapb::Region) -> u32 {
    2 + region.peers.len() as u32
}

/// A new split operator on `rec`'s region, using the ids allocated from
/// `first_id` ([`ids_needed`] of them), ending as TIMED_OUT after `timeout`.
pub fn operator(
    rec: &RegionRecord,
    split_key: Vec<u8>,
    first_id: u64,
    source: Source,
    now: Now,
    timeout: Duration,
) -> Operator {
    let (id, plan) = SplitPlan::new(&rec.region, split_key, first_id);
    Operator::running(id, rec, Kind::Split(plan), source, "created".into(), now, timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(start: &[u8], end: &[u8]) -> RegionRecord {
        RegionRecord {
            region: metapb::Region {
                id: 2,
                start_key: start.to_vec(),
                end_key: end.to_vec(),
                region_epoch: Some(metapb::RegionEpoch { conf_ver: 1, version: 3 }),
                peers: vec![metapb::Peer { id: 3, store_id: 1, role: 0 }, metapb::Peer { id: 4, store_id: 5, role: 0 }],
            },
            leader: None,
            term: 0,
        }
    }

    #[test]
    fn split_keys_must_be_strictly_inside() {
        let rec = record(b"b", b"m");
        validate(&rec, b"c", None).unwrap();
        validate(&rec, b"", None).unwrap();
        for bad in [&b"b"[..], b"a", b"m", b"z"] {
            assert!(matches!(validate(&rec, bad, None), Err(PdError::InvalidSplitKey(_))), "{bad:?}");
        }
        let unbounded = record(b"", b"");
        validate(&unbounded, b"\x00", None).unwrap();
        validate(&unbounded, b"zzz", None).unwrap();
        let long = vec![b'x'; keys::MAX_KEY_SIZE + 1];
        assert!(matches!(validate(&unbounded, &long, None), Err(PdError::InvalidSplitKey(m)) if m.contains("limit")));
    }

    #[test]
    fn a_named_epoch_must_be_the_catalogs() {
        let rec = record(b"", b"");
        let same = metapb::RegionEpoch { conf_ver: 1, version: 3 };
        validate(&rec, b"k", Some(&same)).unwrap();
        let old = metapb::RegionEpoch { conf_ver: 1, version: 2 };
        assert!(matches!(validate(&rec, b"k", Some(&old)), Err(PdError::StaleEpoch(m)) if m.contains("1/3")));
    }

    #[test]
    fn ids_follow_the_peers() {
        let rec = record(b"", b"");
        assert_eq!(ids_needed(&rec.region), 4);
        let (op_id, plan) = SplitPlan::new(&rec.region, b"k".to_vec(), 100);
        assert_eq!(op_id, 100);
        assert_eq!(plan.new_ids, proto::pdpb::SplitIds { region_id: 101, peer_ids: vec![102, 103] });
    }
}
