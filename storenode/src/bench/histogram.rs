//! Latency percentiles from an HDR histogram: fixed memory whatever the run
//! length, 3 significant digits over 1 µs .. 60 s. Each client records into
//! its own and they are added up once the run is over, so the request path
//! takes no lock.

use std::time::Duration;

/// Lowest and highest recordable latency, in microseconds.
const LOWEST_US: u64 = 1;
const HIGHEST_US: u64 = 60 * 1_000_000;
/// Relative error at most 0.1 %.
const SIGNIFICANT_DIGITS: u8 = 3;

/// Latencies in microseconds; anything above 60 s counts as 60 s.
#[derive(Debug, Clone)]
pub struct Histogram {
    inner: hdrhistogram::Histogram<u64>,
}

/// What a run reports per operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub count: u64,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        let inner = hdrhistogram::Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
            .expect("constant histogram bounds are valid");
        Histogram { inner }
    }

    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.inner.saturating_record(us);
    }

    /// Adds `other`'s samples to this one's.
    pub fn merge(&mut self, other: &Histogram) {
        // Same bounds on both sides, and saturation already applied when
        // recording: adding cannot go out of range.
        self.inner.add(&other.inner).expect("histograms share their bounds");
    }

    pub fn len(&self) -> u64 {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    pub fn summary(&self) -> Summary {
        let at = |q: f64| {
            if self.inner.is_empty() { Duration::ZERO } else { Duration::from_micros(self.inner.value_at_quantile(q)) }
        };
        Summary {
            count: self.inner.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: if self.inner.is_empty() { Duration::ZERO } else { Duration::from_micros(self.inner.max()) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn percentiles_of_a_known_set() {
        let mut h = Histogram::new();
        for n in 1..=1000 {
            h.record(us(n));
        }
        // Below 2048 µs every value has a bucket of its own.
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert_eq!(s.p50, us(500));
        assert_eq!(s.p90, us(900));
        assert_eq!(s.p99, us(990));
        assert_eq!(s.p999, us(999));
        assert_eq!(s.max, us(1000));
    }

    #[test]
    fn empty_summary_is_zero() {
        let s = Histogram::new().summary();
        assert_eq!(s.count, 0);
        assert_eq!((s.p50, s.p99, s.max), (Duration::ZERO, Duration::ZERO, Duration::ZERO));
    }

    #[test]
    fn large_values_keep_three_digits() {
        let mut h = Histogram::new();
        // 99 fast samples and one 12.345678 s stall: the stall is the max
        // and the p99.9, within 0.1 %.
        for _ in 0..99 {
            h.record(us(250));
        }
        h.record(us(12_345_678));
        let s = h.summary();
        assert_eq!(s.p50, us(250));
        assert_eq!(s.p99, us(250));
        for got in [s.p999, s.max] {
            let err = (got.as_micros() as f64 - 12_345_678.0).abs() / 12_345_678.0;
            assert!(err <= 0.001, "{got:?} is more than 0.1 % off");
        }
    }

    #[test]
    fn above_the_range_saturates_at_sixty_seconds() {
        let mut h = Histogram::new();
        h.record(Duration::from_secs(3600));
        h.record(Duration::ZERO);
        assert_eq!(h.len(), 2);
        let max = h.summary().max.as_secs_f64();
        assert!((60.0..60.1).contains(&max), "max {max}");
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let (mut a, mut b, mut all) = (Histogram::new(), Histogram::new(), Histogram::new());
        for n in 1..=5000u64 {
            let d = us(n * 37 % 90_001);
            let part = if n % 3 == 0 { &mut a } else { &mut b };
            part.record(d);
            all.record(d);
        }
        a.merge(&b);
        assert_eq!(a.len(), 5000);
        assert_eq!(a.summary(), all.summary());
        // Merging an empty one changes nothing.
        a.merge(&Histogram::new());
        assert_eq!(a.summary(), all.summary());
    }
}
