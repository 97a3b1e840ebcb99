//! One group-commit batch's writes to the raft log, gathered as the record
//! they will be written as. Reads of a mark through the batch see the
//! batch's own writes first.

use std::cell::RefCell;
use std::io;
use std::sync::Arc;

use super::LogEngine;
use super::record::{Op, RecordBuf};

pub struct LogBatch {
    engine: Arc<LogEngine>,
    rec: RefCell<RecordBuf>,
}

impl LogBatch {
    pub(super) fn new(engine: Arc<LogEngine>) -> LogBatch {
        LogBatch { engine, rec: RefCell::default() }
    }

    pub fn append(&self, region: u64, index: u64, entry: &[u8]) {
        self.rec.borrow_mut().append(region, index, entry);
    }

    /// Drops the region's entries at `from` and after.
    pub fn truncate(&self, region: u64, from: u64) {
        self.rec.borrow_mut().truncate(region, from);
    }

    /// Drops the region's entries up to `upto`, inclusive.
    pub fn purge(&self, region: u64, upto: u64) {
        self.rec.borrow_mut().purge(region, upto);
    }

    /// Drops the region's entries and marks.
    pub fn clear(&self, region: u64) {
        self.rec.borrow_mut().clear(region);
    }

    pub fn put_meta(&self, region: u64, kind: u8, value: &[u8]) {
        self.rec.borrow_mut().meta(region, kind, value);
    }

    /// The region's mark of `kind` as this batch leaves it.
    pub fn meta(&self, region: u64, kind: u8) -> Option<Vec<u8>> {
        let rec = self.rec.borrow();
        for op in rec.ops.iter().rev() {
            match *op {
                Op::Meta { region: r, kind: k, at, len } if r == region && k == kind => {
                    return Some(rec.bytes[at as usize..(at + len) as usize].to_vec());
                }
                Op::Clear { region: r } if r == region => return None,
                _ => {}
            }
        }
        self.engine.meta(region, kind)
    }

    /// Appends the batch to its log as one record, synced when `sync`; an
    /// empty batch writes nothing (but `sync` still makes earlier writes
    /// durable).
    ///
    /// # Errors
    ///
    /// The write's or sync's failure, after which the log refuses every
    /// write.
    pub fn commit(self, sync: bool) -> io::Result<()> {
        self.engine.commit_record(self.rec.into_inner(), sync)
    }
}
