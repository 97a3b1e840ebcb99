//! Golden tests of scheduler decisions: `testdata/split_checker.golden`
//! holds cases of input views and the decisions expected for them (the
//! replica checkers' file is read by `golden_replicas.rs` the same way).
//!
//! Format: a `case <name>` line starts a case. Its input lines follow, then
//! a `----` line, then the expected output up to the next case. Lines
//! starting with `#` are comments, kept as they are. Input lines:
//!
//! ```text
//! config split-size=100B split-keys=10 max-size=150B max-keys=15 max-per-check=4
//! region <id> epoch=<conf_ver>/<version> [stats=<size>/<keys>[@<conf_ver>/<version>]] [no-leader] [busy] [failed]
//! ```
//!
//! `config` overrides the defaults for that case only; sizes take units
//! (`96MiB`). Stats without `@` were measured at the region's epoch.
//!
//! Run with `UPDATE_GOLDEN=1` to rewrite the expected sections from what
//! the checker decides now, then review the diff.

use std::path::PathBuf;

use proto::{metapb, pdpb};

use super::split_checker::{RegionView, check};
use crate::byte_size::ByteSize;
use crate::config::ScheduleConfig;

const SPLIT_CHECKER: &str = "split_checker.golden";

pub(super) struct Case {
    /// The case line and its input lines, verbatim.
    pub(super) input: Vec<String>,
}

pub(super) fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/schedule/testdata").join(name)
}

/// The file's preamble (lines before the first case) and its cases.
pub(super) fn parse(text: &str) -> (Vec<String>, Vec<Case>) {
    let mut preamble = Vec::new();
    let mut cases: Vec<Case> = Vec::new();
    let mut in_output = false;
    for line in text.lines() {
        if line.starts_with("case ") {
            cases.push(Case { input: vec![line.to_string()] });
            in_output = false;
        } else if let Some(case) = cases.last_mut() {
            if line == "----" {
                in_output = true;
            } else if !in_output {
                case.input.push(line.to_string());
            }
        } else {
            preamble.push(line.to_string());
        }
    }
    (preamble, cases)
}

fn epoch(text: &str) -> metapb::RegionEpoch {
    let (conf_ver, version) = text.split_once('/').unwrap_or_else(|| panic!("epoch {text:?} is not conf/version"));
    metapb::RegionEpoch { conf_ver: conf_ver.parse().unwrap(), version: version.parse().unwrap() }
}

fn size(text: &str) -> u64 {
    text.parse::<ByteSize>().unwrap_or_else(|e| panic!("{e}")).bytes()
}

fn config_line(words: &[&str]) -> ScheduleConfig {
    let mut cfg = ScheduleConfig::default();
    for w in words {
        let (k, v) = w.split_once('=').unwrap_or_else(|| panic!("config word {w:?} is not key=value"));
        match k {
            "split-size" => cfg.region_split_size = ByteSize(size(v)),
            "split-keys" => cfg.region_split_keys = v.parse().unwrap(),
            "max-size" => cfg.region_max_size = ByteSize(size(v)),
            "max-keys" => cfg.region_max_keys = v.parse().unwrap(),
            "max-per-check" => cfg.max_splits_per_check = v.parse().unwrap(),
            other => panic!("unknown config key {other:?}"),
        }
    }
    crate::config::check_schedule(&cfg).unwrap_or_else(|e| panic!("{e}"));
    cfg
}

fn region_line(words: &[&str]) -> RegionView {
    let mut r = RegionView { id: words[0].parse().unwrap(), has_leader: true, ..Default::default() };
    let mut stats: Option<(u64, u64, Option<metapb::RegionEpoch>)> = None;
    for w in &words[1..] {
        match w.split_once('=') {
            Some(("epoch", v)) => r.epoch = epoch(v),
            Some(("stats", v)) => {
                let (sk, at) = v.split_once('@').map_or((v, None), |(a, b)| (a, Some(epoch(b))));
                let (s, k) = sk.split_once('/').unwrap_or_else(|| panic!("stats {sk:?} is not size/keys"));
                stats = Some((size(s), k.parse().unwrap(), at));
            }
            None if *w == "no-leader" => r.has_leader = false,
            None if *w == "busy" => r.busy = true,
            None if *w == "failed" => r.failed_at_epoch = true,
            _ => panic!("unknown region word {w:?}"),
        }
    }
    r.stats = stats.map(|(s, k, at)| {
        let stats = pdpb::RegionStats { approximate_size: s, approximate_keys: k, ..Default::default() };
        (stats, at.unwrap_or(r.epoch))
    });
    r
}

/// What the checker decides for one case, one line per split.
fn run_split_checker(case: &Case) -> Vec<String> {
    let mut cfg = ScheduleConfig::default();
    let mut regions = Vec::new();
    for line in &case.input[1..] {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first() {
            None => {}
            Some(w) if w.starts_with('#') => {}
            Some(&"config") => cfg = config_line(&words[1..]),
            Some(&"region") => regions.push(region_line(&words[1..])),
            Some(other) => panic!("unknown input line {other:?} in {}", case.input[0]),
        }
    }
    let decisions = check(&regions, &cfg);
    if decisions.is_empty() {
        return vec!["(none)".into()];
    }
    decisions
        .iter()
        .map(|d| {
            let overdue = if d.overdue { " (overdue)" } else { "" };
            format!(
                "split region {} at epoch {}/{}: {}{overdue}",
                d.region_id, d.epoch.conf_ver, d.epoch.version, d.reason
            )
        })
        .collect()
}

/// The whole file as it should read: preamble, then each case's input and
/// the checker's output.
pub(super) fn render(preamble: &[String], cases: &[Case], run: impl Fn(&Case) -> Vec<String>) -> String {
    let mut out: Vec<String> = preamble.to_vec();
    for case in cases {
        let mut input = case.input.clone();
        while input.last().is_some_and(|l| l.trim().is_empty()) {
            input.pop();
        }
        out.extend(input);
        out.push("----".into());
        out.extend(run(case));
        out.push(String::new());
    }
    out.join("\n")
}

#[test]
fn split_checker_decisions_match_the_golden_file() {
    check_golden_file(SPLIT_CHECKER, run_split_checker);
}

/// Runs every case of the file through `run` and compares (or, with
/// `UPDATE_GOLDEN`, rewrites) the expected sections.
pub(super) fn check_golden_file(name: &str, run: impl Fn(&Case) -> Vec<String>) {
    let file = path(name);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let (preamble, cases) = parse(&text);
    assert!(cases.len() >= 5, "the golden file has too few cases to mean much");
    let want = render(&preamble, &cases, run);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&file, &want).unwrap();
        return;
    }
    if want != text {
        let (old, new) = (text.lines().collect::<Vec<_>>(), want.lines().collect::<Vec<_>>());
        let at = old.iter().zip(&new).position(|(a, b)| a != b).unwrap_or(old.len().min(new.len()));
        panic!(
            "{} differs from the checker's decisions at line {}:\n  file:    {:?}\n  checker: {:?}\n\
             (UPDATE_GOLDEN=1 rewrites it; review the diff)",
            file.display(),
            at + 1,
            old.get(at),
            new.get(at)
        );
    }
}
