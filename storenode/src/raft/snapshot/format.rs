//! The snapshot file format, written and read as a stream.
//!
//! ```text
//! magic        8 bytes  "KVSNAP\0\x02"
//! head         u32 length, then a postcard `SnapshotHead`
//! records      tag 1 (pair):    u32 key length, u32 value length, key, value
//!              tag 2 (session): u64 client id, u32 length, encoded session
//! end          tag 0xFF, u64 pair count, u64 session count,
//!              u64 checksum of every byte before it (see below)
//! ```
//!
//! The checksum is CRC-32 (IEEE) in the low 32 bits, which the CPU's
//! carry-less multiply computes at memory speed; version 1 files
//! (`"KVSNAP\0\x01"`) carry a byte-at-a-time FNV-1a instead, which cost a
//! large region about a second of CPU per pass, and are still read. Since
//! the checksum covers everything but its own 8 bytes, a receiver can check
//! a file as its chunks arrive ([`StreamCheck`]) without parsing it.
//!
//! Integers are little-endian. Pairs come in key order and sessions after
//! them, so an installer writes sessions in its last step without holding
//! pairs back. The trailer makes a truncated or damaged file an error
//! instead of a smaller snapshot: a reader returns the end only after the
//! counts and checksum match.
//!
//! Both sides keep memory bounded whatever the region's size: the writer
//! holds at most its buffer limit (a record larger than the limit is written
//! straight through), the reader one record at a time.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use crate::raft::SnapshotMeta;

/// What the writer writes: CRC-32 checksum.
const MAGIC: &[u8; 8] = b"KVSNAP\0\x02";
/// Version 1: FNV-1a checksum; read, never written.
const MAGIC_V1: &[u8; 8] = b"KVSNAP\0\x01";
const TAG_PAIR: u8 = 1;
const TAG_SESSION: u8 = 2;
const TAG_END: u8 = 0xFF;
/// Bytes the writer buffers before it writes to the file.
pub const WRITE_BUFFER: usize = 256 << 10;
/// Largest key, value or session a reader accepts: a damaged length must
/// not make it allocate without bound.
const MAX_FIELD: usize = 256 << 20;
/// Largest head: a region's meta and the raft membership.
const MAX_HEAD: usize = 16 << 20;

/// What a snapshot knows besides its rows: where it sits in the log, and
/// the region and log clock it was taken at.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotHead {
    pub meta: SnapshotMeta,
    /// `metapb.Region`, protobuf-encoded.
    pub region: Vec<u8>,
    pub clock_ms: u64,
    pub last_sweep_ms: u64,
}

/// One row of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Pair(Vec<u8>, Vec<u8>),
    /// (client id, encoded session).
    Session(u64, Vec<u8>),
}

/// The running checksum of a file's bytes.
#[derive(Clone)]
enum Checksum {
    /// Version 2: CRC-32, stable across builds and platforms, as a file read
    /// by another binary version needs.
    Crc(crc32fast::Hasher),
    /// Version 1: FNV-1a, 64 bit.
    Fnv(u64),
}

impl Checksum {
    fn new() -> Self {
        Checksum::Crc(crc32fast::Hasher::new())
    }

    fn fnv() -> Self {
        Checksum::Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Checksum::Crc(h) => h.update(bytes),
            Checksum::Fnv(h) => {
                for b in bytes {
                    *h ^= u64::from(*b);
                    *h = h.wrapping_mul(0x0000_0100_0000_01b3);
                }
            }
        }
    }

    fn value(&self) -> u64 {
        match self {
            Checksum::Crc(h) => u64::from(h.clone().finalize()),
            Checksum::Fnv(h) => *h,
        }
    }
}

/// Checks a snapshot file's checksum as its bytes go by, chunk after
/// chunk, without parsing it: what a receiver runs while it writes the
/// chunks to disk, so the installer need not read the file an extra time.
/// Only version 2 files can be checked this way; `finish` says whether the
/// file checked out.
pub struct StreamCheck {
    sum: crc32fast::Hasher,
    /// The first bytes seen, until there are enough for the magic.
    magic: Vec<u8>,
    /// The last 8 bytes seen: the checksum, once the stream ends.
    tail: Vec<u8>,
    bytes: u64,
}

impl Default for StreamCheck {
    fn default() -> Self {
        StreamCheck {
            sum: crc32fast::Hasher::new(),
            magic: Vec::with_capacity(8),
            tail: Vec::with_capacity(16),
            bytes: 0,
        }
    }
}

impl StreamCheck {
    /// Takes the next chunk of the file.
    pub fn update(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        if self.magic.len() < MAGIC.len() {
            let n = (MAGIC.len() - self.magic.len()).min(chunk.len());
            self.magic.extend_from_slice(&chunk[..n]);
        }
        if chunk.len() >= 8 {
            // Everything held back so far, and all but the chunk's last 8
            // bytes, is before the checksum.
            self.sum.update(&self.tail);
            self.sum.update(&chunk[..chunk.len() - 8]);
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[chunk.len() - 8..]);
        } else {
            self.tail.extend_from_slice(chunk);
            let over = self.tail.len().saturating_sub(8);
            self.sum.update(&self.tail[..over]);
            self.tail.drain(..over);
        }
    }

    /// Whether the bytes seen are a whole version 2 snapshot file whose
    /// checksum matches. A false answer is not proof of damage (a version 1
    /// file cannot be checked this way): read the file whole to know.
    pub fn finish(self) -> bool {
        if self.magic != MAGIC || self.tail.len() != 8 || self.bytes < 8 {
            return false;
        }
        let stated = u64::from_le_bytes(self.tail.as_slice().try_into().expect("8 bytes"));
        stated == u64::from(self.sum.finalize())
    }
}

/// Streams a snapshot into `W` through a bounded buffer.
pub struct SnapshotWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
    limit: usize,
    sum: Checksum,
    pairs: u64,
    sessions: u64,
    bytes: u64,
    /// The most the buffer ever held, for tests of the memory bound.
    peak_buffered: usize,
}

impl<W: Write> SnapshotWriter<W> {
    /// Starts a snapshot with its head, buffering at most `limit` bytes.
    ///
    /// # Errors
    ///
    /// Encoding or write failures.
    pub fn new(out: W, head: &SnapshotHead, limit: usize) -> io::Result<Self> {
        let mut w = SnapshotWriter {
            out,
            buf: Vec::with_capacity(limit),
            limit,
            sum: Checksum::new(),
            pairs: 0,
            sessions: 0,
            bytes: 0,
            peak_buffered: 0,
        };
        let head = crate::raft::encode(head)?;
        w.put(MAGIC)?;
        w.put(&len32(head.len())?)?;
        w.put(&head)?;
        Ok(w)
    }

    /// Appends one key-value pair; pairs must come in key order.
    ///
    /// # Errors
    ///
    /// Write failures, or a field longer than a reader accepts.
    pub fn pair(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.put(&[TAG_PAIR])?;
        self.put(&len32(key.len())?)?;
        self.put(&len32(value.len())?)?;
        self.put(key)?;
        self.put(value)?;
        self.pairs += 1;
        Ok(())
    }

    /// Appends one session row; sessions come after every pair.
    ///
    /// # Errors
    ///
    /// As [`SnapshotWriter::pair`].
    pub fn session(&mut self, client_id: u64, session: &[u8]) -> io::Result<()> {
        self.put(&[TAG_SESSION])?;
        self.put(&client_id.to_le_bytes())?;
        self.put(&len32(session.len())?)?;
        self.put(session)?;
        self.sessions += 1;
        Ok(())
    }

    /// Writes the trailer and flushes; returns the output and the number of
    /// bytes written.
    ///
    /// # Errors
    ///
    /// Write failures.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.put(&[TAG_END])?;
        self.put(&self.pairs.to_le_bytes())?;
        self.put(&self.sessions.to_le_bytes())?;
        let sum = self.sum.value().to_le_bytes();
        self.put(&sum)?;
        self.flush_buf()?;
        self.out.flush()?;
        Ok((self.out, self.bytes))
    }

    /// The most bytes the buffer held at once so far.
    pub fn peak_buffered(&self) -> usize {
        self.peak_buffered
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.sum.update(bytes);
        self.bytes += bytes.len() as u64;
        if self.buf.len() + bytes.len() > self.limit {
            self.flush_buf()?;
        }
        if bytes.len() > self.limit {
            // Copying it into the buffer would break the bound.
            return self.out.write_all(bytes);
        }
        self.buf.extend_from_slice(bytes);
        self.peak_buffered = self.peak_buffered.max(self.buf.len());
        Ok(())
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

fn len32(n: usize) -> io::Result<[u8; 4]> {
    if n > MAX_FIELD {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("snapshot field of {n} bytes is too long")));
    }
    Ok((n as u32).to_le_bytes())
}

/// Reads a snapshot record by record, checking the trailer at the end.
pub struct SnapshotReader<R: Read> {
    input: R,
    sum: Checksum,
    pairs: u64,
    sessions: u64,
    done: bool,
}

impl<R: Read> SnapshotReader<R> {
    /// Reads the magic and the head.
    ///
    /// # Errors
    ///
    /// `InvalidData` when the input is not a snapshot, read failures.
    pub fn new(input: R) -> io::Result<(SnapshotHead, Self)> {
        let mut r = SnapshotReader { input, sum: Checksum::new(), pairs: 0, sessions: 0, done: false };
        let magic: [u8; 8] = r.array()?;
        if &magic == MAGIC_V1 {
            r.sum = Checksum::fnv();
            r.sum.update(&magic);
        } else if &magic != MAGIC {
            return Err(invalid("not a snapshot file (bad magic)".into()));
        }
        let n = r.len(MAX_HEAD)?;
        let head = crate::raft::decode(&r.bytes(n)?)?;
        Ok((head, r))
    }

    /// The next record, or `None` at a verified end.
    ///
    /// # Errors
    ///
    /// `InvalidData` for a truncated or damaged file (bad tag, lengths,
    /// counts or checksum), read failures.
    pub fn next_record(&mut self) -> io::Result<Option<Record>> {
        if self.done {
            return Ok(None);
        }
        let [tag] = self.array()?;
        match tag {
            TAG_PAIR => {
                let (kn, vn) = (self.len(MAX_FIELD)?, self.len(MAX_FIELD)?);
                let key = self.bytes(kn)?;
                let value = self.bytes(vn)?;
                self.pairs += 1;
                Ok(Some(Record::Pair(key, value)))
            }
            TAG_SESSION => {
                let client_id = u64::from_le_bytes(self.array()?);
                let n = self.len(MAX_FIELD)?;
                self.sessions += 1;
                Ok(Some(Record::Session(client_id, self.bytes(n)?)))
            }
            TAG_END => {
                let pairs = u64::from_le_bytes(self.array()?);
                let sessions = u64::from_le_bytes(self.array()?);
                let expected = self.sum.value();
                let mut sum = [0u8; 8];
                self.input.read_exact(&mut sum).map_err(truncated)?;
                if (pairs, sessions) != (self.pairs, self.sessions) {
                    return Err(invalid(format!(
                        "snapshot trailer counts {pairs} pairs and {sessions} sessions, the file holds {} and {}",
                        self.pairs, self.sessions
                    )));
                }
                if u64::from_le_bytes(sum) != expected {
                    return Err(invalid("snapshot checksum mismatch".into()));
                }
                let mut extra = [0u8; 1];
                if self.input.read(&mut extra)? != 0 {
                    return Err(invalid("bytes after the snapshot trailer".into()));
                }
                self.done = true;
                Ok(None)
            }
            t => Err(invalid(format!("bad snapshot record tag {t}"))),
        }
    }

    fn array<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut a = [0u8; N];
        self.input.read_exact(&mut a).map_err(truncated)?;
        self.sum.update(&a);
        Ok(a)
    }

    fn len(&mut self, max: usize) -> io::Result<usize> {
        let n = u32::from_le_bytes(self.array()?) as usize;
        if n > max {
            return Err(invalid(format!("snapshot field length {n} exceeds {max}")));
        }
        Ok(n)
    }

    fn bytes(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let mut v = vec![0u8; n];
        self.input.read_exact(&mut v).map_err(truncated)?;
        self.sum.update(&v);
        Ok(v)
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn truncated(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof { invalid("snapshot file is truncated".into()) } else { e }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> SnapshotHead {
        SnapshotHead { meta: SnapshotMeta::default(), region: vec![1, 2, 3], clock_ms: 5, last_sweep_ms: 4 }
    }

    fn write(records: &[Record], limit: usize) -> (Vec<u8>, usize) {
        let mut w = SnapshotWriter::new(Vec::new(), &head(), limit).unwrap();
        for r in records {
            match r {
                Record::Pair(k, v) => w.pair(k, v).unwrap(),
                Record::Session(c, s) => w.session(*c, s).unwrap(),
            }
        }
        let peak = w.peak_buffered();
        (w.finish().unwrap().0, peak)
    }

    fn read_all(bytes: &[u8]) -> io::Result<(SnapshotHead, Vec<Record>)> {
        let (head, mut r) = SnapshotReader::new(bytes)?;
        let mut out = Vec::new();
        while let Some(rec) = r.next_record()? {
            out.push(rec);
        }
        Ok((head, out))
    }

    fn sample() -> Vec<Record> {
        let mut v: Vec<Record> =
            (0..100u32).map(|i| Record::Pair(format!("k{i:04}").into_bytes(), vec![i as u8; i as usize])).collect();
        v.push(Record::Pair(b"big".to_vec(), vec![7; 10_000]));
        v.push(Record::Session(9, b"session".to_vec()));
        v
    }

    #[test]
    fn round_trip() {
        let records = sample();
        let (bytes, _) = write(&records, 1024);
        let (h, got) = read_all(&bytes).unwrap();
        assert_eq!((h.region, h.clock_ms, h.last_sweep_ms), (vec![1, 2, 3], 5, 4));
        assert_eq!(got, records);
    }

    #[test]
    fn a_truncated_or_damaged_file_is_an_error() {
        let (bytes, _) = write(&sample(), 1024);
        for cut in [10, bytes.len() / 2, bytes.len() - 9, bytes.len() - 1] {
            let err = read_all(&bytes[..cut]).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "cut at {cut}: {err}");
        }
        let mut flipped = bytes.clone();
        let at = flipped.len() / 2;
        flipped[at] ^= 0x40;
        assert!(read_all(&flipped).is_err(), "a flipped byte is detected");
        let mut longer = bytes;
        longer.push(0);
        assert!(read_all(&longer).is_err(), "trailing garbage is detected");
    }

    fn stream_check(bytes: &[u8], chunk: usize) -> bool {
        let mut c = StreamCheck::default();
        for part in bytes.chunks(chunk) {
            c.update(part);
        }
        c.finish()
    }

    #[test]
    fn a_stream_check_accepts_a_whole_file_in_any_chunking_and_nothing_else() {
        let (bytes, _) = write(&sample(), 1024);
        for chunk in [1, 3, 7, 8, 9, 1000, bytes.len()] {
            assert!(stream_check(&bytes, chunk), "chunks of {chunk}");
        }
        for cut in [0, 7, 10, bytes.len() / 2, bytes.len() - 1] {
            assert!(!stream_check(&bytes[..cut], 5), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        let at = flipped.len() / 3;
        flipped[at] ^= 0x01;
        assert!(!stream_check(&flipped, 1000), "a flipped byte");
        let mut longer = bytes;
        longer.push(0);
        assert!(!stream_check(&longer, 1000), "trailing garbage");
    }

    #[test]
    fn a_version_1_file_is_still_read_but_not_stream_checked() {
        let records = sample();
        let (mut bytes, _) = write(&records, 1024);
        bytes[..8].copy_from_slice(MAGIC_V1);
        let body = bytes.len() - 8;
        let mut fnv = Checksum::fnv();
        fnv.update(&bytes[..body]);
        bytes[body..].copy_from_slice(&fnv.value().to_le_bytes());
        let (_, got) = read_all(&bytes).unwrap();
        assert_eq!(got, records);
        assert!(!stream_check(&bytes, 1000));
        bytes[body / 2] ^= 0x40;
        assert!(read_all(&bytes).is_err(), "its FNV-1a checksum is checked");
    }

    /// Counts what reaches the output without keeping it.
    struct Sink(u64);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0 += b.len() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_large_snapshot_streams_through_a_bounded_buffer() {
        let limit = 64 << 10;
        let mut w = SnapshotWriter::new(Sink(0), &head(), limit).unwrap();
        let value = vec![3u8; 1000];
        // 64 MiB of pairs, and some values larger than the buffer.
        for i in 0..65_536u32 {
            w.pair(&i.to_be_bytes(), &value).unwrap();
            if i % 10_000 == 0 {
                w.pair(&[0xFF, i as u8], &vec![1u8; 3 * limit]).unwrap();
            }
        }
        assert!(w.peak_buffered() <= limit, "buffered {} > {limit}", w.peak_buffered());
        let (sink, bytes) = w.finish().unwrap();
        assert_eq!(sink.0, bytes);
        assert!(bytes > 64 << 20);
    }
}
