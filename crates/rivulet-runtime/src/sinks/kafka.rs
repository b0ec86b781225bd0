//! Kafka sink: one JSON record per result row, keyed by the group keys.
//!
//! Key: JSON of the group-key columns plus `window_start` when present
//! (`{"id":3,"window_start":"2026-11-24T10:00:10.000Z"}`); value: the row as JSON. Records go
//! through an idempotent producer (acks=all) to an explicit partition chosen with Kafka's
//! murmur2 key hash (what Java clients pick), and each carries the headers `rivulet.writer`
//! (who wrote it, see [`Writer`]), `rivulet.epoch` and `rivulet.seq` (position of the record in
//! the epoch's output, decimal text).
//!
//! Exactly once across crashes ([`EpochProducer`]): an epoch's output is a deterministic
//! function of its input, and within a partition one writer's records land in `seq` order, so
//! when an epoch is replayed every record of *this writer* whose `(epoch, seq)` is at or below
//! the highest one already in its partition is present and is skipped. Only records carrying
//! this writer's identity count: another query, another branch or dead-letter writer of the
//! same query, a run of the same query from a fresh checkpoint, or a program that sets no
//! header at all, never suppresses anything.
//!
//! Finding that highest `(epoch, seq)` at start must not depend on how much *others* wrote
//! to the topic, so the writer keeps a recovery file in the checkpoint directory
//! (`<checkpoint>/sinks/kafka-<role>-<hash>.json`) with a *floor* per partition: an offset at
//! or below the position of anything it may still have to replay. Only `[floor, end)` of each
//! partition is read back. Floors are raised after each committed epoch (past this writer's
//! last delivered record, and to the partition's end at most every
//! [`FLOOR_REFRESH`]), so the read-back stays short however busy a shared topic is. A stale
//! floor is only ever lower, hence still correct; an unreadable file falls back to the
//! partition's start. (A record that failed delivery while a later one of the same partition
//! succeeded would be lost; the idempotent producer fails the rest of the partition's queue
//! in that case, and the sink reports the failure, stopping the query.)
//!
//! With the checkpoint in Kafka a writer on the checkpoint's cluster writes in the task's
//! transaction instead ([`crate::producer`]): its records commit with the epoch's checkpoint
//! entries, so an epoch that did not commit left none of them, and an epoch that committed is
//! never re-run. The read-back stays, for an epoch a run with another layout left half done.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use rdkafka::{Offset, TopicPartitionList};

use serde::{Deserialize, Serialize};

use super::Sink;
use crate::checkpoint::write_atomic;
use crate::connectors::kafka::KafkaConnection;
use crate::error::RuntimeError;
use crate::producer::{DeliveryFailure, TaskProducer};
use crate::rows::{row_json, row_json_columns};
use crate::Result;

/// Header naming the record's writer (see [`Writer`]).
pub const WRITER_HEADER: &str = "rivulet.writer";
/// Header carrying the epoch of a record.
pub const EPOCH_HEADER: &str = "rivulet.epoch";
/// Header carrying the record's position in its epoch's output.
pub const SEQ_HEADER: &str = "rivulet.seq";

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
const TOPIC_WAIT: Duration = Duration::from_secs(30);
/// The read-back at start gives up after this long without a record.
const TAIL_READ_TIMEOUT: Duration = Duration::from_secs(30);

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

/// One record for [`EpochProducer::send_epoch`].
#[derive(Debug, Clone, Default)]
pub struct OutRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// Partition (modulo the count) for records without a key.
    pub partition_hint: i32,
    /// This partition (modulo the count) whatever the key: a record meant for every
    /// partition, as a repartition topic's watermark records ([`crate::repartition`]).
    pub partition: Option<i32>,
    /// Extra headers besides writer, epoch and seq.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Who writes a topic, for the idempotence check: the query's name and checkpoint id (a fresh
/// checkpoint is a new writer) and the writer's role in the query (`sink/<branch>/<topic>`,
/// `dlq/<topic>`, `late/<topic>`), so two writers of one query never mistake each other's
/// records for their own either.
#[derive(Debug, Clone)]
pub struct Writer {
    /// The `rivulet.writer` header value: `<query name>/<checkpoint id>/<role>`.
    pub id: String,
    /// The recovery file holding this writer's floors.
    pub recovery_file: PathBuf,
    /// A missing recovery file means this writer never sent anything: true when the files
    /// live beside the checkpoint (a local directory, the default) or the checkpoint never
    /// recorded an epoch. False for a checkpoint in Kafka resumed where the file is not (another
    /// machine): a missing file then means "floors unknown", and whole partitions are read.
    pub fresh: bool,
    /// With a checkpoint in Kafka: each epoch's records go out in one Kafka transaction under
    /// this id, so a process that took the query over fences this writer of an earlier one.
    pub transactional_id: Option<String>,
    /// Only the last record of each partition in an epoch carries the headers, when the
    /// writer is transactional (an internal topic: [`Writer::tagging_last_only`]).
    pub tag_last_only: bool,
    /// The task's producer, whose epoch transaction also holds the task's checkpoint writes:
    /// a writer on the same cluster writes in it instead of a transaction of its own
    /// ([`crate::producer`]).
    pub joint: Option<Arc<TaskProducer>>,
}

impl Writer {
    /// The writer `role` of the query `name` whose checkpoint (id `checkpoint_id`) is `dir`.
    pub fn new(dir: &Path, name: &str, checkpoint_id: &str, role: &str) -> Writer {
        let id = format!("{name}/{checkpoint_id}/{role}");
        // The role may hold any characters (branch names); the file name keeps a readable,
        // safe prefix and a hash of the whole role so that two roles never share a file.
        let safe: String = role
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .take(60)
            .collect();
        let file = format!("kafka-{safe}-{:016x}.json", fnv1a(role.as_bytes()));
        Writer {
            id,
            recovery_file: dir.join("sinks").join(file),
            fresh: true,
            transactional_id: None,
            tag_last_only: false,
            joint: None,
        }
    }

    /// A transaction makes an epoch's records visible all at once, so the read-back only
    /// needs the last record of each partition to say who wrote it and where it stands. For
    /// an internal topic (the repartition topic) the others go without the headers: with
    /// millions of small records per epoch, their allocations and bytes were most of the
    /// producer's work. Sinks keep them on every record (README: a shared topic's records
    /// name their writer).
    pub fn tagging_last_only(mut self) -> Writer {
        self.tag_last_only = true;
        self
    }

    /// Sets [`Writer::fresh`].
    pub fn fresh(mut self, fresh: bool) -> Writer {
        self.fresh = fresh;
        self
    }

    /// Writes each epoch in one transaction as `rivulet-<query name>-<role>` (checkpoints in
    /// Kafka).
    pub fn transactional(mut self, query_name: &str, role: &str) -> Writer {
        self.transactional_id = Some(format!("rivulet-{query_name}-{role}"));
        self
    }
}

/// The query whose Kafka writers (sinks, dead letters, late rows) these are.
#[derive(Debug, Clone)]
pub struct WriterScope {
    /// The checkpoint directory (the writers' recovery files go under `<dir>/sinks/`).
    pub dir: PathBuf,
    pub query_name: String,
    /// The checkpoint's id.
    pub checkpoint_id: String,
    /// See [`Writer::fresh`].
    pub fresh: bool,
    /// Each epoch in one Kafka transaction (checkpoints in Kafka; see [`Writer::transactional`]).
    pub transactional: bool,
    /// The task's producer, whose epoch transaction the writers on its cluster join
    /// ([`Writer::joint`]).
    pub joint: Option<Arc<TaskProducer>>,
}

impl WriterScope {
    /// The writers of a query checkpointed in the local directory `dir`.
    pub fn local(dir: &Path, query_name: &str, checkpoint_id: &str) -> WriterScope {
        WriterScope {
            dir: dir.to_path_buf(),
            query_name: query_name.to_string(),
            checkpoint_id: checkpoint_id.to_string(),
            fresh: true,
            transactional: false,
            joint: None,
        }
    }

    /// The query's writer `role` (`sink/<branch>/<topic>`, `dlq/<topic>`, `late/<topic>`).
    pub fn writer(&self, role: &str) -> Writer {
        let w =
            Writer::new(&self.dir, &self.query_name, &self.checkpoint_id, role).fresh(self.fresh);
        if self.transactional {
            let mut w = w.transactional(&self.query_name, role);
            w.joint = self.joint.clone();
            w
        } else {
            w
        }
    }
}

/// FNV-1a, 64 bits: a stable hash for file names (std's hasher is not stable across releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The recovery file: per partition, an offset at or below anything this writer may replay.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Floors {
    writer: String,
    topic: String,
    floors: BTreeMap<i32, i64>,
}

/// How often, at most, an epoch commit moves every partition's floor up to its end.
pub const FLOOR_REFRESH: Duration = Duration::from_secs(30);

/// Produces an epoch's records exactly once across replays (see the module docs).
pub struct EpochProducer {
    producer: Arc<TaskProducer>,
    /// Writes in the task's epoch transaction (`Writer::joint`): the checkpoint's commit
    /// commits this writer's records.
    joint: bool,
    connection: KafkaConnection,
    topic: String,
    partitions: i32,
    writer: Writer,
    /// Highest `(epoch, seq)` of this writer present per partition.
    tail: HashMap<i32, (u64, u64)>,
    /// The floors last written to the recovery file.
    floors: BTreeMap<i32, i64>,
    last_refresh: Instant,
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

/// `(low, high)` watermarks of every partition of `topic`.
fn watermarks(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: i32,
) -> Result<BTreeMap<i32, (i64, i64)>> {
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, METADATA_TIMEOUT)
                .map(|w| (p, w))
                .map_err(|e| RuntimeError::kafka(format!("reading offsets of {topic}/{p}"), e))
        })
        .collect()
}

fn plain_consumer(connection: &KafkaConnection, what: &str) -> Result<BaseConsumer> {
    consumer_with(connection, what, "read_uncommitted")
}

fn consumer_with(
    connection: &KafkaConnection,
    what: &str,
    isolation: &str,
) -> Result<BaseConsumer> {
    connection
        .client_config()
        .set("isolation.level", isolation)
        .set("group.id", format!("rivulet-tail-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .create()
        .map_err(|e| RuntimeError::kafka(what.to_string(), e))
}

/// Reads `[from, high)` of the given partitions of `topic` and returns, per partition, the
/// highest `(epoch, seq)` among the records whose `rivulet.writer` header is `writer`; only
/// committed records count when `committed` (a transactional writer: what an aborted or
/// fenced transaction sent was never written). Gives up only when no record arrives for
/// `TAIL_READ_TIMEOUT`.
pub fn read_tails(
    connection: &KafkaConnection,
    topic: &str,
    writer: &str,
    ranges: &BTreeMap<i32, (i64, i64)>,
    committed: bool,
) -> Result<HashMap<i32, (u64, u64)>> {
    let mut tails = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    let mut want: HashMap<i32, i64> = HashMap::new();
    for (&p, &(from, high)) in ranges {
        if high > from {
            tpl.add_partition_offset(topic, p, Offset::Offset(from))
                .map_err(|e| RuntimeError::kafka("building the assignment", e))?;
            want.insert(p, high);
        }
    }
    if want.is_empty() {
        return Ok(tails);
    }
    let isolation = if committed {
        "read_committed"
    } else {
        "read_uncommitted"
    };
    let consumer = consumer_with(connection, "creating the tail reader", isolation)?;
    consumer
        .assign(&tpl)
        .map_err(|e| RuntimeError::kafka("assigning the tail reader", e))?;
    let mut deadline = Instant::now() + TAIL_READ_TIMEOUT;
    while !want.is_empty() {
        if Instant::now() >= deadline {
            return Err(RuntimeError::Source(format!(
                "timed out reading the tail of `{topic}` (partitions {:?} unfinished)",
                want.keys().collect::<Vec<_>>()
            )));
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            // The end as it is now, which is at or past the `high` asked for (control
            // records, e.g. transaction markers, are never delivered, so the last offset
            // itself may never arrive).
            Some(Err(KafkaError::PartitionEOF(p))) => {
                want.remove(&p);
            }
            Some(Err(e)) => return Err(RuntimeError::kafka(format!("reading `{topic}`"), e)),
            Some(Ok(m)) => {
                deadline = Instant::now() + TAIL_READ_TIMEOUT;
                let p = m.partition();
                if let Some(h) = m.headers() {
                    let mut ours = false;
                    let mut epoch = None;
                    let mut seq = None;
                    for hd in h.iter() {
                        match hd.key {
                            WRITER_HEADER => ours = hd.value == Some(writer.as_bytes()),
                            EPOCH_HEADER => epoch = parse_header_u64(&hd),
                            SEQ_HEADER => seq = parse_header_u64(&hd),
                            _ => {}
                        }
                    }
                    if let (true, Some(e), Some(s)) = (ours, epoch, seq) {
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
    /// Connects an idempotent producer to `topic` for `writer` and finds what that writer
    /// already wrote since its floors (see the module docs).
    pub fn connect(
        connection: &KafkaConnection,
        topic: &str,
        writer: Writer,
    ) -> Result<EpochProducer> {
        let (producer, joint) = match &writer.joint {
            Some(task) if task.joins(connection) => (task.clone(), true),
            _ => {
                // Initialising the transactional id fences an earlier process's writer of the
                // same role and aborts what it left open, before the read-back below looks at
                // what is committed.
                let p = TaskProducer::connect(connection, writer.transactional_id.as_deref())
                    .map_err(|e| {
                        txn_error(
                            writer.transactional_id.as_deref(),
                            topic,
                            "creating the producer for",
                            e,
                        )
                    })?;
                (p, false)
            }
        };
        let partitions = topic_partitions(producer.client(), topic)?;
        let consumer = plain_consumer(connection, "creating the offset reader")?;
        let marks = watermarks(&consumer, topic, partitions)?;
        // Where this writer's unfinished epoch (if any) may start: the saved floors; a
        // partition the file does not know (added since, or the file was unreadable) is read
        // from its start. Without a file this writer never sent anything: today's ends.
        let floors: BTreeMap<i32, i64> = match read_floors(&writer, topic)? {
            None if writer.fresh => marks.iter().map(|(&p, &(_, high))| (p, high)).collect(),
            None => marks.iter().map(|(&p, &(low, _))| (p, low)).collect(),
            Some(saved) => marks
                .iter()
                .map(|(&p, &(low, _))| (p, saved.get(&p).map_or(low, |&f| f.max(low))))
                .collect(),
        };
        let ranges = marks
            .iter()
            .map(|(&p, &(_, high))| (p, (floors.get(&p).copied().unwrap_or(high), high)))
            .collect();
        let tail = read_tails(
            connection,
            topic,
            &writer.id,
            &ranges,
            joint || writer.transactional_id.is_some(),
        )?;
        let mut p = EpochProducer {
            producer,
            joint,
            connection: connection.clone(),
            topic: topic.to_string(),
            partitions,
            writer,
            tail,
            floors: BTreeMap::new(),
            last_refresh: Instant::now(),
        };
        // Durable before the first record goes out. The floors only move up once the epochs
        // below them are committed (`commit`): a crash during the replay must find the
        // replayed records again.
        p.save_floors(floors, true)?;
        Ok(p)
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The topic's partition count.
    pub fn partitions(&self) -> i32 {
        self.partitions
    }

    /// The value of the `rivulet.writer` header on this producer's records.
    pub fn writer_id(&self) -> &str {
        &self.writer.id
    }

    /// Whether this writer's records commit with the task's checkpoint ([`Writer::joint`]).
    pub fn is_joint(&self) -> bool {
        self.joint
    }

    /// Whether each epoch goes out in a transaction (of its own or the task's).
    fn transactional(&self) -> bool {
        self.joint || self.writer.transactional_id.is_some()
    }

    /// The transactional id this writer's transactions run under.
    fn txn_id(&self) -> Option<&str> {
        if self.joint {
            self.producer.transactional_id()
        } else {
            self.writer.transactional_id.as_deref()
        }
    }

    fn save_floors(&mut self, floors: BTreeMap<i32, i64>, durable: bool) -> Result<()> {
        if floors == self.floors {
            return Ok(());
        }
        let file = Floors {
            writer: self.writer.id.clone(),
            topic: self.topic.clone(),
            floors,
        };
        let bytes = serde_json::to_vec(&file).map_err(|e| RuntimeError::Sink {
            sink: format!("kafka `{}`", self.topic),
            reason: format!("encoding the recovery file: {e}"),
        })?;
        let path = &self.writer.recovery_file;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| RuntimeError::io("creating", dir, e))?;
        }
        if durable {
            write_atomic(path, &bytes)?;
        } else {
            // A lost or torn update only leaves an older, lower floor (or none readable: the
            // partition's start), which is still correct; not worth an fsync per epoch.
            write_replace(path, &bytes)?;
        }
        self.floors = file.floors;
        Ok(())
    }

    /// Produces `records` as the output of `epoch` (seq = index), skipping those already in the
    /// topic, and waits until all are acknowledged. Returns how many were sent.
    ///
    /// A joint writer only queues them in the task's open transaction: the checkpoint's
    /// commit delivers and commits them with the epoch's commit marker.
    pub fn send_epoch(&mut self, epoch: u64, records: &[OutRecord]) -> Result<u64> {
        let mut begun = false;
        let result = self.send_records(epoch, records, &mut begun);
        if !begun || self.joint {
            return result;
        }
        let done = result.and_then(|n| {
            self.producer
                .commit()
                .map(|()| n)
                .map_err(|e| txn_error(self.txn_id(), &self.topic, "committing to", e))
        });
        if done.is_err() {
            self.producer.abort();
        }
        done
    }

    /// A record's headers: this writer's identity (`identity`) and the record's own.
    fn headers(
        &self,
        epoch: u64,
        seq: u64,
        identity: bool,
        own: &[(String, Vec<u8>)],
    ) -> OwnedHeaders {
        let mut headers = OwnedHeaders::new_with_capacity(if identity { 3 } else { 0 } + own.len());
        if identity {
            let epoch_s = epoch.to_string();
            let seq_s = seq.to_string();
            headers = headers
                .insert(Header {
                    key: WRITER_HEADER,
                    value: Some(self.writer.id.as_bytes()),
                })
                .insert(Header {
                    key: EPOCH_HEADER,
                    value: Some(epoch_s.as_bytes()),
                })
                .insert(Header {
                    key: SEQ_HEADER,
                    value: Some(seq_s.as_bytes()),
                });
        }
        for (k, v) in own {
            headers = headers.insert(Header {
                key: k.as_str(),
                value: Some(v.as_slice()),
            });
        }
        headers
    }

    /// Sends what is left of the epoch; a transactional writer's transaction begins with the
    /// first record sent (`begun`).
    fn send_records(&mut self, epoch: u64, records: &[OutRecord], begun: &mut bool) -> Result<u64> {
        let failed_before = self.producer.failures();
        let mut sent = 0u64;
        let mut last: HashMap<i32, (u64, u64)> = HashMap::new();
        let partitions: Vec<i32> = records
            .iter()
            .map(|r| match (r.partition, &r.key) {
                (Some(p), _) => p.rem_euclid(self.partitions),
                (None, Some(k)) => partition_for_key(k, self.partitions),
                (None, None) => r.partition_hint.rem_euclid(self.partitions),
            })
            .collect();
        // See `Writer::tagging_last_only`.
        let last_only = self.writer.tag_last_only && self.transactional();
        let mut tagged: HashMap<i32, usize> = HashMap::new();
        if last_only {
            for (i, p) in partitions.iter().enumerate() {
                tagged.insert(*p, i);
            }
        }
        for (seq, (r, &partition)) in records.iter().zip(&partitions).enumerate() {
            let index = seq;
            let seq = seq as u64;
            if self
                .tail
                .get(&partition)
                .is_some_and(|t| (epoch, seq) <= *t)
            {
                continue;
            }
            let identity = !last_only || tagged.get(&partition) == Some(&index);
            let mut rec: BaseRecord<'_, [u8], [u8], ()> =
                BaseRecord::to(&self.topic).partition(partition);
            if identity || !r.headers.is_empty() {
                rec = rec.headers(self.headers(epoch, seq, identity, &r.headers));
            }
            if let Some(k) = &r.key {
                rec = rec.key(k.as_slice());
            }
            if let Some(v) = &r.value {
                rec = rec.payload(v.as_slice());
            }
            if self.transactional() && !*begun {
                self.producer.begin().map_err(|e| {
                    txn_error(self.txn_id(), &self.topic, "beginning a transaction on", e)
                })?;
                *begun = true;
            }
            self.producer
                .send(rec)
                .map_err(|e| RuntimeError::kafka(format!("producing to `{}`", self.topic), e))?;
            sent += 1;
            last.insert(partition, (epoch, seq));
        }
        if !self.joint {
            self.producer
                .flush(failed_before)
                .map_err(|e| delivery_error(self.txn_id(), &self.topic, e))?;
        }
        self.tail.extend(last);
        Ok(sent)
    }

    /// The epochs sent so far are committed in the checkpoint and will never be replayed:
    /// raise the floors past this writer's delivered records and, at most every
    /// [`FLOOR_REFRESH`], to every partition's end.
    pub fn commit(&mut self) -> Result<()> {
        let mut floors = self.floors.clone();
        if self.last_refresh.elapsed() >= FLOOR_REFRESH {
            let consumer = plain_consumer(&self.connection, "creating the offset reader")?;
            for (p, (_, high)) in watermarks(&consumer, &self.topic, self.partitions)? {
                let f = floors.entry(p).or_insert(high);
                *f = (*f).max(high);
            }
            self.last_refresh = Instant::now();
        }
        for (p, o) in self.producer.delivered(&self.topic) {
            let f = floors.entry(p).or_insert(o + 1);
            *f = (*f).max(o + 1);
        }
        self.save_floors(floors, false)
    }
}

/// A transactional writer's error: fencing (another process took the query over) said
/// plainly.
fn txn_error(txn_id: Option<&str>, topic: &str, what: &str, e: KafkaError) -> RuntimeError {
    if crate::producer::is_fenced(&e) {
        return fenced(txn_id, topic);
    }
    RuntimeError::kafka(format!("{what} `{topic}`"), e)
}

/// Records that did not arrive, fencing said plainly.
fn delivery_error(txn_id: Option<&str>, topic: &str, e: DeliveryFailure) -> RuntimeError {
    match e {
        DeliveryFailure::Fenced => fenced(txn_id, topic),
        DeliveryFailure::Flush(e) => RuntimeError::kafka(format!("flushing `{topic}`"), e),
        DeliveryFailure::Failed { count, first } => RuntimeError::Sink {
            sink: format!("kafka `{topic}`"),
            reason: format!("{count} records failed delivery: {first}"),
        },
    }
}

fn fenced(txn_id: Option<&str>, topic: &str) -> RuntimeError {
    RuntimeError::Fenced(format!(
        "writer `{}` of `{topic}`",
        txn_id.unwrap_or_default()
    ))
}

/// This writer's saved floors for `topic`; `None` when it never wrote there under this
/// checkpoint. An unreadable file (torn by a power loss: updates are not fsynced) means
/// "floors unknown": read whole partitions.
fn read_floors(writer: &Writer, topic: &str) -> Result<Option<BTreeMap<i32, i64>>> {
    let path = &writer.recovery_file;
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RuntimeError::io("reading", path, e)),
    };
    match serde_json::from_slice::<Floors>(&bytes) {
        Ok(f) if f.writer == writer.id && f.topic == topic => Ok(Some(f.floors)),
        Ok(_) | Err(_) => {
            tracing::warn!(
                "{}: unreadable or not this writer's; reading `{}` from its start to find what \
                 was already written",
                path.display(),
                topic.escape_debug()
            );
            Ok(Some(BTreeMap::new()))
        }
    }
}

/// Replaces `path` by `bytes` through a temporary file and a rename (no fsync).
fn write_replace(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes).map_err(|e| RuntimeError::io("writing", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| RuntimeError::io("renaming to", path, e))
}

/// The Kafka sink (see the module docs).
pub struct KafkaSink {
    producer: EpochProducer,
    key_columns: Vec<String>,
    servers: String,
}

impl KafkaSink {
    /// A sink into `topic` keyed by `group_by` (plus `window_start` when the rows have it),
    /// writing as `writer`.
    pub fn connect(
        connection: &KafkaConnection,
        topic: &str,
        group_by: &[String],
        writer: Writer,
    ) -> Result<KafkaSink> {
        Ok(KafkaSink {
            producer: EpochProducer::connect(connection, topic, writer)?,
            key_columns: group_by.to_vec(),
            servers: connection.bootstrap_servers.clone(),
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
                partition: None,
                headers: Vec::new(),
            });
        }
    }
    out
}

impl Sink for KafkaSink {
    fn description(&self) -> String {
        format!("KafkaSink[{}@{}]", self.producer.topic(), self.servers)
    }

    fn write_epoch(&mut self, epoch: u64, batches: &[RecordBatch]) -> Result<()> {
        let records = json_records(batches, &self.key_columns);
        self.producer.send_epoch(epoch, &records)?;
        Ok(())
    }

    fn commit(&mut self, _epoch: u64) -> Result<()> {
        self.producer.commit()
    }

    fn replays_epochs(&self) -> bool {
        !self.producer.is_joint()
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
