//! The operator contract: one required method, defaulted hooks for the in-band control signals
//! ([`Message`], run through a [`crate::chain::Chain`]).

use arrow::record_batch::RecordBatch;

use crate::error::Result;

/// What flows through a [`crate::chain::Chain`]. Control signals travel in-band with the data,
/// so an operator sees a watermark or a checkpoint barrier exactly between the batches it
/// separates.
#[derive(Debug, Clone)]
pub enum Message {
    Batch(RecordBatch),
    /// Event time (ms since the epoch) below which no more records are expected.
    Watermark(i64),
    /// End of a trigger interval: update-mode operators emit what changed since the last one.
    Trigger,
    /// Checkpoint barrier for `epoch`: every operator's state is snapshotted, after all the
    /// messages before it.
    Barrier(u64),
}

/// Counters an operator reports for progress records (Spark's `stateOperators`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OperatorMetrics {
    pub num_rows_total: u64,
    pub num_rows_updated: u64,
    pub num_rows_dropped_by_watermark: u64,
    pub memory_used_bytes: u64,
}

/// A streaming operator. Output batches are pushed to `out`.
pub trait Operator: Send {
    fn name(&self) -> &'static str;

    /// Processes one batch of input rows.
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()>;

    /// The watermark advanced to `watermark` (ms). Windowed operators close windows here.
    fn on_watermark(&mut self, watermark: i64, out: &mut Vec<RecordBatch>) -> Result<()> {
        let _ = (watermark, out);
        Ok(())
    }

    /// A trigger fired: update-mode operators emit the rows changed since the last trigger.
    fn on_trigger(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        let _ = out;
        Ok(())
    }

    /// Serialises the operator's state for a checkpoint (empty for stateless operators).
    fn snapshot(&self) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }

    /// Restores state written by [`Operator::snapshot`].
    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let _ = state;
        Ok(())
    }

    fn metrics(&self) -> OperatorMetrics {
        OperatorMetrics::default()
    }
}
