//! One partition's log: an ordered set of segments, the active one last.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::config::LogConfig;
use crate::error::Result;

/// How to open a partition directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// The previous run shut down cleanly: trust index files and the producer snapshot.
    Clean,
    /// After a crash: every batch at or after this offset (the last recovery checkpoint; 0 if
    /// unknown) is re-read, its CRC checked, the log truncated at the first invalid or torn
    /// batch, and the indexes and producer state rebuilt for the re-read part.
    From(i64),
}

/// Result of a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendResult {
    /// Batches stored at `base_offset..=last_offset`.
    Appended {
        base_offset: i64,
        last_offset: i64,
        /// Broker time stamped on the batch when `message.timestamp.type=LogAppendTime`, else -1.
        log_append_time: i64,
    },
    /// An idempotent producer retried a batch already stored; nothing was written.
    Duplicate { base_offset: i64, last_offset: i64 },
}

/// A partition log on disk. Not internally synchronised: the owner wraps it in a mutex.
#[derive(Debug)]
pub struct PartitionLog {
    _private: (),
}

impl PartitionLog {
    /// Opens (or creates) the partition directory, recovering as `recovery` says.
    pub fn open(dir: &Path, config: LogConfig, recovery: Recovery) -> Result<PartitionLog> {
        todo!("{dir:?} {config:?} {recovery:?}")
    }

    /// Validates the payload (CRC, size against max.message.bytes, producer epoch/sequence) and
    /// appends it. All or nothing. Rolls the active segment first when it is past
    /// segment.bytes or older than segment.ms.
    pub fn append(&mut self, records: &[u8], now_ms: i64) -> Result<AppendResult> {
        todo!("{} {now_ms}", records.len())
    }

    /// See [`crate::PartitionStore::read`]. `offset == log_end_offset` gives empty bytes; an
    /// offset below the log start or above the log end is `OffsetOutOfRange`.
    pub fn read(&self, offset: i64, max_bytes: usize, upper_bound: i64) -> Result<Bytes> {
        todo!("{offset} {max_bytes} {upper_bound}")
    }

    pub fn log_start_offset(&self) -> i64 {
        todo!()
    }
    /// Next offset to be assigned (Kafka's log end offset).
    pub fn log_end_offset(&self) -> i64 {
        todo!()
    }
    /// Offset below which everything is fsynced.
    pub fn flushed_offset(&self) -> i64 {
        todo!()
    }
    /// When data above the flushed offset exists: the active segment file to `sync_data` and the
    /// offset that will be durable once it returns. The caller syncs outside any lock, then calls
    /// [`Self::mark_flushed`]. Segments that roll are fsynced by the roll itself.
    pub fn sync_target(&self) -> Option<(Arc<File>, i64)> {
        todo!()
    }
    /// Records that everything below `offset` is durable (monotonic: lower values are ignored).
    pub fn mark_flushed(&mut self, offset: i64) {
        todo!("{offset}")
    }
    /// Largest timestamp in the log and the offset of the record carrying it (ListOffsets -3).
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>> {
        todo!()
    }
    /// First record with timestamp >= `timestamp`: (offset, timestamp). Uses the time index to
    /// find the batch, then decodes that batch's records to find the exact record.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        todo!("{timestamp}")
    }
    /// Deletes whole segments past retention.ms / retention.bytes; returns how many.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<usize> {
        todo!("{now_ms}")
    }
    pub fn config(&self) -> &LogConfig {
        todo!()
    }
    pub fn set_config(&mut self, config: LogConfig) {
        todo!("{config:?}")
    }
    /// Bytes on disk across all segments.
    pub fn size_bytes(&self) -> u64 {
        todo!()
    }
    pub fn segment_count(&self) -> usize {
        todo!()
    }
    /// Flushes data and index files and writes the producer snapshot (clean shutdown).
    pub fn close(&mut self) -> Result<()> {
        todo!()
    }
}
