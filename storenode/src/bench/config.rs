//! What one run does, built from the command line and checked there.

use std::time::Duration;

use super::chooser::KeyChooser;
use super::keygen::key;
use super::mix::Mix;
use super::scan_length::ScanLength;

#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub mix: Mix,
    pub clients: usize,
    pub key_size: usize,
    pub value_size: usize,
    /// Records that exist before the run (numbers 0..records); inserts
    /// add more after them.
    pub records: u64,
    /// Put in front of every key, to aim the load at one region.
    pub key_prefix: Vec<u8>,
    /// Each client gets its own copy.
    pub chooser: KeyChooser,
    /// The run ends after this long, or after `operations`, whichever
    /// comes first; at least one of the two is set.
    pub duration: Option<Duration>,
    /// Operations over all clients (successful or not).
    pub operations: Option<u64>,
    pub scan_length: ScanLength,
    pub seed: u64,
    /// Print a progress line every second.
    pub progress: bool,
}

impl BenchConfig {
    /// Record `i`'s key: the prefix, then `key_size` bytes spread evenly.
    pub fn key(&self, i: u64) -> Vec<u8> {
        let mut k = self.key_prefix.clone();
        k.extend_from_slice(&key(i, self.key_size));
        k
    }

    /// Client `c`'s generator seed: a run with the same seed and client
    /// count makes the same draws in every client.
    pub fn client_seed(&self, c: usize) -> u64 {
        self.seed.wrapping_add(c as u64 * 0x1000_0001)
    }
}
