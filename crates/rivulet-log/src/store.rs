//! The small storage trait the broker's partition handling is written against, and its
//! conformance tests, written once and run against every implementation.

use bytes::Bytes;

use crate::error::Result;
use crate::partition::AppendResult;

/// What the broker needs from a partition's storage.
pub trait PartitionStore: Send {
    /// Validates and appends a produce payload (one or more v2 batches) atomically: either every
    /// batch is stored with broker-assigned offsets or none is.
    fn append(&mut self, records: &[u8], now_ms: i64) -> Result<AppendResult>;
    /// Whole batches starting with the one containing `offset`, at least one batch even if it
    /// exceeds `max_bytes`, never including batches whose base offset is >= `upper_bound`.
    fn read(&self, offset: i64, max_bytes: usize, upper_bound: i64) -> Result<Bytes>;
    fn log_start_offset(&self) -> i64;
    fn log_end_offset(&self) -> i64;
    /// First offset whose record timestamp is >= `timestamp`, with that record's timestamp.
    fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>>;
}
