//! A hook for watching a running query from the outside (the live dashboard): the driver
//! calls it with each epoch's result rows and progress record. It is called on the query's
//! blocking thread, so implementations must return quickly (copy what they need, no I/O).

use arrow::record_batch::RecordBatch;

use crate::progress::QueryProgress;

/// Receives what each epoch produced. Both methods are called after the epoch is durable
/// (sinks written, `commits/<epoch>` on disk), so an observer never shows a result that a
/// restart could take back. A replayed epoch is reported again with the same rows.
pub trait QueryObserver: Send + Sync + std::fmt::Debug {
    /// The epoch's result rows, in the canonical order the sinks got them (may be empty).
    fn on_results(&self, epoch: u64, rows: &[RecordBatch]);
    /// The epoch's progress record (the same one logged and written to `--progress-json`).
    fn on_progress(&self, progress: &QueryProgress);
}
