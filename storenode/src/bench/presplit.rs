//! Pre-splitting the benchmark's key space into even regions through PD's
//! admin API, the way an operator would with `pdctl region split`.

use std::time::{Duration, Instant};

use pd::client::PdClient;
use proto::pdpb;

/// Keys that cut the 8-byte key space after `prefix` into `n` even ranges
/// (bench keys spread uniformly over their first 8 bytes).
pub fn even_keys(prefix: &[u8], n: u32) -> Vec<Vec<u8>> {
    (1..u64::from(n.max(1)))
        .map(|i| {
            let at = ((u128::from(i) << 64) / u128::from(n)) as u64;
            let mut k = prefix.to_vec();
            k.extend_from_slice(&at.to_be_bytes());
            k
        })
        .collect()
}

/// Splits until the key space after `prefix` is in `n` regions (a key that
/// is already a boundary is skipped), waiting for each split to converge on
/// every store. Returns how many splits it made.
///
/// # Errors
///
/// PD's refusal or a split that does not finish within `deadline`.
pub async fn presplit(pd: &PdClient, prefix: &[u8], n: u32, deadline: Duration) -> Result<usize, String> {
    let mut done = 0;
    for key in even_keys(prefix, n) {
        if split_at(pd, &key, deadline).await?.is_some() {
            done += 1;
        }
    }
    Ok(done)
}

/// Splits the region holding `key` at `key` and waits until every Up store
/// has the routes that show it; returns the time from the request to then,
/// as the caller sees it (polled every 2 ms), or `None` when `key` already
/// starts a region.
///
/// # Errors
///
/// PD's refusal or a split that does not finish within `deadline`.
pub async fn split_at(pd: &PdClient, key: &[u8], deadline: Duration) -> Result<Option<Duration>, String> {
    let route = pd.get_region(key).await.map_err(|e| e.to_string())?.route.and_then(|r| r.region);
    let Some(region) = route else { return Err("no region holds the split key".into()) };
    if region.start_key == key {
        return Ok(None);
    }
    let started = Instant::now();
    let op = pd.split_region(region.id, key, None).await.map_err(|e| e.to_string())?;
    loop {
        let op = pd.get_operator(op.id).await.map_err(|e| e.to_string())?;
        match pdpb::OperatorStatus::try_from(op.status) {
            Ok(pdpb::OperatorStatus::Succeeded) if op.converged_ms != 0 => return Ok(Some(started.elapsed())),
            Ok(pdpb::OperatorStatus::Running | pdpb::OperatorStatus::Succeeded) => {}
            _ => return Err(format!("split of region {} ended: {:?}", region.id, op.error.map(|e| e.message))),
        }
        if started.elapsed() > deadline {
            return Err(format!("split of region {} not done in {deadline:?}", region.id));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Makes `n` splits at even keys after `prefix`, spread over `over`, while
/// something else runs; returns each one's request-to-convergence time.
///
/// # Errors
///
/// As [`split_at`].
pub async fn split_during(pd: &PdClient, prefix: &[u8], n: u32, over: Duration) -> Result<Vec<Duration>, String> {
    let keys = even_keys(prefix, n + 1);
    let gap = over / (n + 1);
    let mut times = Vec::new();
    for key in keys {
        tokio::time::sleep(gap).await;
        if let Some(t) = split_at(pd, &key, Duration::from_secs(30)).await? {
            times.push(t);
        }
    }
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_keys_cut_the_space_evenly() {
        assert!(even_keys(b"", 1).is_empty());
        let keys = even_keys(b"p", 4);
        assert_eq!(keys.len(), 3);
        assert_eq!(keys[1], [b"p".as_slice(), &(1u64 << 63).to_be_bytes()].concat());
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }
}
