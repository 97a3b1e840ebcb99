//! YCSB's `latest` distribution: the most recently inserted records are the
//! most popular. A zipfian rank r over the records that exist picks the
//! record r places before the newest, and the zipfian grows with the
//! inserts, so the hot spot follows them.

use super::rng::Rng;
use super::zipfian::Zipfian;

#[derive(Debug, Clone)]
pub struct Latest {
    ranks: Zipfian,
}

impl Latest {
    /// `records`: how many exist when the run starts (at least 1).
    ///
    /// # Panics
    ///
    /// As [`Zipfian::new`].
    pub fn new(records: u64, theta: f64) -> Self {
        Latest { ranks: Zipfian::new(records, theta) }
    }

    /// A record number in [0, records), the newest (records - 1) most
    /// likely. `records` only grows over a run; a smaller value than seen
    /// before still gets a record below it.
    pub fn sample(&mut self, rng: &mut Rng, records: u64) -> u64 {
        let records = records.max(1);
        self.ranks.grow(records);
        let back = self.ranks.sample(rng) % records;
        records - 1 - back
    }
}

#[cfg(test)]
mod tests {
    use super::super::zipfian::YCSB_THETA;
    use super::*;

    #[test]
    fn newest_records_are_the_most_drawn() {
        let mut l = Latest::new(10_000, YCSB_THETA);
        let mut rng = Rng::new(4);
        let n = 100_000;
        let d: Vec<u64> = (0..n).map(|_| l.sample(&mut rng, 10_000)).collect();
        assert!(d.iter().all(|&i| i < 10_000));
        let newest = d.iter().filter(|&&i| i == 9_999).count();
        let newest_1pct = d.iter().filter(|&&i| i >= 9_900).count();
        let oldest_half = d.iter().filter(|&&i| i < 5_000).count();
        assert!(newest > n / 20, "newest record drawn {newest} times");
        assert!(newest_1pct > n / 2, "newest 1% drawn {newest_1pct} times");
        assert!(oldest_half < n / 10, "oldest half drawn {oldest_half} times");
    }

    #[test]
    fn follows_inserts() {
        let mut l = Latest::new(1_000, YCSB_THETA);
        let mut rng = Rng::new(8);
        // After 500 inserts the hot spot is at the new records, which did
        // not exist at the start.
        let d: Vec<u64> = (0..20_000).map(|_| l.sample(&mut rng, 1_500)).collect();
        assert!(d.iter().all(|&i| i < 1_500));
        let new = d.iter().filter(|&&i| i >= 1_000).count();
        assert!(new > 15_000, "records inserted during the run drawn {new} of 20000 times");
        let mut a = Latest::new(1_000, YCSB_THETA);
        let mut b = a.clone();
        let (mut ra, mut rb) = (Rng::new(1), Rng::new(1));
        for n in 1_000..1_100 {
            assert_eq!(a.sample(&mut ra, n), b.sample(&mut rb, n));
        }
    }
}
