//! Starting a new segment when the newest is full, and deleting the old
//! segments that hold nothing live.

use std::io;
use std::sync::Arc;

use super::record::RecordBuf;
use super::segment::{self, HEADER};
use super::{Active, LogEngine, read_loc};
use crate::metrics;

/// Segments this far behind the new one have their live entries carried
/// into it: an entry that outlived two whole segments belongs to a region
/// that writes little, and carrying it costs little.
const KEEP: u64 = 2;

impl LogEngine {
    /// Closes the active segment (synced, so a torn record can only be in
    /// the newest), starts the next one with a carry record (every region's
    /// marks, the live entries of segments [`KEEP`] behind), syncs it, and
    /// deletes the oldest segments that are left with nothing live.
    ///
    /// Only a prefix of the segments is deleted, never one between two that
    /// stay: a later segment may hold the truncation or purge that an
    /// earlier one's entries need on replay.
    pub(super) fn rotate(&self, active: &mut Active) -> io::Result<()> {
        if active.unsynced {
            self.sync_active(active)?;
        }
        let seq = active.seq + 1;
        let cutoff = seq.saturating_sub(KEEP);
        let oldest = self.oldest_needed(active.seq, cutoff);
        let file = Arc::new(segment::create(&self.dir, seq, active.len, oldest, self.segment_bytes)?);
        let (marks, carried) = {
            let mut state = self.state.lock().unwrap();
            state.files.insert(seq, file.clone());
            let mut marks = Vec::new();
            let mut carried = Vec::new();
            for (&region, r) in &state.index.regions {
                for (kind, v) in r.marks() {
                    marks.push((region, kind, v.to_vec()));
                }
                for (&i, &l) in r.entries.iter().filter(|(_, l)| l.seg < cutoff) {
                    carried.push((region, i, l, state.files[&l.seg].clone()));
                }
            }
            (marks, carried)
        };
        *active = Active::new(seq, file, HEADER as u64);
        let mut rec = RecordBuf::default();
        for (region, kind, v) in &marks {
            rec.meta(*region, *kind, v);
        }
        metrics::RAFT_LOG_CARRIED_ENTRIES.inc_by(carried.len() as u64);
        for (region, i, l, f) in carried {
            rec.append(region, i, &read_loc(&f, l)?);
        }
        // An empty record would read as the zeros where records end.
        if !rec.is_empty() {
            self.write_record(active, rec, true)?;
        }
        let dropped: Vec<u64> = {
            let mut state = self.state.lock().unwrap();
            let dead: Vec<u64> =
                state.files.keys().copied().take_while(|&s| s < seq && state.index.live_in(s) == 0).collect();
            for s in &dead {
                state.files.remove(s);
                state.index.live.remove(s);
            }
            dead
        };
        for &s in &dropped {
            crate::disk::current().remove_file(&segment::path(&self.dir, s))?;
        }
        if !dropped.is_empty() {
            segment::sync_dir(&self.dir)?;
        }
        metrics::RAFT_LOG_SEGMENTS.set(self.state.lock().unwrap().files.len() as i64);
        tracing::debug!(segment = seq, carried_marks = marks.len(), dropped = ?dropped, "raft log segment started");
        Ok(())
    }

    /// The oldest segment the log needs once segment `active + 1` has
    /// started with its carry (everything live before `cutoff` carried
    /// into it): the first that keeps live entries, which is where the
    /// deletion of the dead prefix stops. Never older than the run of
    /// segments present up to `active`, so a replay that finds one missing
    /// after it knows the log lost it.
    fn oldest_needed(&self, active: u64, cutoff: u64) -> u64 {
        let state = self.state.lock().unwrap();
        let first_live =
            state.files.keys().copied().find(|&s| s >= cutoff && state.index.live_in(s) > 0).unwrap_or(active + 1);
        let mut run_start = active;
        while run_start > 0 && state.files.contains_key(&(run_start - 1)) {
            run_start -= 1;
        }
        first_live.max(run_start)
    }
}
