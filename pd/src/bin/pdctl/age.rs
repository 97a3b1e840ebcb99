//! Unix-millisecond times as ages for the human-readable tables: "3s ago",
//! "5m ago", "2h ago", "4d ago", and "never" for 0 (PD's "not yet").
//! `--output json` keeps the raw milliseconds.
//!
//! PD stamps times with its own clock, so a time slightly ahead of pdctl's
//! clock is normal (skew, the round trip): under a second ahead reads
//! "0s ago"; further ahead reads "in 3s", which points at the clocks.

use std::time::{SystemTime, UNIX_EPOCH};

const SECOND: u64 = 1000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// Now, in Unix milliseconds, by this host's clock.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// How long before `now_ms` the Unix-millisecond time `then_ms` was, in
/// its largest whole unit (seconds, minutes, hours, days), rounded down.
pub fn ago(then_ms: u64, now_ms: u64) -> String {
    if then_ms == 0 {
        return "never".into();
    }
    if then_ms > now_ms && then_ms - now_ms >= SECOND {
        return format!("in {}", span(then_ms - now_ms));
    }
    format!("{} ago", span(now_ms.saturating_sub(then_ms)))
}

/// A duration in milliseconds in its largest whole unit: `3s`, `5m`, `2h`,
/// `4d`.
fn span(ms: u64) -> String {
    match ms {
        ms if ms < MINUTE => format!("{}s", ms / SECOND),
        ms if ms < HOUR => format!("{}m", ms / MINUTE),
        ms if ms < DAY => format!("{}h", ms / HOUR),
        ms => format!("{}d", ms / DAY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_764_662_400_000;

    #[test]
    fn zero_is_never() {
        assert_eq!(ago(0, NOW), "never");
        assert_eq!(ago(0, 0), "never");
    }

    #[test]
    fn each_unit_starts_at_its_boundary() {
        assert_eq!(ago(NOW, NOW), "0s ago");
        assert_eq!(ago(NOW - 999, NOW), "0s ago");
        assert_eq!(ago(NOW - SECOND, NOW), "1s ago");
        assert_eq!(ago(NOW - 3 * SECOND - 500, NOW), "3s ago");
        assert_eq!(ago(NOW - (MINUTE - 1), NOW), "59s ago");
        assert_eq!(ago(NOW - MINUTE, NOW), "1m ago");
        assert_eq!(ago(NOW - 5 * MINUTE - 59 * SECOND, NOW), "5m ago");
        assert_eq!(ago(NOW - (HOUR - 1), NOW), "59m ago");
        assert_eq!(ago(NOW - HOUR, NOW), "1h ago");
        assert_eq!(ago(NOW - 2 * HOUR - 59 * MINUTE, NOW), "2h ago");
        assert_eq!(ago(NOW - (DAY - 1), NOW), "23h ago");
        assert_eq!(ago(NOW - DAY, NOW), "1d ago");
        assert_eq!(ago(NOW - 400 * DAY, NOW), "400d ago");
    }

    #[test]
    fn the_epoch_itself_is_a_time() {
        assert_eq!(ago(1, 1 + 2 * SECOND), "2s ago");
    }

    #[test]
    fn future_times_read_as_skew() {
        assert_eq!(ago(NOW + 1, NOW), "0s ago");
        assert_eq!(ago(NOW + 999, NOW), "0s ago");
        assert_eq!(ago(NOW + SECOND, NOW), "in 1s");
        assert_eq!(ago(NOW + 3 * MINUTE, NOW), "in 3m");
        assert_eq!(ago(NOW + 2 * HOUR, NOW), "in 2h");
    }
}
