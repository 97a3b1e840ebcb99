//! A raft log record: one group-commit batch's log writes, framed so a
//! replay can tell a whole record from a torn one.
//!
//! ```text
//! record  := len: u32 | crc32(ops): u32 | ops            (little endian)
//! op      := 1 region: u64 index: u64 n: u32 entry[n]    append an entry
//!          | 2 region: u64 from: u64                     drop entries >= from
//!          | 3 region: u64 upto: u64                     drop entries <= upto
//!          | 4 region: u64                               drop the region's entries and marks
//!          | 5 region: u64 kind: u8 n: u32 value[n]      set a mark (vote, committed, purged)
//! ```
//!
//! An op refers to its bytes by their offset in the record, so an entry is
//! read back from its segment with one positioned read and never decoded
//! out of its record.

use std::io;

/// The bytes in front of a record's ops.
pub const HEADER: usize = 8;

const APPEND: u8 = 1;
const TRUNCATE: u8 = 2;
const PURGE: u8 = 3;
const CLEAR: u8 = 4;
const META: u8 = 5;

/// One write of a record; `at` is where its bytes start in the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Append {
        region: u64,
        index: u64,
        at: u32,
        len: u32,
    },
    /// Drops the region's entries at `from` and after.
    Truncate {
        region: u64,
        from: u64,
    },
    /// Drops the region's entries up to `upto`, inclusive.
    Purge {
        region: u64,
        upto: u64,
    },
    /// Drops the region's entries and marks.
    Clear {
        region: u64,
    },
    Meta {
        region: u64,
        kind: u8,
        at: u32,
        len: u32,
    },
}

/// A record being built: its bytes (header first, filled by [`seal`]) and
/// its ops.
#[derive(Debug)]
pub struct RecordBuf {
    pub bytes: Vec<u8>,
    pub ops: Vec<Op>,
}

impl Default for RecordBuf {
    fn default() -> Self {
        RecordBuf { bytes: vec![0; HEADER], ops: Vec::new() }
    }
}

impl RecordBuf {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    fn head(&mut self, tag: u8, region: u64) {
        self.bytes.push(tag);
        self.bytes.extend_from_slice(&region.to_le_bytes());
    }

    fn blob(&mut self, b: &[u8]) -> (u32, u32) {
        let len = u32::try_from(b.len()).expect("a raft log value under 4 GiB");
        self.bytes.extend_from_slice(&len.to_le_bytes());
        let at = u32::try_from(self.bytes.len()).expect("a raft log record under 4 GiB");
        self.bytes.extend_from_slice(b);
        (at, len)
    }

    pub fn append(&mut self, region: u64, index: u64, entry: &[u8]) {
        self.head(APPEND, region);
        self.bytes.extend_from_slice(&index.to_le_bytes());
        let (at, len) = self.blob(entry);
        self.ops.push(Op::Append { region, index, at, len });
    }

    pub fn truncate(&mut self, region: u64, from: u64) {
        self.head(TRUNCATE, region);
        self.bytes.extend_from_slice(&from.to_le_bytes());
        self.ops.push(Op::Truncate { region, from });
    }

    pub fn purge(&mut self, region: u64, upto: u64) {
        self.head(PURGE, region);
        self.bytes.extend_from_slice(&upto.to_le_bytes());
        self.ops.push(Op::Purge { region, upto });
    }

    pub fn clear(&mut self, region: u64) {
        self.head(CLEAR, region);
        self.ops.push(Op::Clear { region });
    }

    pub fn meta(&mut self, region: u64, kind: u8, value: &[u8]) {
        self.head(META, region);
        self.bytes.push(kind);
        let (at, len) = self.blob(value);
        self.ops.push(Op::Meta { region, kind, at, len });
    }

    /// Fills in the header: the record is ready to be written.
    pub fn seal(&mut self) {
        let len = u32::try_from(self.bytes.len() - HEADER).expect("a raft log record under 4 GiB");
        let crc = crc32fast::hash(&self.bytes[HEADER..]);
        self.bytes[..4].copy_from_slice(&len.to_le_bytes());
        self.bytes[4..HEADER].copy_from_slice(&crc.to_le_bytes());
    }
}

/// What a replay finds at an offset of a segment.
#[derive(Debug)]
pub enum Read {
    /// A whole record of `len` bytes (header included) and its ops.
    Record { len: usize, ops: Vec<Op> },
    /// The records end here, cleanly: the file ends, or the zeros a
    /// segment was created with begin.
    End,
    /// A record that was being written when the store stopped: its header
    /// or ops are cut short, or its checksum does not match.
    Torn,
}

/// Reads the record at the start of `buf`.
///
/// # Errors
///
/// `InvalidData` for a record whose checksum matches but whose ops do not
/// decode: not a torn write, a bug or a corruption nothing can repair.
pub fn read(buf: &[u8]) -> io::Result<Read> {
    if buf.iter().take(HEADER).all(|&b| b == 0) {
        return Ok(Read::End);
    }
    if buf.len() < HEADER {
        return Ok(Read::Torn);
    }
    let len = u32::from_le_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(buf[4..HEADER].try_into().expect("4 bytes"));
    let Some(body) = buf.get(HEADER..HEADER + len) else {
        return Ok(Read::Torn);
    };
    if len == 0 || crc32fast::hash(body) != crc {
        return Ok(Read::Torn);
    }
    Ok(Read::Record { len: HEADER + len, ops: decode(&buf[..HEADER + len])? })
}

/// The ops of a whole, checked record.
fn decode(rec: &[u8]) -> io::Result<Vec<Op>> {
    let bad = |what: &str, at: usize| io::Error::new(io::ErrorKind::InvalidData, format!("{what} at byte {at}"));
    let u64_at = |at: usize| -> io::Result<u64> {
        rec.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))).ok_or_else(|| bad("cut", at))
    };
    let u32_at = |at: usize| -> io::Result<u32> {
        rec.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes"))).ok_or_else(|| bad("cut", at))
    };
    let mut ops = Vec::new();
    let mut at = HEADER;
    while at < rec.len() {
        let tag = rec[at];
        let region = u64_at(at + 1)?;
        at += 9;
        let blob = |at: usize| -> io::Result<(u32, u32, usize)> {
            let len = u32_at(at)?;
            let start = at + 4;
            let end = start + len as usize;
            if end > rec.len() {
                return Err(bad("value past the record's end", at));
            }
            Ok((u32::try_from(start).map_err(|_| bad("offset", at))?, len, end))
        };
        match tag {
            APPEND => {
                let index = u64_at(at)?;
                let (start, len, end) = blob(at + 8)?;
                ops.push(Op::Append { region, index, at: start, len });
                at = end;
            }
            TRUNCATE => {
                ops.push(Op::Truncate { region, from: u64_at(at)? });
                at += 8;
            }
            PURGE => {
                ops.push(Op::Purge { region, upto: u64_at(at)? });
                at += 8;
            }
            CLEAR => ops.push(Op::Clear { region }),
            META => {
                let kind = *rec.get(at).ok_or_else(|| bad("cut", at))?;
                let (start, len, end) = blob(at + 1)?;
                ops.push(Op::Meta { region, kind, at: start, len });
                at = end;
            }
            t => return Err(bad(&format!("unknown op {t}"), at - 9)),
        }
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RecordBuf {
        let mut r = RecordBuf::default();
        r.append(7, 1, b"one");
        r.append(7, 2, b"");
        r.truncate(7, 2);
        r.purge(8, 10);
        r.clear(9);
        r.meta(7, 1, b"vote");
        r.seal();
        r
    }

    #[test]
    fn a_record_reads_back_op_for_op() {
        let r = sample();
        let Read::Record { len, ops } = read(&r.bytes).unwrap() else { panic!("a whole record") };
        assert_eq!((len, &ops), (r.bytes.len(), &r.ops));
        let Op::Append { at, len, .. } = ops[0] else { panic!() };
        assert_eq!(&r.bytes[at as usize..(at + len) as usize], b"one");
        let Op::Meta { at, len, .. } = ops[5] else { panic!() };
        assert_eq!(&r.bytes[at as usize..(at + len) as usize], b"vote");
    }

    #[test]
    fn a_cut_or_damaged_record_is_torn_and_an_empty_tail_is_the_end() {
        let r = sample();
        assert!(matches!(read(&[]).unwrap(), Read::End));
        for cut in [1, HEADER, r.bytes.len() - 1] {
            assert!(matches!(read(&r.bytes[..cut]).unwrap(), Read::Torn), "cut at {cut}");
        }
        let mut flipped = r.bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(read(&flipped).unwrap(), Read::Torn));
        assert!(matches!(read(&[0; 16]).unwrap(), Read::End), "zeros: where the records end");
        assert!(matches!(read(&[0, 0, 0, 0, 1, 0, 0, 0]).unwrap(), Read::Torn), "an empty record is no record");
    }

    #[test]
    fn a_checked_record_with_an_unknown_op_is_an_error() {
        let mut r = RecordBuf::default();
        r.bytes.extend_from_slice(&[42; 9]);
        r.seal();
        assert_eq!(read(&r.bytes).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
