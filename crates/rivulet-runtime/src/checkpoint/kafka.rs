//! The checkpoint in a compacted Kafka topic (`checkpoint.store = "kafka"`): the query's
//! offsets, operator state and commit markers live in the cluster, not on a local disk, so
//! the query can be restarted on any machine that reaches the cluster.
//!
//! One topic per query, `<name>-changelog` (`cleanup.policy=compact`, created when missing),
//! one partition per task: a query spread over processes (`crate::group`) runs a task per
//! input partition number, and task `p` keeps its checkpoint in changelog partition `p`, so a
//! task restored on another process reads its own state only (Kafka Streams' changelog
//! layout). Each entry of [`Checkpoint`](super::Checkpoint) is one or more records keyed
//! by its name: a value is cut into chunks of at most [`CHUNK`] bytes (keys `<name>#0`,
//! `<name>#1`, ...) followed by a small header record under `<name>` saying how many chunks and
//! bytes make it. A removed entry is a tombstone for each of its keys, so compaction keeps the
//! topic at the size of the retained epochs.
//!
//! Every `put` and `delete` is one Kafka transaction (transactional id `rivulet-<name>:<p>`, one
//! per task), so a
//! reader under read_committed sees an entry whole or not at all, exactly like the directory
//! store's atomic rename — or, while the query driver holds the epoch's transaction open
//! ([`CheckpointStore::begin_epoch`]), part of that one transaction, which also carries the
//! task's Kafka output ([`crate::producer`]). Opening the store initialises that transactional id, which aborts
//! whatever an earlier process of the query left open and *fences* that process: if it is
//! still alive (paused, cut off), its next checkpoint write fails and it stops, so two
//! processes never both advance one query. Then the topic is read from its start to its end
//! (read_committed) into memory: the store's reads never go to the cluster again.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::BaseRecord;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::CheckpointStore;
use crate::connectors::kafka::KafkaConnection;
use crate::error::RuntimeError;
use crate::producer::TaskProducer;
use crate::Result;

/// Committed epochs a task keeps in its changelog partition unless told otherwise: the store
/// holds its live entries in memory and a restore reads them all, so each retained epoch costs
/// a copy of the state in RAM and in restore time (the directory store keeps
/// [`super::DEFAULT_RETAIN`], on disk).
pub const DEFAULT_RETAIN: usize = 2;

/// Largest chunk of a value in one record: well under Kafka's default `max.message.bytes`
/// (1 MiB), whatever the cluster.
pub const CHUNK: usize = 512 * 1024;
/// The changelog's configs when Rivulet creates it.
const TOPIC_CONFIGS: [(&str, &str); 2] = [
    ("cleanup.policy", "compact"),
    ("min.compaction.lag.ms", "0"),
];
const TIMEOUT: Duration = Duration::from_secs(30);
/// The read at open gives up after this long without progress.
const READ_STALL: Duration = Duration::from_secs(30);

/// The name of query `name`'s checkpoint topic.
pub fn changelog_topic(name: &str) -> String {
    format!("{name}-changelog")
}

/// The transactional id the checkpoint writes of task `label` (`<query name>:<task>`) use.
pub fn transactional_id(label: &str) -> String {
    format!("rivulet-{label}")
}

/// The name of task `task` of query `name` in logs, progress records and transactional ids.
pub fn task_label(name: &str, task: i32) -> String {
    format!("{name}:{task}")
}

/// Where one task's checkpoint lives: a partition of its query's changelog topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changelog {
    pub topic: String,
    /// The task's partition of the topic.
    pub partition: i32,
    /// The topic's partition count when Rivulet creates it: the query's task count.
    pub partitions: i32,
    /// The task's name (`<query name>:<task>`): its transactional id is `rivulet-<label>`.
    pub label: String,
}

impl Changelog {
    /// Task `task` (of `tasks`) of query `name`.
    pub fn task(name: &str, task: i32, tasks: i32) -> Changelog {
        Changelog {
            topic: changelog_topic(name),
            partition: task,
            partitions: tasks.max(1),
            label: task_label(name, task),
        }
    }
}

/// The record under an entry's own key: how to put its chunks back together.
#[derive(Serialize, Deserialize)]
struct Header {
    chunks: usize,
    len: usize,
}

/// A query's checkpoint in its changelog topic; see the module docs.
pub struct KafkaStore {
    topic: String,
    partition: i32,
    /// The task's label (`<query>:<task>`).
    query: String,
    /// The task's producer: its transactions also carry the epoch's Kafka output when the
    /// driver holds one open ([`crate::producer`]).
    producer: Arc<TaskProducer>,
    /// Every live entry, assembled: what the topic holds under read_committed.
    entries: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl std::fmt::Debug for KafkaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaStore")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .finish_non_exhaustive()
    }
}

impl KafkaStore {
    /// Opens a task's checkpoint (`changelog`) through `connection`: creates the topic when
    /// missing, fences any earlier process of the task and reads the task's partition.
    pub fn open(connection: &KafkaConnection, changelog: &Changelog) -> Result<KafkaStore> {
        let Changelog {
            topic,
            partition,
            partitions,
            label: name,
        } = changelog.clone();
        let name = name.as_str();
        ensure_changelog(connection, &topic, partitions)?;
        // Initialising the transactional id aborts what an earlier process of the task left
        // open and fences that process.
        let producer =
            TaskProducer::connect(connection, Some(&transactional_id(name))).map_err(|e| {
                RuntimeError::kafka(
                    format!(
                        "initialising transactional id `{}` for `{topic}`",
                        transactional_id(name)
                    ),
                    e,
                )
            })?;
        let have = crate::sinks::kafka::topic_partitions(producer.client(), &topic)?;
        if have <= partition {
            // The source grew after the changelog was made: tasks and changelog partitions
            // correspond one to one.
            return Err(RuntimeError::Checkpoint(format!(
                "checkpoint topic `{topic}` has {have} partition(s), task {partition} needs \
                 partition {partition}: the source topic grew; add partitions to `{topic}` to match"
            )));
        }
        let entries = read_changelog(connection, &topic, partition)?;
        tracing::info!(
            "checkpoint of task `{name}` in topic `{topic}` partition {partition}: {} entries",
            entries.len()
        );
        Ok(KafkaStore {
            topic,
            partition,
            query: name.to_string(),
            producer,
            entries: Mutex::new(entries),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        // A panic while holding the lock leaves the map as it was: it is only changed after
        // a transaction committed.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends `records` (key, value or tombstone) in one transaction: its own, or the epoch's
    /// when the driver holds one open ([`CheckpointStore::begin_epoch`]), which then commits
    /// them with the epoch's other writes.
    fn transaction(&self, records: &[(String, Option<&[u8]>)]) -> Result<()> {
        let fail = |what: &str, e: KafkaError| self.txn_error(what, e);
        let held = self.producer.is_held();
        self.producer
            .begin()
            .map_err(|e| fail("beginning a transaction", e))?;
        let sent = (|| {
            for (key, value) in records {
                let mut rec: BaseRecord<'_, str, [u8]> = BaseRecord::to(&self.topic)
                    .key(key.as_str())
                    .partition(self.partition);
                if let Some(v) = value {
                    rec = rec.payload(v);
                }
                self.producer.send(rec).map_err(|e| fail("sending", e))?;
            }
            if held {
                return Ok(());
            }
            self.producer.commit().map_err(|e| fail("committing", e))
        })();
        if sent.is_err() {
            self.producer.abort();
        }
        sent
    }

    fn txn_error(&self, what: &str, e: KafkaError) -> RuntimeError {
        if crate::producer::is_fenced(&e) {
            return RuntimeError::Fenced(format!(
                "the checkpoint of task `{}` (transactional id `{}`)",
                self.query,
                transactional_id(&self.query)
            ));
        }
        RuntimeError::kafka(format!("{what} a checkpoint write to `{}`", self.topic), e)
    }
}

impl CheckpointStore for KafkaStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().get(key).cloned())
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        let chunks: Vec<&[u8]> = if value.is_empty() {
            Vec::new()
        } else {
            value.chunks(CHUNK).collect()
        };
        let header = serde_json::to_vec(&Header {
            chunks: chunks.len(),
            len: value.len(),
        })?;
        let mut records: Vec<(String, Option<&[u8]>)> = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("{key}#{i}"), Some(*c)))
            .collect();
        // An overwritten entry that had more chunks leaves none behind.
        let old = self.lock().get(key).map_or(0, |v| v.len().div_ceil(CHUNK));
        records.extend((chunks.len()..old).map(|i| (format!("{key}#{i}"), None)));
        // The header last: a reader that sees it has seen every chunk.
        records.push((key.to_string(), Some(&header)));
        self.transaction(&records)?;
        self.lock().insert(key.to_string(), value.to_vec());
        Ok(())
    }

    fn delete(&self, keys: &[String]) -> Result<()> {
        let mut records: Vec<(String, Option<&[u8]>)> = Vec::new();
        {
            let entries = self.lock();
            for key in keys {
                if let Some(v) = entries.get(key) {
                    records
                        .extend((0..v.len().div_ceil(CHUNK)).map(|i| (format!("{key}#{i}"), None)));
                    records.push((key.clone(), None));
                }
            }
        }
        if records.is_empty() {
            return Ok(());
        }
        self.transaction(&records)?;
        let mut entries = self.lock();
        for key in keys {
            entries.remove(key);
        }
        Ok(())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let dir = format!("{prefix}/");
        Ok(self
            .lock()
            .keys()
            .filter_map(|k| k.strip_prefix(&dir).map(str::to_string))
            .collect())
    }

    fn location(&self) -> String {
        format!("kafka topic `{}` partition {}", self.topic, self.partition)
    }

    fn begin_epoch(&self) -> Result<bool> {
        self.producer
            .hold()
            .map_err(|e| self.txn_error("beginning a transaction for", e))?;
        Ok(true)
    }

    fn commit_epoch(&self) -> Result<()> {
        self.producer
            .commit_held()
            .map_err(|e| self.txn_error("committing", e))
    }

    fn producer(&self) -> Option<Arc<TaskProducer>> {
        Some(self.producer.clone())
    }
}

/// Creates the changelog topic with `partitions` partitions unless it exists.
fn ensure_changelog(connection: &KafkaConnection, topic: &str, partitions: i32) -> Result<()> {
    let configs: Vec<(String, String)> = TOPIC_CONFIGS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if create_topic(connection, topic, partitions, &configs)? {
        tracing::info!(
            "created checkpoint topic `{topic}` with {partitions} partition(s) (cleanup.policy=compact)"
        );
    }
    Ok(())
}

/// Creates `topic` with `partitions` partitions and `configs` unless it exists; whether it
/// was created.
pub(crate) fn create_topic(
    connection: &KafkaConnection,
    topic: &str,
    partitions: i32,
    configs: &[(String, String)],
) -> Result<bool> {
    // The admin client's calls are futures; this runs on the query's blocking thread, so a
    // small runtime of its own in a scoped thread drives them (never inside another runtime).
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| RuntimeError::Source(format!("starting a runtime: {e}")))?;
            rt.block_on(rivulet_client::admin::ensure_topic(
                connection, topic, partitions, configs,
            ))
            .map_err(|e| RuntimeError::Source(format!("creating topic `{topic}`: {e}")))
        })
        .join()
        .map_err(|_| RuntimeError::Thread("topic creation panicked".into()))?
    })
}

/// Reads `partition` of `topic` from its start to its end under read_committed and assembles
/// the live entries.
fn read_changelog(
    connection: &KafkaConnection,
    topic: &str,
    partition: i32,
) -> Result<BTreeMap<String, Vec<u8>>> {
    let consumer: BaseConsumer = connection
        .client_config()
        .set(
            "group.id",
            format!("rivulet-changelog-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        // The end of the partition is known only when a fetch comes back empty; librdkafka's
        // default makes that last fetch wait 500 ms, on every restore.
        .set("fetch.wait.max.ms", "10")
        .create()
        .map_err(|e| RuntimeError::kafka("creating the changelog reader", e))?;
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, TIMEOUT)
        .map_err(|e| RuntimeError::kafka(format!("reading the offsets of `{topic}`"), e))?;
    let mut raw: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    if high > low {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(low))
            .map_err(|e| RuntimeError::kafka("building the assignment", e))?;
        consumer
            .assign(&tpl)
            .map_err(|e| RuntimeError::kafka(format!("assigning `{topic}`"), e))?;
        let mut last_progress = Instant::now();
        // Under read_committed the last offsets may be transaction markers, which are never
        // delivered: the end is the partition-EOF event (the fetch reached the end).
        loop {
            if last_progress.elapsed() > READ_STALL {
                return Err(RuntimeError::Source(format!(
                    "reading checkpoint topic `{topic}`: no progress for {}s before offset {high}",
                    READ_STALL.as_secs()
                )));
            }
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => {
                    return Err(RuntimeError::kafka(format!("reading `{topic}`"), e));
                }
                Some(Ok(m)) => {
                    last_progress = Instant::now();
                    let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                        continue;
                    };
                    match m.payload() {
                        Some(v) => raw.insert(key.to_string(), v.to_vec()),
                        None => raw.remove(key),
                    };
                    if m.offset() + 1 >= high {
                        break;
                    }
                }
            }
        }
    }
    assemble(raw, topic)
}

/// Puts each entry back together from its header and chunks.
fn assemble(mut raw: BTreeMap<String, Vec<u8>>, topic: &str) -> Result<BTreeMap<String, Vec<u8>>> {
    let names: Vec<String> = raw.keys().filter(|k| !k.contains('#')).cloned().collect();
    let mut entries = BTreeMap::new();
    for name in names {
        let corrupt = |what: String| {
            RuntimeError::Checkpoint(format!("kafka topic `{topic}`: {name}: {what}"))
        };
        let header: Header = raw
            .get(&name)
            .map(|h| serde_json::from_slice(h))
            .transpose()
            .map_err(|e| corrupt(e.to_string()))?
            .ok_or_else(|| corrupt("no header".into()))?;
        let mut value = Vec::with_capacity(header.len.min(1 << 30));
        for i in 0..header.chunks {
            let chunk = raw
                .remove(&format!("{name}#{i}"))
                .ok_or_else(|| corrupt(format!("chunk {i} of {} is missing", header.chunks)))?;
            value.extend_from_slice(&chunk);
        }
        if value.len() != header.len {
            return Err(corrupt(format!(
                "{} bytes where the header says {}",
                value.len(),
                header.len
            )));
        }
        entries.insert(name, value);
    }
    Ok(entries)
}
