//! Opening the raft log: every segment's records applied in order to a new
//! index.

use std::collections::BTreeMap;
use std::io::{self, Read as _};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::Active;
use super::index::Index;
use super::record::{self, Read};
use super::segment::{self, MAGIC};
use crate::disk::File;

/// Replays the segments under `dir` (starting the first if there is none)
/// and returns the index, the open segments and the one to write next.
///
/// A record cut short at the end of the newest segment was being written
/// when the store stopped and was never acknowledged: it is zeroed. A
/// damaged record anywhere else, or a file that is not a segment, is an
/// error: entries that were acknowledged would be lost.
///
/// # Errors
///
/// I/O failures and `InvalidData` for damage.
pub(super) fn replay(dir: &Path, segment_bytes: u64) -> io::Result<(Index, BTreeMap<u64, Arc<File>>, Active)> {
    let seqs = segment::list(dir)?;
    let mut index = Index::default();
    let mut files = BTreeMap::new();
    let Some(&newest) = seqs.last() else {
        let file = Arc::new(segment::create(dir, 1, segment_bytes)?);
        files.insert(1, file.clone());
        let active = Active { seq: 1, file, len: MAGIC.len() as u64, unsynced: false, failed: None };
        return Ok((index, files, active));
    };
    let damaged = |seq: u64, what: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("raft log segment {}: {what}", segment::path(dir, seq).display()),
        )
    };
    let mut end = 0;
    for &seq in &seqs {
        let last = seq == newest;
        let mut file = segment::open(dir, seq)?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        if !buf.starts_with(MAGIC) {
            // Only the newest can be a creation cut short.
            if !(last && MAGIC.starts_with(&buf)) {
                return Err(damaged(seq, "not a raft log segment".into()));
            }
            file.set_len(0)?;
            file.write_all_at(MAGIC, 0)?;
            file.sync_all()?;
            buf = MAGIC.to_vec();
        }
        let mut at = MAGIC.len();
        loop {
            match record::read(&buf[at..]).map_err(|e| damaged(seq, format!("record at byte {at}: {e}")))? {
                Read::Record { len, ops } => {
                    index.apply(&ops, &buf[at..at + len], seq, at as u64);
                    at += len;
                }
                Read::End => break,
                Read::Torn if last => {
                    tracing::warn!(
                        segment = seq,
                        offset = at,
                        dropped_bytes = buf.len() - at,
                        "dropping a raft log record cut short by a crash"
                    );
                    segment::zero(&file, at as u64, buf.len() as u64)?;
                    file.sync_all()?;
                    break;
                }
                Read::Torn => return Err(damaged(seq, format!("damaged record at byte {at}"))),
            }
        }
        end = at as u64;
        files.insert(seq, Arc::new(file));
    }
    let file = files[&newest].clone();
    Ok((index, files, Active { seq: newest, file, len: end, unsynced: false, failed: None }))
}
