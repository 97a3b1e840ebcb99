//! The controller's rules: one running operator per region, cancel and
//! finish end it once, finished ones stay listed.

use std::time::Instant;

use proto::pdpb;

use super::Operators;
use crate::error::PdError;

fn split(id: u64, region_id: u64) -> pdpb::Operator {
    pdpb::Operator {
        id,
        region_id,
        status: pdpb::OperatorStatus::Running as i32,
        source: "admin".into(),
        ..Default::default()
    }
}

#[test]
fn one_operator_per_region() {
    let ops = Operators::default();
    ops.add(split(1, 4), Instant::now()).unwrap();
    assert!(
        matches!(ops.add(split(2, 4), Instant::now()), Err(PdError::OperatorExists(m)) if m.contains("operator 1"))
    );
    assert!(ops.ensure_free(4).is_err());
    ops.add(split(3, 5), Instant::now()).unwrap();
    assert_eq!(ops.list(false).len(), 2);
    assert!(ops.finish(1, pdpb::OperatorStatus::Succeeded, None));
    assert!(!ops.finish(1, pdpb::OperatorStatus::Failed, None), "an operator ends once");
    ops.add(split(6, 4), Instant::now()).unwrap();
    assert_eq!(ops.list(false).iter().map(|o| o.id).collect::<Vec<_>>(), vec![3, 6]);
    assert_eq!(ops.list(true).len(), 3);
}

#[test]
fn cancel_ends_a_running_operator_only() {
    let ops = Operators::default();
    ops.add(split(1, 4), Instant::now()).unwrap();
    let op = ops.cancel(1).unwrap();
    assert_eq!(op.status, pdpb::OperatorStatus::Cancelled as i32);
    assert!(op.finished_ms > 0);
    assert!(matches!(ops.cancel(1), Err(PdError::InvalidArgument(_))));
    assert!(matches!(ops.cancel(9), Err(PdError::OperatorNotFound(9))));
    assert!(ops.update(1, |o| o.step = "late".into()).is_none(), "an ended operator does not change");
    ops.add(split(2, 4), Instant::now()).unwrap();
}

#[test]
fn refusals_wait_for_their_operator() {
    let ops = Operators::default();
    ops.add(split(1, 4), Instant::now()).unwrap();
    ops.refused(1, pdpb::Error { r#type: pdpb::ErrorType::StaleEpoch as i32, message: "old".into(), leader: None });
    ops.refused(9, pdpb::Error::default());
    assert_eq!(ops.take_refusal(1).unwrap().message, "old");
    assert!(ops.take_refusal(1).is_none());
    assert!(ops.take_refusal(9).is_none());
    ops.drop_all("leadership moved");
    assert_eq!(ops.get(1).unwrap().op.status, pdpb::OperatorStatus::Failed as i32);
}
