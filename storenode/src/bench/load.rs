//! The load phase: every record written once before the measured run (so
//! reads hit), many writes in flight at a time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::backend::Backend;
use super::config::BenchConfig;
use super::keygen::value;

/// Load concurrency floor: a single-client run should not spend minutes
/// loading.
const LOAD_CLIENTS: usize = 64;

/// Writes records 0..`cfg.records`, at least `LOAD_CLIENTS` at a time;
/// returns how long it took.
///
/// # Errors
///
/// The first write that fails.
pub async fn load(backend: &Arc<Backend>, cfg: &BenchConfig) -> Result<Duration, String> {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..cfg.clients.max(LOAD_CLIENTS) {
        let (backend, next, cfg) = (backend.clone(), next.clone(), cfg.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= cfg.records {
                    return Ok::<(), String>(());
                }
                backend.put(c, cfg.key(i), value(i, cfg.value_size)).await?;
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(started.elapsed())
}
