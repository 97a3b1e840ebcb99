//! Per-key linearizability checker for the register workload.
//!
//! # What it checks
//! Given a recorded history (operations with invoke/complete times), it decides whether there is a
//! single total order of the operations on each key that respects real time (an operation that
//! completed before another was invoked comes first) and is legal for a register. Keys are checked
//! independently: linearizability is compositional (P-compositionality), and splitting keeps the
//! search small.
//!
//! # The model
//! Each key is a register holding `Option<String>`, initially absent. `Read` observes the value,
//! `Write` sets it, `Delete` clears it and reports whether it existed, and `Cas` sets `value` only
//! if the current value equals `expected`, reporting whether it did.
//!
//! # Outcomes
//! - `Ok`: took effect exactly once between invoke and complete, with the recorded result.
//! - `Fail`: never took effect; dropped.
//! - `Unknown`: took effect once at any instant after its invoke (no upper bound), or never; its
//!   result is ignored. An unknown read constrains nothing and is dropped; other unknown operations
//!   get a return time of +infinity and may stay unlinearized: the search succeeds as soon as every
//!   `Ok` operation is placed.
//!
//! Boundaries are inclusive: an operation invoked at the very nanosecond another completed counts as
//! concurrent with it, so equal timestamps never produce a false violation.
//!
//! # Algorithm
//! Wing & Gong's backtracking search: repeatedly pick a pending operation that no unplaced `Ok`
//! operation precedes in real time, apply it to the model if its result matches, and backtrack when
//! nothing fits. Lowe's memoization prunes configurations seen before; a configuration is the set
//! of placed operations plus the model state. It is recorded when its exploration finishes
//! without success, which also makes the following stronger pruning sound:
//! - Dominance: with the same placed `Ok` operations and the same state, a configuration that has
//!   used a subset of the unknown operations can do everything the other one can (unknown
//!   operations never block anyone), so a failure of the former proves failure of the latter.
//! - Values that no operation can observe (never read, never a CAS `expected`) are collapsed into
//!   one model state, so the state space and the memo are independent of how many such writes exist.
//! - Unknown operations with identical effect on that collapsed model are interchangeable; only the
//!   earliest-invoked unused one of each class is tried (it is a candidate whenever a later one is).
//! - An unknown operation is only tried if it changes the state, and never directly before an
//!   operation whose validity and effect ignore the state (a write, a delete with unknown result):
//!   such an unknown operation could be dropped from any solution.
//!
//! Without these, each pending unknown write multiplies the search at every dead end.
//! The state is stored as the index of a distinct value, and the placed `Ok` set as a bitset keyed
//! by its first gap, so memo keys stay small however long the history is. A state budget bounds
//! the search; exhausting it yields [`Verdict::Unknown`] instead of hanging a CI job.
//!
//! # What it does not do
//! It does not check anything across keys (no multi-key transactions or snapshot reads), does not
//! use client identity for session guarantees (read-your-writes follows from real time only), and
//! the explanation of a violation is the deepest point the search reached, not a minimal history.

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};

/// Default cap on explored configurations per key; realistic histories need far fewer.
pub const DEFAULT_MAX_STATES: usize = 2_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    Fail,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    Read { value: Option<String> },
    Write { value: String },
    Delete { existed: Option<bool> },
    Cas { expected: Option<String>, value: String, succeeded: Option<bool> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub client: usize,
    pub key: String,
    pub op: Op,
    pub invoke: u64,
    pub complete: u64,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub key: String,
    pub explanation: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "linearizability violation on key {:?}:\n{}", self.key, self.explanation)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    Violation(Violation),
    /// The search gave up before reaching a verdict; neither a pass nor a proven violation.
    Unknown {
        key: String,
        reason: String,
    },
}

/// Checks every key with [`DEFAULT_MAX_STATES`].
pub fn check(history: &[Event]) -> Verdict {
    check_with_budget(history, DEFAULT_MAX_STATES)
}

/// Checks every key, exploring at most `max_states` configurations per key. Returns the first
/// violation in key order; failing that, the first key whose search gave up.
pub fn check_with_budget(history: &[Event], max_states: usize) -> Verdict {
    let mut by_key: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for ev in history {
        by_key.entry(ev.key.as_str()).or_default().push(ev);
    }
    let mut gave_up = None;
    for (key, events) in by_key {
        match check_key_with_budget(key, &events, max_states) {
            Verdict::Linearizable => {}
            Verdict::Violation(v) => return Verdict::Violation(v),
            unknown => {
                gave_up.get_or_insert(unknown);
            }
        }
    }
    gave_up.unwrap_or(Verdict::Linearizable)
}

/// Checks one key with [`DEFAULT_MAX_STATES`]; events for other keys are ignored. A search that
/// gives up is reported as an error too, with an explanation saying it is inconclusive.
pub fn check_key(key: &str, events: &[&Event]) -> Result<(), Violation> {
    match check_key_with_budget(key, events, DEFAULT_MAX_STATES) {
        Verdict::Linearizable => Ok(()),
        Verdict::Violation(v) => Err(v),
        Verdict::Unknown { key, reason } => {
            Err(Violation { key, explanation: format!("inconclusive, not a proven violation: {reason}") })
        }
    }
}

/// Checks one key, exploring at most `max_states` configurations; events for other keys are ignored.
pub fn check_key_with_budget(key: &str, events: &[&Event], max_states: usize) -> Verdict {
    let search = Search::new(events.iter().copied().filter(|ev| ev.key == key));
    match search.run(max_states) {
        Run::Linearizable => Verdict::Linearizable,
        Run::Stuck(snap) => Verdict::Violation(Violation { key: key.to_owned(), explanation: search.explain(&snap) }),
        Run::GaveUp(n) => Verdict::Unknown {
            key: key.to_owned(),
            reason: format!(
                "search budget exhausted after {n} configurations ({} acknowledged and {} unknown operations)",
                search.ok.len(),
                search.unk.len()
            ),
        },
    }
}

/// A canonical value: an index into the observable values, or the shared "unobservable" index.
type Val = Option<u32>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Step {
    Read(Val),
    Write(u32),
    /// `None` when the result is not known.
    Delete(Option<bool>),
    Cas {
        expected: Val,
        value: u32,
        succeeded: Option<bool>,
    },
}

impl Step {
    /// The state after this step, or `None` if its recorded result contradicts state `s`.
    fn apply(self, s: Val) -> Option<Val> {
        match self {
            Step::Read(v) => (s == v).then_some(s),
            Step::Write(w) => Some(Some(w)),
            Step::Delete(existed) => existed.is_none_or(|e| e == s.is_some()).then_some(None),
            Step::Cas { expected, value, succeeded } => {
                let hit = s == expected;
                succeeded.is_none_or(|r| r == hit).then_some(if hit { Some(value) } else { s })
            }
        }
    }

    /// Whether validity and resulting state are independent of the prior state.
    fn blind(self) -> bool {
        matches!(self, Step::Write(_) | Step::Delete(None))
    }

    /// Whether applying it in state `s` stores a (possibly identical) value.
    fn stores(self, s: Val) -> bool {
        match self {
            Step::Read(_) => false,
            Step::Write(_) | Step::Delete(_) => true,
            Step::Cas { expected, .. } => s == expected,
        }
    }
}

struct KOp<'a> {
    ev: &'a Event,
    step: Step,
    call: u64,
    ret: u64,
}

/// Unknown operations with the same effect, in invoke order.
struct Class {
    step: Step,
    members: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ref {
    Ok(u32),
    Unk(u32),
}

const RECENT: usize = 8;

/// A node of the search: which operations are placed and the model state after them.
#[derive(Clone)]
struct Config {
    /// First unplaced `Ok` index; all below are placed.
    p: usize,
    /// Placed `Ok` operations as bits, word 0 holding indices from `p / 64 * 64`; no trailing zero
    /// words, so equal sets have equal representations.
    bits: Vec<u64>,
    state: Val,
    /// Reached by an unknown operation, so only state-dependent operations may follow.
    restricted: bool,
    /// (class, members used) for classes with any used, sorted by class; members are always used
    /// earliest-invoked first, so counts identify them.
    used: Vec<(u32, u32)>,
    /// The operation that stored the current value, to show the real value in explanations.
    setter: Option<Ref>,
    recent: [Option<Ref>; RECENT],
}

impl Config {
    fn is_lin(&self, i: usize) -> bool {
        i < self.p || self.bits.get(i / 64 - self.p / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn used(&self, class: usize) -> usize {
        self.used.iter().find(|&&(c, _)| c as usize == class).map_or(0, |&(_, n)| n as usize)
    }

    /// Whether every completion of `other` is also one of `self`; only meaningful for equal keys.
    fn dominates(&self, other: &Config) -> bool {
        (!self.restricted || other.restricted) && self.used.iter().all(|&(c, n)| other.used(c as usize) >= n as usize)
    }

    fn key(&self, buf: &mut Vec<u64>) {
        buf.clear();
        buf.push(self.p as u64);
        buf.push(self.state.map_or(u64::MAX, u64::from));
        buf.extend_from_slice(&self.bits);
    }

    fn push_recent(&mut self, r: Ref) {
        self.recent.rotate_left(1);
        self.recent[RECENT - 1] = Some(r);
    }
}

/// The configurations with a given number of placed `Ok` operations, grouped by key (placed set
/// and state) and kept free of dominated ones.
#[derive(Default)]
struct Level {
    configs: Vec<Option<Config>>,
    index: HashMap<Box<[u64]>, Vec<usize>>,
}

impl Level {
    fn insert(&mut self, cfg: Config, buf: &mut Vec<u64>) -> bool {
        cfg.key(buf);
        if !self.index.contains_key(buf.as_slice()) {
            self.index.insert(buf.as_slice().into(), Vec::new());
        }
        let Some(ids) = self.index.get_mut(buf.as_slice()) else { return false };
        let configs = &mut self.configs;
        if ids.iter().any(|&id| configs[id].as_ref().is_some_and(|old| old.dominates(&cfg))) {
            return false;
        }
        ids.retain(|&id| {
            let dominated = configs[id].as_ref().is_some_and(|old| cfg.dominates(old));
            if dominated {
                configs[id] = None;
            }
            !dominated
        });
        ids.push(configs.len());
        configs.push(Some(cfg));
        true
    }
}

/// The deepest configuration reached, kept to explain a violation.
struct Snapshot {
    placed: usize,
    recent: Vec<Ref>,
    state: Val,
    setter: Option<Ref>,
    pending: Vec<usize>,
    deadline: Option<usize>,
}

enum Run {
    Linearizable,
    Stuck(Snapshot),
    GaveUp(usize),
}

struct Search<'a> {
    ok: Vec<KOp<'a>>,
    unk: Vec<KOp<'a>>,
    classes: Vec<Class>,
    /// Classes applicable in any state (writes, deletes); CAS classes are looked up by `expected`.
    any_state: Vec<usize>,
    by_expected: HashMap<Val, Vec<usize>>,
}

impl<'a> Search<'a> {
    fn new(events: impl Iterator<Item = &'a Event>) -> Self {
        let kept: Vec<&Event> = events
            .filter(|ev| match ev.outcome {
                Outcome::Ok => true,
                Outcome::Fail => false,
                Outcome::Unknown => !matches!(ev.op, Op::Read { .. }),
            })
            .collect();
        // Only values some operation can tell apart need their own state.
        let mut ids: HashMap<&str, u32> = HashMap::new();
        for ev in &kept {
            let observed = match &ev.op {
                Op::Read { value } => value.as_deref(),
                Op::Cas { expected, .. } => expected.as_deref(),
                _ => None,
            };
            if let Some(v) = observed {
                let next = ids.len() as u32;
                ids.entry(v).or_insert(next);
            }
        }
        let unobservable = ids.len() as u32;
        let canon = |v: &str| ids.get(v).copied().unwrap_or(unobservable);

        let (mut ok, mut unk) = (Vec::new(), Vec::new());
        for ev in kept {
            let known = ev.outcome == Outcome::Ok;
            let step = match &ev.op {
                Op::Read { value } => Step::Read(value.as_deref().map(canon)),
                Op::Write { value } => Step::Write(canon(value)),
                Op::Delete { existed } => Step::Delete(existed.filter(|_| known)),
                Op::Cas { expected, value, succeeded } => Step::Cas {
                    expected: expected.as_deref().map(canon),
                    value: canon(value),
                    succeeded: succeeded.filter(|_| known),
                },
            };
            if known {
                ok.push(KOp { ev, step, call: ev.invoke, ret: ev.complete.max(ev.invoke) });
            } else {
                unk.push(KOp { ev, step, call: ev.invoke, ret: u64::MAX });
            }
        }
        ok.sort_by_key(|o| (o.call, o.ret));
        unk.sort_by_key(|o| o.call);

        let mut classes: Vec<Class> = Vec::new();
        let mut index: HashMap<Step, usize> = HashMap::new();
        for (i, u) in unk.iter().enumerate() {
            let c = *index.entry(u.step).or_insert_with(|| {
                classes.push(Class { step: u.step, members: Vec::new() });
                classes.len() - 1
            });
            classes[c].members.push(i);
        }
        let mut any_state = Vec::new();
        let mut by_expected: HashMap<Val, Vec<usize>> = HashMap::new();
        for (c, class) in classes.iter().enumerate() {
            match class.step {
                Step::Cas { expected, .. } => by_expected.entry(expected).or_default().push(c),
                _ => any_state.push(c),
            }
        }
        Search { ok, unk, classes, any_state, by_expected }
    }

    /// Calls `f` for every unplaced `Ok` operation that may go next: invoked no later than the
    /// earliest completion among unplaced `Ok` operations. Returns that bound and its operation.
    fn ok_window(&self, cfg: &Config, mut f: impl FnMut(usize)) -> (u64, Option<usize>) {
        let (mut bound, mut deadline) = (u64::MAX, None);
        let mut i = cfg.p;
        // Sorted by invoke, so the bound can only shrink to the completion of something already
        // visited, and everything visited stays below it.
        while i < self.ok.len() && self.ok[i].call <= bound {
            if !cfg.is_lin(i) {
                if self.ok[i].ret < bound {
                    bound = self.ok[i].ret;
                    deadline = Some(i);
                }
                f(i);
            }
            i += 1;
        }
        (bound, deadline)
    }

    /// Appends the successors of `cfg`.
    fn expand(&self, cfg: &Config, scratch: &mut Vec<usize>, out: &mut Vec<Config>) {
        scratch.clear();
        let mut forced = None;
        let (bound, _) = self.ok_window(cfg, |i| {
            let step = self.ok[i].step;
            // Placing a valid state-preserving operation now loses nothing: any solution that
            // places it later can move it here. This prunes most orderings of reads.
            if forced.is_none() && !step.blind() && step.apply(cfg.state) == Some(cfg.state) {
                forced = Some(i);
            }
            if !cfg.restricted || !step.blind() {
                scratch.push(i);
            }
        });
        if let Some(i) = forced {
            out.extend(self.place(cfg, i));
            return;
        }
        out.extend(scratch.iter().filter_map(|&i| self.place(cfg, i)));
        let any_state = if cfg.restricted { &[][..] } else { &self.any_state };
        let cas = self.by_expected.get(&cfg.state).map_or(&[][..], Vec::as_slice);
        for &c in any_state.iter().chain(cas) {
            let used = cfg.used(c);
            // Only the earliest unused member of a class: it can go wherever a later one can.
            if let Some(&u) = self.classes[c].members.get(used).filter(|&&u| self.unk[u].call <= bound) {
                out.extend(self.use_unknown(cfg, c, used, u));
            }
        }
    }

    fn place(&self, cfg: &Config, i: usize) -> Option<Config> {
        let step = self.ok[i].step;
        let state = step.apply(cfg.state)?;
        let mut next = cfg.clone();
        if step.stores(cfg.state) {
            next.setter = Some(Ref::Ok(i as u32));
        }
        next.state = state;
        next.restricted = false;
        next.push_recent(Ref::Ok(i as u32));
        let base = cfg.p / 64;
        let w = i / 64 - base;
        if w >= next.bits.len() {
            next.bits.resize(w + 1, 0);
        }
        next.bits[w] |= 1 << (i % 64);
        while next.bits.get(next.p / 64 - base).is_some_and(|w| w & (1 << (next.p % 64)) != 0) {
            next.p += 1;
        }
        let drop = (next.p / 64 - base).min(next.bits.len());
        next.bits.drain(..drop);
        while next.bits.last() == Some(&0) {
            next.bits.pop();
        }
        Some(next)
    }

    fn use_unknown(&self, cfg: &Config, c: usize, used: usize, u: usize) -> Option<Config> {
        let state = self.classes[c].step.apply(cfg.state).filter(|&s| s != cfg.state)?;
        let mut next = cfg.clone();
        next.state = state;
        next.restricted = true;
        next.setter = Some(Ref::Unk(u as u32));
        next.push_recent(Ref::Unk(u as u32));
        let count = used as u32 + 1;
        match next.used.binary_search_by_key(&(c as u32), |&(c, _)| c) {
            Ok(at) => next.used[at].1 = count,
            Err(at) => next.used.insert(at, (c as u32, count)),
        }
        Some(next)
    }

    fn snapshot(&self, cfg: &Config, placed: usize) -> Snapshot {
        let mut pending = Vec::new();
        let (_, deadline) = self.ok_window(cfg, |i| pending.push(i));
        let recent = cfg.recent.iter().flatten().copied().collect();
        Snapshot { placed, recent, state: cfg.state, setter: cfg.setter, pending, deadline }
    }

    fn run(&self, max_states: usize) -> Run {
        let total = self.ok.len();
        if total == 0 {
            return Run::Linearizable;
        }
        let root = Config {
            p: 0,
            bits: Vec::new(),
            state: None,
            restricted: false,
            used: Vec::new(),
            setter: None,
            recent: [None; RECENT],
        };
        let (mut buf, mut scratch, mut children) = (Vec::new(), Vec::new(), Vec::new());
        let mut level = Level::default();
        level.insert(root, &mut buf);
        let mut explored = 1;
        for placed in 0..total {
            let mut next = Level::default();
            // Unknown operations add configurations to this same level while it is processed.
            let mut i = 0;
            while i < level.configs.len() {
                if let Some(cfg) = &level.configs[i] {
                    self.expand(cfg, &mut scratch, &mut children);
                }
                i += 1;
                for child in children.drain(..) {
                    if !child.restricted && placed + 1 == total {
                        return Run::Linearizable;
                    }
                    let target = if child.restricted { &mut level } else { &mut next };
                    if target.insert(child, &mut buf) {
                        explored += 1;
                        if explored > max_states {
                            return Run::GaveUp(max_states);
                        }
                    }
                }
            }
            if next.configs.is_empty() {
                let Some(cfg) = level.configs.iter().flatten().next() else { break };
                return Run::Stuck(self.snapshot(cfg, placed));
            }
            level = next;
        }
        Run::Linearizable
    }

    fn event(&self, r: Ref) -> &'a Event {
        match r {
            Ref::Ok(i) => self.ok[i as usize].ev,
            Ref::Unk(u) => self.unk[u as usize].ev,
        }
    }

    fn explain(&self, snap: &Snapshot) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "no linearization exists: at most {} of {} acknowledged operations can be linearized \
             (considering {} operations with unknown outcome)",
            snap.placed,
            self.ok.len(),
            self.unk.len()
        );
        if snap.recent.is_empty() {
            let _ = writeln!(out, "no operation can be linearized first");
        } else {
            let _ = writeln!(out, "end of a longest linearizable prefix, in linearization order:");
            for &r in &snap.recent {
                let _ = writeln!(out, "  {}", describe(self.event(r)));
            }
        }
        let value = match snap.setter.map(|r| self.event(r)) {
            None => "absent (initial)".to_owned(),
            Some(ev) => {
                let v = match &ev.op {
                    Op::Write { value } | Op::Cas { value, .. } => Some(value.as_str()),
                    _ => None,
                };
                format!("{}, set by {}", shown(v), describe(ev))
            }
        };
        let _ = writeln!(out, "value at that point: {value}");
        if let Some(d) = snap.deadline {
            let _ = writeln!(
                out,
                "none of these can be linearized next without a later dead end, and {} completed at {}ns:",
                describe(self.ok[d].ev),
                self.ok[d].ret
            );
        }
        for &i in &snap.pending {
            let note = if self.ok[i].step.apply(snap.state).is_none() { " <- contradicts that value" } else { "" };
            let _ = writeln!(out, "  {}{note}", describe(self.ok[i].ev));
        }
        out
    }
}

fn shown(v: Option<&str>) -> String {
    v.map_or_else(|| "absent".to_owned(), |v| format!("{v:?}"))
}

/// One operation for humans: client, operation, result and times.
fn describe(ev: &Event) -> String {
    let known = ev.outcome == Outcome::Ok;
    let op = match &ev.op {
        Op::Read { value } => format!("read -> {}", shown(value.as_deref())),
        Op::Write { value } => format!("write {value:?}"),
        Op::Delete { existed: Some(e) } if known => format!("delete (existed: {e})"),
        Op::Delete { .. } => "delete".to_owned(),
        Op::Cas { expected, value, succeeded } => {
            let result = succeeded.filter(|_| known).map_or(String::new(), |s| format!(" (succeeded: {s})"));
            format!("cas {} -> {value:?}{result}", shown(expected.as_deref()))
        }
    };
    match ev.outcome {
        Outcome::Ok => format!("client {} {op} [ok, {}ns..{}ns]", ev.client, ev.invoke, ev.complete),
        Outcome::Fail => format!("client {} {op} [failed, {}ns..{}ns]", ev.client, ev.invoke, ev.complete),
        Outcome::Unknown => format!("client {} {op} [unknown outcome, invoked {}ns]", ev.client, ev.invoke),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    use std::time::Instant;

    fn ev(client: usize, op: Op, invoke: u64, complete: u64) -> Event {
        Event { client, key: "k".to_owned(), op, invoke, complete, outcome: Outcome::Ok }
    }
    fn write(c: usize, v: &str, i: u64, e: u64) -> Event {
        ev(c, Op::Write { value: v.to_owned() }, i, e)
    }
    fn read(c: usize, v: Option<&str>, i: u64, e: u64) -> Event {
        ev(c, Op::Read { value: v.map(str::to_owned) }, i, e)
    }
    fn delete(c: usize, existed: bool, i: u64, e: u64) -> Event {
        ev(c, Op::Delete { existed: Some(existed) }, i, e)
    }
    fn cas(c: usize, expected: Option<&str>, v: &str, ok: bool, i: u64, e: u64) -> Event {
        let op = Op::Cas { expected: expected.map(str::to_owned), value: v.to_owned(), succeeded: Some(ok) };
        ev(c, op, i, e)
    }
    fn unknown(e: Event) -> Event {
        Event { outcome: Outcome::Unknown, ..e }
    }
    fn failed(e: Event) -> Event {
        Event { outcome: Outcome::Fail, ..e }
    }
    fn accept(h: &[Event]) {
        assert_eq!(check(h), Verdict::Linearizable, "{h:#?}");
    }
    fn reject(h: &[Event]) -> Violation {
        match check(h) {
            Verdict::Violation(v) => v,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn rejects_stale_read_after_acknowledged_write() {
        let v = reject(&[write(0, "v1", 0, 10), write(0, "v2", 20, 30), read(1, Some("v1"), 40, 50)]);
        assert!(v.explanation.contains("client 1 read -> \"v1\""), "{v}");
        assert!(v.to_string().contains("\"k\""));
    }

    #[test]
    fn rejects_lost_acknowledged_write() {
        reject(&[write(0, "v1", 0, 10), read(1, None, 20, 30), read(2, None, 40, 50)]);
    }

    #[test]
    fn rejects_old_value_resurfacing() {
        let h =
            [write(0, "v1", 0, 10), write(0, "v2", 20, 30), read(1, Some("v2"), 40, 50), read(1, Some("v1"), 60, 70)];
        reject(&h);
    }

    #[test]
    fn rejects_read_of_value_never_written() {
        reject(&[read(0, Some("ghost"), 0, 10)]);
        reject(&[write(0, "v1", 0, 10), read(1, Some("ghost"), 5, 20)]);
        // A failed write never took effect; an unknown one cannot be seen before its invoke.
        reject(&[failed(write(0, "v1", 0, 10)), read(1, Some("v1"), 20, 30)]);
        reject(&[read(0, Some("v1"), 0, 10), unknown(write(1, "v1", 20, 30))]);
    }

    #[test]
    fn rejects_impossible_cas_and_delete() {
        reject(&[write(0, "v1", 0, 10), cas(1, Some("v0"), "v2", true, 20, 30)]);
        reject(&[write(0, "v1", 0, 10), cas(1, None, "v2", true, 20, 30)]);
        reject(&[write(0, "v1", 0, 10), cas(1, Some("v1"), "v2", false, 20, 30)]);
        reject(&[delete(0, true, 0, 10)]);
        reject(&[write(0, "v1", 0, 10), delete(1, false, 20, 30)]);
    }

    #[test]
    fn rejects_new_then_old_inversion() {
        reject(&[write(0, "v1", 0, 100), read(1, Some("v1"), 10, 20), read(2, None, 30, 40)]);
        // Two concurrent CASes from the same expected value cannot both succeed.
        reject(&[cas(0, None, "a", true, 0, 10), cas(1, None, "b", true, 0, 10)]);
    }

    #[test]
    fn accepts_concurrent_write_and_read_in_either_order() {
        accept(&[write(0, "v1", 0, 100), read(1, None, 10, 20)]);
        accept(&[write(0, "v1", 0, 100), read(1, Some("v1"), 10, 20)]);
        accept(&[write(0, "v1", 0, 100), read(1, Some("v1"), 10, 20), read(2, Some("v1"), 30, 40)]);
        accept(&[read(1, Some("v1"), 10, 20), write(0, "v1", 15, 100), read(2, None, 0, 12)]);
        // Equal boundaries are concurrent.
        accept(&[write(0, "v1", 0, 10), read(1, None, 10, 20)]);
        accept(&[write(0, "a", 0, 10), write(1, "b", 5, 15), read(2, Some("a"), 20, 30), read(2, Some("a"), 40, 50)]);
    }

    #[test]
    fn accepts_unknown_writes_with_or_without_effect() {
        accept(&[unknown(write(0, "v1", 0, 10)), read(1, Some("v1"), 20, 30)]);
        accept(&[unknown(write(0, "v1", 0, 10)), read(1, None, 20, 30), read(1, None, 100, 110)]);
        let late = [
            write(0, "v1", 0, 10),
            unknown(write(1, "v2", 20, 30)),
            read(2, Some("v1"), 40, 50),
            read(2, Some("v1"), 1_000, 1_010),
            read(2, Some("v2"), 1_000_000, 1_000_010),
            read(0, Some("v2"), 1_000_020, 1_000_030),
        ];
        accept(&late);
        // Once observed and overwritten it cannot come back: it takes effect at most once.
        let mut twice = late.to_vec();
        twice.extend([write(0, "v3", 2_000_000, 2_000_010), read(1, Some("v2"), 2_000_020, 2_000_030)]);
        reject(&twice);
        accept(&[failed(write(0, "v1", 0, 10)), read(1, None, 20, 30)]);
    }

    #[test]
    fn accepts_cas_chains_and_deletes() {
        accept(&[
            write(0, "a", 0, 10),
            cas(1, Some("a"), "b", true, 20, 30),
            cas(2, Some("a"), "x", false, 25, 35),
            cas(0, Some("b"), "c", true, 40, 50),
            read(1, Some("c"), 60, 70),
        ]);
        accept(&[cas(0, None, "a", true, 0, 10), cas(1, None, "b", false, 0, 10), read(2, Some("a"), 20, 30)]);
        accept(&[
            write(0, "a", 0, 10),
            delete(1, true, 20, 30),
            delete(2, false, 40, 50),
            read(0, None, 60, 70),
            write(1, "b", 80, 90),
            delete(0, true, 85, 95),
            read(2, None, 100, 110),
        ]);
        let unknown_cas = Event {
            outcome: Outcome::Unknown,
            ..ev(1, Op::Cas { expected: Some("a".into()), value: "b".into(), succeeded: None }, 20, 30)
        };
        accept(&[write(0, "a", 0, 10), unknown_cas.clone(), read(2, Some("b"), 100, 110)]);
        accept(&[write(0, "a", 0, 10), unknown(delete(1, true, 20, 30)), read(2, None, 100, 110)]);
        reject(&[write(0, "z", 0, 10), unknown_cas, read(2, Some("b"), 100, 110)]);
    }

    #[test]
    fn reports_first_violating_key_in_key_order() {
        let on = |key: &str, e: Event| Event { key: key.to_owned(), ..e };
        let h = [
            on("b", read(0, Some("nope"), 0, 10)),
            on("c", write(0, "x", 0, 10)),
            on("a", write(0, "x", 0, 10)),
            on("a", read(1, None, 20, 30)),
        ];
        match check(&h) {
            Verdict::Violation(v) => assert_eq!(v.key, "a"),
            other => panic!("{other:?}"),
        }
        let events: Vec<&Event> = h.iter().collect();
        assert!(check_key("c", &events).is_ok());
        assert!(check_key("b", &events).is_err());
    }

    /// splitmix64: tiny, seedable, good enough to drive a simulation.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn percent(&mut self, p: u64) -> bool {
            self.below(100) < p
        }
    }

    #[derive(Clone, Copy)]
    struct Gen {
        clients: usize,
        ops_per_client: usize,
        keys: u64,
        unknown_pct: u64,
        long_pct: u64,
    }

    /// Simulates clients against a correct register: each operation takes effect at a random
    /// instant inside its interval (unknown ones: half of them never), so the history is linearizable.
    fn generate(seed: u64, g: Gen) -> Vec<Event> {
        struct Pending {
            event: Event,
            key: usize,
            applies: bool,
        }
        let mut rng = Rng(seed);
        let mut store: Vec<Option<String>> = vec![None; g.keys as usize];
        let mut seen: Vec<Vec<Option<String>>> = vec![vec![None; g.keys as usize]; g.clients];
        let mut pending: Vec<Option<Pending>> = (0..g.clients).map(|_| None).collect();
        let mut done = vec![0; g.clients];
        let mut queue = BinaryHeap::new();
        for c in 0..g.clients {
            queue.push(Reverse((rng.below(50), 0u8, c)));
        }
        let (mut out, mut fresh) = (Vec::new(), 0u64);
        // Phases at equal times: invoke, then effect, then completion.
        while let Some(Reverse((t, phase, c))) = queue.pop() {
            match phase {
                0 => {
                    let key = rng.below(g.keys) as usize;
                    fresh += 1;
                    let value = format!("v{fresh}");
                    let op = match rng.below(100) {
                        0..35 => Op::Read { value: None },
                        35..65 => Op::Write { value },
                        65..87 => {
                            let expected = if rng.percent(20) { None } else { seen[c][key].clone() };
                            Op::Cas { expected, value, succeeded: None }
                        }
                        _ => Op::Delete { existed: None },
                    };
                    let span = if rng.percent(g.long_pct) { 1 + rng.below(3000) } else { 1 + rng.below(100) };
                    let outcome = if rng.percent(g.unknown_pct) {
                        Outcome::Unknown
                    } else if rng.percent(1) {
                        Outcome::Fail
                    } else {
                        Outcome::Ok
                    };
                    let applies = match outcome {
                        Outcome::Ok => true,
                        Outcome::Fail => false,
                        Outcome::Unknown => rng.percent(50),
                    };
                    let event =
                        Event { client: c, key: format!("key{key}"), op, invoke: t, complete: t + span, outcome };
                    pending[c] = Some(Pending { event, key, applies });
                    queue.push(Reverse((t + rng.below(span + 1), 1, c)));
                    queue.push(Reverse((t + span, 2, c)));
                }
                1 => {
                    let Some(p) = pending[c].as_mut().filter(|p| p.applies) else { continue };
                    let cell = &mut store[p.key];
                    match &mut p.event.op {
                        Op::Read { value } => value.clone_from(cell),
                        Op::Write { value } => *cell = Some(value.clone()),
                        Op::Delete { existed } => *existed = Some(cell.take().is_some()),
                        Op::Cas { expected, value, succeeded } => {
                            let hit = cell == expected;
                            if hit {
                                *cell = Some(value.clone());
                            }
                            *succeeded = Some(hit);
                        }
                    }
                }
                _ => {
                    let Some(p) = pending[c].take() else { continue };
                    if p.event.outcome == Outcome::Ok {
                        let known = &mut seen[c][p.key];
                        match &p.event.op {
                            Op::Read { value } => known.clone_from(value),
                            Op::Write { value } | Op::Cas { value, succeeded: Some(true), .. } => {
                                *known = Some(value.clone())
                            }
                            Op::Delete { .. } => *known = None,
                            Op::Cas { .. } => {}
                        }
                    }
                    out.push(p.event);
                    done[c] += 1;
                    if done[c] < g.ops_per_client {
                        queue.push(Reverse((t + rng.below(20), 0, c)));
                    }
                }
            }
        }
        out
    }

    /// Makes one acknowledged read return a value that was certainly overwritten before it began:
    /// `w1` completed before `w2` was invoked, `w2` completed before the read was invoked, and
    /// values are unique, so nothing can write `w1`'s value again.
    fn corrupt_one_read(h: &mut [Event]) -> bool {
        let is_ok_write = |e: &Event| e.outcome == Outcome::Ok && matches!(e.op, Op::Write { .. });
        for idx in (h.len() / 2..h.len()).chain(0..h.len() / 2) {
            let r = &h[idx];
            if r.outcome != Outcome::Ok || !matches!(r.op, Op::Read { .. }) {
                continue;
            }
            let same_key = |e: &&Event| e.key == r.key && is_ok_write(e);
            let Some(w2) = h.iter().filter(same_key).filter(|e| e.complete < r.invoke).max_by_key(|e| e.complete)
            else {
                continue;
            };
            let Some(w1) = h.iter().filter(same_key).filter(|e| e.complete < w2.invoke).max_by_key(|e| e.complete)
            else {
                continue;
            };
            let Op::Write { value } = &w1.op else { continue };
            h[idx].op = Op::Read { value: Some(value.clone()) };
            return true;
        }
        false
    }

    const SMALL: Gen = Gen { clients: 4, ops_per_client: 150, keys: 3, unknown_pct: 4, long_pct: 3 };

    #[test]
    fn accepts_generated_correct_histories() {
        for seed in 0..60 {
            let g = match seed % 3 {
                0 => SMALL,
                1 => Gen { keys: 1, unknown_pct: 15, ..SMALL },
                _ => Gen { clients: 8, keys: 1, long_pct: 10, ..SMALL },
            };
            let h = generate(seed, g);
            assert_eq!(check(&h), Verdict::Linearizable, "seed {seed}");
        }
    }

    #[test]
    fn accepts_large_generated_histories_quickly() {
        let g = Gen { clients: 5, ops_per_client: 3000, keys: 1, unknown_pct: 4, long_pct: 2 };
        for seed in [1, 2, 3] {
            let h = generate(seed, g);
            let start = Instant::now();
            assert_eq!(check(&h), Verdict::Linearizable, "seed {seed}");
            eprintln!("seed {seed}: {} events checked in {:?}", h.len(), start.elapsed());
        }
    }

    #[test]
    fn rejects_generated_history_with_one_stale_read() {
        for seed in 0..30 {
            let mut h = generate(seed, Gen { keys: 1, ..SMALL });
            assert!(corrupt_one_read(&mut h), "seed {seed}: nothing to corrupt");
            assert!(matches!(check(&h), Verdict::Violation(_)), "seed {seed}");
        }
        let mut h = generate(7, Gen { clients: 5, ops_per_client: 3000, keys: 1, unknown_pct: 4, long_pct: 2 });
        assert!(corrupt_one_read(&mut h));
        let start = Instant::now();
        let verdict = check(&h);
        eprintln!("large corrupted history rejected in {:?}", start.elapsed());
        match verdict {
            Verdict::Violation(v) => eprintln!("{v}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn gives_up_when_budget_is_exhausted() {
        let h = generate(5, Gen { keys: 1, ..SMALL });
        match check_with_budget(&h, 10) {
            Verdict::Unknown { key, reason } => assert!(key == "key0" && reason.contains("budget"), "{reason}"),
            other => panic!("{other:?}"),
        }
        let events: Vec<&Event> = h.iter().collect();
        assert!(check_key_with_budget("key0", &events, 10) != Verdict::Linearizable);
        assert_eq!(check_key_with_budget("key0", &events, DEFAULT_MAX_STATES), Verdict::Linearizable);
    }
}
