//! The bench's regions: the key space cut into `regions` ranges at keys
//! `r` + a 10-digit index, created the way stores create them, by split
//! reports: the bootstrap region split into chunks, then each chunk split
//! into its regions, reported by the store that leads it.

use proto::{metapb, pdpb};

use super::sim_store::SimStore;
use crate::catalog::MAX_ALLOC_BATCH;
use crate::client::PdClient;
use crate::error::{PdError, Result};

/// A region as the bench last reported it, and who leads it.
#[derive(Debug, Clone)]
pub struct BenchRegion {
    pub region: metapb::Region,
    /// Index into the stores holding peers.
    pub leader: usize,
    pub term: u64,
}

impl BenchRegion {
    pub fn leader_peer(&self, store_id: u64) -> metapb::Peer {
        *self.region.peers.iter().find(|p| p.store_id == store_id).expect("the leader's store holds a peer")
    }
}

/// The start key of region `i` of `n`: empty for the first.
pub fn bound(i: usize, n: usize) -> Vec<u8> {
    if i == 0 || i >= n { Vec::new() } else { format!("r{i:010}").into_bytes() }
}

/// Hands out ids PD allocated, a batch at a time.
struct Ids<'a> {
    pd: &'a PdClient,
    next: u64,
    left: u64,
}

impl Ids<'_> {
    async fn take(&mut self) -> Result<u64> {
        if self.left == 0 {
            self.next = self.pd.alloc_ids(MAX_ALLOC_BATCH).await?;
            self.left = u64::from(MAX_ALLOC_BATCH);
        }
        self.left -= 1;
        self.next += 1;
        Ok(self.next - 1)
    }
}

/// `parent` cut at the bounds of regions `first..last` of `n`, one version
/// up: new ids for all but the last piece, which keeps the parent's id
/// (a store's split keeps the original region on the right).
async fn cut(
    parent: &metapb::Region,
    first: usize,
    last: usize,
    n: usize,
    ids: &mut Ids<'_>,
) -> Result<Vec<metapb::Region>> {
    let mut epoch = parent.region_epoch.unwrap_or_default();
    epoch.version += 1;
    let mut out = Vec::with_capacity(last - first);
    for i in first..last {
        let mut r = parent.clone();
        r.region_epoch = Some(epoch);
        r.start_key = if i == first { parent.start_key.clone() } else { bound(i, n) };
        r.end_key = if i + 1 == last { parent.end_key.clone() } else { bound(i + 1, n) };
        if i + 1 != last {
            r.id = ids.take().await?;
            for p in &mut r.peers {
                p.id = ids.take().await?;
            }
        }
        out.push(r);
    }
    Ok(out)
}

/// A split report from `leader`'s store, which leads every region of it at
/// term 1 (so each starts with a leader, as the simulated stores report).
fn split_report(regions: Vec<metapb::Region>, leader: metapb::Peer) -> pdpb::store_heartbeat_request::Payload {
    let leaderships = regions
        .iter()
        .map(|r| pdpb::RegionLeadership {
            leader: r.peers.iter().find(|p| p.store_id == leader.store_id).copied(),
            term: 1,
        })
        .collect();
    pdpb::store_heartbeat_request::Payload::Split(pdpb::SplitReport {
        regions,
        leader: Some(leader),
        term: 1,
        directive_id: 0,
        stats: Vec::new(),
        leaderships,
    })
}

/// Splits the single bootstrap region into `n` regions of `chunk` per
/// report. `holders` are the stores with a peer of it, in peer order; each
/// chunk is led (and reported) by one of them in turn. Returns the regions
/// in key order once PD's catalog holds `n`.
///
/// # Errors
///
/// PD's refusals, or PD not taking the reports within `timeout`.
pub async fn create(
    pd: &PdClient,
    pd_http: &str,
    holders: &[&SimStore],
    bootstrap: &metapb::Region,
    n: usize,
    chunk: usize,
    timeout: std::time::Duration,
) -> Result<Vec<BenchRegion>> {
    let mut ids = Ids { pd, next: 0, left: 0 };
    let chunks = n.div_ceil(chunk);
    let mut parents = Vec::with_capacity(chunks);
    for c in 0..chunks {
        parents.push((c * chunk, ((c + 1) * chunk).min(n)));
    }
    // First cut: the bootstrap region into chunks, its bounds at the
    // chunks' first regions.
    let mut first_cut = Vec::with_capacity(chunks);
    {
        let mut epoch = bootstrap.region_epoch.unwrap_or_default();
        epoch.version += 1;
        for (c, (first, _)) in parents.iter().enumerate() {
            let mut r = bootstrap.clone();
            r.region_epoch = Some(epoch);
            r.start_key = bound(*first, n);
            r.end_key = parents.get(c + 1).map(|(f, _)| bound(*f, n)).unwrap_or_default();
            if c + 1 != chunks {
                r.id = ids.take().await?;
                for p in &mut r.peers {
                    p.id = ids.take().await?;
                }
            }
            first_cut.push(r);
        }
    }
    let lead0 = *bootstrap.peers.iter().find(|p| p.store_id == holders[0].id).expect("holder peer");
    holders[0].send(split_report(first_cut.clone(), lead0)).await?;
    wait_regions(pd_http, chunks, timeout).await?;

    let mut out = Vec::with_capacity(n);
    for (c, (parent, (first, last))) in first_cut.iter().zip(&parents).enumerate() {
        let leader = c % holders.len();
        let store = holders[leader];
        let regions =
            if last - first > 1 { cut(parent, *first, *last, n, &mut ids).await? } else { vec![parent.clone()] };
        let peer = *parent.peers.iter().find(|p| p.store_id == store.id).expect("holder peer");
        if regions.len() > 1 {
            store.send(split_report(regions.clone(), peer)).await?;
        } else {
            store.send(region_heartbeat(&regions[0], peer, 1)).await?;
        }
        out.extend(regions.into_iter().map(|region| BenchRegion { region, leader, term: 1 }));
    }
    wait_regions(pd_http, n, timeout).await?;
    Ok(out)
}

/// A leader's report of `region`, with stats far below any split threshold.
pub fn region_heartbeat(
    region: &metapb::Region,
    leader: metapb::Peer,
    term: u64,
) -> pdpb::store_heartbeat_request::Payload {
    pdpb::store_heartbeat_request::Payload::Region(pdpb::RegionHeartbeat {
        region: Some(region.clone()),
        leader: Some(leader),
        term,
        stats: Some(pdpb::RegionStats { approximate_size: 1 << 20, approximate_keys: 1_000, ..Default::default() }),
        pending_peers: Vec::new(),
        down_peers: Vec::new(),
    })
}

async fn wait_regions(pd_http: &str, n: usize, timeout: std::time::Duration) -> Result<()> {
    let give_up = std::time::Instant::now() + timeout;
    loop {
        let m = super::pd_metrics::PdMetrics::scrape(pd_http).await?;
        if m.get("pd_regions") as usize >= n {
            return Ok(());
        }
        if std::time::Instant::now() > give_up {
            return Err(PdError::Unavailable(format!("PD holds {} regions, not {n}", m.get("pd_regions"))));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
