use proto::{metapb, pdpb};

use super::{Silent, StepReport, StoreWatch};

fn running(steps: &[&str], index: u32) -> pdpb::Operator {
    pdpb::Operator {
        id: 9,
        status: pdpb::OperatorStatus::Running as i32,
        steps: steps.iter().map(|s| s.to_string()).collect(),
        step_index: index,
        ..Default::default()
    }
}

const PLAN: [&str; 5] = ["add learner", "catch up", "promote and demote", "leave joint", "remove source"];

#[test]
fn steps_are_said_once_each_in_order() {
    let mut r = StepReport::default();
    assert_eq!(r.running(&running(&PLAN, 0)), vec!["operator 9: step 1/5: add learner"]);
    assert!(r.running(&running(&PLAN, 0)).is_empty(), "a step already said");
    assert_eq!(
        r.running(&running(&PLAN, 2)),
        vec!["operator 9: step 2/5: catch up", "operator 9: step 3/5: promote and demote"],
        "a step passed between two polls is said too"
    );
    let done = pdpb::Operator { status: pdpb::OperatorStatus::Succeeded as i32, step_index: 4, ..running(&PLAN, 4) };
    assert_eq!(r.finished(&done), vec!["operator 9: step 4/5: leave joint", "operator 9: step 5/5: remove source"]);
}

#[test]
fn a_plan_that_grows_midway_is_said_before_its_steps_are_numbered_against_it() {
    let mut r = StepReport::default();
    r.running(&running(&PLAN, 0));
    r.running(&running(&PLAN, 2));
    // Leadership moved onto the store losing its peer: PD adds a transfer.
    let grown = ["add learner", "catch up", "promote and demote", "transfer leader", "leave joint", "remove source"];
    let lines = r.running(&running(&grown, 3));
    assert_eq!(
        lines,
        vec![
            "operator 9: the region changed under the operator; the plan now has 6 steps, not 5 \
             (new: transfer leader)",
            "operator 9: step 4/6: transfer leader",
        ]
    );
    assert_eq!(r.running(&running(&grown, 4)), vec!["operator 9: step 5/6: leave joint"], "said once");
}

fn store(id: u64, last_heartbeat_ms: u64, route_version: u64) -> pdpb::StoreInfo {
    pdpb::StoreInfo {
        store: Some(metapb::Store { id, state: metapb::StoreState::Up as i32, ..Default::default() }),
        stats: Some(pdpb::StoreStats { route_version, ..Default::default() }),
        last_heartbeat_ms,
        ..Default::default()
    }
}

#[test]
fn a_store_that_stopped_heartbeating_is_named_not_waited_for() {
    let mut w = StoreWatch::default();
    // Stores 1 and 2 heartbeat every 500 ms; store 3 stopped at 1_000.
    let c = w.observe(&[store(1, 10_000, 7), store(2, 10_100, 6), store(3, 1_000, 6)], 7);
    assert_eq!(c.behind, vec![2, 3], "no pace seen yet: the default interval counts");
    assert!(!c.done());
    let c = w.observe(&[store(1, 10_500, 7), store(2, 10_600, 7), store(3, 1_000, 6)], 7);
    assert!(c.done(), "{c:?}");
    assert_eq!(c.converged, vec![1, 2]);
    assert_eq!(c.silent, vec![Silent { store_id: 3, for_ms: 9_600, route_version: 6 }]);
    assert_eq!(
        c.describe(9, 7),
        "operator 9: converged on 2/3 stores; not waiting for store 3 \
         (no heartbeat for 9.6 s, routes at version 6 < 7)"
    );
}

#[test]
fn a_store_between_two_heartbeats_is_waited_for() {
    let mut w = StoreWatch::default();
    w.observe(&[store(1, 1_000, 7), store(2, 1_000, 6)], 7);
    // Heartbeats every 4 s: store 2, 5 s behind store 1, is within three.
    let c = w.observe(&[store(1, 5_000, 7), store(2, 1_000, 6)], 7);
    assert_eq!((c.behind, c.silent), (vec![2], vec![]));
    assert!(!w.observe(&[store(1, 5_000, 7), store(2, 1_000, 6)], 7).done());
    // Before any pace is seen, a store's default interval counts.
    let mut fresh = StoreWatch::default();
    assert_eq!(fresh.observe(&[store(1, 20_000, 7), store(2, 1_000, 6)], 7).behind, vec![2]);
}

#[test]
fn stores_not_up_are_not_counted() {
    let mut w = StoreWatch::default();
    let mut offline = store(3, 10_000, 1);
    offline.store.as_mut().unwrap().state = metapb::StoreState::Offline as i32;
    let c = w.observe(&[store(1, 10_000, 7), offline], 7);
    assert!(c.done());
    assert_eq!(c.describe(9, 7), "operator 9: converged on 1/1 stores");
}

#[test]
fn a_plan_that_grew_between_two_polls_names_the_step_it_gained() {
    let mut r = StepReport::default();
    r.running(&running(&PLAN, 0));
    let grown = ["add learner", "catch up", "promote and demote", "leave the joint", "leave joint", "remove source"];
    let lines = r.running(&running(&grown, 5));
    assert_eq!(
        lines[0],
        "operator 9: the region changed under the operator; the plan now has 6 steps, not 5 (new: leave the joint)"
    );
    assert_eq!(lines.len(), 6, "the notice, then steps 2 to 6: {lines:?}");
}
