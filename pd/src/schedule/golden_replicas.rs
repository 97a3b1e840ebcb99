//! Golden tests of the replica checkers: `testdata/replica_checks.golden`
//! holds cluster views and the plans [`check_all`] makes for them. The file
//! format (cases, `----`, comments, `UPDATE_GOLDEN=1`) is `golden.rs`'s;
//! the input lines are:
//!
//! ```text
//! config max-replicas=3 max-plans=4
//! store <id> up|offline|tombstone [down]
//! region <id> peers=<store>[<role>],... [busy]
//! ```
//!
//! A peer's role is a suffix on its store id: none for a voter, `L` for a
//! learner, `I` for an incoming voter, `D` for a demoting voter. `busy`:
//! an operator holds the region. Defaults: 3 replicas, 4 plans.
//!
//! Output: one line per plan in the order made (`<checker>: <plan>`), then
//! one per skipped region, then one per store ready for Tombstone.

use proto::metapb::{PeerRole, StoreState};

use super::cluster::{ClusterView, PeerView, RegionView, StoreView};
use super::golden::{Case, check_golden_file};
use super::replica_checks::check_all;

const REPLICA_CHECKS: &str = "replica_checks.golden";

fn peer(text: &str) -> PeerView {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let store_id = text[..digits].parse().unwrap_or_else(|_| panic!("peer {text:?} has no store id"));
    let role = match &text[digits..] {
        "" => PeerRole::Voter,
        "L" => PeerRole::Learner,
        "I" => PeerRole::IncomingVoter,
        "D" => PeerRole::DemotingVoter,
        other => panic!("unknown peer role {other:?} in {text:?}"),
    };
    PeerView { store_id, role }
}

fn store_line(view: &mut ClusterView, words: &[&str]) {
    let id: u64 = words[0].parse().unwrap_or_else(|_| panic!("store id {:?}", words[0]));
    let state = match words.get(1).copied() {
        Some("up") => StoreState::Up,
        Some("offline") => StoreState::Offline,
        Some("tombstone") => StoreState::Tombstone,
        other => panic!("store {id}: unknown state {other:?}"),
    };
    let down = match words.get(2).copied() {
        None => false,
        Some("down") => true,
        Some(other) => panic!("store {id}: unknown word {other:?}"),
    };
    view.stores.insert(id, StoreView { id, state, down });
}

fn region_line(view: &mut ClusterView, words: &[&str]) {
    let id: u64 = words[0].parse().unwrap_or_else(|_| panic!("region id {:?}", words[0]));
    let mut peers = Vec::new();
    for w in &words[1..] {
        match w.split_once('=') {
            Some(("peers", v)) => peers = v.split(',').map(peer).collect(),
            None if *w == "busy" => {
                view.busy.insert(id);
            }
            _ => panic!("region {id}: unknown word {w:?}"),
        }
    }
    view.regions.insert(id, RegionView { id, peers });
}

/// What the checkers decide for one case.
fn run_replica_checks(case: &Case) -> Vec<String> {
    let mut view = ClusterView { max_replicas: 3, ..Default::default() };
    let mut max_plans = 4;
    for line in &case.input[1..] {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first() {
            None => {}
            Some(w) if w.starts_with('#') => {}
            Some(&"config") => {
                for w in &words[1..] {
                    match w.split_once('=') {
                        Some(("max-replicas", v)) => view.max_replicas = v.parse().unwrap(),
                        Some(("max-plans", v)) => max_plans = v.parse().unwrap(),
                        _ => panic!("unknown config word {w:?}"),
                    }
                }
            }
            Some(&"store") => store_line(&mut view, &words[1..]),
            Some(&"region") => region_line(&mut view, &words[1..]),
            Some(other) => panic!("unknown input line {other:?} in {}", case.input[0]),
        }
    }
    let out = check_all(&view, max_plans);
    let mut lines: Vec<String> = out.plans.iter().map(|p| format!("{}: {}", p.checker, p.plan)).collect();
    lines.extend(out.skipped.iter().map(|(checker, s)| format!("{checker}: skip {s}")));
    lines.extend(out.ready_for_tombstone.iter().map(|id| format!("decommission: store {id} is ready for Tombstone")));
    if lines.is_empty() {
        lines.push("(none)".into());
    }
    lines
}

#[test]
fn replica_checker_plans_match_the_golden_file() {
    check_golden_file(REPLICA_CHECKS, run_replica_checks);
}
