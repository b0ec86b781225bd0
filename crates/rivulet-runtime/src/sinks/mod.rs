//! Sinks: where each epoch's result rows go. Every sink is exactly-once for replayed epochs
//! (an epoch re-run after a crash produces the same rows, and the sink makes the second write
//! invisible): the file sink overwrites the epoch's file, the Kafka sink skips records it
//! already wrote to the topic; the console sink simply prints again, like Spark's.
//!
//! The storage sinks ([`parquet`], [`postgres`]) make an epoch visible only after the
//! checkpoint committed it; until then (and across a crash) its rows wait in a write-ahead
//! [`spool`].

use std::path::Path;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use rivulet_engine::plan::Plan;

use crate::Result;

pub mod console;
pub mod file;
pub mod kafka;
pub mod parquet;
pub mod pg_tls;
pub mod postgres;
pub mod spool;

pub use console::ConsoleSink;
pub use file::FileSink;
pub use kafka::KafkaSink;
pub use parquet::ParquetSink;
pub use postgres::PostgresSink;

/// What a sink may need to know about the query it serves, at open.
#[derive(Debug, Clone, Copy)]
pub struct SinkContext<'a> {
    pub plan: &'a Plan,
    /// The schema of the result rows.
    pub schema: &'a SchemaRef,
    /// The query's checkpoint directory (sinks keep their own recovery files under
    /// `<dir>/sinks/`).
    pub checkpoint_dir: &'a Path,
    /// Whether the checkpoint itself lives in that directory. Not with the checkpoint in
    /// Kafka: the directory then stays behind when a task moves to another process, so it
    /// may hold hints only, nothing a restart needs.
    pub checkpoint_is_local: bool,
    /// The query's (job's) name.
    pub query_name: &'a str,
    /// The query's identity across restarts (checkpoint metadata).
    pub query_id: &'a str,
    /// The checkpoint's latest committed epoch at open: spooled epochs up to it must still be
    /// delivered, later ones are replayed by the driver.
    pub last_committed: Option<u64>,
    /// Who the query's Kafka writers are.
    pub writers: &'a kafka::WriterScope,
}

impl SinkContext<'_> {
    /// The identity of this query's Kafka writer `role` (see [`kafka::Writer`]).
    pub fn kafka_writer(&self, role: &str) -> kafka::Writer {
        self.writers.writer(role)
    }
}

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

    /// Whether a re-run of an epoch must read exactly the epoch's recorded input: true for a
    /// sink that is idempotent per epoch number (file, Parquet, PostgreSQL, a Kafka sink
    /// with a transaction of its own), so the epoch's offsets are committed on their own
    /// before its output. False for a sink whose writes commit with the checkpoint (a Kafka
    /// sink in the task's transaction: an epoch that did not commit left nothing) and for
    /// the console; when every sink says false, the offsets go in the epoch's one
    /// transaction too.
    fn replays_epochs(&self) -> bool {
        true
    }

    /// The query stops: flush and release resources.
    fn close(&mut self) -> Result<()> {
        Ok(())
    }
}
