//! Per-key linearizability checker for the register workload.
//!
//! # What it checks
//! Whether the operations on each key can be put in one total order that respects real time (an
//! operation that completed before another was invoked comes first) and is legal for a register.
//! Keys are independent registers, and linearizability is compositional, so each key is checked
//! on its own, which keeps every search small.
//!
//! # The model
//! A register holding `Option<String>`, initially absent. `Read` observes the value, `Write` sets
//! it, `Delete` clears it and reports whether it existed, `Cas` sets `value` only if the current
//! value equals `expected` and reports whether it did.
//!
//! # Outcomes
//! - `Ok`: took effect exactly once between invoke and complete, with the recorded result.
//! - `Fail`: never took effect; dropped.
//! - `Unknown`: took effect once at any instant after its invoke (no upper bound), or never; its
//!   result is ignored. An unknown read constrains nothing and is dropped. Other unknown operations
//!   never complete, so they block nobody and need not be placed: a search succeeds once every
//!   `Ok` operation is placed, and leaving an unknown operation out means it never took effect.
//!
//! Interval bounds are inclusive: an operation invoked at the nanosecond another completed counts
//! as concurrent with it, so coarse or equal timestamps cannot produce a false violation.
//!
//! # Algorithm
//! Wing & Gong's search space: a configuration is the set of placed operations plus the model
//! state; a successor places a pending operation that no unplaced `Ok` operation precedes in real
//! time and whose recorded result the model confirms. Lowe's memoization keys configurations by
//! (placed bitset, state), so none is expanded twice. Two searches share that space:
//! 1. Depth-first backtracking, remembering configurations whose every successor failed. On
//!    linearizable histories it needs about two configurations per operation. It gets a bounded
//!    share of the budget.
//! 2. If that runs out (in practice: no linearization exists and many unknown operations are
//!    pending), a level-by-level search over the number of placed `Ok` operations.
//!
//! Pruning, all of it exact:
//! - Dominance: with equal placed `Ok` set and state, a configuration that used a subset of the
//!   unknown operations can do whatever the other can, so the other is skipped.
//! - Values no operation can observe (never read, never a CAS `expected`) collapse into one
//!   state, and unknown operations with equal effect on that model form a class of which only the
//!   earliest-invoked unused member is tried (it fits wherever a later one does).
//! - An unknown operation is tried only if it changes the state, and never right before an
//!   operation that ignores the state (a write, a delete of unknown result), since dropping it
//!   from such a solution leaves a solution.
//! - A pending `Ok` operation that is valid now and keeps the state (a read of the current value,
//!   a failed CAS) is placed at once without branching: a solution placing it later can move it.
//!
//! Why two searches: unknown operations can be used in many incomparable ways (an unknown delete
//! here or an unobservable write there). Depth-first often meets a dominated configuration
//! before the one dominating it has failed, and re-explores the rest of the history for each;
//! on a 15,000-operation violation that exceeded millions of configurations. Configurations of
//! different levels never coincide, so a level's memo is complete, and a whole level is known
//! before it is expanded: only non-dominated configurations cost anything. Depth-first is kept
//! because it is several times cheaper when a linearization exists, the common case.
//!
//! States are indices of distinct values (`Option<u32>`), and the placed set is stored from its
//! first unplaced operation on, so memo keys stay a few words however long the history is. A
//! budget of configurations bounds the work; exhausting it yields [`Verdict::Unknown`].
//!
//! # What it does not do
//! Nothing across keys (no multi-key transactions or snapshots); no session guarantees beyond
//! what real time implies; and a violation's explanation is the deepest point the search reached
//! (one of them), not a minimal failing history.

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};

/// Default cap on configurations per key. A 15,000-operation history needs about 30,000 when
/// linearizable and a few hundred thousand to prove a violation.
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
    /// The search gave up: neither a pass nor a proven violation.
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
/// violation in key order, else the first key whose search gave up.
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

/// Checks one key with [`DEFAULT_MAX_STATES`]; events of other keys are ignored. A search that
/// gives up is an error too, whose explanation says it is inconclusive.
pub fn check_key(key: &str, events: &[&Event]) -> Result<(), Violation> {
    match check_key_with_budget(key, events, DEFAULT_MAX_STATES) {
        Verdict::Linearizable => Ok(()),
        Verdict::Violation(v) => Err(v),
        Verdict::Unknown { key, reason } => {
            Err(Violation { key, explanation: format!("inconclusive, not a proven violation: {reason}") })
        }
    }
}

/// Checks one key, exploring at most `max_states` configurations; events of other keys are ignored.
pub fn check_key_with_budget(key: &str, events: &[&Event], max_states: usize) -> Verdict {
    let search = Search::new(events.iter().copied().filter(|ev| ev.key == key));
    match search.run(max_states) {
        Run::Linearizable => Verdict::Linearizable,
        Run::Stuck(deepest) => {
            Verdict::Violation(Violation { key: key.to_owned(), explanation: search.explain(&deepest) })
        }
        Run::GaveUp => Verdict::Unknown {
            key: key.to_owned(),
            reason: format!(
                "search budget of {max_states} configurations exhausted ({} acknowledged, {} unknown operations)",
                search.ok.len(),
                search.unk.len()
            ),
        },
    }
}

/// A value as the search sees it: an index of an observable value, or the shared unobservable one.
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

/// Unknown operations with equal effect, in invoke order.
struct Class {
    step: Step,
    members: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ref {
    Ok(u32),
    Unk(u32),
}

/// How many of the last placed operations a configuration keeps for explanations.
const RECENT: usize = 8;

#[derive(Clone)]
struct Config {
    placed: usize,
    /// First unplaced `Ok` index; all below are placed.
    p: usize,
    /// Placed `Ok` operations, word 0 holding indices from `p / 64 * 64`. No trailing zero words,
    /// so equal sets have equal representations.
    bits: Vec<u64>,
    state: Val,
    /// Reached by an unknown operation, so only state-dependent operations may follow.
    restricted: bool,
    /// Unknown operations used, as bits.
    unk: Vec<u64>,
    /// The operation that stored the current value, to name the real value in explanations.
    setter: Option<Ref>,
    recent: [Option<Ref>; RECENT],
}

impl Config {
    fn is_lin(&self, i: usize) -> bool {
        i < self.p || self.bits.get(i / 64 - self.p / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Whether every completion of `other` is one of `self` too; only meaningful for equal keys.
    fn dominates(&self, other: &Config) -> bool {
        (!self.restricted || other.restricted) && self.unk.iter().zip(&other.unk).all(|(a, b)| a & !b == 0)
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

/// Configurations grouped by key (placed set and state), none dominating another.
#[derive(Default)]
struct Memo {
    configs: Vec<Option<Config>>,
    index: HashMap<Box<[u64]>, Vec<usize>>,
}

impl Memo {
    fn covers(&self, cfg: &Config, buf: &mut Vec<u64>) -> bool {
        cfg.key(buf);
        let ids = self.index.get(buf.as_slice()).map_or(&[][..], Vec::as_slice);
        ids.iter().any(|&id| self.configs[id].as_ref().is_some_and(|old| old.dominates(cfg)))
    }

    /// Adds `cfg` unless covered, dropping what it dominates; returns whether it was added.
    fn insert(&mut self, cfg: Config, buf: &mut Vec<u64>) -> bool {
        if self.covers(&cfg, buf) {
            return false;
        }
        if !self.index.contains_key(buf.as_slice()) {
            self.index.insert(buf.as_slice().into(), Vec::new());
        }
        let Some(ids) = self.index.get_mut(buf.as_slice()) else { return false };
        let configs = &mut self.configs;
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

enum Run {
    Linearizable,
    /// No linearization; the deepest configuration reached.
    Stuck(Config),
    GaveUp,
}

struct Search<'a> {
    ok: Vec<KOp<'a>>,
    unk: Vec<KOp<'a>>,
    classes: Vec<Class>,
    /// Classes applicable in any state (writes, deletes); CAS classes are found by `expected`.
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
            let unused = self.classes[c].members.iter().find(|&&u| cfg.unk[u / 64] & (1 << (u % 64)) == 0);
            if let Some(&u) = unused.filter(|&&u| self.unk[u].call <= bound) {
                out.extend(self.use_unknown(cfg, c, u));
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
        next.placed += 1;
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

    fn use_unknown(&self, cfg: &Config, c: usize, u: usize) -> Option<Config> {
        let state = self.classes[c].step.apply(cfg.state).filter(|&s| s != cfg.state)?;
        let mut next = cfg.clone();
        next.state = state;
        next.restricted = true;
        next.setter = Some(Ref::Unk(u as u32));
        next.push_recent(Ref::Unk(u as u32));
        next.unk[u / 64] |= 1 << (u % 64);
        Some(next)
    }

    fn root(&self) -> Config {
        Config {
            placed: 0,
            p: 0,
            bits: Vec::new(),
            state: None,
            restricted: false,
            unk: vec![0; self.unk.len().div_ceil(64)],
            setter: None,
            recent: [None; RECENT],
        }
    }

    fn run(&self, max_states: usize) -> Run {
        if self.ok.is_empty() {
            return Run::Linearizable;
        }
        let share = (8 * (self.ok.len() + self.unk.len()) + 10_000).min(max_states / 2);
        match self.depth_first(share) {
            Ok(run) => run,
            Err(spent) => self.breadth_first(max_states - spent),
        }
    }

    /// Wing & Gong's backtracking. A configuration is remembered only once all its successors
    /// failed, so being covered by the memo proves failure. `Err(spent)` if the budget ran out.
    fn depth_first(&self, max_states: usize) -> Result<Run, usize> {
        let (mut failed, mut buf, mut scratch) = (Memo::default(), Vec::new(), Vec::new());
        let mut deepest = self.root();
        let (root, mut kids) = (self.root(), Vec::new());
        self.expand(&root, &mut scratch, &mut kids);
        kids.reverse();
        let mut stack = vec![(root, kids)];
        let mut explored = 1;
        while let Some((_, kids)) = stack.last_mut() {
            let Some(child) = kids.pop() else {
                if let Some((cfg, _)) = stack.pop() {
                    // Without a linearization every configuration fails, the deepest included.
                    if cfg.placed > deepest.placed {
                        deepest = cfg.clone();
                    }
                    failed.insert(cfg, &mut buf);
                }
                continue;
            };
            if child.placed == self.ok.len() {
                return Ok(Run::Linearizable);
            }
            if failed.covers(&child, &mut buf) {
                continue;
            }
            explored += 1;
            if explored > max_states {
                return Err(explored - 1);
            }
            let mut kids = Vec::new();
            self.expand(&child, &mut scratch, &mut kids);
            kids.reverse();
            stack.push((child, kids));
        }
        Ok(Run::Stuck(deepest))
    }

    /// Level by level in the number of placed `Ok` operations (see the module docs for why).
    fn breadth_first(&self, max_states: usize) -> Run {
        let (mut level, mut buf, mut scratch, mut children) = (Memo::default(), Vec::new(), Vec::new(), Vec::new());
        level.insert(self.root(), &mut buf);
        let mut explored = 1;
        loop {
            let mut next = Memo::default();
            // Unknown operations add configurations to this same level while it is processed.
            let mut i = 0;
            while i < level.configs.len() {
                if let Some(cfg) = &level.configs[i] {
                    self.expand(cfg, &mut scratch, &mut children);
                }
                i += 1;
                for child in children.drain(..) {
                    if child.placed == self.ok.len() {
                        return Run::Linearizable;
                    }
                    let target = if child.restricted { &mut level } else { &mut next };
                    if target.insert(child, &mut buf) {
                        explored += 1;
                        if explored > max_states {
                            return Run::GaveUp;
                        }
                    }
                }
            }
            if next.configs.is_empty() {
                // A level always keeps a live configuration; should that ever fail, claim nothing.
                return level.configs.into_iter().flatten().next().map_or(Run::GaveUp, Run::Stuck);
            }
            level = next;
        }
    }

    fn event(&self, r: Ref) -> &'a Event {
        match r {
            Ref::Ok(i) => self.ok[i as usize].ev,
            Ref::Unk(u) => self.unk[u as usize].ev,
        }
    }

    fn explain(&self, cfg: &Config) -> String {
        let mut out = format!(
            "no linearization exists: at most {} of {} acknowledged operations can be linearized \
             ({} operations of unknown outcome were available)\n",
            cfg.placed,
            self.ok.len(),
            self.unk.len()
        );
        out.push_str(if cfg.recent.iter().all(Option::is_none) {
            "no operation can be linearized first\n"
        } else {
            "end of a longest linearizable prefix, in order:\n"
        });
        for r in cfg.recent.iter().flatten() {
            let _ = writeln!(out, "  {}", describe(self.event(*r)));
        }
        let value = match cfg.setter.map(|r| self.event(r)) {
            Some(ev @ Event { op: Op::Write { value } | Op::Cas { value, .. }, .. }) => {
                format!("{value:?}, set by {}", describe(ev))
            }
            Some(ev) => format!("absent, deleted by {}", describe(ev)),
            None => "absent (initial)".to_owned(),
        };
        let _ = writeln!(out, "value at that point: {value}");
        let mut pending = Vec::new();
        if let (_, Some(d)) = self.ok_window(cfg, |i| pending.push(i)) {
            let (ev, by) = (describe(self.ok[d].ev), self.ok[d].ret);
            let _ = writeln!(
                out,
                "could come next, but each contradicts that value or leads to dead ends ({ev} is due by {by}ns):"
            );
        }
        for i in pending {
            let note = if self.ok[i].step.apply(cfg.state).is_none() { " <- contradicts that value" } else { "" };
            let _ = writeln!(out, "  {}{note}", describe(self.ok[i].ev));
        }
        out
    }
}

/// One operation for humans: client, operation, result and times.
fn describe(ev: &Event) -> String {
    let known = ev.outcome == Outcome::Ok;
    let shown = |v: &Option<String>| v.as_ref().map_or_else(|| "absent".to_owned(), |v| format!("{v:?}"));
    let op = match &ev.op {
        Op::Read { value } => format!("read -> {}", shown(value)),
        Op::Write { value } => format!("write {value:?}"),
        Op::Delete { existed: Some(e) } if known => format!("delete (existed: {e})"),
        Op::Delete { .. } => "delete".to_owned(),
        Op::Cas { expected, value, succeeded } => {
            let result = succeeded.filter(|_| known).map_or(String::new(), |s| format!(" (succeeded: {s})"));
            format!("cas {} -> {value:?}{result}", shown(expected))
        }
    };
    match ev.outcome {
        Outcome::Ok => format!("client {} {op} [ok, {}ns..{}ns]", ev.client, ev.invoke, ev.complete),
        Outcome::Fail => format!("client {} {op} [failed]", ev.client),
        Outcome::Unknown => format!("client {} {op} [unknown outcome, invoked {}ns]", ev.client, ev.invoke),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    use std::time::Instant;

    /// A history on key "k": `|`-separated `client op args.. invoke complete`, op being `w VALUE`,
    /// `r VALUE`, `d EXISTED` or `c EXPECTED VALUE SUCCEEDED`; `-` is absent or not known, and a
    /// `?` or `!` before the op marks an unknown or failed outcome.
    fn h(spec: &str) -> Vec<Event> {
        let event = |item: &str| {
            let w: Vec<&str> = item.split_whitespace().collect();
            let (num, opt) = (|s: &str| s.parse::<u64>().unwrap(), |s: &str| (s != "-").then(|| s.to_owned()));
            let (outcome, kind) = match w[1].split_at(1) {
                ("?", kind) => (Outcome::Unknown, kind),
                ("!", kind) => (Outcome::Fail, kind),
                _ => (Outcome::Ok, w[1]),
            };
            let op = match kind {
                "w" => Op::Write { value: w[2].to_owned() },
                "r" => Op::Read { value: opt(w[2]) },
                "d" => Op::Delete { existed: w[2].parse().ok() },
                _ => Op::Cas { expected: opt(w[2]), value: w[3].to_owned(), succeeded: w[4].parse().ok() },
            };
            let (invoke, complete) = (num(w[w.len() - 2]), num(w[w.len() - 1]));
            Event { client: num(w[0]) as usize, key: "k".to_owned(), op, invoke, complete, outcome }
        };
        spec.split('|').map(event).collect()
    }
    fn accept(spec: &str) {
        assert_eq!(check(&h(spec)), Verdict::Linearizable, "{spec}");
    }
    fn reject(spec: &str) -> Violation {
        match check(&h(spec)) {
            Verdict::Violation(v) => v,
            other => panic!("expected a violation, got {other:?} for {spec}"),
        }
    }

    #[test]
    fn rejects_stale_read_after_acknowledged_write() {
        let v = reject("0 w v1 0 10 | 0 w v2 20 30 | 1 r v1 40 50");
        assert!(v.explanation.contains("client 1 read -> \"v1\" [ok, 40ns..50ns] <- contradicts"), "{v}");
        assert!(v.explanation.contains("value at that point: \"v2\", set by client 0 write \"v2\""), "{v}");
        assert!(v.to_string().starts_with("linearizability violation on key \"k\""));
    }

    #[test]
    fn rejects_lost_acknowledged_write() {
        reject("0 w v1 0 10 | 1 r - 20 30 | 2 r - 40 50");
    }

    #[test]
    fn rejects_old_value_resurfacing() {
        reject("0 w v1 0 10 | 0 w v2 20 30 | 1 r v2 40 50 | 1 r v1 60 70");
        // New-then-old inversion while the write is still in flight.
        reject("0 w v1 0 100 | 1 r v1 10 20 | 2 r - 30 40");
    }

    #[test]
    fn rejects_read_of_value_never_written() {
        let v = reject("0 r ghost 0 10");
        assert!(v.explanation.contains("no operation can be linearized first"), "{v}");
        reject("0 w v1 0 10 | 1 r ghost 5 20");
        // A failed write never took effect; an unknown one cannot be seen before its invoke.
        reject("0 !w v1 0 10 | 1 r v1 20 30");
        reject("0 r v1 0 10 | 1 ?w v1 20 30");
    }

    #[test]
    fn rejects_impossible_cas_and_delete() {
        reject("0 w v1 0 10 | 1 c v0 v2 true 20 30");
        reject("0 w v1 0 10 | 1 c - v2 true 20 30");
        reject("0 w v1 0 10 | 1 c v1 v2 false 20 30");
        reject("0 c - a true 0 10 | 1 c - b true 0 10");
        reject("0 d true 0 10");
        reject("0 w v1 0 10 | 1 d false 20 30");
    }

    #[test]
    fn accepts_concurrent_write_and_read_in_either_order() {
        accept("0 w v1 0 100 | 1 r - 10 20");
        accept("0 w v1 0 100 | 1 r v1 10 20 | 2 r v1 30 40");
        accept("2 r - 0 12 | 1 r v1 10 20 | 0 w v1 15 100");
        accept("0 w a 0 10 | 1 w b 5 15 | 2 r a 20 30 | 2 r a 40 50");
        // Equal boundaries are concurrent.
        accept("0 w v1 0 10 | 1 r - 10 20");
    }

    #[test]
    fn accepts_unknown_writes_with_or_without_effect() {
        accept("0 ?w v1 0 10 | 1 r v1 20 30");
        accept("0 ?w v1 0 10 | 1 r - 20 30 | 1 r - 100 110");
        accept("0 !w v1 0 10 | 1 r - 20 30");
        let late = "0 w v1 0 10 | 1 ?w v2 20 30 | 2 r v1 40 50 | 2 r v1 1000 1010 | 2 r v2 1000000 1000010";
        accept(late);
        // It takes effect at most once: overwritten, it cannot come back.
        reject(&format!("{late} | 0 w v3 2000000 2000010 | 1 r v2 2000020 2000030"));
    }

    #[test]
    fn accepts_cas_chains_and_deletes() {
        accept("0 w a 0 10 | 1 c a b true 20 30 | 2 c a x false 25 35 | 0 c b c true 40 50 | 1 r c 60 70");
        accept("0 c - a true 0 10 | 1 c - b false 0 10 | 2 r a 20 30");
        accept(
            "0 w a 0 10 | 1 d true 20 30 | 2 d false 40 50 | 0 r - 60 70 | 1 w b 80 90 | 0 d true 85 95 | 2 r - 100 110",
        );
        accept("0 w a 0 10 | 1 ?c a b - 20 30 | 2 r b 100 110");
        reject("0 w z 0 10 | 1 ?c a b - 20 30 | 2 r b 100 110");
        accept("0 w a 0 10 | 1 ?d - 20 30 | 2 r - 100 110");
        reject("0 w a 0 10 | 1 ?d - 20 30 | 2 r - 40 50 | 0 w b 60 70 | 2 r - 80 90");
        accept("0 w a 0 10 | 1 d - 20 30 | 2 r - 40 50");
    }

    #[test]
    fn reports_first_violating_key_in_key_order() {
        let mut history = h("0 r nope 0 10 | 0 w x 0 10 | 0 w x 0 10 | 1 r - 20 30");
        for (e, key) in history.iter_mut().zip(["b", "c", "a", "a"]) {
            e.key = key.to_owned();
        }
        assert!(matches!(check(&history), Verdict::Violation(v) if v.key == "a"));
        let events: Vec<&Event> = history.iter().collect();
        assert!(check_key("c", &events).is_ok());
        assert!(check_key("b", &events).is_err());
    }

    /// splitmix64: tiny, seedable, good enough to drive a simulation.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) % n
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

    const SMALL: Gen = Gen { clients: 4, ops_per_client: 150, keys: 3, unknown_pct: 4, long_pct: 3 };
    const LARGE: Gen = Gen { clients: 5, ops_per_client: 3000, keys: 1, unknown_pct: 4, long_pct: 2 };

    /// Clients against a correct register: each operation takes effect at a random instant of its
    /// interval, unknown ones only half the time, so every generated history is linearizable.
    fn generate(seed: u64, g: Gen) -> Vec<Event> {
        let mut rng = Rng(seed);
        let mut store: Vec<Option<String>> = vec![None; g.keys as usize];
        // What each client last learnt about each key, for its CAS `expected`.
        let mut seen = vec![vec![None::<String>; g.keys as usize]; g.clients];
        let mut pending: Vec<Option<(Event, usize, bool)>> = vec![None; g.clients];
        let mut done = vec![0; g.clients];
        let mut queue: BinaryHeap<_> = (0..g.clients).map(|c| Reverse((rng.below(50), 0u8, c))).collect();
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
                    let span = 1 + if rng.percent(g.long_pct) { rng.below(3000) } else { rng.below(100) };
                    let outcome = match rng.below(100) {
                        n if n < g.unknown_pct => Outcome::Unknown,
                        n if n < g.unknown_pct + 1 => Outcome::Fail,
                        _ => Outcome::Ok,
                    };
                    let applies = outcome == Outcome::Ok || (outcome == Outcome::Unknown && rng.percent(50));
                    let event =
                        Event { client: c, key: format!("key{key}"), op, invoke: t, complete: t + span, outcome };
                    pending[c] = Some((event, key, applies));
                    queue.push(Reverse((t + rng.below(span + 1), 1, c)));
                    queue.push(Reverse((t + span, 2, c)));
                }
                1 => {
                    let Some((event, key, true)) = pending[c].as_mut() else { continue };
                    let cell = &mut store[*key];
                    match &mut event.op {
                        Op::Read { value } => value.clone_from(cell),
                        Op::Write { value } => *cell = Some(value.clone()),
                        Op::Delete { existed } => *existed = Some(cell.take().is_some()),
                        Op::Cas { expected, value, succeeded } => {
                            *succeeded = Some(cell == expected);
                            if cell == expected {
                                *cell = Some(value.clone());
                            }
                        }
                    }
                }
                _ => {
                    let Some((event, key, _)) = pending[c].take() else { continue };
                    if event.outcome == Outcome::Ok {
                        match &event.op {
                            Op::Read { value } => seen[c][key].clone_from(value),
                            Op::Write { value } | Op::Cas { value, succeeded: Some(true), .. } => {
                                seen[c][key] = Some(value.clone())
                            }
                            Op::Delete { .. } => seen[c][key] = None,
                            Op::Cas { .. } => {}
                        }
                    }
                    out.push(event);
                    done[c] += 1;
                    if done[c] < g.ops_per_client {
                        queue.push(Reverse((t + rng.below(20), 0, c)));
                    }
                }
            }
        }
        out
    }

    /// Makes one acknowledged read return a value certainly overwritten before it began: `w1`
    /// completed before `w2` was invoked, `w2` completed before the read was invoked, and values
    /// are unique, so nothing writes `w1`'s value again.
    fn corrupt_one_read(h: &mut [Event]) -> bool {
        let ok_write = |e: &Event| e.outcome == Outcome::Ok && matches!(e.op, Op::Write { .. });
        for idx in (h.len() / 2..h.len()).chain(0..h.len() / 2) {
            let r = &h[idx];
            if r.outcome != Outcome::Ok || !matches!(r.op, Op::Read { .. }) {
                continue;
            }
            let last_before = |t: u64| {
                h.iter().filter(|e| e.key == r.key && ok_write(e) && e.complete < t).max_by_key(|e| e.complete)
            };
            let Some(w2) = last_before(r.invoke) else { continue };
            let Some(Event { op: Op::Write { value }, .. }) = last_before(w2.invoke) else { continue };
            h[idx].op = Op::Read { value: Some(value.clone()) };
            return true;
        }
        false
    }

    #[test]
    fn accepts_generated_correct_histories() {
        for seed in 0..60 {
            let g = match seed % 3 {
                0 => SMALL,
                1 => Gen { keys: 1, unknown_pct: 15, ..SMALL },
                _ => Gen { clients: 8, keys: 1, long_pct: 10, ..SMALL },
            };
            assert_eq!(check(&generate(seed, g)), Verdict::Linearizable, "seed {seed}");
        }
    }

    #[test]
    fn rejects_generated_histories_with_one_stale_read() {
        for seed in 0..30 {
            let mut h = generate(seed, Gen { keys: 1, ..SMALL });
            assert!(corrupt_one_read(&mut h), "seed {seed}: nothing to corrupt");
            assert!(matches!(check(&h), Verdict::Violation(_)), "seed {seed}");
        }
    }

    #[test]
    fn both_searches_agree() {
        for seed in 0..20 {
            let mut h = generate(seed, Gen { keys: 1, unknown_pct: 8, ..SMALL });
            let corrupted = seed % 2 == 1 && corrupt_one_read(&mut h);
            let search = Search::new(h.iter());
            assert_eq!(matches!(search.depth_first(usize::MAX), Ok(Run::Linearizable)), !corrupted, "seed {seed}");
            assert_eq!(matches!(search.breadth_first(usize::MAX), Run::Linearizable), !corrupted, "seed {seed}");
        }
    }

    #[test]
    fn accepts_large_generated_histories_quickly() {
        for seed in [1, 2] {
            let h = generate(seed, LARGE);
            let start = Instant::now();
            assert_eq!(check(&h), Verdict::Linearizable, "seed {seed}");
            eprintln!("seed {seed}: {} events accepted in {:?}", h.len(), start.elapsed());
        }
    }

    #[test]
    fn rejects_large_generated_history_with_one_stale_read() {
        let mut h = generate(7, LARGE);
        assert!(corrupt_one_read(&mut h));
        let start = Instant::now();
        let verdict = check(&h);
        eprintln!("{} events rejected in {:?}", h.len(), start.elapsed());
        assert!(matches!(verdict, Verdict::Violation(_)), "{verdict:?}");
    }

    #[test]
    fn gives_up_when_budget_is_exhausted() {
        let h = generate(5, Gen { keys: 1, ..SMALL });
        assert!(
            matches!(check_with_budget(&h, 10), Verdict::Unknown { key, reason } if key == "key0" && reason.contains("budget"))
        );
        let events: Vec<&Event> = h.iter().collect();
        assert!(check_key_with_budget("key0", &events, 10) != Verdict::Linearizable);
        assert_eq!(check_key_with_budget("key0", &events, DEFAULT_MAX_STATES), Verdict::Linearizable);
    }
}
