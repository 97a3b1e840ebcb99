//! YCSB's scrambled zipfian: a zipfian rank over a fixed space of 10^10
//! items (theta 0.99), hashed (FNV-1a, 64 bit) and folded onto the record
//! count. The popular records are then scattered over the record numbers
//! instead of being records 0, 1, 2, ..., and the skew does not depend on
//! the record count: the most popular record gets about 1 / zeta(10^10)
//! of the draws (3.8 % at theta 0.99) whether there are a thousand records
//! or a billion.

use super::rng::Rng;
use super::zipfian::Zipfian;

/// YCSB's rank space for the scrambled zipfian.
pub const RANK_SPACE: u64 = 10_000_000_000;

/// Record numbers in [0, items), zipfian-popular, hot records scattered.
#[derive(Debug, Clone)]
pub struct ScrambledZipfian {
    ranks: Zipfian,
    items: u64,
}

impl ScrambledZipfian {
    /// # Panics
    ///
    /// If `items` is 0 or `theta` is not in (0, 1).
    pub fn new(items: u64, theta: f64) -> Self {
        assert!(items > 0, "a zipfian distribution needs at least one record");
        ScrambledZipfian { ranks: Zipfian::new(RANK_SPACE, theta), items }
    }

    pub fn items(&self) -> u64 {
        self.items
    }

    pub fn sample(&self, rng: &mut Rng) -> u64 {
        fnv1a64(self.ranks.sample(rng)) % self.items
    }
}

/// FNV-1a over the value's 8 little-endian bytes.
pub fn fnv1a64(v: u64) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    v.to_le_bytes().iter().fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::super::zipfian::YCSB_THETA;
    use super::*;

    /// Hits per record over `n` seeded draws.
    fn hits(items: u64, seed: u64, n: usize) -> Vec<u32> {
        let z = ScrambledZipfian::new(items, YCSB_THETA);
        let mut rng = Rng::new(seed);
        let mut h = vec![0u32; items as usize];
        for _ in 0..n {
            let i = z.sample(&mut rng);
            assert!(i < items, "draw {i} out of range");
            h[i as usize] += 1;
        }
        h
    }

    /// Record numbers, most drawn first.
    fn by_popularity(h: &[u32]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..h.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(h[i]));
        order
    }

    #[test]
    fn hot_records_get_far_more_than_their_share() {
        let n = 200_000;
        let h = hits(10_000, 5, n);
        let order = by_popularity(&h);
        // The hottest 1 % of records: far more than 1 % of the draws.
        let top: u32 = order[..100].iter().map(|&i| h[i]).sum();
        let share = f64::from(top) / n as f64;
        assert!(share > 0.2, "top 1% of records got {share:.3} of the draws");
        // The hottest record: about 1 / zeta(10^10, 0.99) = 3.8 %.
        let hottest = f64::from(h[order[0]]) / n as f64;
        assert!((0.03..0.05).contains(&hottest), "hottest record got {hottest:.4}");
        // The ranks past the first 10^4 (about 60 % of the mass) fold
        // evenly onto the records, so the coldest half still gets draws,
        // but well under half of them (uniform: half).
        let coldest_half: u32 = order[5_000..].iter().map(|&i| h[i]).sum();
        let cold = f64::from(coldest_half) / n as f64;
        assert!((0.2..0.4).contains(&cold), "coldest half of records got {cold:.3} of the draws");
    }

    #[test]
    fn hot_records_are_spread_over_the_record_numbers() {
        let items = 10_000u64;
        let h = hits(items, 6, 200_000);
        let hot = &by_popularity(&h)[..20];
        // Unscrambled, the 20 hottest would be records 0..20. Here they
        // land in every tenth of the range but at most a few per tenth.
        let mut tenths = [0u32; 10];
        for &i in hot {
            tenths[i * 10 / items as usize] += 1;
        }
        assert!(hot.iter().filter(|&&i| i < 20).count() <= 2, "hot records clustered at the start: {hot:?}");
        assert!(tenths.iter().filter(|&&c| c > 0).count() >= 6, "hot records in few tenths: {tenths:?}");
        assert!(tenths.iter().all(|&c| c <= 6), "hot records clustered: {tenths:?}");
    }

    #[test]
    fn same_seed_same_draws_and_small_counts_work() {
        assert_eq!(hits(1000, 11, 5000), hits(1000, 11, 5000));
        assert!(hits(1, 1, 100).iter().all(|&c| c == 100));
    }

    #[test]
    fn fnv_known_values() {
        // FNV-1a 64 of eight zero bytes, and a scramble that moves
        // neighbours apart.
        assert_eq!(fnv1a64(0), 0xa8c7_f832_281a_39c5);
        assert_ne!(fnv1a64(1) % 1000, fnv1a64(2) % 1000);
    }
}
