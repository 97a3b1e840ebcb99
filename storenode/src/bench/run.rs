//! The measured run: `clients` tasks, each issuing one operation at a time
//! (drawn from the mix by its own seeded generator) until the time or the
//! operation count runs out, each recording its latencies into histograms
//! of its own; the histograms are added up at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::backend::Backend;
use super::config::BenchConfig;
use super::histogram::Histogram;
use super::inserts::Inserts;
use super::keygen::value;
use super::op::Op;
use super::report::Report;
use super::rng::Rng;

/// What the clients share: counters only, no lock but the inserts'.
struct Shared {
    backend: Arc<Backend>,
    cfg: BenchConfig,
    inserts: Inserts,
    deadline: Option<Instant>,
    /// Operations begun, against `cfg.operations`.
    issued: AtomicU64,
    /// Successful ones, for the progress line.
    done: AtomicU64,
    errors: AtomicU64,
    not_found: AtomicU64,
}

impl Shared {
    /// Whether the client may begin another operation.
    fn go_on(&self) -> bool {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        match self.cfg.operations {
            Some(n) => self.issued.fetch_add(1, Ordering::Relaxed) < n,
            None => true,
        }
    }
}

/// One client's measurements.
struct ClientResult {
    latencies: Vec<Histogram>,
    last_error: Option<String>,
}

/// Runs the configured mix until the configured time or operation count.
pub async fn run(backend: Arc<Backend>, cfg: BenchConfig) -> Report {
    let started = Instant::now();
    let shared = Arc::new(Shared {
        backend,
        inserts: Inserts::new(cfg.records),
        deadline: cfg.duration.map(|d| started + d),
        issued: AtomicU64::new(0),
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        not_found: AtomicU64::new(0),
        cfg,
    });
    let progress = shared.cfg.progress.then(|| {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut last = 0;
            loop {
                tick.tick().await;
                let now = shared.done.load(Ordering::Relaxed);
                eprintln!("[{:>4.0}s] {:>8} ops/s, {now} ops", started.elapsed().as_secs_f64(), now - last);
                last = now;
            }
        })
    });
    let tasks: Vec<_> = (0..shared.cfg.clients).map(|c| tokio::spawn(client(shared.clone(), c))).collect();
    let mut merged: Vec<Histogram> = Op::ALL.iter().map(|_| Histogram::new()).collect();
    let mut last_error = None;
    for t in tasks {
        if let Ok(r) = t.await {
            for (m, l) in merged.iter_mut().zip(&r.latencies) {
                m.merge(l);
            }
            last_error = last_error.or(r.last_error);
        }
    }
    let elapsed = started.elapsed();
    if let Some(p) = progress {
        p.abort();
    }
    let ops =
        Op::ALL.into_iter().zip(&merged).filter(|(_, h)| !h.is_empty()).map(|(op, h)| (op, h.summary())).collect();
    Report {
        elapsed,
        errors: shared.errors.load(Ordering::Relaxed),
        not_found: shared.not_found.load(Ordering::Relaxed),
        ops,
        last_error,
    }
}

async fn client(shared: Arc<Shared>, c: usize) -> ClientResult {
    let cfg = &shared.cfg;
    let mut rng = Rng::new(cfg.client_seed(c));
    let mut chooser = cfg.chooser.clone();
    let mut latencies: Vec<Histogram> = Op::ALL.iter().map(|_| Histogram::new()).collect();
    let mut last_error = None;
    while shared.go_on() {
        let op = cfg.mix.choose(&mut rng);
        // Every draw happens before the request, in the same order, so a
        // client's sequence of operations depends on its seed alone.
        let (i, scan_len) = match op {
            Op::Insert => (shared.inserts.allocate(), 0),
            Op::Scan => (chooser.next(&mut rng, shared.inserts.existing()), cfg.scan_length.draw(&mut rng)),
            _ => (chooser.next(&mut rng, shared.inserts.existing()), 0),
        };
        let t = Instant::now();
        let res = execute(&shared, c, op, i, scan_len).await;
        let took = t.elapsed();
        if op == Op::Insert {
            shared.inserts.finish(i);
        }
        match res {
            Ok(found) => {
                latencies[op as usize].record(took);
                shared.done.fetch_add(1, Ordering::Relaxed);
                if !found {
                    shared.not_found.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                last_error = Some(e);
            }
        }
    }
    ClientResult { latencies, last_error }
}

/// One operation on record `i`; `Ok(false)` for a read that found nothing.
async fn execute(shared: &Shared, c: usize, op: Op, i: u64, scan_len: u32) -> Result<bool, String> {
    let (backend, cfg) = (&shared.backend, &shared.cfg);
    let k = cfg.key(i);
    match op {
        Op::Put | Op::Insert => backend.put(c, k, value(i, cfg.value_size)).await.map(|()| true),
        Op::Get => backend.get(c, k).await,
        Op::Scan => backend.scan(c, k, scan_len).await.map(|_| true),
        Op::ReadModifyWrite => {
            let found = backend.get(c, k.clone()).await?;
            backend.put(c, k, value(i, cfg.value_size)).await?;
            Ok(found)
        }
    }
}
