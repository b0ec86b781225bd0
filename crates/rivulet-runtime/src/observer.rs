//! A hook for watching a running query from the outside (the live dashboard): the driver
//! calls it with each epoch's result rows and progress record. It is called on the query's
//! blocking thread, so implementations must return quickly (copy what they need, no I/O).

use arrow::record_batch::RecordBatch;

use crate::progress::{GroupEvent, QueryProgress};

/// Receives what each epoch produced. Both methods are called after the epoch is durable
/// (sinks written, `commits/<epoch>` on disk), so an observer never shows a result that a
/// restart could take back. A replayed epoch is reported again with the same rows.
pub trait QueryObserver: Send + Sync + std::fmt::Debug {
    /// The epoch's result rows, in the canonical order the sinks got them (may be empty). In a
    /// job of several branches, the first branch's rows (see [`Self::on_branch_results`]).
    fn on_results(&self, epoch: u64, rows: &[RecordBatch]);
    /// Every branch's result rows of the epoch, called before [`Self::on_results`] for each
    /// branch of the job (a single query is a job of one branch named after it).
    fn on_branch_results(&self, branch: &str, epoch: u64, rows: &[RecordBatch]) {
        let _ = (branch, epoch, rows);
    }
    /// [`Self::on_results`] of one task of a query spread over processes (its epochs are
    /// numbered per task), so that an observer can forget a task's rows when it moves away.
    fn on_task_results(&self, task: i32, epoch: u64, rows: &[RecordBatch]) {
        let _ = task;
        self.on_results(epoch, rows);
    }
    /// The epoch's progress record (the same one logged and written to `--progress-json`).
    fn on_progress(&self, progress: &QueryProgress);
    /// A change in this process's share of a query spread over processes (tasks assigned,
    /// revoked, lost, fenced, failed); called from the group member's thread.
    fn on_group_event(&self, event: &GroupEvent) {
        let _ = event;
    }
}
