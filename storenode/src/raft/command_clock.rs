//! The log-time reading a write carries, as it is kept in the raft log.
//!
//! Two layouts share one place in a [`super::KvCommand`]:
//! - a [`ClockStamp`] (a leadership's monotonic reading, see
//!   [`super::log_clock`]), written by this build;
//! - the proposing leader's wall clock in ms, written by builds before
//!   stamps. A store upgraded in place still holds such entries in its log
//!   (and its peers may send them), and must apply them as those builds
//!   did: log time becomes the largest reading seen. Applying them by any
//!   other rule would let an upgraded replica and one that applied the
//!   same entries before the upgrade disagree on which sessions expired.
//!
//! On disk (postcard, which writes no field names or lengths) the older
//! layout is one varint: the wall clock, never 0 on a machine whose clock
//! is past 1970. The newer one is a 0 followed by the stamp's four
//! varints, so the first varint tells them apart.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::LogId;
use super::log_clock::ClockStamp;

/// Marks the stamped layout: no wall clock reads 0.
const STAMPED: u64 = 0;
/// The stamped layout's fields: the marker and the stamp's four.
const STAMPED_FIELDS: usize = 5;

/// How a write moves log time when it applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandClock {
    /// A leadership's monotonic reading (this build).
    Stamp(ClockStamp),
    /// A wall-clock reading in ms since the epoch, from an entry written
    /// by a build before stamps.
    LegacyWallMs(u64),
}

impl Default for CommandClock {
    /// A stamp that names no leadership, so it moves nothing.
    fn default() -> Self {
        CommandClock::Stamp(ClockStamp::default())
    }
}

impl CommandClock {
    /// Log time after an entry at `log_id` carrying this reading applies at
    /// log time `log_ms`. Deterministic: every replica computes the same
    /// from the same log.
    pub fn advance(&self, log_ms: u64, log_id: &LogId) -> u64 {
        match self {
            CommandClock::Stamp(stamp) => stamp.advance(log_ms, log_id),
            // The rule the entry was written under.
            CommandClock::LegacyWallMs(ms) => log_ms.max(*ms),
        }
    }
}

impl Serialize for CommandClock {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            CommandClock::Stamp(st) => {
                let mut t = s.serialize_tuple(STAMPED_FIELDS)?;
                t.serialize_element(&STAMPED)?;
                t.serialize_element(&st.term)?;
                t.serialize_element(&st.leader)?;
                t.serialize_element(&st.base_ms)?;
                t.serialize_element(&st.elapsed_ms)?;
                t.end()
            }
            CommandClock::LegacyWallMs(STAMPED) => {
                Err(serde::ser::Error::custom("a legacy wall-clock reading of 0 reads back as a stamp"))
            }
            CommandClock::LegacyWallMs(ms) => {
                let mut t = s.serialize_tuple(1)?;
                t.serialize_element(ms)?;
                t.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for CommandClock {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Postcard hands out as many elements as asked for, up to the
        // length given here, and checks no count: the first decides how
        // many more to read.
        d.deserialize_tuple(STAMPED_FIELDS, ClockVisitor)
    }
}

struct ClockVisitor;

impl<'de> Visitor<'de> for ClockVisitor {
    type Value = CommandClock;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a wall-clock reading, or 0 and a clock stamp")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CommandClock, A::Error> {
        let mut next = |i: usize| -> Result<u64, A::Error> {
            seq.next_element::<u64>()?.ok_or_else(|| de::Error::invalid_length(i, &"a clock stamp's five fields"))
        };
        let first = next(0)?;
        if first != STAMPED {
            return Ok(CommandClock::LegacyWallMs(first));
        }
        Ok(CommandClock::Stamp(ClockStamp {
            term: next(1)?,
            leader: next(2)?,
            base_ms: next(3)?,
            elapsed_ms: next(4)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::{ClockStamp, CommandClock};
    use crate::raft::{KvCommand, KvOp, RequestId, decode, encode};

    /// A write as builds before stamps laid it out.
    #[derive(Serialize, Deserialize)]
    struct LegacyCommand {
        epoch_version: u64,
        op: KvOp,
        request: Option<RequestId>,
        proposed_at_ms: u64,
    }

    #[test]
    fn a_write_from_before_stamps_reads_as_its_wall_clock() {
        let old = LegacyCommand {
            epoch_version: 3,
            op: KvOp::Put { key: b"k".to_vec(), value: b"v".to_vec() },
            request: Some(RequestId { client_id: 7, seq: 2, acked_below: 1 }),
            proposed_at_ms: 1_765_000_000_000,
        };
        let cmd: KvCommand = decode(&encode(&old).unwrap()).unwrap();
        assert_eq!(cmd.epoch_version, 3);
        assert_eq!(cmd.op, old.op);
        assert_eq!(cmd.request, old.request);
        assert_eq!(cmd.clock, CommandClock::LegacyWallMs(1_765_000_000_000));
        // Written back the same way, byte for byte.
        assert_eq!(encode(&cmd).unwrap(), encode(&old).unwrap());
    }

    #[test]
    fn a_stamped_write_round_trips() {
        let cmd = KvCommand {
            epoch_version: 9,
            op: KvOp::Delete { key: b"k".to_vec() },
            request: None,
            clock: CommandClock::Stamp(ClockStamp { term: 6, leader: 4, base_ms: 12_345, elapsed_ms: 678 }),
        };
        assert_eq!(decode::<KvCommand>(&encode(&cmd).unwrap()).unwrap(), cmd);
        // A stamp with every field 0 is still a stamp.
        let blank = KvCommand { clock: CommandClock::default(), ..cmd };
        assert_eq!(decode::<KvCommand>(&encode(&blank).unwrap()).unwrap(), blank);
    }

    #[test]
    fn a_legacy_reading_of_zero_is_refused_rather_than_misread() {
        assert!(encode(&CommandClock::LegacyWallMs(0)).is_err());
    }
}
