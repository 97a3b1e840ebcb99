//! Limits on region snapshots moving between stores: a rate all outgoing
//! snapshots share, and how many are sent and received at once. A region
//! move must not starve the store's raft traffic and client writes.

use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::config::SnapshotConfig;

pub struct SnapshotLimits {
    /// Bytes per second; 0 for no limit.
    rate: u64,
    /// When the bytes paced so far have all been sent at `rate`.
    paced_until: std::sync::Mutex<Instant>,
    sends: Semaphore,
    receives: Semaphore,
}

impl SnapshotLimits {
    pub fn new(config: &SnapshotConfig) -> Self {
        SnapshotLimits {
            rate: config.max_send_rate_mb * 1024 * 1024,
            paced_until: std::sync::Mutex::new(Instant::now()),
            sends: Semaphore::new(config.max_concurrent_sends),
            receives: Semaphore::new(config.max_concurrent_receives),
        }
    }

    /// Waits for a send slot.
    pub async fn send_slot(&self) -> SemaphorePermit<'_> {
        self.sends.acquire().await.expect("the send semaphore is never closed")
    }

    /// A receive slot, or `None` when as many snapshots as allowed are
    /// being received already.
    pub fn try_receive_slot(&self) -> Option<SemaphorePermit<'_>> {
        self.receives.try_acquire().ok()
    }

    /// Waits until `bytes` more may be sent at the shared rate.
    pub async fn pace(&self, bytes: u64) {
        if self.rate == 0 {
            return;
        }
        let start = {
            let mut until = self.paced_until.lock().unwrap();
            let start = (*until).max(Instant::now());
            *until = start + Duration::from_secs_f64(bytes as f64 / self.rate as f64);
            start
        };
        tokio::time::sleep_until(start).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sends_share_the_rate() {
        let limits = SnapshotLimits::new(&SnapshotConfig {
            max_send_rate_mb: 1,
            max_concurrent_sends: 1,
            max_concurrent_receives: 1,
        });
        let started = Instant::now();
        // 4 MiB at 1 MiB/s: the last MiB may start after 3 s.
        for _ in 0..4 {
            limits.pace(1024 * 1024).await;
        }
        assert_eq!(started.elapsed().as_secs(), 3);
        let slot = limits.try_receive_slot();
        assert!(slot.is_some());
        assert!(limits.try_receive_slot().is_none(), "one receive at a time");
        drop(slot);
        assert!(limits.try_receive_slot().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn zero_is_no_limit() {
        let limits = SnapshotLimits::new(&SnapshotConfig { max_send_rate_mb: 0, ..Default::default() });
        let started = Instant::now();
        limits.pace(u64::MAX / 2).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
