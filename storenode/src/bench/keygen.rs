//! What the load generator writes: fixed-size keys that spread evenly over
//! the key space (so pre-split regions share the load) and values that
//! name their record.

/// The key for record `i`: `size` bytes whose first 8 are a bijective
/// scramble of `i` (big-endian), so consecutive records land all over the
/// key space, and the rest repeat `i`'s bytes.
pub fn key(i: u64, size: usize) -> Vec<u8> {
    // Multiplication by an odd constant is a bijection on u64.
    let scrambled = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut k = scrambled.to_be_bytes().to_vec();
    let tail = i.to_le_bytes();
    let mut j = 0;
    while k.len() < size {
        k.push(tail[j % 8]);
        j += 1;
    }
    k.truncate(size.max(1));
    k
}

/// The value for record `i`: `size` bytes, the first (up to 8) `i`'s.
pub fn value(i: u64, size: usize) -> Vec<u8> {
    let mut v = vec![b'v'; size];
    for (j, b) in i.to_le_bytes().iter().enumerate().take(size) {
        v[j] = *b;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_and_sized() {
        let keys: std::collections::BTreeSet<Vec<u8>> = (0..10_000).map(|i| key(i, 16)).collect();
        assert_eq!(keys.len(), 10_000);
        assert!(keys.iter().all(|k| k.len() == 16));
        // Spread: every quarter of the first-byte space is used.
        let quarters: std::collections::BTreeSet<u8> = keys.iter().map(|k| k[0] >> 6).collect();
        assert_eq!(quarters.len(), 4);
    }

    #[test]
    fn values_are_sized_and_name_their_record() {
        assert_eq!(value(7, 0), Vec::<u8>::new());
        assert_eq!(value(0x0102, 3), vec![0x02, 0x01, 0]);
        let v = value(9, 1000);
        assert_eq!(v.len(), 1000);
        assert_eq!(&v[..8], &9u64.to_le_bytes());
        assert!(v[8..].iter().all(|&b| b == b'v'));
    }
}
