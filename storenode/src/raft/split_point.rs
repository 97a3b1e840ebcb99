//! Where a region splits, and how much of it lies left of the split key:
//! one scan of the region's keys in a read transaction, made by the leader
//! when PD asks for a split (never per size check: sizes are kept up to date
//! as writes apply).

use std::io;
use std::sync::Arc;

use proto::metapb;
use redb::ReadableDatabase;

use crate::engine::{DATA, Engine, data_range, io_err};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitPoint {
    pub key: Vec<u8>,
    /// Keys and bytes (key + value) in `[region start, key)`.
    pub left_keys: u64,
    pub left_size: u64,
}

/// With `at`, measures the part of `region` left of it. Without, finds the
/// middle by size: the first key where the keys before it reach half of
/// the region's bytes (`total_size`, or counted first when 0). `None` when
/// the region has fewer than two keys: there is no key to split at that
/// leaves both parts non-empty.
///
/// # Errors
///
/// Read failures.
pub fn find(
    engine: &Engine,
    region: &metapb::Region,
    at: Option<&[u8]>,
    total_size: u64,
) -> io::Result<Option<SplitPoint>> {
    let tx = engine.db.begin_read().map_err(io_err)?;
    let data = tx.open_table(DATA).map_err(io_err)?;
    if let Some(at) = at {
        let (mut left_keys, mut left_size) = (0, 0);
        for row in data_range(&data, &region.start_key, at)? {
            let (k, v) = row.map_err(io_err)?;
            left_keys += 1;
            left_size += (k.value().len() + v.value().len()) as u64;
        }
        return Ok(Some(SplitPoint { key: at.to_vec(), left_keys, left_size }));
    }
    let total = if total_size > 0 {
        total_size
    } else {
        let mut n = 0u64;
        for row in data_range(&data, &region.start_key, &region.end_key)? {
            let (k, v) = row.map_err(io_err)?;
            n += (k.value().len() + v.value().len()) as u64;
        }
        n
    };
    let half = total / 2;
    let (mut left_keys, mut left_size) = (0u64, 0u64);
    let mut last: Option<SplitPoint> = None;
    for row in data_range(&data, &region.start_key, &region.end_key)? {
        let (k, v) = row.map_err(io_err)?;
        if left_keys > 0 && left_size >= half {
            return Ok(Some(SplitPoint { key: k.value().to_vec(), left_keys, left_size }));
        }
        last = (left_keys > 0).then(|| SplitPoint { key: k.value().to_vec(), left_keys, left_size });
        left_keys += 1;
        left_size += (k.value().len() + v.value().len()) as u64;
    }
    // The sizes said more than the keys hold: split before the last key.
    Ok(last)
}

/// [`find`] off the async workers: a large region takes a while to scan.
///
/// # Errors
///
/// Read failures.
pub async fn find_blocking(
    engine: Arc<Engine>,
    region: metapb::Region,
    at: Option<Vec<u8>>,
    total_size: u64,
) -> io::Result<Option<SplitPoint>> {
    tokio::task::spawn_blocking(move || find(&engine, &region, at.as_deref(), total_size)).await.map_err(io_err)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::DATA;

    async fn engine_with(keys: &[&str]) -> (tempfile::TempDir, Arc<Engine>) {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let rows: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
        engine
            .writer
            .write(move |tx| {
                let mut t = tx.open_table(DATA).map_err(io_err)?;
                for k in &rows {
                    t.insert(k.as_slice(), b"vvvvvvvv".as_slice()).map_err(io_err)?;
                }
                Ok(())
            })
            .await
            .unwrap();
        (dir, engine)
    }

    fn region(start: &str, end: &str) -> metapb::Region {
        metapb::Region { id: 1, start_key: start.into(), end_key: end.into(), ..Default::default() }
    }

    #[tokio::test]
    async fn the_middle_by_size_leaves_both_parts_non_empty() {
        let (_dir, engine) = engine_with(&["a1", "a2", "a3", "a4", "b1", "z9"]).await;
        // Region [a, b): four keys of 10 bytes each.
        let p = find(&engine, &region("a", "b"), None, 0).unwrap().unwrap();
        assert_eq!(p, SplitPoint { key: b"a3".to_vec(), left_keys: 2, left_size: 20 });
        // A stale total (too large) still splits before the last key.
        let p = find(&engine, &region("a", "b"), None, 1_000).unwrap().unwrap();
        assert_eq!(p.key, b"a4".to_vec());
        assert_eq!(p.left_keys, 3);
        // One key, or none: nowhere to split.
        assert_eq!(find(&engine, &region("b", "c"), None, 0).unwrap(), None);
        assert_eq!(find(&engine, &region("c", "d"), None, 0).unwrap(), None);
        // Unbounded ends.
        let p = find(&engine, &region("", ""), None, 0).unwrap().unwrap();
        assert_eq!(p.key, b"a4".to_vec());
    }

    #[tokio::test]
    async fn a_given_key_is_measured() {
        let (_dir, engine) = engine_with(&["a1", "a2", "a3", "a4"]).await;
        let p = find(&engine, &region("a", ""), Some(b"a3"), 0).unwrap().unwrap();
        assert_eq!(p, SplitPoint { key: b"a3".to_vec(), left_keys: 2, left_size: 20 });
    }
}
