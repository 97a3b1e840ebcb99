//! The raft log's index in memory: where each region's live entries are in
//! the segments, its marks, and how many live entries each segment holds
//! (a segment with none, and none older, can go).

use std::collections::{BTreeMap, HashMap};

use super::record::Op;

/// Where an entry's bytes are: segment, offset in it, length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    pub seg: u64,
    pub off: u64,
    pub len: u32,
}

#[derive(Debug, Default)]
pub struct RegionLog {
    pub entries: BTreeMap<u64, Loc>,
    /// Marks by kind, a handful at most.
    pub marks: Vec<(u8, Box<[u8]>)>,
}

impl RegionLog {
    pub fn mark(&self, kind: u8) -> Option<&[u8]> {
        self.marks.iter().find(|(k, _)| *k == kind).map(|(_, v)| &**v)
    }
}

#[derive(Debug, Default)]
pub struct Index {
    pub regions: HashMap<u64, RegionLog>,
    /// Live entries per segment.
    pub live: BTreeMap<u64, u64>,
}

impl Index {
    /// Applies the ops of a record that starts at offset `base` of
    /// segment `seg`; `rec` is the record's bytes.
    pub fn apply(&mut self, ops: &[Op], rec: &[u8], seg: u64, base: u64) {
        for op in ops {
            match *op {
                Op::Append { region, index, at, len } => {
                    let loc = Loc { seg, off: base + u64::from(at), len };
                    let old = self.regions.entry(region).or_default().entries.insert(index, loc);
                    *self.live.entry(seg).or_default() += 1;
                    if let Some(old) = old {
                        self.dead(old.seg, 1);
                    }
                }
                Op::Truncate { region, from } => {
                    if let Some(r) = self.regions.get_mut(&region) {
                        let gone = r.entries.split_off(&from);
                        self.drop_locs(gone.values());
                    }
                }
                Op::Purge { region, upto } => {
                    if let Some(r) = self.regions.get_mut(&region) {
                        let kept = match upto.checked_add(1) {
                            Some(next) => r.entries.split_off(&next),
                            None => BTreeMap::new(),
                        };
                        let gone = std::mem::replace(&mut r.entries, kept);
                        self.drop_locs(gone.values());
                    }
                }
                Op::Clear { region } => {
                    if let Some(r) = self.regions.remove(&region) {
                        self.drop_locs(r.entries.values());
                    }
                }
                Op::Meta { region, kind, at, len } => {
                    let value: Box<[u8]> = rec[at as usize..(at + len) as usize].into();
                    let r = self.regions.entry(region).or_default();
                    match r.marks.iter_mut().find(|(k, _)| *k == kind) {
                        Some(slot) => slot.1 = value,
                        None => r.marks.push((kind, value)),
                    }
                }
            }
        }
    }

    fn drop_locs<'a>(&mut self, locs: impl Iterator<Item = &'a Loc>) {
        for l in locs {
            self.dead(l.seg, 1);
        }
    }

    fn dead(&mut self, seg: u64, n: u64) {
        if let Some(c) = self.live.get_mut(&seg) {
            *c = c.saturating_sub(n);
        }
    }

    /// Live entries in segment `seg`.
    pub fn live_in(&self, seg: u64) -> u64 {
        self.live.get(&seg).copied().unwrap_or(0)
    }
}
