//! YCSB's core workloads A-F, as its `workloads/workload[a-f]` files define
//! them: the operation mix and the default request distribution. Reads
//! read the whole record; an update writes the whole record (YCSB's
//! default rewrites one field of ten: here a record is one value); a
//! read-modify-write reads a record and writes it back; an insert adds a
//! record numbered after every other; a scan reads 1..=100 records
//! (uniform) in key order from a chosen one.

use super::distribution::Distribution;
use super::mix::Mix;
use super::op::Op;

/// YCSB's default `maxscanlength`.
pub const MAX_SCAN_LENGTH: u32 = 100;
/// YCSB's default record: 10 fields of 100 bytes.
pub const VALUE_SIZE: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ycsb {
    A,
    B,
    C,
    D,
    E,
    F,
}

impl Ycsb {
    pub const ALL: [Ycsb; 6] = [Ycsb::A, Ycsb::B, Ycsb::C, Ycsb::D, Ycsb::E, Ycsb::F];

    /// As on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Ycsb::A => "ycsb-a",
            Ycsb::B => "ycsb-b",
            Ycsb::C => "ycsb-c",
            Ycsb::D => "ycsb-d",
            Ycsb::E => "ycsb-e",
            Ycsb::F => "ycsb-f",
        }
    }

    /// What YCSB calls it.
    pub fn title(self) -> &'static str {
        match self {
            Ycsb::A => "update heavy",
            Ycsb::B => "read mostly",
            Ycsb::C => "read only",
            Ycsb::D => "read latest",
            Ycsb::E => "short ranges",
            Ycsb::F => "read-modify-write",
        }
    }

    /// Percent of each operation.
    pub fn shares(self) -> &'static [(Op, u32)] {
        match self {
            Ycsb::A => &[(Op::Get, 50), (Op::Put, 50)],
            Ycsb::B => &[(Op::Get, 95), (Op::Put, 5)],
            Ycsb::C => &[(Op::Get, 100)],
            Ycsb::D => &[(Op::Get, 95), (Op::Insert, 5)],
            Ycsb::E => &[(Op::Scan, 95), (Op::Insert, 5)],
            Ycsb::F => &[(Op::Get, 50), (Op::ReadModifyWrite, 50)],
        }
    }

    pub fn mix(self) -> Mix {
        Mix::new(self.shares()).expect("YCSB's shares add up to 100")
    }

    /// YCSB's `requestdistribution` for the workload.
    pub fn distribution(self) -> Distribution {
        match self {
            Ycsb::D => Distribution::Latest,
            _ => Distribution::Zipfian,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::rng::Rng;
    use super::*;

    #[test]
    fn drawn_mix_matches_each_workloads_shares() {
        let n = 200_000;
        for w in Ycsb::ALL {
            let mix = w.mix();
            let mut rng = Rng::new(42);
            let mut counts = [0u32; Op::ALL.len()];
            for _ in 0..n {
                counts[mix.choose(&mut rng) as usize] += 1;
            }
            for op in Op::ALL {
                let want = f64::from(mix.share(op)) / 100.0;
                let got = f64::from(counts[op as usize]) / f64::from(n);
                // 200k draws: a standard deviation is at most 0.11 %.
                assert!((got - want).abs() < 0.005, "{}: {} drawn {got:.4}, share {want}", w.name(), op.name());
            }
        }
    }

    #[test]
    fn workloads_as_ycsb_defines_them() {
        let share = |w: Ycsb, op| w.mix().share(op);
        assert_eq!((share(Ycsb::A, Op::Get), share(Ycsb::A, Op::Put)), (50, 50));
        assert_eq!((share(Ycsb::B, Op::Get), share(Ycsb::B, Op::Put)), (95, 5));
        assert_eq!(share(Ycsb::C, Op::Get), 100);
        assert_eq!((share(Ycsb::D, Op::Get), share(Ycsb::D, Op::Insert)), (95, 5));
        assert_eq!((share(Ycsb::E, Op::Scan), share(Ycsb::E, Op::Insert)), (95, 5));
        assert_eq!((share(Ycsb::F, Op::Get), share(Ycsb::F, Op::ReadModifyWrite)), (50, 50));
        for w in Ycsb::ALL {
            let want = if w == Ycsb::D { Distribution::Latest } else { Distribution::Zipfian };
            assert_eq!(w.distribution(), want, "{}", w.name());
            assert!(w.mix().reads());
        }
    }
}
