//! A duration written the way operators write them: `30m`, `90s`, `1h30m`,
//! `500ms`, `2d`, or a plain number of seconds.
//!
//! Units: `ms`, `s`, `m`, `h`, `d`; parts add up (`1h30m`). Case and spaces
//! between parts do not matter. This is TiKV's and PD's notation for
//! settings such as `max-store-down-time: 30m`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration that parses and prints with unit suffixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DurationText(pub Duration);

/// Units in milliseconds; `ms` before `m` so `500ms` is not read as minutes.
const UNITS: [(&str, u64); 5] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)];

impl DurationText {
    pub const fn minutes(n: u64) -> DurationText {
        DurationText(Duration::from_secs(n * 60))
    }

    pub fn as_millis(self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX)
    }
}

impl FromStr for DurationText {
    type Err = String;

    /// # Errors
    ///
    /// A message naming the text when it is not a number of seconds or a
    /// sequence of numbers with known units, or overflows.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let bad = || format!("{text:?} is not a duration (seconds, or with units: 500ms, 90s, 30m, 1h30m, 2d)");
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            let secs: u64 = text.parse().map_err(|_| bad())?;
            return Ok(DurationText(Duration::from_secs(secs)));
        }
        let lower: String = text.to_ascii_lowercase().split_whitespace().collect();
        let mut rest = lower.as_str();
        let mut total_ms: u64 = 0;
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let (unit, scale) = UNITS.iter().find(|(u, _)| rest.starts_with(u)).ok_or_else(bad)?;
            rest = &rest[unit.len()..];
            total_ms = n
                .checked_mul(*scale)
                .and_then(|ms| total_ms.checked_add(ms))
                .ok_or_else(|| format!("{text:?} is too long a duration"))?;
        }
        Ok(DurationText(Duration::from_millis(total_ms)))
    }
}

impl fmt::Display for DurationText {
    /// The largest unit that divides the duration exactly: `30m`, `90s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.as_millis();
        for (unit, scale) in UNITS.iter().rev() {
            if ms != 0 && ms.is_multiple_of(*scale) {
                return write!(f, "{}{unit}", ms / scale);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl Serialize for DurationText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DurationText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration: a number of seconds, or a string such as \"30m\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DurationText, E> {
                Ok(DurationText(Duration::from_secs(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DurationText, E> {
                u64::try_from(v)
                    .map(|s| DurationText(Duration::from_secs(s)))
                    .map_err(|_| E::custom(format!("duration {v} is negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationText, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> Result<u64, String> {
        text.parse::<DurationText>().map(DurationText::as_millis)
    }

    #[test]
    fn parses_units_sums_and_plain_seconds() {
        let cases = [
            ("0", 0),
            ("90", 90_000),
            ("500ms", 500),
            ("90s", 90_000),
            ("30m", 1_800_000),
            ("30M", 1_800_000),
            ("1h30m", 5_400_000),
            ("1h 30m", 5_400_000),
            ("2d", 172_800_000),
            ("1m500ms", 60_500),
        ];
        for (text, want) in cases {
            assert_eq!(ms(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refuses_garbage_and_overflow() {
        for text in ["", "m", "30x", "-5s", "1.5h", "h30", "30m5", "99999999999999999999d"] {
            assert!(text.parse::<DurationText>().is_err(), "{text}");
        }
    }

    #[test]
    fn prints_the_largest_exact_unit_and_round_trips() {
        for (ms, text) in [(1_800_000, "30m"), (90_000, "90s"), (5_400_000, "90m"), (1_500, "1500ms"), (0, "0ms")] {
            let d = DurationText(Duration::from_millis(ms));
            assert_eq!(d.to_string(), text);
            assert_eq!(text.parse::<DurationText>(), Ok(d));
        }
        let yaml: DurationText = serde_yaml::from_str("45").unwrap();
        assert_eq!(yaml.as_millis(), 45_000);
        let yaml: DurationText = serde_yaml::from_str("\"10m\"").unwrap();
        assert_eq!(yaml, DurationText::minutes(10));
    }
}
