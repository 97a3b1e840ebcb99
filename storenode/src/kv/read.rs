//! Reads: get, scan, batch get.

use proto::kvpb;

use super::{check_key, key_not_in_region};
use crate::config::{DEFAULT_SCAN_LIMIT, MAX_BATCH_KEYS, MAX_SCAN_LIMIT};
use crate::error::{Result, StoreError};
use crate::node::{Node, RegionPeer};

fn storage(e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("storage read failed: {e}"))
}

impl Node {
    pub async fn get(&self, req: kvpb::GetRequest) -> kvpb::GetResponse {
        if let Err(e) = check_key(&req.key) {
            return error_response(e);
        }
        let stale = req.context.as_ref().is_some_and(|c| c.stale_read);
        let key = req.key.clone();
        self.dispatch(
            "get",
            req.context,
            &req.key.clone(),
            |peer| async move {
                if !stale {
                    self.read_index(&peer).await?;
                }
                refuse_while_installing(&peer)?;
                let region = peer.region();
                if !peer.shared.contains(&key) {
                    return Err(key_not_in_region(&key, &region));
                }
                let value = self.engine.get(&key).map_err(storage)?;
                if let Some(v) = &value {
                    peer.shared.count_read([(key.as_slice(), v.as_slice())]);
                }
                Ok(kvpb::GetResponse { found: value.is_some(), value: value.unwrap_or_default(), ..Default::default() })
            },
            |mut c, ctx| async move { c.get(kvpb::GetRequest { context: Some(ctx), ..req }).await },
        )
        .await
    }

    pub async fn scan(&self, req: kvpb::ScanRequest) -> kvpb::ScanResponse {
        if let Err(e) = check_scan(&req) {
            return error_response(e);
        }
        let limit = if req.limit == 0 { DEFAULT_SCAN_LIMIT } else { req.limit as usize };
        let stale = req.context.as_ref().is_some_and(|c| c.stale_read);
        let (start, end) = (req.start_key.clone(), req.end_key.clone());
        self.dispatch(
            "scan",
            req.context,
            &req.start_key.clone(),
            |peer| async move {
                if !stale {
                    self.read_index(&peer).await?;
                }
                refuse_while_installing(&peer)?;
                let region = peer.region();
                if !peer.shared.contains(&start) {
                    return Err(key_not_in_region(&start, &region));
                }
                // Clamp to the region: the caller continues from its end.
                let end = if region.end_key.is_empty() || (!end.is_empty() && end < region.end_key) {
                    end
                } else {
                    region.end_key.clone()
                };
                let pairs = self
                    .engine
                    .scan(&start, &end, limit)
                    .map_err(storage)?
                    .into_iter()
                    .map(|(key, value)| kvpb::KvPair { key, value })
                    .collect::<Vec<_>>();
                peer.shared.count_read(pairs.iter().map(|p| (p.key.as_slice(), p.value.as_slice())));
                Ok(kvpb::ScanResponse { pairs, region_end_key: region.end_key, ..Default::default() })
            },
            |mut c, ctx| async move { c.scan(kvpb::ScanRequest { context: Some(ctx), ..req }).await },
        )
        .await
    }

    pub async fn batch_get(&self, req: kvpb::BatchGetRequest) -> kvpb::BatchGetResponse {
        if let Err(e) = check_batch_keys(&req.keys) {
            return error_response(e);
        }
        let stale = req.context.as_ref().is_some_and(|c| c.stale_read);
        let keys = req.keys.clone();
        self.dispatch(
            "batch_get",
            req.context,
            &req.keys[0].clone(),
            |peer| async move {
                if !stale {
                    self.read_index(&peer).await?;
                }
                refuse_while_installing(&peer)?;
                let region = peer.region();
                if let Some(k) = keys.iter().find(|k| !peer.shared.contains(k)) {
                    return Err(key_not_in_region(k, &region));
                }
                let mut pairs = Vec::new();
                for key in keys {
                    if let Some(value) = self.engine.get(&key).map_err(storage)? {
                        pairs.push(kvpb::KvPair { key, value });
                    }
                }
                peer.shared.count_read(pairs.iter().map(|p| (p.key.as_slice(), p.value.as_slice())));
                Ok(kvpb::BatchGetResponse { pairs, ..Default::default() })
            },
            |mut c, ctx| async move { c.batch_get(kvpb::BatchGetRequest { context: Some(ctx), ..req }).await },
        )
        .await
    }
}

/// A peer installing a snapshot has a range that is partly old and partly
/// new. A linearizable read could not get here (it waits for the applied
/// index, which the install moves only when done), but a stale read skips
/// that wait.
///
/// # Errors
///
/// `ServerBusy` while the install runs: the client retries.
fn refuse_while_installing(peer: &RegionPeer) -> Result<()> {
    if peer.shared.is_applying_snapshot() {
        return Err(StoreError::ServerBusy(format!("region {} is installing a snapshot", peer.region_id())));
    }
    Ok(())
}

/// # Errors
///
/// `InvalidArgument` for a bad range or limit.
pub fn check_scan(req: &kvpb::ScanRequest) -> Result<()> {
    if !req.start_key.is_empty() {
        check_key(&req.start_key)?;
    }
    if !req.end_key.is_empty() && req.start_key >= req.end_key {
        return Err(StoreError::InvalidArgument("scan start key must be below its end key".into()));
    }
    if req.limit as usize > MAX_SCAN_LIMIT {
        return Err(StoreError::InvalidArgument(format!("scan limit {} exceeds {MAX_SCAN_LIMIT}", req.limit)));
    }
    Ok(())
}

fn check_batch_keys(keys: &[Vec<u8>]) -> Result<()> {
    if keys.is_empty() {
        return Err(StoreError::InvalidArgument("batch carries no keys".into()));
    }
    if keys.len() > MAX_BATCH_KEYS {
        return Err(StoreError::InvalidArgument(format!(
            "{} keys exceed the batch limit {MAX_BATCH_KEYS}",
            keys.len()
        )));
    }
    keys.iter().try_for_each(|k| check_key(k))
}

pub(crate) fn error_response<R: super::KvResponse>(e: StoreError) -> R {
    crate::metrics::KV_ERRORS.with_label_values(&["validate", e.label()]).inc();
    let (re, err) = e.to_pb();
    let mut r = R::default();
    r.set_errors(re, err);
    r
}
