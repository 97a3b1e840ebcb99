//! Picks the record an operation reads, updates or starts a scan at, by the
//! run's request distribution. Each client owns one (`latest` keeps state
//! that grows with the inserts).

use super::distribution::Distribution;
use super::latest::Latest;
use super::rng::Rng;
use super::scrambled::ScrambledZipfian;

/// A zipfian draw at or above the records that exist is drawn again (the
/// zipfian covers records the run expects to insert); after this many
/// misses in a row the draw is folded onto the existing records instead.
const ZIPFIAN_REDRAWS: u32 = 32;

#[derive(Debug, Clone)]
pub enum KeyChooser {
    Uniform,
    Zipfian(ScrambledZipfian),
    Latest(Latest),
}

impl KeyChooser {
    /// `records`: how many exist at the start; `zipfian_items`: how many
    /// the zipfian spreads its popularity over (the records, plus those the
    /// run expects to insert, as YCSB does), at least `records`.
    ///
    /// # Panics
    ///
    /// If `records` is 0 for zipfian or latest, or `theta` is not in
    /// (0, 1); flags are checked before this is built.
    pub fn new(distribution: Distribution, records: u64, zipfian_items: u64, theta: f64) -> Self {
        match distribution {
            Distribution::Uniform => KeyChooser::Uniform,
            Distribution::Zipfian => KeyChooser::Zipfian(ScrambledZipfian::new(zipfian_items.max(records), theta)),
            Distribution::Latest => KeyChooser::Latest(Latest::new(records, theta)),
        }
    }

    /// A record in [0, existing): the records inserted so far.
    pub fn next(&mut self, rng: &mut Rng, existing: u64) -> u64 {
        let existing = existing.max(1);
        match self {
            KeyChooser::Uniform => rng.below(existing),
            KeyChooser::Zipfian(z) => {
                let mut i = z.sample(rng);
                for _ in 0..ZIPFIAN_REDRAWS {
                    if i < existing {
                        return i;
                    }
                    i = z.sample(rng);
                }
                i % existing
            }
            KeyChooser::Latest(l) => l.sample(rng, existing),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::zipfian::YCSB_THETA;
    use super::*;

    #[test]
    fn every_distribution_stays_below_the_existing_records() {
        for d in [Distribution::Uniform, Distribution::Zipfian, Distribution::Latest] {
            // The zipfian covers 2000 records but only 1000 exist so far.
            let mut c = KeyChooser::new(d, 1000, 2000, YCSB_THETA);
            let mut rng = Rng::new(12);
            for _ in 0..20_000 {
                assert!(c.next(&mut rng, 1000) < 1000, "{d}");
            }
            // As records are inserted, the new ones can be chosen.
            let newer = (0..20_000).filter(|_| c.next(&mut rng, 2000) >= 1000).count();
            assert!(newer > 0, "{d} never picks an inserted record");
        }
    }

    #[test]
    fn uniform_is_flat() {
        let mut c = KeyChooser::new(Distribution::Uniform, 100, 100, YCSB_THETA);
        let mut rng = Rng::new(13);
        let mut hits = [0u32; 100];
        for _ in 0..100_000 {
            hits[c.next(&mut rng, 100) as usize] += 1;
        }
        assert!(hits.iter().all(|&h| (800..1200).contains(&h)), "{hits:?}");
    }
}
