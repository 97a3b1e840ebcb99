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

/// A mark's bytes fit in place up to this: a vote or a log id encodes in
/// well under it.
const INLINE: usize = 30;
/// Marks kept in place per region; the store sets three kinds.
const SLOTS: usize = 3;

/// A mark's bytes, in place when they fit: a region's marks then cost no
/// allocation of their own. With 10,000 idle regions, three boxed marks
/// each were small allocations scattered through the heap that kept its
/// pages resident.
#[derive(Debug, Clone)]
pub enum Mark {
    Inline(u8, [u8; INLINE]),
    Boxed(Box<[u8]>),
}

impl Mark {
    fn new(v: &[u8]) -> Mark {
        if v.len() <= INLINE {
            let mut b = [0; INLINE];
            b[..v.len()].copy_from_slice(v);
            Mark::Inline(v.len() as u8, b)
        } else {
            Mark::Boxed(v.into())
        }
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            Mark::Inline(n, b) => &b[..*n as usize],
            Mark::Boxed(b) => b,
        }
    }
}

#[derive(Debug, Default)]
pub struct RegionLog {
    pub entries: BTreeMap<u64, Loc>,
    /// Marks by kind: the first [`SLOTS`] kinds in place, any more after.
    slots: [Option<(u8, Mark)>; SLOTS],
    more: Vec<(u8, Mark)>,
}

impl RegionLog {
    pub fn mark(&self, kind: u8) -> Option<&[u8]> {
        self.marks().find(|(k, _)| *k == kind).map(|(_, v)| v)
    }

    /// Every mark, with its kind.
    pub fn marks(&self) -> impl Iterator<Item = (u8, &[u8])> {
        self.slots.iter().flatten().chain(&self.more).map(|(k, m)| (*k, m.bytes()))
    }

    pub fn has_marks(&self) -> bool {
        self.slots.iter().any(Option::is_some) || !self.more.is_empty()
    }

    fn set_mark(&mut self, kind: u8, value: &[u8]) {
        let mark = Mark::new(value);
        if let Some(slot) = self.slots.iter_mut().flatten().chain(&mut self.more).find(|(k, _)| *k == kind) {
            slot.1 = mark;
        } else if let Some(free) = self.slots.iter_mut().find(|s| s.is_none()) {
            *free = Some((kind, mark));
        } else {
            self.more.push((kind, mark));
        }
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
                    let value = &rec[at as usize..(at + len) as usize];
                    self.regions.entry(region).or_default().set_mark(kind, value);
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
