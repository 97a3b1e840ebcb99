//! A byte count written the way operators write sizes: `96MiB`, `512KiB`,
//! `1GiB`, or a plain number of bytes.
//!
//! Units are binary (1 KiB = 1024 B). Like TiKV's config, `KB`, `MB`, `GB`
//! and `TB` mean the same binary units, so a value copied from a TiKV config
//! reads as intended. Case and a space before the unit do not matter.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A size in bytes; parses and prints with a unit suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;
pub const TIB: u64 = 1 << 40;

/// Suffixes, longest first so `KiB` is not read as `B`.
const UNITS: [(&str, u64); 9] = [
    ("kib", KIB),
    ("mib", MIB),
    ("gib", GIB),
    ("tib", TIB),
    ("kb", KIB),
    ("mb", MIB),
    ("gb", GIB),
    ("tb", TIB),
    ("b", 1),
];

impl ByteSize {
    pub const fn mib(n: u64) -> ByteSize {
        ByteSize(n * MIB)
    }

    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for ByteSize {
    type Err = String;

    /// # Errors
    ///
    /// A message naming the text when it is not a number with an optional
    /// known unit, or overflows 64 bits.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let lower = text.to_ascii_lowercase();
        let (number, scale) = UNITS
            .iter()
            .find_map(|(unit, scale)| lower.strip_suffix(unit).map(|n| (n.trim_end(), *scale)))
            .unwrap_or((lower.as_str(), 1));
        let n: u64 = number
            .parse()
            .map_err(|_| format!("{text:?} is not a size (a number of bytes, or with a unit: 512KiB, 96MiB, 1GiB)"))?;
        n.checked_mul(scale).map(ByteSize).ok_or_else(|| format!("{text:?} does not fit in 64 bits"))
    }
}

impl fmt::Display for ByteSize {
    /// The largest binary unit that divides the size exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, scale) in [("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)] {
            if self.0 != 0 && self.0.is_multiple_of(scale) {
                return write!(f, "{}{unit}", self.0 / scale);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size: a number of bytes, or a string such as \"96MiB\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v).map(ByteSize).map_err(|_| E::custom(format!("size {v} is negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_plain_bytes() {
        let cases = [
            ("0", 0),
            ("1024", 1024),
            ("512B", 512),
            ("4KiB", 4 * KIB),
            ("4 kib", 4 * KIB),
            ("96MiB", 96 * MIB),
            ("96MB", 96 * MIB),
            ("1GiB", GIB),
            ("2TB", 2 * TIB),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(want)), "{text}");
        }
    }

    #[test]
    fn refuses_garbage_and_overflow() {
        for text in ["", "MiB", "12XB", "-1", "1.5MiB", "99999999999TiB"] {
            assert!(text.parse::<ByteSize>().is_err(), "{text}");
        }
    }

    #[test]
    fn prints_the_largest_exact_unit_and_round_trips() {
        for (size, text) in
            [(96 * MIB, "96MiB"), (3072, "3KiB"), (1536, "1536B"), (1000, "1000B"), (0, "0B"), (GIB, "1GiB")]
        {
            assert_eq!(ByteSize(size).to_string(), text);
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(size)));
        }
    }

    #[test]
    fn deserializes_numbers_and_strings() {
        let v: Vec<ByteSize> = serde_yaml::from_str("[2048, \"2KiB\", 1MB]").unwrap();
        assert_eq!(v, vec![ByteSize(2048), ByteSize(2048), ByteSize(MIB)]);
        assert!(serde_yaml::from_str::<ByteSize>("-5").is_err());
        assert!(serde_yaml::from_str::<ByteSize>("lots").is_err());
    }
}
