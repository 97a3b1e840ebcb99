//! Zipfian ranks: rank 0 is the most popular, rank r drawn with probability
//! proportional to 1 / (r + 1)^theta. The generator is Gray et al.'s
//! ("Quickly generating billion-record synthetic databases", SIGMOD 1994),
//! the one YCSB uses: constant time per draw once zeta(n) is known, and
//! zeta can be extended when the item count grows (for `latest`).

use super::rng::Rng;

/// YCSB's skew for its zipfian and latest distributions.
pub const YCSB_THETA: f64 = 0.99;

/// Up to this many items zeta is summed term by term; above, the first
/// terms are summed and the tail comes from the Euler-Maclaurin formula
/// (relative error far below 1e-9 for the item counts used here).
const EXACT_ZETA_TERMS: u64 = 1_000_000;

/// Ranks in [0, items) with skew `theta`.
#[derive(Debug, Clone)]
pub struct Zipfian {
    items: u64,
    theta: f64,
    alpha: f64,
    zeta2: f64,
    zetan: f64,
    eta: f64,
}

impl Zipfian {
    /// # Panics
    ///
    /// If `items` is 0 or `theta` is not in (0, 1) (flags are checked
    /// before this is built).
    pub fn new(items: u64, theta: f64) -> Self {
        assert!(items > 0, "a zipfian distribution needs at least one item");
        assert!(theta > 0.0 && theta < 1.0, "zipfian theta must be in (0, 1)");
        let zeta2 = zeta_sum(0, 2, theta);
        let mut z = Zipfian { items, theta, alpha: 1.0 / (1.0 - theta), zeta2, zetan: zeta(items, theta), eta: 0.0 };
        z.eta = z.eta_for();
        z
    }

    pub fn items(&self) -> u64 {
        self.items
    }

    pub fn theta(&self) -> f64 {
        self.theta
    }

    /// Raises the item count to `items` (never lowers it), extending zeta
    /// by the new terms only.
    pub fn grow(&mut self, items: u64) {
        if items <= self.items {
            return;
        }
        self.zetan += zeta_sum(self.items, items, self.theta);
        self.items = items;
        self.eta = self.eta_for();
    }

    fn eta_for(&self) -> f64 {
        (1.0 - (2.0 / self.items as f64).powf(1.0 - self.theta)) / (1.0 - self.zeta2 / self.zetan)
    }

    /// A rank in [0, items).
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        let u = rng.next_f64();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1.min(self.items - 1);
        }
        let v = (self.items as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        v.min(self.items - 1)
    }
}

/// zeta(n, theta) = sum over i in 1..=n of 1 / i^theta.
pub fn zeta(n: u64, theta: f64) -> f64 {
    if n <= EXACT_ZETA_TERMS {
        return zeta_sum(0, n, theta);
    }
    // Sum the first m - 1 terms, then Euler-Maclaurin for i in m..=n:
    // integral + (f(m) + f(n)) / 2 + (f'(n) - f'(m)) / 12.
    let m = EXACT_ZETA_TERMS;
    let (mf, nf) = (m as f64, n as f64);
    let f = |x: f64| x.powf(-theta);
    let df = |x: f64| -theta * x.powf(-theta - 1.0);
    let integral = (nf.powf(1.0 - theta) - mf.powf(1.0 - theta)) / (1.0 - theta);
    zeta_sum(0, m - 1, theta) + integral + (f(mf) + f(nf)) / 2.0 + (df(nf) - df(mf)) / 12.0
}

/// The terms i in (from, to]: zeta(to) - zeta(from).
fn zeta_sum(from: u64, to: u64, theta: f64) -> f64 {
    (from + 1..=to).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(z: &Zipfian, seed: u64, n: usize) -> Vec<u64> {
        let mut rng = Rng::new(seed);
        (0..n).map(|_| z.sample(&mut rng)).collect()
    }

    #[test]
    fn skewed_towards_low_ranks_and_in_range() {
        let z = Zipfian::new(10_000, YCSB_THETA);
        let d = draws(&z, 1, 200_000);
        assert!(d.iter().all(|&r| r < 10_000));
        let mut hits = vec![0u32; 10_000];
        for &r in &d {
            hits[r as usize] += 1;
        }
        // Rank 0 has probability 1 / zeta(10^4, 0.99), about 10 %.
        let p0 = f64::from(hits[0]) / d.len() as f64;
        let expect = 1.0 / z.zetan;
        assert!((p0 - expect).abs() < 0.01, "rank 0 drawn {p0:.4}, expected {expect:.4}");
        // The top 1 % of ranks take over half the draws (uniform: 1 %).
        let top: u32 = hits[..100].iter().sum();
        assert!(f64::from(top) / d.len() as f64 > 0.5, "top 1% got {top} of {}", d.len());
        // And popularity falls with rank.
        assert!(hits[0] > hits[1] && hits[1] > hits[10] && hits[10] > hits[1000]);
    }

    #[test]
    fn one_and_two_items() {
        assert!(draws(&Zipfian::new(1, YCSB_THETA), 2, 1000).iter().all(|&r| r == 0));
        let d = draws(&Zipfian::new(2, YCSB_THETA), 2, 10_000);
        let ones = d.iter().filter(|&&r| r == 1).count();
        assert!(d.iter().all(|&r| r < 2));
        // P(1) = 2^-0.99 / (1 + 2^-0.99), about 0.335.
        assert!((3_200..3_500).contains(&ones), "{ones} ones");
    }

    #[test]
    fn zeta_estimate_matches_the_exact_sum_and_ycsbs_constant() {
        // Just above the exact-sum limit, the estimate against the sum.
        let n = EXACT_ZETA_TERMS + 50_000;
        let exact = zeta_sum(0, n, YCSB_THETA);
        assert!((zeta(n, YCSB_THETA) - exact).abs() / exact < 1e-12);
        // YCSB precomputes zeta(10^10, 0.99) = 26.46902820178302.
        assert!((zeta(10_000_000_000, YCSB_THETA) - 26.469_028_201_783_02).abs() < 1e-9);
    }

    #[test]
    fn growing_equals_building_at_the_larger_size() {
        let mut g = Zipfian::new(1000, YCSB_THETA);
        g.grow(5000);
        g.grow(4000); // never shrinks
        let fresh = Zipfian::new(5000, YCSB_THETA);
        assert_eq!(g.items(), 5000);
        assert!((g.zetan - fresh.zetan).abs() < 1e-9);
        assert_eq!(draws(&g, 9, 1000), draws(&fresh, 9, 1000));
    }
}
