//! The prefetch thread of the native source: keeps Fetch requests going to every partition's
//! leader while the query works on the previous micro-batch, parses the returned record
//! batches into [`SourceRecord`]s and queues them per partition, bounded in bytes.
//!
//! The query thread moves positions (start, resume, replay) with [`Fetcher::reset`]; a reset
//! starts a new *generation*: the queue is emptied and whatever an in-flight fetch of the old
//! generation brings back is dropped, so records never come from stale positions.
//!
//! Errors: network failures and retriable Kafka errors (leader moved, broker restarting) are
//! logged and retried with back-off, forever — the query simply sees no data meanwhile, as
//! with any Kafka consumer. A position outside the log (`OFFSET_OUT_OF_RANGE`, e.g. deleted by
//! retention) restarts the partition at its earliest offset with a warning. Anything else
//! (corrupt batches, authorization, old message formats) is fatal and returned by the next
//! [`Fetcher::take`].
//!
//! Isolation: read_committed unless the source's `properties.isolation.level` says
//! `read_uncommitted` (librdkafka's default, and what a query reading another query's
//! transactional output or a repartition topic needs). The broker then answers up to the last
//! stable offset with the transactions aborted in that range, and [`parse_fetched`] drops
//! their batches as the Java consumer does (KIP-98); lag is measured against the last stable
//! offset.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use rivulet_log::BatchHeader;

use super::conn::{error_name, retriable, Cluster, NetResult};
use crate::source::{SourceRecord, TopicPartition};

/// Fetch long-poll: the broker answers as soon as any byte is there, or after this long.
const FETCH_MAX_WAIT_MS: i32 = 100;
/// Bytes per fetch response and per partition in it (a larger first batch still comes whole).
pub(crate) const FETCH_MAX_BYTES: i32 = 32 << 20;
const FETCH_PARTITION_MAX_BYTES: i32 = 16 << 20;
/// Accounted size of a queued record beyond its key and value (the struct, its share of the
/// batch framing).
const RECORD_OVERHEAD: usize = std::mem::size_of::<SourceRecord>() + 16;
/// Back-off after an error, doubling up to the maximum.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one warning per this interval for the same repeated problem.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Records of one partition from one fetch, in offset order.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub tp: TopicPartition,
    pub topic: Arc<str>,
    pub records: Vec<SourceRecord>,
    /// The partition's position after these records (past control records and gaps).
    pub next_offset: i64,
    bytes: usize,
}

struct State {
    generation: u64,
    /// Partitions to fetch and the next offset of each.
    fetch_at: BTreeMap<TopicPartition, i64>,
    queue: VecDeque<Chunk>,
    queued_bytes: usize,
    /// High watermark per partition from the latest fetch responses.
    high_watermarks: BTreeMap<TopicPartition, i64>,
    fatal: Option<String>,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Handle to the prefetch thread; stopping and joining it on drop.
pub(crate) struct Fetcher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Fetcher {
    /// Starts the thread; it fetches nothing until the first [`Fetcher::reset`].
    /// `max_queued_bytes` bounds the prefetched records (keys, values and overhead).
    pub(crate) fn start(
        brokers: &str,
        security: Arc<rivulet_auth::client::ClientSecurity>,
        topics: Vec<String>,
        timeout: Duration,
        max_queued_bytes: usize,
        read_committed: bool,
    ) -> std::io::Result<Fetcher> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                generation: 0,
                fetch_at: BTreeMap::new(),
                queue: VecDeque::new(),
                queued_bytes: 0,
                high_watermarks: BTreeMap::new(),
                fatal: None,
                stop: false,
            }),
            changed: Condvar::new(),
        });
        let worker = Worker {
            read_committed,
            shared: shared.clone(),
            cluster: Cluster::new(brokers, timeout, security),
            topics,
            max_queued_bytes,
            topic_names: BTreeMap::new(),
            warned: BTreeMap::new(),
        };
        let thread = std::thread::Builder::new()
            .name("rivulet-fetch".into())
            .spawn(move || worker.run())?;
        Ok(Fetcher {
            shared,
            thread: Some(thread),
        })
    }

    /// Fetches `positions` from now on, dropping everything queued or in flight.
    pub(crate) fn reset(&self, positions: &BTreeMap<TopicPartition, i64>) {
        let mut st = self.shared.lock();
        st.generation += 1;
        st.fetch_at = positions.clone();
        st.queue.clear();
        st.queued_bytes = 0;
        drop(st);
        self.shared.changed.notify_all();
    }

    /// Takes up to `max_records` queued records, waiting at most `max_wait` for the first
    /// chunk and not at all for more. A chunk larger than what is left is split.
    pub(crate) fn take(&self, max_records: usize, max_wait: Duration) -> NetResult<Vec<Chunk>> {
        let deadline = Instant::now() + max_wait;
        let mut st = self.shared.lock();
        loop {
            if let Some(e) = &st.fatal {
                return Err(e.clone());
            }
            if !st.queue.is_empty() {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        let mut out = Vec::new();
        let mut n = 0usize;
        while n < max_records {
            let Some(mut chunk) = st.queue.pop_front() else {
                break;
            };
            let left = max_records - n;
            if chunk.records.len() > left {
                let rest = chunk.records.split_off(left);
                let moved = chunk.bytes * left / (left + rest.len()).max(1);
                let tail = Chunk {
                    tp: chunk.tp.clone(),
                    topic: chunk.topic.clone(),
                    records: rest,
                    next_offset: chunk.next_offset,
                    bytes: chunk.bytes - moved,
                };
                chunk.bytes = moved;
                chunk.next_offset = chunk
                    .records
                    .last()
                    .map_or(chunk.next_offset, |r| r.offset + 1);
                st.queue.push_front(tail);
            }
            st.queued_bytes = st.queued_bytes.saturating_sub(chunk.bytes);
            n += chunk.records.len();
            out.push(chunk);
        }
        drop(st);
        self.shared.changed.notify_all();
        Ok(out)
    }

    /// High watermarks seen in the latest fetch responses.
    pub(crate) fn high_watermarks(&self) -> BTreeMap<TopicPartition, i64> {
        self.shared.lock().high_watermarks.clone()
    }
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
        if let Some(t) = self.thread.take() {
            // The thread notices `stop` within one fetch long-poll or socket timeout.
            let _ = t.join();
        }
    }
}

/// What one partition of a fetch response amounted to.
enum Outcome {
    Records {
        records: Vec<SourceRecord>,
        next_offset: i64,
        bytes: usize,
        high_watermark: i64,
    },
    /// Retriable: log, refresh metadata, try again.
    Retry(String),
    OutOfRange,
    Fatal(String),
}

/// A fetch request sent to a leader, its response not read yet.
struct InFlight {
    node: i32,
    version: i16,
    correlation: i32,
    parts: Vec<(TopicPartition, i64)>,
}

struct Worker {
    read_committed: bool,
    shared: Arc<Shared>,
    cluster: Cluster,
    topics: Vec<String>,
    max_queued_bytes: usize,
    topic_names: BTreeMap<String, Arc<str>>,
    /// Last time each kind of problem was logged.
    warned: BTreeMap<String, Instant>,
}

impl Worker {
    fn run(mut self) {
        let mut backoff = BACKOFF_MIN;
        // Fetches sent ahead (see `round`), with the generation they were sent for.
        let mut ahead: Option<(u64, Vec<InFlight>)> = None;
        loop {
            let (generation, targets) = {
                let mut st = self.shared.lock();
                loop {
                    if st.stop {
                        return;
                    }
                    if st.fatal.is_none()
                        && !st.fetch_at.is_empty()
                        && st.queued_bytes < self.max_queued_bytes
                    {
                        break;
                    }
                    st = self
                        .shared
                        .changed
                        .wait_timeout(st, Duration::from_millis(100))
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
                (st.generation, st.fetch_at.clone())
            };
            let sent = match ahead.take() {
                Some((g, sent)) if g == generation => Ok(sent),
                Some((_, stale)) => {
                    // Positions moved since: read and drop the answers (keeps the
                    // connections in step), then ask again.
                    self.receive_all(stale);
                    self.send_all(&targets)
                }
                None => self.send_all(&targets),
            };
            let result = sent.and_then(|sent| {
                let (ok, next) = self.round(generation, sent)?;
                ahead = ok.then_some((generation, next));
                Ok(())
            });
            match result {
                Ok(()) => backoff = BACKOFF_MIN,
                Err(problem) => {
                    if let Some((_, stale)) = ahead.take() {
                        self.receive_all(stale);
                    }
                    self.warn(&problem);
                    let shared = self.shared.clone();
                    let st = shared.lock();
                    if !st.stop {
                        // Sleep on the condvar so a stop or reset cuts the back-off short.
                        drop(shared.changed.wait_timeout(st, backoff));
                    } else {
                        drop(st);
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    if let Err(e) = self.cluster.refresh(&self.topics) {
                        self.warn(&format!("refreshing metadata: {e}"));
                    }
                }
            }
        }
    }

    fn warn(&mut self, problem: &str) {
        let key: String = problem.chars().take(80).collect();
        let now = Instant::now();
        if self
            .warned
            .get(&key)
            .is_none_or(|t| now.duration_since(*t) >= WARN_EVERY)
        {
            tracing::warn!("source fetch: {problem} (retrying)");
            self.warned.insert(key, now);
        }
    }

    fn topic_name(&mut self, topic: &str) -> Arc<str> {
        self.topic_names
            .entry(topic.to_string())
            .or_insert_with(|| Arc::from(topic))
            .clone()
    }

    /// Sends one fetch per leader for `targets`. Err when no request could be sent.
    fn send_all(&mut self, targets: &BTreeMap<TopicPartition, i64>) -> NetResult<Vec<InFlight>> {
        if targets.keys().any(|tp| self.cluster.leader(tp).is_none()) {
            // First use, or a partition lost its leader: ask before giving up on it.
            if let Err(e) = self.cluster.refresh(&self.topics) {
                return Err(format!("refreshing metadata: {e}"));
            }
        }
        let mut by_leader: BTreeMap<i32, Vec<(TopicPartition, i64)>> = BTreeMap::new();
        let mut problem: Option<String> = None;
        for (tp, off) in targets {
            match self.cluster.leader(tp) {
                Some(l) => by_leader.entry(l).or_default().push((tp.clone(), *off)),
                None => {
                    problem = Some(format!("no known leader for {}/{}", tp.topic, tp.partition));
                }
            }
        }
        let mut sent = Vec::new();
        for (node, parts) in by_leader {
            match self.send_fetch(node, &parts) {
                Ok((version, correlation)) => sent.push(InFlight {
                    node,
                    version,
                    correlation,
                    parts,
                }),
                Err(e) => {
                    self.cluster.drop_conn(node);
                    problem = Some(e);
                }
            }
        }
        match problem {
            Some(p) if sent.is_empty() => Err(p),
            Some(p) => {
                self.warn(&p);
                Ok(sent)
            }
            None => Ok(sent),
        }
    }

    /// Reads the answers to `sent`; failed connections are dropped (they reconnect on use).
    fn receive_all(&mut self, sent: Vec<InFlight>) -> Vec<(InFlight, NetResult<FetchResponse>)> {
        sent.into_iter()
            .map(|f| {
                let r = self.receive_fetch(&f);
                if r.is_err() {
                    self.cluster.drop_conn(f.node);
                }
                (f, r)
            })
            .collect()
    }

    /// Receives the answers to `sent`, sends the next fetches right away (positions found by
    /// walking batch headers only, so the brokers prepare the next answers while this thread
    /// parses records), then parses and queues the records — applied only if the generation
    /// and each partition's position still match what was asked.
    ///
    /// Returns whether the next fetches were sent, and those requests; Err: a retriable
    /// problem (results of the partitions that worked are applied).
    fn round(&mut self, generation: u64, sent: Vec<InFlight>) -> NetResult<(bool, Vec<InFlight>)> {
        let answers = self.receive_all(sent);
        let mut problem: Option<String> = None;
        let mut next_targets: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        let mut fetched_bytes = 0usize;
        let mut all_ok = true;
        for (f, r) in &answers {
            match r {
                Ok(resp) if resp.error_code == 0 => {
                    for t in &resp.responses {
                        for p in &t.partitions {
                            let tp = TopicPartition {
                                topic: t.topic.0.to_string(),
                                partition: p.partition_index,
                            };
                            let Some(&(_, off)) = f.parts.iter().find(|(x, _)| *x == tp) else {
                                continue;
                            };
                            if p.error_code != 0 {
                                all_ok = false;
                            }
                            let data = p.records.as_ref();
                            fetched_bytes += data.map_or(0, Bytes::len);
                            let next = data.map_or(off, |d| walk_next_offset(d, off));
                            next_targets.insert(tp, next);
                        }
                    }
                }
                _ => all_ok = false,
            }
        }
        // Send ahead only while everything is well and the queue has room for another answer.
        let room = {
            let st = self.shared.lock();
            st.generation == generation
                && !st.stop
                && st.queued_bytes + fetched_bytes * 2 < self.max_queued_bytes
        };
        let mut ahead = Vec::new();
        let mut sent_ahead = false;
        if all_ok && room && !next_targets.is_empty() {
            if let Ok(sent) = self.send_all(&next_targets) {
                ahead = sent;
                sent_ahead = true;
            }
        }
        let mut results: Vec<(TopicPartition, i64, Outcome)> = Vec::new();
        for (f, r) in answers {
            match r {
                Ok(resp) => {
                    if resp.error_code != 0 {
                        problem = Some(format!(
                            "fetch from broker {}: {}",
                            f.node,
                            error_name(resp.error_code)
                        ));
                        continue;
                    }
                    results.extend(self.outcomes(&f, resp));
                }
                Err(e) => problem = Some(e),
            }
        }
        // Out-of-range partitions restart at the earliest offset (outside the lock).
        let mut resets: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        for (tp, off, o) in &results {
            if matches!(o, Outcome::OutOfRange) {
                match self
                    .cluster
                    .list_offsets(std::slice::from_ref(tp), -2, &self.topics)
                {
                    Ok(m) => {
                        if let Some(earliest) = m.get(tp) {
                            tracing::warn!(
                                "source: offset {off} of {}/{} is no longer in the log; \
                                 continuing at the earliest offset {earliest} (records lost)",
                                tp.topic,
                                tp.partition
                            );
                            resets.insert(tp.clone(), *earliest);
                        }
                    }
                    Err(e) => problem = Some(e),
                }
            }
        }
        let named: Vec<(Arc<str>, TopicPartition, i64, Outcome)> = results
            .into_iter()
            .map(|(tp, off, o)| (self.topic_name(&tp.topic), tp, off, o))
            .collect();
        let mut st = self.shared.lock();
        if st.generation != generation || st.stop {
            return Ok((sent_ahead, ahead));
        }
        for (topic, tp, asked, outcome) in named {
            // An answer counts only for the position it was asked for.
            if st.fetch_at.get(&tp) != Some(&asked) {
                continue;
            }
            match outcome {
                Outcome::Records {
                    records,
                    next_offset,
                    bytes,
                    high_watermark,
                } => {
                    st.high_watermarks.insert(tp.clone(), high_watermark);
                    if next_offset <= asked && records.is_empty() {
                        continue;
                    }
                    st.fetch_at.insert(tp.clone(), next_offset);
                    st.queued_bytes += bytes;
                    st.queue.push_back(Chunk {
                        tp,
                        topic,
                        records,
                        next_offset,
                        bytes,
                    });
                }
                Outcome::Retry(e) => problem = Some(e),
                Outcome::OutOfRange => {
                    if let Some(e) = resets.get(&tp) {
                        st.fetch_at.insert(tp, *e);
                    }
                }
                Outcome::Fatal(e) => {
                    st.fatal = Some(e);
                }
            }
        }
        drop(st);
        self.shared.changed.notify_all();
        match problem {
            Some(p) => Err(p),
            None => Ok((sent_ahead, ahead)),
        }
    }

    fn send_fetch(&mut self, node: i32, parts: &[(TopicPartition, i64)]) -> NetResult<(i16, i32)> {
        let conn = self.cluster.conn(node)?;
        // v13+ name topics by id; v4 is the oldest Kafka 4 still answers.
        let version = conn.version::<FetchRequest>(4..=12)?;
        let mut topics: Vec<FetchTopic> = Vec::new();
        for (tp, off) in parts {
            let partition = FetchPartition::default()
                .with_partition(tp.partition)
                .with_fetch_offset(*off)
                .with_partition_max_bytes(FETCH_PARTITION_MAX_BYTES);
            match topics.last_mut() {
                Some(t) if t.topic.0.as_str() == tp.topic => t.partitions.push(partition),
                _ => topics.push(
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(tp.topic.clone())))
                        .with_partitions(vec![partition]),
                ),
            }
        }
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(i8::from(self.read_committed))
            .with_max_wait_ms(FETCH_MAX_WAIT_MS)
            .with_min_bytes(1)
            .with_max_bytes(FETCH_MAX_BYTES)
            .with_topics(topics);
        let correlation = conn.send(version, &req)?;
        Ok((version, correlation))
    }

    fn receive_fetch(&mut self, f: &InFlight) -> NetResult<FetchResponse> {
        let conn = self.cluster.conn(f.node)?;
        conn.receive::<FetchRequest>(f.version, f.correlation)
    }

    /// Parses each partition of a fetch answer.
    fn outcomes(&self, f: &InFlight, resp: FetchResponse) -> Vec<(TopicPartition, i64, Outcome)> {
        let node = f.node;
        let mut out = Vec::new();
        for t in resp.responses {
            let topic = t.topic.0.to_string();
            for p in t.partitions {
                let tp = TopicPartition {
                    topic: topic.clone(),
                    partition: p.partition_index,
                };
                let Some(&(_, fetch_offset)) = f.parts.iter().find(|(x, _)| *x == tp) else {
                    continue;
                };
                // What a read_committed consumer can read up to: the last stable offset.
                let (end, aborted) = if self.read_committed {
                    let aborted: Vec<(i64, i64)> = p
                        .aborted_transactions
                        .iter()
                        .flatten()
                        .map(|a| (a.producer_id.0, a.first_offset))
                        .collect();
                    (p.last_stable_offset.max(0), Some(aborted))
                } else {
                    (p.high_watermark, None)
                };
                let records = p.records.unwrap_or_default();
                let outcome = match p.error_code {
                    0 => match parse_fetched(records, fetch_offset, aborted.as_deref()) {
                        Ok(parsed) => Outcome::Records {
                            records: parsed.records,
                            next_offset: parsed.next_offset,
                            bytes: parsed.bytes,
                            high_watermark: end,
                        },
                        Err(e) => Outcome::Fatal(format!(
                            "{}/{} at offset {fetch_offset} from broker {node}: {e}",
                            tp.topic, tp.partition
                        )),
                    },
                    1 => Outcome::OutOfRange,
                    code if retriable(code) => Outcome::Retry(format!(
                        "{}/{} on broker {node}: {}",
                        tp.topic,
                        tp.partition,
                        error_name(code)
                    )),
                    code => Outcome::Fatal(format!(
                        "fetching {}/{} from broker {node}: {}",
                        tp.topic,
                        tp.partition,
                        error_name(code)
                    )),
                };
                out.push((tp, fetch_offset, outcome));
            }
        }
        out
    }
}

/// Where the next fetch of a partition starts after `data`: past its last complete batch
/// (headers only, no record parsing). Never below `fetch_offset`.
fn walk_next_offset(data: &[u8], fetch_offset: i64) -> i64 {
    let mut next = fetch_offset;
    let mut rest = data;
    while let Ok(h) = BatchHeader::parse(rest) {
        if h.batch_length < BatchHeader::MIN_BATCH_LENGTH || h.total_size() > rest.len() {
            break;
        }
        next = next.max(h.last_offset() + 1);
        rest = &rest[h.total_size()..];
    }
    next
}

/// The records of one partition's fetched data at or after `fetch_offset`.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub records: Vec<SourceRecord>,
    /// Where the next fetch starts: past the last complete batch.
    pub next_offset: i64,
    /// Accounted bytes (keys, values, per-record overhead).
    pub bytes: usize,
}

/// [`parse_fetched`] as a read_uncommitted consumer.
#[cfg(test)]
pub(crate) fn parse_records(data: Bytes, fetch_offset: i64) -> Result<Parsed, String> {
    parse_fetched(data, fetch_offset, None)
}

/// The transactions a read_committed fetch answer says were aborted, consumed in offset order
/// as the batches go by (the Java consumer's `abortedProducerIds`).
struct Aborted {
    /// (first offset, producer id), the next to reach last.
    pending: Vec<(i64, i64)>,
    /// Producers whose open transaction, at the current batch, was aborted.
    active: HashSet<i64>,
}

impl Aborted {
    fn new(txns: &[(i64, i64)]) -> Aborted {
        let mut pending: Vec<(i64, i64)> = txns.iter().map(|&(pid, first)| (first, pid)).collect();
        pending.sort_unstable_by(|a, b| b.cmp(a));
        Aborted {
            pending,
            active: HashSet::new(),
        }
    }

    /// Whether the data batch `h` belongs to an aborted transaction.
    fn drops(&mut self, h: &BatchHeader) -> bool {
        while let Some(&(first, pid)) = self.pending.last() {
            if first > h.last_offset() {
                break;
            }
            self.active.insert(pid);
            self.pending.pop();
        }
        h.is_transactional() && self.active.contains(&h.producer_id)
    }
}

/// Parses the v2 record batches in `data`. A trailing partial batch (the broker cuts the
/// response at the size limit) is left for the next fetch; batches or records below
/// `fetch_offset` (a batch may start before the requested offset) are skipped, and so are
/// control batches (transaction markers), whose offsets the position moves past. With
/// `aborted` (read_committed: the answer's aborted transactions as (producer id, first
/// offset)), the batches of those transactions are skipped too.
pub(crate) fn parse_fetched(
    mut data: Bytes,
    fetch_offset: i64,
    aborted: Option<&[(i64, i64)]>,
) -> Result<Parsed, String> {
    let mut aborted = aborted.map(Aborted::new);
    let mut out = Parsed {
        records: Vec::new(),
        next_offset: fetch_offset,
        bytes: 0,
    };
    while data.len() >= 12 {
        let base_offset = (&data[0..8]).get_i64();
        let batch_len = (&data[8..12]).get_i32();
        let total = usize::try_from(batch_len)
            .map_err(|_| format!("batch at offset {base_offset} has length {batch_len}"))?
            .saturating_add(12);
        if total > data.len() {
            break; // partial batch at the end of the response
        }
        if total < BatchHeader::SIZE {
            return Err(format!(
                "batch at offset {base_offset} is {total} bytes, shorter than a batch header"
            ));
        }
        let mut batch = data.split_to(total);
        let h = BatchHeader::parse(&batch)
            .map_err(|e| format!("batch at offset {base_offset}: {e}"))?;
        let magic = h.magic;
        if magic != 2 {
            return Err(format!(
                "batch at offset {base_offset} uses message format v{magic}; only v2 (Kafka 0.11+) is read"
            ));
        }
        let last_offset = h.last_offset();
        let log_append_time = h.is_log_append_time();
        let max_timestamp = h.max_timestamp;
        let control = h.is_control();
        if last_offset < out.next_offset {
            continue;
        }
        let compressed = h.compression() != 0;
        // Keeps a record at or past the position, whichever path parsed it.
        let from = out.next_offset;
        let mut keep = |mut r: SourceRecord| {
            if r.offset < from {
                return;
            }
            if log_append_time {
                // With LogAppendTime every record carries the broker's append time, which v2
                // batches store once, as the batch's max timestamp.
                r.timestamp_ms = max_timestamp;
            }
            out.bytes += RECORD_OVERHEAD
                + r.key.as_ref().map_or(0, Bytes::len)
                + r.value.as_ref().map_or(0, Bytes::len);
            out.records.push(r);
        };
        let dropped = match aborted.as_mut() {
            Some(a) if control => {
                // An abort marker ends its producer's aborted transaction.
                if rivulet_log::control_marker(&batch) == Some(false) {
                    a.active.remove(&h.producer_id);
                }
                true
            }
            Some(a) => a.drops(&h),
            None => false,
        };
        if control || dropped {
            // Transaction markers and aborted transactions: not data.
        } else if !compressed {
            let first_timestamp = h.base_timestamp;
            let count = h.record_count;
            let stored = crc32c::crc32c(&batch[BatchHeader::ATTRIBUTES_OFFSET..]);
            let crc = h.crc;
            if stored != crc {
                return Err(format!(
                    "batch at offset {base_offset}: CRC mismatch (stored {crc:#010x}, computed {stored:#010x})"
                ));
            }
            let body = batch.slice(BatchHeader::SIZE..);
            read_plain_records(&body, count, base_offset, first_timestamp, &mut keep)
                .map_err(|e| format!("batch at offset {base_offset}: {e}"))?;
        } else {
            let set = RecordBatchDecoder::decode(&mut batch)
                .map_err(|e| format!("batch at offset {base_offset}: {e}"))?;
            for r in set.records {
                keep(SourceRecord {
                    offset: r.offset,
                    timestamp_ms: r.timestamp,
                    key: r.key,
                    value: r.value,
                });
            }
        }
        out.next_offset = out.next_offset.max(last_offset + 1);
    }
    Ok(out)
}

/// The records of an uncompressed v2 batch body (after the 61-byte header), as shared slices
/// of `body`.
///
/// Hand-written rather than `RecordBatchDecoder` on this one path: the decoder builds a full
/// `Record` per message (producer fields, a header map) that the source then drops, and this
/// loop is most of the prefetch thread's work at millions of records per second. Compressed
/// batches, rarer and dominated by decompression, still go through `kafka-protocol`, and the
/// unit tests check both paths give the same records.
fn read_plain_records(
    body: &Bytes,
    count: i32,
    base_offset: i64,
    first_timestamp: i64,
    mut emit: impl FnMut(SourceRecord),
) -> Result<(), String> {
    let mut pos = 0usize;
    let buf: &[u8] = body;
    for i in 0..count.max(0) {
        let len = varint(buf, &mut pos)?;
        let len = usize::try_from(len).map_err(|_| format!("record {i} has length {len}"))?;
        let end = pos
            .checked_add(len)
            .filter(|e| *e <= buf.len())
            .ok_or_else(|| format!("record {i} runs past the batch"))?;
        pos += 1; // attributes (unused in v2)
        let ts_delta = varint(&buf[..end], &mut pos)?;
        let off_delta = varint(&buf[..end], &mut pos)?;
        let key = bytes_field(body, end, &mut pos, "key")?;
        let value = bytes_field(body, end, &mut pos, "value")?;
        // Headers are not used by the query; the record length skips them.
        pos = end;
        emit(SourceRecord {
            offset: base_offset + off_delta,
            timestamp_ms: first_timestamp + ts_delta,
            key,
            value,
        });
    }
    Ok(())
}

/// A zigzag varint (Kafka's varint/varlong) at `*pos`, bounded by `buf`.
fn varint(buf: &[u8], pos: &mut usize) -> Result<i64, String> {
    let mut raw: u64 = 0;
    for shift in (0..70).step_by(7) {
        let b = *buf.get(*pos).ok_or("varint runs past the record")?;
        *pos += 1;
        raw |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    Err("varint longer than 10 bytes".into())
}

/// A length-prefixed byte field (-1: null) as a slice of `body`, ending by `end`.
fn bytes_field(
    body: &Bytes,
    end: usize,
    pos: &mut usize,
    what: &str,
) -> Result<Option<Bytes>, String> {
    let len = varint(&body[..end], pos)?;
    if len < 0 {
        return Ok(None);
    }
    let start = *pos;
    let stop = usize::try_from(len)
        .ok()
        .and_then(|l| start.checked_add(l))
        .filter(|s| *s <= end)
        .ok_or_else(|| format!("record {what} of {len} bytes runs past the record"))?;
    *pos = stop;
    Ok(Some(body.slice(start..stop)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::Compression;
    use rivulet_log::{encode_batch, BatchSpec, NewRecord};

    fn batch(base: i64, n: i64, compression: Compression) -> Bytes {
        let records = (0..n).map(|i| NewRecord {
            key: Some(Bytes::from(format!("k{}", base + i))),
            value: Some(Bytes::from(format!("{{\"v\":{}}}", base + i))),
            timestamp: 1_000 + i,
        });
        let spec = BatchSpec {
            base_offset: base,
            compression,
            ..BatchSpec::default()
        };
        encode_batch(records, &spec).expect("encode")
    }

    fn offsets(p: &Parsed) -> Vec<i64> {
        p.records.iter().map(|r| r.offset).collect()
    }

    #[test]
    fn parses_batches_and_skips_below_the_fetch_offset() {
        let mut data = BytesMut::new();
        data.extend_from_slice(&batch(0, 5, Compression::None));
        data.extend_from_slice(&batch(5, 5, Compression::Lz4));
        let p = parse_records(data.freeze(), 3).expect("parse");
        assert_eq!(offsets(&p), vec![3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(p.next_offset, 10);
        assert_eq!(p.records[0].key.as_deref(), Some(&b"k3"[..]));
        assert_eq!(p.records[0].value.as_deref(), Some(&b"{\"v\":3}"[..]));
        assert_eq!(p.records[0].timestamp_ms, 1_003);
        assert!(p.bytes > 7 * RECORD_OVERHEAD);
    }

    #[test]
    fn leaves_a_partial_trailing_batch_for_the_next_fetch() {
        let first = batch(10, 3, Compression::None);
        let second = batch(13, 3, Compression::None);
        let mut data = BytesMut::new();
        data.extend_from_slice(&first);
        data.extend_from_slice(&second[..second.len() - 7]);
        let data = data.freeze();
        // The header walk that picks the next fetch's offset agrees with the full parse.
        assert_eq!(walk_next_offset(&data, 10), 13);
        assert_eq!(walk_next_offset(&data, 11), 13);
        assert_eq!(walk_next_offset(&data[..20], 10), 10);
        let p = parse_records(data, 10).expect("parse");
        assert_eq!(offsets(&p), vec![10, 11, 12]);
        assert_eq!(p.next_offset, 13);
        // Only a few bytes of a header: nothing, position unchanged.
        let p = parse_records(second.slice(0..9), 13).expect("parse");
        assert!(p.records.is_empty());
        assert_eq!(p.next_offset, 13);
    }

    #[test]
    fn every_codec_parses_to_the_same_records() {
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let p = parse_records(batch(100, 50, c), 100).expect("parse");
            assert_eq!(offsets(&p), (100..150).collect::<Vec<_>>(), "{c:?}");
            assert_eq!(p.next_offset, 150);
            // The hand-written path (uncompressed) and kafka-protocol's decoder agree on
            // every field.
            let plain = parse_records(batch(100, 50, Compression::None), 100).expect("parse");
            assert_eq!(p.records, plain.records, "{c:?}");
        }
    }

    #[test]
    fn control_batches_move_the_position_without_records() {
        let mut b = BytesMut::from(&batch(20, 2, Compression::None)[..]);
        // Set the control bit; the CRC is not checked for skipped control batches.
        let attrs = (&b[21..23]).get_i16() | 0x20;
        b[21..23].copy_from_slice(&attrs.to_be_bytes());
        let mut data = BytesMut::new();
        data.extend_from_slice(&b);
        data.extend_from_slice(&batch(22, 1, Compression::None));
        let p = parse_records(data.freeze(), 20).expect("parse");
        assert_eq!(offsets(&p), vec![22]);
        assert_eq!(p.next_offset, 23);
    }

    /// A transactional batch of `n` records from `base` by producer `pid`.
    fn txn_batch(base: i64, n: i64, pid: i64) -> Bytes {
        let records = (0..n).map(|i| NewRecord {
            key: None,
            value: Some(Bytes::from(format!("{}", base + i))),
            timestamp: 1_000 + i,
        });
        let spec = BatchSpec {
            base_offset: base,
            producer: Some((pid, 0, 0)),
            transactional: true,
            ..BatchSpec::default()
        };
        encode_batch(records, &spec).expect("encode")
    }

    fn marker(offset: i64, pid: i64, commit: bool) -> Bytes {
        let mut b = BytesMut::from(
            &rivulet_log::encode_marker(pid, 0, commit, 0, 1_000).expect("marker")[..],
        );
        // The base offset is outside the CRC.
        b[0..8].copy_from_slice(&offset.to_be_bytes());
        b.freeze()
    }

    /// read_committed: the batches of an aborted transaction are dropped up to its abort
    /// marker, another producer's interleaved transaction and the same producer's next one
    /// are kept, and the position moves past all of it (KIP-98's consumer algorithm).
    #[test]
    fn read_committed_drops_aborted_transactions_only() {
        let mut data = BytesMut::new();
        for b in [
            txn_batch(0, 2, 7),
            txn_batch(2, 2, 8),
            marker(4, 7, false),
            marker(5, 8, true),
            txn_batch(6, 1, 7),
            marker(7, 7, true),
        ] {
            data.extend_from_slice(&b);
        }
        let data = data.freeze();
        let p = parse_fetched(data.clone(), 0, Some(&[(7, 0)])).expect("parse");
        assert_eq!(offsets(&p), vec![2, 3, 6]);
        assert_eq!(p.next_offset, 8);
        // Uncommitted: every data record.
        let p = parse_fetched(data.clone(), 0, None).expect("parse");
        assert_eq!(offsets(&p), vec![0, 1, 2, 3, 6]);
        assert_eq!(p.next_offset, 8);
        // Fetched from the middle of the aborted transaction: the broker still names it.
        let p = parse_fetched(data.slice(txn_batch(0, 2, 7).len()..), 2, Some(&[(7, 0)]))
            .expect("parse");
        assert_eq!(offsets(&p), vec![2, 3, 6]);
        // No aborted transactions: committed transactional data is all there.
        let p = parse_fetched(data, 0, Some(&[])).expect("parse");
        assert_eq!(offsets(&p), vec![0, 1, 2, 3, 6]);
    }

    /// The hand-written record reader never panics or reads outside the batch, whatever the
    /// bytes after a valid header and CRC say.
    #[test]
    fn garbage_records_with_a_valid_crc_are_errors_not_panics() {
        let good = batch(0, 4, Compression::None);
        for pos in BatchHeader::SIZE..good.len() {
            for v in [0x00u8, 0x01, 0x7f, 0x80, 0xff] {
                let mut b = BytesMut::from(&good[..]);
                b[pos] = v;
                let crc = crc32c::crc32c(&b[21..]);
                b[17..21].copy_from_slice(&crc.to_be_bytes());
                if let Ok(p) = parse_records(b.freeze(), 0) {
                    assert!(p.records.len() <= 4);
                }
            }
        }
    }

    #[test]
    fn corrupt_and_foreign_batches_are_errors() {
        let mut b = BytesMut::from(&batch(0, 3, Compression::None)[..]);
        let last = b.len() - 1;
        b[last] ^= 0xff;
        let e = parse_records(b.freeze(), 0).expect_err("crc");
        assert!(e.contains("batch at offset 0") && e.contains("CRC"), "{e}");
        let mut b = BytesMut::from(&batch(0, 3, Compression::None)[..]);
        b[16] = 1;
        let e = parse_records(b.freeze(), 0).expect_err("magic");
        assert!(e.contains("message format v1"), "{e}");
    }
}
