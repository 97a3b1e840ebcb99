//! The load generator behind `kvbench`: a fixed number of clients, each
//! issuing one request at a time for a set duration, against this store (the
//! client library) or an etcd cluster (its v3 KV API), so both are measured
//! the same way in one run.
//!
//! - [`keygen`]: seeded key choice, uniform or zipfian.
//! - [`histogram`]: latency percentiles.

pub mod chooser;
pub mod distribution;
pub mod histogram;
pub mod keygen;
pub mod latest;
pub mod presplit;
pub mod rng;
pub mod scrambled;
pub mod zipfian;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proto::etcdserverpb::{self, kv_client::KvClient as EtcdKv};
use tonic::transport::Channel;

use crate::client::Client;
use histogram::{Histogram, Summary};
use keygen::{Distribution, key};
use rng::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Put,
    Get,
    Scan,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::Scan => "scan",
        }
    }
}

#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Share of each operation, in percent; they sum to 100.
    pub put_pct: u32,
    pub get_pct: u32,
    pub scan_pct: u32,
    pub clients: usize,
    pub key_size: usize,
    pub value_size: usize,
    /// Size of the key space.
    pub keys: u64,
    /// Put in front of every key, to aim the load at one region.
    pub key_prefix: Vec<u8>,
    pub distribution: Distribution,
    pub duration: Duration,
    pub scan_limit: u32,
    pub seed: u64,
    /// Write every key once before measuring (needed for reads to hit).
    pub preload: bool,
    /// Print a progress line every second.
    pub progress: bool,
}

impl BenchConfig {
    /// Key number `i`: the prefix, then `key_size` bytes spread evenly.
    fn key(&self, i: u64) -> Vec<u8> {
        let mut k = self.key_prefix.clone();
        k.extend_from_slice(&key(i, self.key_size));
        k
    }
}

/// What the load is sent to.
pub enum Backend {
    Store(Arc<Client>),
    /// One channel per endpoint; clients are spread over them.
    Etcd(Vec<EtcdKv<Channel>>),
}

impl Backend {
    async fn put(&self, client: usize, k: Vec<u8>, v: Vec<u8>) -> Result<(), String> {
        match self {
            Backend::Store(c) => c.put(&k, &v).await.map_err(|e| e.to_string()),
            Backend::Etcd(eps) => {
                let mut c = eps[client % eps.len()].clone();
                c.put(etcdserverpb::PutRequest { key: k, value: v, ..Default::default() })
                    .await
                    .map(drop)
                    .map_err(|s| s.message().to_string())
            }
        }
    }

    async fn get(&self, client: usize, k: Vec<u8>) -> Result<bool, String> {
        match self {
            Backend::Store(c) => c.get(&k).await.map(|v| v.is_some()).map_err(|e| e.to_string()),
            Backend::Etcd(eps) => {
                let mut c = eps[client % eps.len()].clone();
                // serializable = false: a linearizable read, like the store's.
                c.range(etcdserverpb::RangeRequest { key: k, ..Default::default() })
                    .await
                    .map(|r| !r.into_inner().kvs.is_empty())
                    .map_err(|s| s.message().to_string())
            }
        }
    }

    async fn scan(&self, client: usize, start: Vec<u8>, limit: u32) -> Result<usize, String> {
        match self {
            Backend::Store(c) => c.scan(&start, b"", limit as usize).await.map(|v| v.len()).map_err(|e| e.to_string()),
            Backend::Etcd(eps) => {
                let mut c = eps[client % eps.len()].clone();
                let req = etcdserverpb::RangeRequest {
                    key: start,
                    // "\0": every key at or after `key`.
                    range_end: vec![0],
                    limit: i64::from(limit),
                    ..Default::default()
                };
                c.range(req).await.map(|r| r.into_inner().kvs.len()).map_err(|s| s.message().to_string())
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Report {
    pub elapsed: Duration,
    pub errors: u64,
    /// Per operation that ran.
    pub ops: Vec<(Op, Summary)>,
    pub last_error: Option<String>,
}

impl Report {
    pub fn total(&self) -> u64 {
        self.ops.iter().map(|(_, s)| s.count).sum()
    }

    pub fn throughput(&self) -> f64 {
        self.total() as f64 / self.elapsed.as_secs_f64()
    }
}

fn value_for(i: u64, size: usize) -> Vec<u8> {
    let mut v = vec![b'v'; size];
    for (j, b) in i.to_le_bytes().iter().enumerate().take(size) {
        v[j] = *b;
    }
    v
}

/// Preload concurrency floor: a single-client run should not spend minutes
/// loading.
const PRELOAD_CLIENTS: usize = 64;

/// Writes every key once, at least `PRELOAD_CLIENTS` at a time.
///
/// # Errors
///
/// The first write that fails.
pub async fn preload(backend: &Arc<Backend>, cfg: &BenchConfig) -> Result<(), String> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..cfg.clients.max(PRELOAD_CLIENTS) {
        let (backend, next, cfg) = (backend.clone(), next.clone(), cfg.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= cfg.keys {
                    return Ok::<(), String>(());
                }
                backend.put(c, cfg.key(i), value_for(i, cfg.value_size)).await?;
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Runs the configured mix for the configured time.
pub async fn run(backend: Arc<Backend>, cfg: BenchConfig) -> Report {
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + cfg.duration;
    let progress = cfg.progress.then(|| {
        let done = done.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut last = 0;
            loop {
                tick.tick().await;
                let now = done.load(Ordering::Relaxed);
                eprintln!("[{:>4.0}s] {:>8} ops/s, {now} ops", started.elapsed().as_secs_f64(), now - last);
                last = now;
            }
        })
    });
    let mut tasks = Vec::new();
    for c in 0..cfg.clients {
        let (backend, cfg, done, errors) = (backend.clone(), cfg.clone(), done.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(cfg.seed.wrapping_add(c as u64 * 0x1000_0001));
            let mut lat = [Histogram::new(), Histogram::new(), Histogram::new()];
            let mut last_error = None;
            while Instant::now() < deadline {
                let roll = rng.below(100) as u32;
                let op = if roll < cfg.put_pct {
                    Op::Put
                } else if roll < cfg.put_pct + cfg.get_pct {
                    Op::Get
                } else {
                    Op::Scan
                };
                let i = cfg.distribution.pick(&mut rng, cfg.keys);
                let k = cfg.key(i);
                let t = Instant::now();
                let res = match op {
                    Op::Put => backend.put(c, k, value_for(i, cfg.value_size)).await,
                    Op::Get => backend.get(c, k).await.map(drop),
                    Op::Scan => backend.scan(c, k, cfg.scan_limit).await.map(drop),
                };
                match res {
                    Ok(()) => {
                        lat[op as usize].record(t.elapsed());
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        last_error = Some(e);
                    }
                }
            }
            (lat, last_error)
        }));
    }
    let mut merged = [Histogram::new(), Histogram::new(), Histogram::new()];
    let mut last_error = None;
    for t in tasks {
        if let Ok((lat, e)) = t.await {
            for (m, l) in merged.iter_mut().zip(&lat) {
                m.merge(l);
            }
            last_error = last_error.or(e);
        }
    }
    let elapsed = started.elapsed();
    if let Some(p) = progress {
        p.abort();
    }
    let ops = [Op::Put, Op::Get, Op::Scan]
        .into_iter()
        .zip(merged.iter())
        .filter(|(_, l)| !l.is_empty())
        .map(|(op, l)| (op, l.summary()))
        .collect();
    Report { elapsed, errors: errors.load(Ordering::Relaxed), ops, last_error }
}
