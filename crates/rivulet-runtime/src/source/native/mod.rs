//! The native Kafka source: Rivulet's own fetcher over the `kafka-protocol` codecs.
//!
//! Three threads, each with its own connections (`conn.rs`): the query thread (metadata,
//! ListOffsets), the prefetch thread (`fetcher.rs`: Fetch, record batch parsing) and a committer
//! thread (FindCoordinator, OffsetCommit of each committed epoch's end offsets, coalesced, so a
//! slow coordinator never delays a micro-batch; started by the first commit). Offsets are committed as a standalone
//! consumer does (generation -1, no member id), exactly what librdkafka sends for a manually
//! assigned consumer.
//!
//! Plaintext connections only; TLS/SASL clusters use `client = "librdkafka"`.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{SourceOptions, StartingOffsets};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{GroupId, OffsetCommitRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{into_batch, replay_ranges, Source, SourceBatch, SourceRecord, TopicPartition};
use crate::checkpoint::OffsetRange;
use crate::error::RuntimeError;
use crate::Result;

pub(crate) mod conn;
pub(crate) mod fetcher;

use conn::{error_name, Cluster};
use fetcher::Fetcher;

/// Socket read/write timeout of every request (a fetch long-poll is far shorter).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `connect` waits for the topics to exist (auto-creation included).
const TOPIC_WAIT: Duration = Duration::from_secs(30);
/// Most time a replay may take to re-read an epoch's recorded ranges.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(120);
/// Prefetched bytes per record the query may take in one micro-batch; the prefetch queue holds
/// about one micro-batch (`max_records_per_trigger`) ahead, within the bounds below.
const QUEUE_BYTES_PER_RECORD: usize = 200;
const QUEUE_MIN_BYTES: usize = 8 << 20;
const QUEUE_MAX_BYTES: usize = 512 << 20;

/// The native source (see the module docs).
pub struct NativeSource {
    group_id: String,
    brokers: String,
    topics: Vec<String>,
    positions: BTreeMap<TopicPartition, i64>,
    cluster: Mutex<Cluster>,
    fetcher: Fetcher,
    committer: Committer,
}

fn source_err(context: &str) -> impl Fn(String) -> RuntimeError + '_ {
    move |e| RuntimeError::Source(format!("{context}: {e}"))
}

impl NativeSource {
    /// Connects, waits (bounded) for the topics and their partitions, and starts the prefetch
    /// and committer threads. Positions are unset until a start.
    pub fn connect(spec: &SourceOptions, query_name: &str) -> Result<NativeSource> {
        if spec.topics.is_empty() {
            return Err(RuntimeError::Plan("the source has no topics".into()));
        }
        let group_id = spec.group_id(query_name);
        let security = Arc::new(
            rivulet_auth::client::ClientSecurity::from_properties(&spec.connection.properties)
                .map_err(|e| RuntimeError::Plan(format!("source: {e}")))?,
        );
        // As librdkafka's default: a transaction's records only once it committed.
        let read_committed = spec
            .connection
            .properties
            .get("isolation.level")
            .is_none_or(|v| v.trim() != "read_uncommitted");
        let mut cluster = Cluster::new(
            &spec.connection.bootstrap_servers,
            REQUEST_TIMEOUT,
            security.clone(),
        );
        cluster.read_committed = read_committed;
        let counts = cluster
            .await_topics(&spec.topics, TOPIC_WAIT)
            .map_err(source_err(&format!(
                "connecting to {}",
                spec.connection.bootstrap_servers
            )))?;
        let mut positions = BTreeMap::new();
        for (topic, n) in counts {
            for p in 0..n {
                positions.insert(
                    TopicPartition {
                        topic: topic.clone(),
                        partition: p,
                    },
                    -1,
                );
            }
        }
        let max_records = spec.max_records();
        let queue_bytes = usize::try_from(max_records)
            .unwrap_or(usize::MAX)
            .saturating_mul(QUEUE_BYTES_PER_RECORD)
            .clamp(QUEUE_MIN_BYTES, QUEUE_MAX_BYTES);
        let spawn = |e: std::io::Error| RuntimeError::Source(format!("starting a thread: {e}"));
        let fetcher = Fetcher::start(
            &spec.connection.bootstrap_servers,
            security.clone(),
            spec.topics.clone(),
            REQUEST_TIMEOUT,
            queue_bytes,
            read_committed,
        )
        .map_err(spawn)?;
        let committer = Committer::new(&spec.connection.bootstrap_servers, security, &group_id);
        Ok(NativeSource {
            group_id,
            brokers: spec.connection.bootstrap_servers.clone(),
            topics: spec.topics.clone(),
            positions,
            cluster: Mutex::new(cluster),
            fetcher,
            committer,
        })
    }

    fn list_offsets(&self, timestamp: i64) -> Result<BTreeMap<TopicPartition, i64>> {
        let tps: Vec<TopicPartition> = self.positions.keys().cloned().collect();
        let mut cluster = self.cluster.lock().unwrap_or_else(|p| p.into_inner());
        cluster
            .list_offsets(&tps, timestamp, &self.topics)
            .map_err(source_err("listing offsets"))
    }
}

impl Source for NativeSource {
    fn group_id(&self) -> &str {
        &self.group_id
    }

    fn description(&self) -> String {
        format!("KafkaSource[{}@{}]", self.topics.join(","), self.brokers)
    }

    fn positions(&self) -> &BTreeMap<TopicPartition, i64> {
        &self.positions
    }

    fn retain_partitions(&mut self, partitions: &std::collections::BTreeSet<i32>) {
        self.positions
            .retain(|tp, _| partitions.contains(&tp.partition));
    }

    fn start_fresh(&mut self, starting: StartingOffsets) -> Result<()> {
        let pos = match starting {
            StartingOffsets::Earliest => self.list_offsets(-2)?,
            StartingOffsets::Latest => self.list_offsets(-1)?,
            StartingOffsets::Timestamp(ts) => {
                let latest = self.list_offsets(-1)?;
                let mut at = self.list_offsets(ts)?;
                // No record at or after `ts`: start at the end.
                for (tp, off) in at.iter_mut() {
                    if *off < 0 {
                        *off = latest.get(tp).copied().unwrap_or(0);
                    }
                }
                at
            }
        };
        self.start_at(&pos)
    }

    fn start_at(&mut self, positions: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        let missing = self
            .positions
            .keys()
            .any(|tp| positions.get(tp).is_none_or(|o| *o < 0));
        let earliest = if missing {
            self.list_offsets(-2)?
        } else {
            BTreeMap::new()
        };
        for (tp, pos) in self.positions.iter_mut() {
            *pos = match positions.get(tp) {
                Some(o) if *o >= 0 => *o,
                _ => earliest.get(tp).copied().unwrap_or(0),
            };
        }
        self.fetcher.reset(&self.positions);
        Ok(())
    }

    fn poll_batch(&mut self, max_records: usize, max_wait: Duration) -> Result<SourceBatch> {
        let chunks = self
            .fetcher
            .take(max_records, max_wait)
            .map_err(source_err("reading the source"))?;
        let mut by_tp: BTreeMap<TopicPartition, Vec<SourceRecord>> = BTreeMap::new();
        for c in chunks {
            let Some(pos) = self.positions.get_mut(&c.tp) else {
                continue;
            };
            *pos = (*pos).max(c.next_offset);
            if !c.records.is_empty() {
                by_tp.entry(c.tp).or_default().extend(c.records);
            }
        }
        Ok(into_batch(by_tp))
    }

    fn read_ranges(&mut self, ranges: &[OffsetRange]) -> Result<SourceBatch> {
        let mut pending = replay_ranges(&mut self.positions, ranges)?;
        let mut out: BTreeMap<TopicPartition, Vec<SourceRecord>> = BTreeMap::new();
        if !pending.is_empty() {
            let starts = pending
                .iter()
                .map(|(tp, (s, _))| (tp.clone(), *s))
                .collect();
            self.fetcher.reset(&starts);
            let deadline = Instant::now() + REPLAY_TIMEOUT;
            while !pending.is_empty() {
                if Instant::now() >= deadline {
                    return Err(RuntimeError::Source(format!(
                        "timed out re-reading recorded ranges {pending:?}"
                    )));
                }
                let chunks = self
                    .fetcher
                    .take(usize::MAX, Duration::from_millis(100))
                    .map_err(source_err("re-reading a recorded range"))?;
                for c in chunks {
                    let Some((start, end)) = pending.get(&c.tp).copied() else {
                        continue;
                    };
                    out.entry(c.tp.clone()).or_default().extend(
                        c.records
                            .into_iter()
                            .filter(|r| r.offset >= start && r.offset < end),
                    );
                    if c.next_offset >= end {
                        pending.remove(&c.tp);
                    }
                }
            }
        }
        self.fetcher.reset(&self.positions);
        Ok(into_batch(out))
    }

    fn latest_offsets(&self) -> Result<BTreeMap<TopicPartition, i64>> {
        self.list_offsets(-1)
    }

    fn recent_latest_offsets(&self) -> Result<BTreeMap<TopicPartition, i64>> {
        let seen = self.fetcher.high_watermarks();
        if self.positions.keys().all(|tp| seen.contains_key(tp)) {
            Ok(seen)
        } else {
            self.latest_offsets()
        }
    }

    fn commit_to_group(&self, positions: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        self.committer.commit(positions.clone());
        Ok(())
    }
}

/// The committer thread: commits the newest positions it was given, dropping older ones
/// still waiting (only the latest matters for lag tools). Started by the first commit: a task
/// of a query spread over processes never commits (its group member does), so it costs no
/// idle thread and connection. Finishes the last commit when the source is dropped.
struct Committer {
    brokers: String,
    security: Arc<rivulet_auth::client::ClientSecurity>,
    group: String,
    running: Mutex<Option<CommitThread>>,
}

struct CommitThread {
    tx: mpsc::Sender<BTreeMap<TopicPartition, i64>>,
    thread: JoinHandle<()>,
}

impl Committer {
    fn new(
        brokers: &str,
        security: Arc<rivulet_auth::client::ClientSecurity>,
        group: &str,
    ) -> Committer {
        Committer {
            brokers: brokers.to_string(),
            security,
            group: group.to_string(),
            running: Mutex::new(None),
        }
    }

    fn start(&self) -> std::io::Result<CommitThread> {
        let (tx, rx) = mpsc::channel::<BTreeMap<TopicPartition, i64>>();
        let mut cluster = Cluster::new(
            &self.brokers,
            Duration::from_secs(10),
            self.security.clone(),
        );
        let group = self.group.clone();
        let thread = std::thread::Builder::new()
            .name("rivulet-commit".into())
            .spawn(move || {
                let mut coordinator: Option<i32> = None;
                let mut last_error: Option<String> = None;
                while let Ok(mut positions) = rx.recv() {
                    while let Ok(newer) = rx.try_recv() {
                        positions = newer;
                    }
                    match commit(&mut cluster, &mut coordinator, &group, &positions) {
                        Ok(()) => last_error = None,
                        Err(e) => {
                            // Visibility only; say it once per distinct problem.
                            if last_error.as_deref() != Some(e.as_str()) {
                                tracing::warn!("committing offsets to group `{group}`: {e}");
                            }
                            last_error = Some(e);
                            coordinator = None;
                        }
                    }
                }
            })?;
        Ok(CommitThread { tx, thread })
    }

    fn commit(&self, positions: BTreeMap<TopicPartition, i64>) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.is_none() {
            match self.start() {
                Ok(t) => *running = Some(t),
                Err(e) => {
                    // Visibility only (lag tools): the query goes on without it.
                    tracing::warn!(
                        "starting the offset committer of group `{}`: {e}",
                        self.group
                    );
                    return;
                }
            }
        }
        if let Some(t) = running.as_ref() {
            // The thread only stops when `tx` is dropped, so this cannot fail before that.
            let _ = t.tx.send(positions);
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        let running = self
            .running
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(CommitThread { tx, thread }) = running {
            drop(tx);
            let _ = thread.join();
        }
    }
}

fn commit(
    cluster: &mut Cluster,
    coordinator: &mut Option<i32>,
    group: &str,
    positions: &BTreeMap<TopicPartition, i64>,
) -> std::result::Result<(), String> {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (tp, off) in positions.iter().filter(|(_, o)| **o >= 0) {
        let p = OffsetCommitRequestPartition::default()
            .with_partition_index(tp.partition)
            .with_committed_offset(*off);
        match topics.last_mut() {
            Some(t) if t.name.0.as_str() == tp.topic => t.partitions.push(p),
            _ => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                    .with_partitions(vec![p]),
            ),
        }
    }
    if topics.is_empty() {
        return Ok(());
    }
    let node = match *coordinator {
        Some(n) => n,
        None => {
            let n = cluster.coordinator(group)?;
            *coordinator = Some(n);
            n
        }
    };
    let result = (|| {
        let conn = cluster.conn(node)?;
        let version = conn.version::<OffsetCommitRequest>(2..=8)?;
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_topics(topics);
        let resp = conn.call(version, &req)?;
        for t in &resp.topics {
            for p in &t.partitions {
                if p.error_code != 0 {
                    return Err(format!(
                        "{}/{}: {}",
                        t.name.0,
                        p.partition_index,
                        error_name(p.error_code)
                    ));
                }
            }
        }
        Ok(())
    })();
    if result.is_err() {
        cluster.drop_conn(node);
    }
    result
}
