//! The Kafka source: reads every partition of the query's topics from offsets the runtime
//! chooses (its own, kept in the checkpoint's `offsets/` files — manual assignment, as Spark
//! does), and commits each committed epoch's end offsets to the consumer group (`group.id`
//! from the plan, default `rivulet-<query name>`) so lag tools (`rivulet groups describe`)
//! see the query's progress.
//!
//! Two clients implement [`Source`], chosen by the source's `client` option
//! ([`crate::connectors::kafka`] owns the options):
//!
//! - [`native`] (default): Rivulet's own fetcher over the `kafka-protocol` codecs. A prefetch
//!   thread keeps fetch requests in flight while the query works on the previous micro-batch
//!   and parses record batches into [`SourceRecord`]s that share the response buffer
//!   (no copy of keys and values, no per-message hand-off). This is what lets the engine run
//!   at several million events per second on two cores (docs/BENCHMARKS.md); librdkafka's
//!   consume path tops out well below that on the same machine.
//! - [`librdkafka`]: an rdkafka `BaseConsumer`, for clusters that need what the native fetcher
//!   does not speak (TLS, SASL).
//!
//! All calls block: the driver runs them on its own thread. Partitions added to a topic while
//! the query runs are not picked up until a restart.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use crate::connectors::kafka::{SourceClient, SourceOptions, StartingOffsets};
use bytes::Bytes;

use crate::checkpoint::OffsetRange;
use crate::error::RuntimeError;
use crate::Result;

pub mod librdkafka;
pub mod native;

/// A topic-partition, ordered by topic then partition: the fixed processing order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

/// One consumed record. Key and value are shared views of the fetched bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

/// The records of one partition, in offset order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRecords {
    pub tp: TopicPartition,
    /// The topic name shared by the rows decoded from these records.
    pub topic: Arc<str>,
    pub records: Vec<SourceRecord>,
}

/// What a micro-batch reads: per partition, in [`TopicPartition`] order, each partition once.
pub type SourceBatch = Vec<PartitionRecords>;

/// A Kafka source with runtime-managed positions (see the module docs).
pub trait Source: Send {
    /// The consumer group that receives the committed offsets.
    fn group_id(&self) -> &str;

    /// `KafkaSource[events@host:9092]`-like description for progress reports.
    fn description(&self) -> String;

    /// The partitions in processing order.
    fn partitions(&self) -> Vec<TopicPartition> {
        self.positions().keys().cloned().collect()
    }

    /// Next offset to read per partition (-1 before a start).
    fn positions(&self) -> &BTreeMap<TopicPartition, i64>;

    /// Narrows the source to the partitions numbered `partitions` of its topics (one task of a
    /// query spread over processes, `crate::group`). Before a start.
    fn retain_partitions(&mut self, partitions: &std::collections::BTreeSet<i32>);

    /// First start: positions from `starting` (earliest, latest or by timestamp).
    fn start_fresh(&mut self, starting: StartingOffsets) -> Result<()>;

    /// Resume: positions from the checkpoint (partitions not listed start at the earliest).
    fn start_at(&mut self, positions: &BTreeMap<TopicPartition, i64>) -> Result<()>;

    /// Reads up to `max_records` records, waiting at most `max_wait` for the first ones and
    /// not at all for more once some are there. Positions advance past the returned records.
    fn poll_batch(&mut self, max_records: usize, max_wait: Duration) -> Result<SourceBatch>;

    /// Replay: reads exactly the records in `ranges` (offsets `start..end` per partition),
    /// then leaves the positions at the ranges' ends.
    fn read_ranges(&mut self, ranges: &[OffsetRange]) -> Result<SourceBatch>;

    /// Latest offset (high watermark) per partition, asked of the brokers now.
    fn latest_offsets(&self) -> Result<BTreeMap<TopicPartition, i64>>;

    /// Latest offsets as last seen (for progress reports); may lag the brokers slightly.
    fn recent_latest_offsets(&self) -> Result<BTreeMap<TopicPartition, i64>> {
        self.latest_offsets()
    }

    /// Commits `positions` to the consumer group (for visibility only; not awaited).
    fn commit_to_group(&self, positions: &BTreeMap<TopicPartition, i64>) -> Result<()>;
}

/// Connects the client `spec.client` names and discovers the partitions of `spec.topics`
/// (waiting, bounded, for auto-created topics). Positions are unset until a start.
pub fn connect(spec: &SourceOptions, query_name: &str) -> Result<Box<dyn Source>> {
    Ok(match spec.client {
        SourceClient::Native => Box::new(native::NativeSource::connect(spec, query_name)?),
        SourceClient::Librdkafka => Box::new(librdkafka::KafkaSource::connect(spec, query_name)?),
    })
}

/// Collects records into a [`SourceBatch`]: one entry per partition, partitions in order,
/// records by offset.
pub(crate) fn into_batch(by_tp: BTreeMap<TopicPartition, Vec<SourceRecord>>) -> SourceBatch {
    by_tp
        .into_iter()
        .filter(|(_, r)| !r.is_empty())
        .map(|(tp, mut records)| {
            if !records.is_sorted_by_key(|r| r.offset) {
                records.sort_by_key(|r| r.offset);
            }
            PartitionRecords {
                topic: Arc::from(tp.topic.as_str()),
                tp,
                records,
            }
        })
        .collect()
}

/// Start of a replay: checks that every range names a partition of the source, moves the
/// positions to the ranges' ends, and returns the non-empty ranges (`start..end`) to re-read.
pub(crate) fn replay_ranges(
    positions: &mut BTreeMap<TopicPartition, i64>,
    ranges: &[OffsetRange],
) -> Result<BTreeMap<TopicPartition, (i64, i64)>> {
    let mut pending = BTreeMap::new();
    for r in ranges {
        let tp = TopicPartition {
            topic: r.topic.clone(),
            partition: r.partition,
        };
        if !positions.contains_key(&tp) {
            return Err(RuntimeError::Checkpoint(format!(
                "the checkpoint names {}/{} which the source does not have",
                r.topic, r.partition
            )));
        }
        positions.insert(tp.clone(), r.end);
        if r.end > r.start {
            pending.insert(tp, (r.start, r.end));
        }
    }
    Ok(pending)
}
