//! Kafka sink: one JSON record per result row, keyed by the group keys.
//!
//! Key: JSON of the group-key columns plus `window_start` when present
//! (`{"id":3,"window_start":"2026-11-24T10:00:10.000Z"}`); value: the row as JSON. Records go
//! through an idempotent producer (acks=all) to an explicit partition chosen with Kafka's
//! murmur2 key hash (what Java clients pick), and each carries the headers `rivulet.epoch` and
//! `rivulet.seq` (position of the record in the epoch's output, decimal text).
//!
//! Exactly once across crashes ([`EpochProducer`]): on startup the tail of every partition is
//! read to find the highest `(epoch, seq)` already there. An epoch's output is a deterministic
//! function of its input, and within a partition records land in `seq` order, so when an epoch
//! is replayed every record whose `(epoch, seq)` is at or below its partition's tail is already
//! present and is skipped. (A record that failed delivery while a later one of the same
//! partition succeeded would be lost; the idempotent producer fails the rest of the partition's
//! queue in that case, and the sink reports the failure, stopping the query.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::Sink;
use crate::error::RuntimeError;
use crate::rows::{row_json, row_json_columns};
use crate::Result;

/// Header carrying the epoch of a record.
pub const EPOCH_HEADER: &str = "rivulet.epoch";
/// Header carrying the record's position in its epoch's output.
pub const SEQ_HEADER: &str = "rivulet.seq";

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
const TOPIC_WAIT: Duration = Duration::from_secs(30);
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
const TAIL_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Records read back from the end of each partition at startup.
const TAIL_RECORDS: i64 = 64;

/// Kafka's murmur2 (as in the Java client's `Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ (data.len() as u32);
    let chunks = data.chunks_exact(4);
    let rem = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    if rem.len() >= 3 {
        h ^= u32::from(rem[2]) << 16;
    }
    if rem.len() >= 2 {
        h ^= u32::from(rem[1]) << 8;
    }
    if !rem.is_empty() {
        h ^= u32::from(rem[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition the Java client's default partitioner gives `key`.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

#[derive(Default)]
struct Delivery {
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

struct DeliveryContext(Arc<Delivery>);

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.0.failed.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut g) = self.0.first_error.lock() {
                g.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// One record for [`EpochProducer::send_epoch`].
#[derive(Debug, Clone, Default)]
pub struct OutRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// Partition (modulo the count) for records without a key.
    pub partition_hint: i32,
    /// Extra headers besides epoch and seq.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Produces an epoch's records exactly once across replays (see the module docs).
pub struct EpochProducer {
    producer: ThreadedProducer<DeliveryContext>,
    delivery: Arc<Delivery>,
    topic: String,
    partitions: i32,
    /// Highest `(epoch, seq)` present per partition.
    tail: HashMap<i32, (u64, u64)>,
}

/// Number of partitions of `topic`, waiting (bounded) for auto-creation.
pub(crate) fn topic_partitions<C: rdkafka::client::ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &str,
) -> Result<i32> {
    let deadline = Instant::now() + TOPIC_WAIT;
    loop {
        let last = match client.fetch_metadata(Some(topic), METADATA_TIMEOUT) {
            Ok(md) => match md.topics().iter().find(|t| t.name() == topic) {
                Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                    return i32::try_from(t.partitions().len())
                        .map_err(|e| RuntimeError::Source(e.to_string()));
                }
                Some(t) => format!("{:?}", t.error()),
                None => "topic missing from metadata".to_string(),
            },
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(RuntimeError::Source(format!(
                "topic `{topic}` is not available: {last}"
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn parse_header_u64(h: &Header<'_, &[u8]>) -> Option<u64> {
    h.value
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|s| s.parse().ok())
}

/// Reads the last records of every partition of `topic` and returns the highest
/// `(epoch, seq)` found per partition.
pub fn read_tails(brokers: &str, topic: &str) -> Result<HashMap<i32, (u64, u64)>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("rivulet-tail-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()
        .map_err(|e| RuntimeError::kafka("creating the tail reader", e))?;
    let n = topic_partitions(consumer.client(), topic)?;
    let mut tpl = TopicPartitionList::new();
    let mut want: HashMap<i32, i64> = HashMap::new();
    for p in 0..n {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, METADATA_TIMEOUT)
            .map_err(|e| RuntimeError::kafka(format!("reading offsets of {topic}/{p}"), e))?;
        if high > low {
            let from = (high - TAIL_RECORDS).max(low);
            tpl.add_partition_offset(topic, p, Offset::Offset(from))
                .map_err(|e| RuntimeError::kafka("building the assignment", e))?;
            want.insert(p, high);
        }
    }
    let mut tails = HashMap::new();
    if want.is_empty() {
        return Ok(tails);
    }
    consumer
        .assign(&tpl)
        .map_err(|e| RuntimeError::kafka("assigning the tail reader", e))?;
    let deadline = Instant::now() + TAIL_READ_TIMEOUT;
    while !want.is_empty() {
        if Instant::now() >= deadline {
            return Err(RuntimeError::Source(format!(
                "timed out reading the tail of `{topic}` (partitions {:?} unfinished)",
                want.keys().collect::<Vec<_>>()
            )));
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(e)) => return Err(RuntimeError::kafka(format!("reading `{topic}`"), e)),
            Some(Ok(m)) => {
                let p = m.partition();
                if let Some(h) = m.headers() {
                    let mut epoch = None;
                    let mut seq = None;
                    for hd in h.iter() {
                        if hd.key == EPOCH_HEADER {
                            epoch = parse_header_u64(&hd);
                        } else if hd.key == SEQ_HEADER {
                            seq = parse_header_u64(&hd);
                        }
                    }
                    if let (Some(e), Some(s)) = (epoch, seq) {
                        let t = tails.entry(p).or_insert((e, s));
                        if (e, s) > *t {
                            *t = (e, s);
                        }
                    }
                }
                if want.get(&p).is_some_and(|high| m.offset() + 1 >= *high) {
                    want.remove(&p);
                }
            }
        }
    }
    Ok(tails)
}

impl EpochProducer {
    /// Connects an idempotent producer to `topic` and reads the partitions' tails.
    pub fn connect(brokers: &str, topic: &str) -> Result<EpochProducer> {
        let delivery = Arc::new(Delivery::default());
        let producer: ThreadedProducer<DeliveryContext> = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000")
            .create_with_context(DeliveryContext(delivery.clone()))
            .map_err(|e| RuntimeError::kafka(format!("creating the producer for `{topic}`"), e))?;
        let partitions = topic_partitions(producer.client(), topic)?;
        let tail = read_tails(brokers, topic)?;
        Ok(EpochProducer {
            producer,
            delivery,
            topic: topic.to_string(),
            partitions,
            tail,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Produces `records` as the output of `epoch` (seq = index), skipping those already in the
    /// topic, and waits until all are acknowledged. Returns how many were sent.
    pub fn send_epoch(&mut self, epoch: u64, records: &[OutRecord]) -> Result<u64> {
        let failed_before = self.delivery.failed.load(Ordering::Relaxed);
        let mut sent = 0u64;
        let mut last: HashMap<i32, (u64, u64)> = HashMap::new();
        for (seq, r) in records.iter().enumerate() {
            let seq = seq as u64;
            let partition = match &r.key {
                Some(k) => partition_for_key(k, self.partitions),
                None => r.partition_hint.rem_euclid(self.partitions),
            };
            if self
                .tail
                .get(&partition)
                .is_some_and(|t| (epoch, seq) <= *t)
            {
                continue;
            }
            let epoch_s = epoch.to_string();
            let seq_s = seq.to_string();
            let mut headers = OwnedHeaders::new_with_capacity(2 + r.headers.len())
                .insert(Header {
                    key: EPOCH_HEADER,
                    value: Some(epoch_s.as_bytes()),
                })
                .insert(Header {
                    key: SEQ_HEADER,
                    value: Some(seq_s.as_bytes()),
                });
            for (k, v) in &r.headers {
                headers = headers.insert(Header {
                    key: k.as_str(),
                    value: Some(v.as_slice()),
                });
            }
            let mut rec: BaseRecord<'_, [u8], [u8], ()> = BaseRecord::to(&self.topic)
                .partition(partition)
                .headers(headers);
            if let Some(k) = &r.key {
                rec = rec.key(k.as_slice());
            }
            if let Some(v) = &r.value {
                rec = rec.payload(v.as_slice());
            }
            let deadline = Instant::now() + FLUSH_TIMEOUT;
            loop {
                match self.producer.send(rec) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                        if Instant::now() < deadline =>
                    {
                        rec = back;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((e, _)) => {
                        return Err(RuntimeError::kafka(
                            format!("producing to `{}`", self.topic),
                            e,
                        ))
                    }
                }
            }
            sent += 1;
            last.insert(partition, (epoch, seq));
        }
        self.producer
            .flush(FLUSH_TIMEOUT)
            .map_err(|e| RuntimeError::kafka(format!("flushing `{}`", self.topic), e))?;
        let failed = self.delivery.failed.load(Ordering::Relaxed) - failed_before;
        if failed > 0 {
            let first = self
                .delivery
                .first_error
                .lock()
                .ok()
                .and_then(|g| g.clone())
                .unwrap_or_default();
            return Err(RuntimeError::Sink {
                sink: format!("kafka `{}`", self.topic),
                reason: format!("{failed} records failed delivery: {first}"),
            });
        }
        self.tail.extend(last);
        Ok(sent)
    }
}

/// The Kafka sink (see the module docs).
pub struct KafkaSink {
    producer: EpochProducer,
    key_columns: Vec<String>,
    brokers: String,
}

impl KafkaSink {
    /// A sink into `topic` keyed by `group_by` (plus `window_start` when the rows have it).
    pub fn connect(brokers: &str, topic: &str, group_by: &[String]) -> Result<KafkaSink> {
        Ok(KafkaSink {
            producer: EpochProducer::connect(brokers, topic)?,
            key_columns: group_by.to_vec(),
            brokers: brokers.to_string(),
        })
    }
}

/// The output records of an epoch for a keyed JSON topic.
pub fn json_records(batches: &[RecordBatch], key_columns: &[String]) -> Vec<OutRecord> {
    let mut out = Vec::new();
    for b in batches {
        let mut keys: Vec<String> = key_columns
            .iter()
            .filter(|c| b.column_by_name(c).is_some())
            .cloned()
            .collect();
        if b.column_by_name(rivulet_engine::plan::columns::WINDOW_START)
            .is_some()
            && !keys
                .iter()
                .any(|k| k == rivulet_engine::plan::columns::WINDOW_START)
        {
            keys.push(rivulet_engine::plan::columns::WINDOW_START.to_string());
        }
        for i in 0..b.num_rows() {
            let n = out.len() as i32;
            out.push(OutRecord {
                key: (!keys.is_empty()).then(|| row_json_columns(b, i, Some(&keys)).into_bytes()),
                value: Some(row_json(b, i).into_bytes()),
                partition_hint: n,
                headers: Vec::new(),
            });
        }
    }
    out
}

impl Sink for KafkaSink {
    fn description(&self) -> String {
        format!("KafkaSink[{}@{}]", self.producer.topic(), self.brokers)
    }

    fn write_epoch(&mut self, epoch: u64, batches: &[RecordBatch]) -> Result<()> {
        let records = json_records(batches, &self.key_columns);
        self.producer.send_epoch(epoch, &records)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_java() {
        // Vectors from Kafka's UtilsTest.
        assert_eq!(murmur2(b"21"), -973_932_308);
        assert_eq!(murmur2(b"foobar"), -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985_981_536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1_486_304_829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58_897_971
        );
        assert_eq!(murmur2(b"abc"), 479_470_107);
    }
}
