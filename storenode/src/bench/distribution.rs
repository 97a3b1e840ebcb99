//! The request distributions a run can pick keys by, as named on the
//! command line.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    /// Every existing record equally likely.
    Uniform,
    /// YCSB's scrambled zipfian: a few records take most requests, spread
    /// over the key space.
    Zipfian,
    /// YCSB's latest: the most recently inserted records take most.
    Latest,
}

impl Distribution {
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Uniform => "uniform",
            Distribution::Zipfian => "zipfian",
            Distribution::Latest => "latest",
        }
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
