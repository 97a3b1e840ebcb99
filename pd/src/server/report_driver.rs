//! The tasks that propose region reports in the order the
//! [`ReportQueue`](super::report_queue::ReportQueue) decides, one per region
//! with a proposal in flight, and carry out what each result calls for: an
//! accepted split report goes to the operator driver.

use std::sync::Arc;

use super::context::PdContext;
use super::operator_driver;
use super::report_queue::{self, Offer, Report, Settled};

/// Queues a report for region `key`, starting a task to propose it if none
/// runs for the region.
pub fn submit(ctx: &Arc<PdContext>, key: u64, report: Report) {
    if let Offer::Start(report) = ctx.reports.offer(key, report) {
        tokio::spawn(drain(ctx.clone(), key, report));
    }
}

/// Proposes `report`, then whatever waited for the region meanwhile.
async fn drain(ctx: Arc<PdContext>, key: u64, mut report: Report) {
    loop {
        let res = ctx.propose(report.cmd.clone()).await;
        if let Settled::SplitApplied { directive_id, version } = report_queue::settle(&report, res) {
            operator_driver::split_applied(&ctx, directive_id, version);
        }
        match ctx.reports.next(key) {
            Some(next) => report = next,
            None => return,
        }
    }
}
