//! Key-range arithmetic. An empty start key means -infinity and an empty end
//! key means +infinity, as in `metapb.Region`.

use std::cmp::Ordering;

/// The longest key a storage node accepts (its `MAX_KEY_SIZE`): a split key
/// longer than that cannot name a key any region holds.
pub const MAX_KEY_SIZE: usize = 4 * 1024;

/// Compares two end keys, where empty is +infinity.
pub fn cmp_end(a: &[u8], b: &[u8]) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.cmp(b),
    }
}

/// Whether `key` lies in `[start, end)`.
pub fn contains(start: &[u8], end: &[u8], key: &[u8]) -> bool {
    key >= start && (end.is_empty() || key < end)
}

/// Whether `[a_start, a_end)` and `[b_start, b_end)` share a key.
pub fn overlaps(a_start: &[u8], a_end: &[u8], b_start: &[u8], b_end: &[u8]) -> bool {
    // a starts before b ends, and b starts before a ends.
    starts_before_end(a_start, b_end) && starts_before_end(b_start, a_end)
}

/// Whether a start key (empty = -infinity) lies before an end key (empty =
/// +infinity).
fn starts_before_end(start: &[u8], end: &[u8]) -> bool {
    end.is_empty() || start < end
}

/// Whether the range is non-empty: start < end, or end unbounded.
pub fn is_valid_range(start: &[u8], end: &[u8]) -> bool {
    starts_before_end(start, end)
}

/// Human-readable rendering of a key: printable ASCII as is, other bytes as
/// `\xNN`. Empty keys are shown as "" by callers that need to.
pub fn display(key: &[u8]) -> String {
    let mut s = String::with_capacity(key.len());
    for &b in key {
        if b.is_ascii_graphic() || b == b' ' {
            if b == b'\\' {
                s.push_str("\\\\");
            } else {
                s.push(b as char);
            }
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

/// Upper-case hex, the form PD's HTTP API uses for keys.
pub fn hex(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02X}")).collect()
}

/// Decodes hex (either case, an even number of digits); `None` if it is not.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_keys_treat_empty_as_infinity() {
        assert_eq!(cmp_end(b"", b"a"), Ordering::Greater);
        assert_eq!(cmp_end(b"a", b""), Ordering::Less);
        assert_eq!(cmp_end(b"a", b"b"), Ordering::Less);
        assert!(contains(b"", b"", b"anything"));
        assert!(contains(b"b", b"", b"zz"));
        assert!(!contains(b"b", b"c", b"c"));
    }

    #[test]
    fn overlap_is_half_open() {
        assert!(!overlaps(b"a", b"b", b"b", b"c"));
        assert!(overlaps(b"a", b"c", b"b", b"d"));
        assert!(overlaps(b"", b"", b"x", b"y"));
        assert!(!overlaps(b"", b"m", b"m", b""));
        assert!(overlaps(b"", b"n", b"m", b""));
    }

    #[test]
    fn display_escapes_non_printable() {
        assert_eq!(display(b"ab\x00\xff"), "ab\\x00\\xff");
        assert_eq!(hex(b"\x01\xab"), "01AB");
        assert_eq!(from_hex("01AB"), Some(b"\x01\xab".to_vec()));
        assert_eq!(from_hex("6b6579"), Some(b"key".to_vec()));
        assert_eq!(from_hex(""), Some(Vec::new()));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex("+1"), None);
    }
}
