//! Idempotent producer state per partition: for each producer id, its epoch and the metadata of
//! its last five batches, so that retries are answered with the original offsets and gaps are
//! refused as Kafka does (`ProducerStateManager`). Persisted as a snapshot and rebuilt from batch
//! headers after the snapshot on recovery.

/// Outcome of checking one batch against the producer state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New batch in sequence: append it.
    Append,
    /// Exact retry of one of the last five batches: answer with its original offsets.
    Duplicate { base_offset: i64, last_offset: i64 },
}
