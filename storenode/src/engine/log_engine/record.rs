//! A raft log record: one group-commit batch's log writes, framed so a
//! replay can tell a whole record from a torn one, and a torn one from
//! damage.
//!
//! ```text
//! record  := len: u32 | crc32(synced, ops): u32 | synced: u64 | ops   (little endian)
//! op      := 1 region: u64 index: u64 n: u32 entry[n]    append an entry
//!          | 2 region: u64 from: u64                     drop entries >= from
//!          | 3 region: u64 upto: u64                     drop entries <= upto
//!          | 4 region: u64                               drop the region's entries and marks
//!          | 5 region: u64 kind: u8 n: u32 value[n]      set a mark (vote, committed, purged)
//! ```
//!
//! `synced`, the record's watermark, is the offset in its segment up to
//! which the segment was durable (a sync had completed) when the record was
//! written. A power cut can only tear what was written after the last
//! completed sync, so a whole record with a watermark past some offset
//! proves every byte before that offset was on disk: damage there is not a
//! torn write ([`super::verify`]). `len` counts the bytes after the header.
//! Segments of [`Format::V1`] hold records of the format before, `len |
//! crc32(ops) | ops`, with no watermark.
//!
//! An op refers to its bytes by their offset in the record, so an entry is
//! read back from its segment with one positioned read and never decoded
//! out of its record.

use std::io;

use super::segment::Format;

/// The bytes in front of a record's ops: length, checksum, watermark.
pub const HEADER: usize = 16;
/// The bytes in front of a [`Format::V1`] record's ops.
const HEADER_V1: usize = 8;

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

    /// Fills in the header, with `synced` the offset up to which the
    /// segment it goes to is durable: the record is ready to be written.
    pub fn seal(&mut self, synced: u64) {
        let len = u32::try_from(self.bytes.len() - HEADER).expect("a raft log record under 4 GiB");
        self.bytes[8..HEADER].copy_from_slice(&synced.to_le_bytes());
        let crc = crc32fast::hash(&self.bytes[8..]);
        self.bytes[..4].copy_from_slice(&len.to_le_bytes());
        self.bytes[4..8].copy_from_slice(&crc.to_le_bytes());
    }
}

/// The header length of a record in a segment of `format`.
pub fn header_len(format: Format) -> usize {
    match format {
        Format::V1 => HEADER_V1,
        Format::V2 => HEADER,
    }
}

/// What a replay finds at an offset of a segment.
#[derive(Debug)]
pub enum Read {
    /// A whole record of `len` bytes (header included), its ops and its
    /// watermark (none in a [`Format::V1`] segment).
    Record { len: usize, ops: Vec<Op>, synced: Option<u64> },
    /// A zero header: where the records end if only zeros follow (the
    /// zeros a segment was created with), or the file ends.
    End,
    /// Not a whole record: its header or ops are cut short, or its checksum
    /// does not match. A torn write or damage; which, only the rest of the
    /// segment can tell.
    Torn,
}

/// Reads the record at the start of `buf`, in a segment of `format`.
///
/// # Errors
///
/// `InvalidData` for a record whose checksum matches but whose ops do not
/// decode: not a torn write, a bug or a corruption nothing can repair.
pub fn read(buf: &[u8], format: Format) -> io::Result<Read> {
    let head = header_len(format);
    if buf.iter().take(head).all(|&b| b == 0) {
        return Ok(Read::End);
    }
    let Some(len) = whole(buf, format) else { return Ok(Read::Torn) };
    let synced = (format == Format::V2).then(|| u64::from_le_bytes(buf[8..HEADER].try_into().expect("8 bytes")));
    Ok(Read::Record { len, ops: decode(&buf[..len], head)?, synced })
}

/// The length (header included) of the record at the start of `buf` when
/// it is whole: its length fits and its checksum matches.
pub fn whole(buf: &[u8], format: Format) -> Option<usize> {
    let head = header_len(format);
    let len = u32::from_le_bytes(buf.get(..4)?.try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(buf.get(4..8)?.try_into().expect("4 bytes"));
    // The checksum covers the watermark too, so a record cannot vouch for
    // bytes it did not see synced.
    let covered = buf.get(8..head.checked_add(len)?)?;
    (len != 0 && crc32fast::hash(covered) == crc).then_some(head + len)
}

/// The ops of a whole, checked record whose header is `head` bytes.
fn decode(rec: &[u8], head: usize) -> io::Result<Vec<Op>> {
    let bad = |what: &str, at: usize| io::Error::new(io::ErrorKind::InvalidData, format!("{what} at byte {at}"));
    let u64_at = |at: usize| -> io::Result<u64> {
        rec.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))).ok_or_else(|| bad("cut", at))
    };
    let u32_at = |at: usize| -> io::Result<u32> {
        rec.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes"))).ok_or_else(|| bad("cut", at))
    };
    let mut ops = Vec::new();
    let mut at = head;
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
        r.seal(4242);
        r
    }

    fn v2(buf: &[u8]) -> Read {
        read(buf, Format::V2).unwrap()
    }

    #[test]
    fn a_record_reads_back_op_for_op_with_its_watermark() {
        let r = sample();
        let Read::Record { len, ops, synced } = v2(&r.bytes) else { panic!("a whole record") };
        assert_eq!((len, &ops, synced), (r.bytes.len(), &r.ops, Some(4242)));
        let Op::Append { at, len, .. } = ops[0] else { panic!() };
        assert_eq!(&r.bytes[at as usize..(at + len) as usize], b"one");
        let Op::Meta { at, len, .. } = ops[5] else { panic!() };
        assert_eq!(&r.bytes[at as usize..(at + len) as usize], b"vote");
    }

    #[test]
    fn a_cut_or_damaged_record_is_torn_and_an_empty_tail_is_the_end() {
        let r = sample();
        assert!(matches!(v2(&[]), Read::End));
        for cut in [1, 8, HEADER, r.bytes.len() - 1] {
            assert!(matches!(v2(&r.bytes[..cut]), Read::Torn), "cut at {cut}");
        }
        let mut flipped = r.bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(v2(&flipped), Read::Torn));
        let mut moved = r.bytes.clone();
        moved[8] ^= 1;
        assert!(matches!(v2(&moved), Read::Torn), "the checksum covers the watermark");
        assert!(matches!(v2(&[0; 32]), Read::End), "zeros: where the records end");
        assert!(matches!(v2(&[0, 0, 0, 0, 1, 0, 0, 0]), Read::Torn), "an empty record is no record");
    }

    /// A record of the format before the watermark: `len | crc32(ops) |
    /// ops`.
    #[test]
    fn a_v1_record_reads_back_without_a_watermark() {
        let r = sample();
        let ops = &r.bytes[HEADER..];
        let mut old = (ops.len() as u32).to_le_bytes().to_vec();
        old.extend_from_slice(&crc32fast::hash(ops).to_le_bytes());
        old.extend_from_slice(ops);
        let Read::Record { len, ops, synced } = read(&old, Format::V1).unwrap() else { panic!("a whole record") };
        assert_eq!((len, ops.len(), synced), (old.len(), r.ops.len(), None));
        let Op::Append { at, len, .. } = ops[0] else { panic!() };
        assert_eq!(&old[at as usize..(at + len) as usize], b"one");
        assert!(matches!(read(&old[..old.len() - 1], Format::V1).unwrap(), Read::Torn));
    }

    #[test]
    fn a_checked_record_with_an_unknown_op_is_an_error() {
        let mut r = RecordBuf::default();
        r.bytes.extend_from_slice(&[42; 9]);
        r.seal(0);
        assert_eq!(read(&r.bytes, Format::V2).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
