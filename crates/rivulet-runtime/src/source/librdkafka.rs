//! The librdkafka source: an rdkafka `BaseConsumer` with every partition of the query's topics
//! assigned manually (see [`super`] for the contract). For clusters that need TLS or SASL,
//! which the native fetcher does not speak; slower (one `poll` and one copy per message).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{SourceOptions, StartingOffsets};
use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::{into_batch, replay_ranges, Source, SourceBatch, SourceRecord, TopicPartition};
use crate::checkpoint::OffsetRange;
use crate::error::RuntimeError;
use crate::sinks::kafka::topic_partitions;
use crate::Result;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Most time a replay may take to re-read an epoch's recorded ranges.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(120);

fn record(m: &BorrowedMessage<'_>) -> SourceRecord {
    SourceRecord {
        offset: m.offset(),
        timestamp_ms: m.timestamp().to_millis().unwrap_or(-1),
        key: m.key().map(Bytes::copy_from_slice),
        value: m.payload().map(Bytes::copy_from_slice),
    }
}

/// The consumer and the next offset to read per partition.
pub struct KafkaSource {
    consumer: BaseConsumer,
    group_id: String,
    brokers: String,
    topics: Vec<String>,
    /// Next offset to read, per partition (all partitions of all topics).
    positions: BTreeMap<TopicPartition, i64>,
}

impl KafkaSource {
    /// Connects to the brokers and discovers the partitions of `spec.topics` (waiting, bounded,
    /// for topics to be auto-created). Positions are unset until [`KafkaSource::start_at`] or
    /// [`KafkaSource::start_fresh`].
    pub fn connect(spec: &SourceOptions, query_name: &str) -> Result<KafkaSource> {
        if spec.topics.is_empty() {
            return Err(RuntimeError::Plan("the source has no topics".into()));
        }
        let group_id = spec.group_id(query_name);
        let consumer: BaseConsumer = spec
            .connection
            .client_config()
            .set("group.id", &group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            // Throughput: librdkafka's defaults fetch at most 1 MiB per partition per request
            // and, once 100,000 messages are queued, postpone the next fetch by a whole second
            // (`fetch.queue.backoff.ms`), so a query that drains its queue faster than that
            // sat idle with data waiting (`rivulet bench pipeline`, docs/BENCHMARKS.md).
            // Prefetch is still bounded by `queued.max.messages.kbytes` (64 MiB default);
            // 200,000 messages and 32 MiB measured 10-15 % slower with the same RSS.
            .set("max.partition.fetch.bytes", "8388608")
            .set("queued.min.messages", "500000")
            .set("fetch.queue.backoff.ms", "10")
            .create()
            .map_err(|e| RuntimeError::kafka("creating the source consumer", e))?;
        let mut positions = BTreeMap::new();
        for t in &spec.topics {
            let n = topic_partitions(consumer.client(), t)?;
            for p in 0..n {
                positions.insert(
                    TopicPartition {
                        topic: t.clone(),
                        partition: p,
                    },
                    -1,
                );
            }
        }
        Ok(KafkaSource {
            consumer,
            group_id,
            brokers: spec.connection.bootstrap_servers.clone(),
            topics: spec.topics.clone(),
            positions,
        })
    }

    fn assign_positions(&self) -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        for (tp, off) in &self.positions {
            tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*off))
                .map_err(|e| RuntimeError::kafka("building the assignment", e))?;
        }
        self.consumer
            .assign(&tpl)
            .map_err(|e| RuntimeError::kafka("assigning partitions", e))
    }

    fn watermarks(&self, tp: &TopicPartition) -> Result<(i64, i64)> {
        self.consumer
            .fetch_watermarks(&tp.topic, tp.partition, REQUEST_TIMEOUT)
            .map_err(|e| {
                RuntimeError::kafka(
                    format!("reading offsets of {}/{}", tp.topic, tp.partition),
                    e,
                )
            })
    }

    /// Moves each position past records librdkafka skipped without handing them out: the
    /// transaction markers and, under read_committed, aborted records. A position taken from
    /// the last record handed out would stay short of the end for good (KAFKA-6607): lag 1,
    /// and a bounded run that never catches up. The client's own position has stepped over
    /// them; it is only ever used to move ours forward, while nothing is waiting to be handed
    /// out. (An assign resets it to "invalid" until the first record, so a position from
    /// before a re-assign is never taken.)
    fn step_over_skipped(&mut self) -> Result<()> {
        let tpl = self
            .consumer
            .position()
            .map_err(|e| RuntimeError::kafka("reading the source's positions", e))?;
        for el in tpl.elements() {
            let Offset::Offset(o) = el.offset() else {
                continue;
            };
            let tp = TopicPartition {
                topic: el.topic().to_string(),
                partition: el.partition(),
            };
            if let Some(pos) = self.positions.get_mut(&tp) {
                if o > *pos && *pos >= 0 {
                    *pos = o;
                }
            }
        }
        Ok(())
    }
}

impl Source for KafkaSource {
    fn group_id(&self) -> &str {
        &self.group_id
    }

    fn description(&self) -> String {
        format!("KafkaSource[{}@{}]", self.topics.join(","), self.brokers)
    }

    /// Next offset to read per partition.
    fn positions(&self) -> &BTreeMap<TopicPartition, i64> {
        &self.positions
    }

    fn retain_partitions(&mut self, partitions: &std::collections::BTreeSet<i32>) {
        self.positions
            .retain(|tp, _| partitions.contains(&tp.partition));
    }

    /// First start: positions from `starting` (earliest, latest or by timestamp).
    fn start_fresh(&mut self, starting: StartingOffsets) -> Result<()> {
        let mut pos = BTreeMap::new();
        let by_time = if let StartingOffsets::Timestamp(ts) = starting {
            let mut tpl = TopicPartitionList::new();
            for tp in self.positions.keys() {
                tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(ts))
                    .map_err(|e| RuntimeError::kafka("building the timestamp query", e))?;
            }
            Some(
                self.consumer
                    .offsets_for_times(tpl, REQUEST_TIMEOUT)
                    .map_err(|e| RuntimeError::kafka("looking up offsets by timestamp", e))?,
            )
        } else {
            None
        };
        for tp in self.positions.keys() {
            let (low, high) = self.watermarks(tp)?;
            let off = match starting {
                StartingOffsets::Earliest => low,
                StartingOffsets::Latest => high,
                StartingOffsets::Timestamp(_) => by_time
                    .as_ref()
                    .and_then(|l| l.find_partition(&tp.topic, tp.partition))
                    .and_then(|e| match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    })
                    .unwrap_or(high),
            };
            pos.insert(tp.clone(), off);
        }
        self.start_at(&pos)
    }

    /// Resume: positions from the checkpoint (partitions not listed start at the earliest).
    fn start_at(&mut self, positions: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        let keys: Vec<TopicPartition> = self.positions.keys().cloned().collect();
        for tp in keys {
            let off = match positions.get(&tp) {
                Some(o) if *o >= 0 => *o,
                _ => self.watermarks(&tp)?.0,
            };
            self.positions.insert(tp, off);
        }
        self.assign_positions()
    }

    fn poll_batch(&mut self, max_records: usize, max_wait: Duration) -> Result<SourceBatch> {
        let deadline = Instant::now() + max_wait;
        let mut out: BTreeMap<TopicPartition, Vec<SourceRecord>> = BTreeMap::new();
        let mut n = 0usize;
        // The partition of the previous record: consecutive records nearly always share it,
        // which saves a String per record.
        let mut last: Option<TopicPartition> = None;
        while n < max_records {
            // Reading the clock per record costs more than the rest of this loop; once records
            // flow, polls do not wait, so checking every 256 records bounds the overrun.
            let wait = if n == 0 {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                (deadline - now).min(Duration::from_millis(100))
            } else {
                if n.is_multiple_of(256) && Instant::now() >= deadline {
                    break;
                }
                Duration::from_millis(0)
            };
            match self.consumer.poll(wait) {
                None => {
                    if n > 0 {
                        break;
                    }
                    self.step_over_skipped()?;
                }
                Some(Err(e)) => return Err(RuntimeError::kafka("polling the source", e)),
                Some(Ok(m)) => {
                    let same = last
                        .as_ref()
                        .is_some_and(|tp| tp.partition == m.partition() && tp.topic == m.topic());
                    if !same {
                        last = Some(TopicPartition {
                            topic: m.topic().to_string(),
                            partition: m.partition(),
                        });
                    }
                    let Some(tp) = last.as_ref() else {
                        continue;
                    };
                    let Some(pos) = self.positions.get_mut(tp) else {
                        continue;
                    };
                    if m.offset() < *pos {
                        // Redelivered below our position (after a re-assign): already taken.
                        continue;
                    }
                    *pos = m.offset() + 1;
                    out.entry(tp.clone()).or_default().push(record(&m));
                    n += 1;
                }
            }
        }
        Ok(into_batch(out))
    }

    /// Replay: reads exactly the records in `ranges` (offsets `start..end` per partition), then
    /// leaves the positions at the ranges' ends.
    fn read_ranges(&mut self, ranges: &[OffsetRange]) -> Result<SourceBatch> {
        let mut pending = replay_ranges(&mut self.positions, ranges)?;
        let mut out: BTreeMap<TopicPartition, Vec<SourceRecord>> = BTreeMap::new();
        if !pending.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (tp, (start, _)) in &pending {
                tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*start))
                    .map_err(|e| RuntimeError::kafka("building the replay assignment", e))?;
            }
            self.consumer
                .assign(&tpl)
                .map_err(|e| RuntimeError::kafka("assigning the replay ranges", e))?;
            let deadline = Instant::now() + REPLAY_TIMEOUT;
            while !pending.is_empty() {
                if Instant::now() >= deadline {
                    return Err(RuntimeError::Source(format!(
                        "timed out re-reading recorded ranges {:?}",
                        pending
                    )));
                }
                match self.consumer.poll(Duration::from_millis(100)) {
                    None => {}
                    Some(Err(e)) => return Err(RuntimeError::kafka("re-reading a range", e)),
                    Some(Ok(m)) => {
                        let tp = TopicPartition {
                            topic: m.topic().to_string(),
                            partition: m.partition(),
                        };
                        let Some((start, end)) = pending.get(&tp).copied() else {
                            continue;
                        };
                        let o = m.offset();
                        if o >= start && o < end {
                            out.entry(tp.clone()).or_default().push(record(&m));
                        }
                        if o + 1 >= end {
                            pending.remove(&tp);
                        }
                    }
                }
            }
        }
        self.assign_positions()?;
        Ok(into_batch(out))
    }

    /// Latest offset (high watermark) per partition, for lag.
    fn latest_offsets(&self) -> Result<BTreeMap<TopicPartition, i64>> {
        let mut out = BTreeMap::new();
        for tp in self.positions.keys() {
            out.insert(tp.clone(), self.watermarks(tp)?.1);
        }
        Ok(out)
    }

    /// Commits `positions` to the consumer group (asynchronously: visibility only).
    fn commit_to_group(&self, positions: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        for (tp, off) in positions {
            if *off >= 0 {
                tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*off))
                    .map_err(|e| RuntimeError::kafka("building the group commit", e))?;
            }
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        self.consumer
            .commit(&tpl, CommitMode::Async)
            .map_err(|e| RuntimeError::kafka("committing offsets to the group", e))
    }
}
