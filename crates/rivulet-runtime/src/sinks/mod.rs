//! Sinks: where each epoch's result rows go. Every sink is exactly-once for replayed epochs
//! (an epoch re-run after a crash produces the same rows, and the sink makes the second write
//! invisible): the file sink overwrites the epoch's file, the Kafka sink skips records already
//! in the topic; the console sink simply prints again, like Spark's.

use arrow::record_batch::RecordBatch;

use crate::Result;

pub mod console;
pub mod file;
pub mod kafka;

pub use console::ConsoleSink;
pub use file::FileSink;
pub use kafka::KafkaSink;

/// A destination for result rows, called once per epoch (again for a replayed epoch).
pub trait Sink: Send {
    /// A description for progress reports (Spark's `sink.description`).
    fn description(&self) -> String;

    /// Writes the output of `epoch`. Must be idempotent per epoch: writing the same epoch again
    /// with the same batches leaves the same visible result.
    fn write_epoch(&mut self, epoch: u64, batches: &[RecordBatch]) -> Result<()>;

    /// The epoch is committed in the checkpoint; nothing of it will be written again.
    fn commit(&mut self, epoch: u64) -> Result<()> {
        let _ = epoch;
        Ok(())
    }

    /// The query stops: flush and release resources.
    fn close(&mut self) -> Result<()> {
        Ok(())
    }
}
