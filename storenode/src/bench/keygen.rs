//! Deterministic key choice for the load generator: a seeded PRNG, uniform
//! or zipfian indexes, and fixed-size keys that spread evenly over the key
//! space (so pre-split regions share the load).

use super::rng::Rng;

/// Zipfian indexes in [0, n) with skew `theta` (YCSB's generator, after
/// Gray et al., "Quickly generating billion-record synthetic databases").
#[derive(Debug, Clone)]
pub struct Zipf {
    n: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

impl Zipf {
    /// # Panics
    ///
    /// If `theta` is not in (0, 1).
    pub fn new(n: u64, theta: f64) -> Self {
        assert!(theta > 0.0 && theta < 1.0, "zipf theta must be in (0, 1)");
        let zeta = |count: u64| (1..=count).map(|i| 1.0 / (i as f64).powf(theta)).sum::<f64>();
        let zetan = zeta(n);
        let zeta2 = zeta(2);
        let alpha = 1.0 / (1.0 - theta);
        let eta = (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan);
        Zipf { n, theta, alpha, zetan, eta }
    }

    pub fn sample(&self, rng: &mut Rng) -> u64 {
        let u = rng.next_f64();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1;
        }
        let v = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        v.min(self.n - 1)
    }
}

/// How keys are picked.
#[derive(Debug, Clone)]
pub enum Distribution {
    Uniform,
    Zipf(Zipf),
}

impl Distribution {
    pub fn pick(&self, rng: &mut Rng, n: u64) -> u64 {
        match self {
            Distribution::Uniform => rng.below(n),
            Distribution::Zipf(z) => z.sample(rng),
        }
    }
}

/// The key for index `i`: `size` bytes whose first 8 are a bijective
/// scramble of `i` (big-endian), so consecutive indexes land all over the
/// key space, and the rest repeat `i`'s bytes.
pub fn key(i: u64, size: usize) -> Vec<u8> {
    // Multiplication by an odd constant is a bijection on u64.
    let scrambled = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut k = scrambled.to_be_bytes().to_vec();
    let tail = i.to_le_bytes();
    let mut j = 0;
    while k.len() < size {
        k.push(tail[j % 8]);
        j += 1;
    }
    k.truncate(size.max(1));
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_and_sized() {
        let keys: std::collections::BTreeSet<Vec<u8>> = (0..10_000).map(|i| key(i, 16)).collect();
        assert_eq!(keys.len(), 10_000);
        assert!(keys.iter().all(|k| k.len() == 16));
        // Spread: every quarter of the first-byte space is used.
        let quarters: std::collections::BTreeSet<u8> = keys.iter().map(|k| k[0] >> 6).collect();
        assert_eq!(quarters.len(), 4);
    }

    #[test]
    fn zipf_is_skewed_and_in_range() {
        let z = Zipf::new(1000, 0.99);
        let mut rng = Rng::new(1);
        let mut hits = vec![0u32; 1000];
        for _ in 0..100_000 {
            hits[z.sample(&mut rng) as usize] += 1;
        }
        assert!(hits[0] > hits[500] * 20, "index 0 should dominate: {} vs {}", hits[0], hits[500]);
        let uniform: u64 = (0..100_000).map(|_| Distribution::Uniform.pick(&mut rng, 1000)).max().unwrap();
        assert!(uniform < 1000);
    }
}
