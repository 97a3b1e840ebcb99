//! How many records a scan asks for.

use super::rng::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanLength {
    /// Always this many (`--workload scan`, `--scan-limit`).
    Fixed(u32),
    /// Uniform in 1..=max (YCSB's workload E, `--max-scan-length`).
    Uniform { max: u32 },
}

impl ScanLength {
    pub fn draw(self, rng: &mut Rng) -> u32 {
        match self {
            ScanLength::Fixed(n) => n,
            ScanLength::Uniform { max } => 1 + rng.below(u64::from(max.max(1))) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_covers_one_to_max() {
        let mut rng = Rng::new(2);
        let mut seen = [0u32; 101];
        for _ in 0..100_000 {
            seen[ScanLength::Uniform { max: 100 }.draw(&mut rng) as usize] += 1;
        }
        assert_eq!(seen[0], 0);
        // Each of 1..=100 about 1000 times.
        assert!(seen[1..].iter().all(|&c| (850..1150).contains(&c)), "{seen:?}");
        assert_eq!(ScanLength::Fixed(10).draw(&mut rng), 10);
    }
}
