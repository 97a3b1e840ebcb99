//! The share of each operation in a run, in whole percent, and the seeded
//! draw that picks the next one.

use super::op::Op;
use super::rng::Rng;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    /// Operations with a share above 0, in the order given.
    shares: Vec<(Op, u32)>,
}

impl Mix {
    /// # Errors
    ///
    /// Shares that do not add up to 100, or an operation named twice.
    pub fn new(shares: &[(Op, u32)]) -> Result<Mix, String> {
        let total: u32 = shares.iter().map(|(_, p)| p).sum();
        if total != 100 {
            return Err(format!("operation shares add up to {total} %, not 100 %"));
        }
        for (i, (op, _)) in shares.iter().enumerate() {
            if shares[..i].iter().any(|(o, _)| o == op) {
                return Err(format!("operation {} named twice in the mix", op.name()));
            }
        }
        Ok(Mix { shares: shares.iter().copied().filter(|(_, p)| *p > 0).collect() })
    }

    /// The next operation: one draw of the generator, whatever the mix.
    pub fn choose(&self, rng: &mut Rng) -> Op {
        let mut roll = rng.below(100) as u32;
        for &(op, pct) in &self.shares {
            if roll < pct {
                return op;
            }
            roll -= pct;
        }
        unreachable!("shares add up to 100")
    }

    /// `op`'s share in percent (0 when it is not in the mix).
    pub fn share(&self, op: Op) -> u32 {
        self.shares.iter().find(|(o, _)| *o == op).map_or(0, |(_, p)| *p)
    }

    /// Whether the run reads records that must exist first.
    pub fn reads(&self) -> bool {
        [Op::Get, Op::Scan, Op::ReadModifyWrite].iter().any(|&op| self.share(op) > 0)
    }

    pub fn describe(&self) -> String {
        self.shares.iter().map(|(op, p)| format!("{p}% {}", op.name())).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_shares_that_are_not_a_whole() {
        assert!(Mix::new(&[(Op::Get, 50), (Op::Put, 40)]).unwrap_err().contains("90 %"));
        assert!(Mix::new(&[(Op::Get, 50), (Op::Get, 50)]).unwrap_err().contains("twice"));
        assert!(Mix::new(&[]).is_err());
    }

    #[test]
    fn single_operation_and_zero_shares() {
        let m = Mix::new(&[(Op::Put, 0), (Op::Get, 100)]).unwrap();
        let mut rng = Rng::new(1);
        assert!((0..1000).all(|_| m.choose(&mut rng) == Op::Get));
        assert_eq!(m.share(Op::Put), 0);
        assert_eq!(m.describe(), "100% get");
        assert!(m.reads());
        assert!(!Mix::new(&[(Op::Put, 95), (Op::Insert, 5)]).unwrap().reads());
    }
}
