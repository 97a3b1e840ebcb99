//! What opening the raft log does with bytes after its last whole record
//! that a crash may have torn: RocksDB's and raft-engine's `recovery-mode`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Damage (bytes that were durable and are not whole) refuses the open in
/// either mode; the modes differ only on a torn tail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecoveryMode {
    /// Drop a tail that may have been torn by a crash (written after the
    /// last sync that any surviving record saw complete), logged and
    /// counted. A crash mid-write is the common case, and what it tore was
    /// never acknowledged as durable.
    #[default]
    TolerateTailCorruption,
    /// Refuse any bytes after the last whole record, torn or not: for an
    /// operator who would rather look (`storenode check-log`) than have the
    /// store drop anything on its own.
    AbsoluteConsistency,
}

impl RecoveryMode {
    pub const NAMES: [&'static str; 2] = ["tolerate-tail-corruption", "absolute-consistency"];

    pub fn name(self) -> &'static str {
        match self {
            RecoveryMode::TolerateTailCorruption => Self::NAMES[0],
            RecoveryMode::AbsoluteConsistency => Self::NAMES[1],
        }
    }
}

impl fmt::Display for RecoveryMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RecoveryMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "tolerate-tail-corruption" => Ok(RecoveryMode::TolerateTailCorruption),
            "absolute-consistency" => Ok(RecoveryMode::AbsoluteConsistency),
            other => Err(format!("{other:?}: expected one of {}", Self::NAMES.join(", "))),
        }
    }
}
