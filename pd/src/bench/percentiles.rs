//! Latency samples and their percentiles.

use std::time::Duration;

/// Samples kept in full: a bench run takes a few hundred.
#[derive(Debug, Default, Clone)]
pub struct Percentiles {
    samples: Vec<Duration>,
}

impl Percentiles {
    pub fn record(&mut self, d: Duration) {
        self.samples.push(d);
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The sample at quantile `q` (0..=1, nearest rank); zero with none.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.samples.is_empty() {
            return Duration::ZERO;
        }
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        let rank = ((q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut p = Percentiles::default();
        assert_eq!(p.quantile(0.5), Duration::ZERO);
        for ms in (1..=100).rev() {
            p.record(Duration::from_millis(ms));
        }
        assert_eq!(p.quantile(0.5), Duration::from_millis(50));
        assert_eq!(p.quantile(0.99), Duration::from_millis(99));
        assert_eq!(p.quantile(1.0), Duration::from_millis(100));
        assert_eq!(p.quantile(0.0), Duration::from_millis(1));
    }
}
