//! Opening the raft log: every segment's records applied in order to a new
//! index, after [`verify`] has told a torn tail from damage.

use std::collections::BTreeMap;
use std::io::{self, Read as _};
use std::path::Path;
use std::sync::Arc;

use super::Active;
use super::index::Index;
use super::recovery::RecoveryMode;
use super::segment::{self, Format, HEADER};
use super::verify::{self, Fix};
use crate::disk::File;
use crate::metrics;

/// What a replay leaves: the index, the open segments, the one to write
/// next, and whether that one is of the format before ([`Format::V1`]),
/// which is never written: the open starts a new segment after it.
pub(super) struct Replayed {
    pub index: Index,
    pub files: BTreeMap<u64, Arc<File>>,
    pub active: Active,
    pub old_format: bool,
}

/// Replays the segments under `dir` (starting the first if there is none).
///
/// A tail of the newest segment that a crash may have torn is zeroed, with
/// a warning and `store_raft_log_torn_tails_total`, or refuses the open in
/// [`RecoveryMode::AbsoluteConsistency`]; damage anywhere refuses it.
///
/// # Errors
///
/// I/O failures and `InvalidData` for damage (carrying a
/// [`super::LogDamage`]).
pub(super) fn replay(dir: &Path, segment_bytes: u64, mode: RecoveryMode) -> io::Result<Replayed> {
    let seqs = segment::list(dir)?;
    let mut index = Index::default();
    let mut files = BTreeMap::new();
    let Some(&newest) = seqs.last() else {
        let file = Arc::new(segment::create(dir, 1, 0, 1, segment_bytes)?);
        files.insert(1, file.clone());
        let active = Active::new(1, file, HEADER as u64);
        return Ok(Replayed { index, files, active, old_format: false });
    };
    let mut open = BTreeMap::new();
    let read = |seq: u64| -> io::Result<Vec<u8>> {
        let mut file = segment::open(dir, seq)?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        open.insert(seq, file);
        Ok(buf)
    };
    let scans = verify::scan(dir, &seqs, mode, read, |r| index.apply(r.ops, r.bytes, r.seq, r.at))?;
    // Segments the walk left out are dead (below a gap a cut-short
    // deletion left): finish that deletion.
    let left_out: Vec<u64> = seqs.iter().copied().filter(|&s| s < scans[0].seq).collect();
    for &s in &left_out {
        crate::disk::current().remove_file(&segment::path(dir, s))?;
    }
    if !left_out.is_empty() {
        segment::sync_dir(dir)?;
    }
    let newest_scan = scans.last().expect("a scan per segment");
    let mut file = open.remove(&newest).expect("the newest segment was read");
    match newest_scan.fix {
        Fix::None => {}
        Fix::Header { prev_end, oldest } => {
            // Nothing was written into it: its creation was cut short, so
            // it is created again as a rotation does. That makes its name
            // durable too (the cut-short creation never synced the
            // directory, and acknowledged records will go into this file)
            // and gives it its full size in zeros.
            file = segment::create(dir, newest, prev_end, oldest, segment_bytes)?;
        }
        Fix::DropTail { at, written } => {
            tracing::warn!(
                segment = %segment::path(dir, newest).display(),
                offset = at,
                dropped_bytes = written,
                "dropping a raft log tail a crash may have torn: written after the last sync any later record saw"
            );
            metrics::RAFT_LOG_TORN_TAILS.inc();
            segment::zero(&file, at, newest_scan.bytes)?;
            file.sync_all()?;
        }
    }
    // What the last run wrote without syncing may still be only in the page
    // cache: sync it, so the watermark the next record carries is true. Its
    // name too: a run killed before a rotation's directory sync left a
    // segment whose header and zeros read whole, and records acknowledged
    // in it are lost with its name if the directory never was synced.
    file.sync_data()?;
    segment::sync_dir(dir)?;
    let end = newest_scan.end;
    let old_format = newest_scan.format == Format::V1;
    open.insert(newest, file);
    files.extend(open.into_iter().map(|(seq, f)| (seq, Arc::new(f))));
    let active = Active::new(newest, files[&newest].clone(), end);
    Ok(Replayed { index, files, active, old_format })
}
