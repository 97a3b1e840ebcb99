//! The error a replay refuses a damaged log with: which segment file, at
//! which byte, and what is wrong there. It travels inside an
//! `io::Error` of kind `InvalidData`, like every other failure to open the
//! log, and [`LogDamage::of`] finds it again for callers that count or
//! report it.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a log open was refused: damage (bytes that were durable are not
/// whole), or a torn tail that the recovery mode does not drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Damage,
    TornTail,
}

impl Refusal {
    /// Its metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Damage => "damage",
            Refusal::TornTail => "torn_tail",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDamage {
    pub file: PathBuf,
    pub offset: u64,
    pub what: String,
    pub refusal: Refusal,
}

impl LogDamage {
    /// The damage an error of a log open carries, if it is one.
    pub fn of(e: &io::Error) -> Option<&LogDamage> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<LogDamage>())
    }
}

impl fmt::Display for LogDamage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "raft log segment {} at byte {}: {}", self.file.display(), self.offset, self.what)
    }
}

impl std::error::Error for LogDamage {}

impl From<LogDamage> for io::Error {
    fn from(d: LogDamage) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, d)
    }
}
