//! `--client raw`: a minimal Kafka client (the `kafka-protocol` crate over one plain tokio
//! `TcpStream`) whose only purpose is to load the broker while spending as little client CPU as
//! possible.
//!
//! Why it exists: with client and broker on the same 2-core machine, librdkafka's per-message
//! work (queueing, batching, delivery reports, per-message parsing on consume) costs several
//! times the CPU the broker spends on the same records, so the librdkafka bench measures
//! librdkafka, not the broker. This client does no per-record work on the hot path:
//!
//! - produce sends a small pool of v2 record batches encoded once up front (with
//!   `RecordBatchEncoder`, the same JSON records as the librdkafka bench), as ProduceRequest v9
//!   with up to `--in-flight` requests pipelined on the connection, responses read in order and
//!   every partition's error code checked;
//! - consume sends Fetch v12 requests and walks the returned batches by their 61-byte headers
//!   only: no decompression, no record parsing; it checks that offsets are dense.
//!
//! The raw mode measures what the broker sustains; the librdkafka mode measures what
//! applications see. It speaks to the one bootstrap broker, on the loopback interface only,
//! without idempotence, retries, metadata-driven routing, TLS or SASL.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;
use rivulet_client::{wire, ClientError};
use rivulet_log::{encode_batch_into, BatchHeader, BatchSpec, NewRecord};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};

use super::payload::PayloadGen;
use super::ProduceOutcome;
use crate::BenchError;

/// ProduceRequest version sent (flexible; acks, topic names, no topic ids).
const PRODUCE_VERSION: i16 = 9;
/// FetchRequest version sent (flexible; topic names, no topic ids).
const FETCH_VERSION: i16 = 12;
/// `client.id` in every request header.
const CLIENT_ID: &str = "rivulet-bench-raw";
/// Produce timeout given to the broker (acks=all waits at most this long).
const PRODUCE_TIMEOUT_MS: i32 = 30_000;
/// Fetch long-poll and sizes.
const FETCH_MAX_WAIT_MS: i32 = 100;
const FETCH_MIN_BYTES: i32 = 1;
const FETCH_MAX_BYTES: i32 = 64 << 20;
const FETCH_PARTITION_MAX_BYTES: i32 = 16 << 20;
/// Largest response frame accepted before allocating for it: a full fetch plus headroom.
const MAX_RESPONSE_BYTES: usize = (FETCH_MAX_BYTES as usize) + (16 << 20);
/// Largest produce response accepted (they are a few hundred bytes).
const MAX_PRODUCE_RESPONSE_BYTES: usize = 1 << 20;
/// Pre-encoded produce requests are reused round-robin from a pool of at least this many
/// distinct batches (rounded up to a multiple of the partition count).
const MIN_POOL: usize = 8;
/// Per-record overhead in a v2 batch (length, attributes, deltas, key, header count varints),
/// used for the first guess of records per batch.
const RECORD_OVERHEAD: usize = 12;
/// Largest batch the raw producer builds, whatever `--batch-size` says (brokers default to
/// 1 MiB; this only keeps a typo from encoding gigabytes up front).
const MAX_BATCH_BYTES: usize = 16 << 20;

/// Kafka codec for a bench `--compression`.
pub(super) fn codec(c: super::Compression) -> Compression {
    match c {
        super::Compression::None => Compression::None,
        super::Compression::Gzip => Compression::Gzip,
        super::Compression::Snappy => Compression::Snappy,
        super::Compression::Lz4 => Compression::Lz4,
        super::Compression::Zstd => Compression::Zstd,
    }
}

/// The loopback addresses of the first broker in `brokers`; an error if there are none:
/// `--client raw` is for the one broker on this machine.
pub(super) async fn loopback_addrs(
    brokers: &str,
    deadline: Instant,
) -> Result<Vec<SocketAddr>, BenchError> {
    let first = brokers.split(',').next().unwrap_or("").trim();
    let addrs: Vec<SocketAddr> =
        tokio::time::timeout_at(deadline.into(), tokio::net::lookup_host(first))
            .await
            .map_err(|_| BenchError::Timeout(format!("resolving {first}")))?
            .map_err(BenchError::io(format!("resolving {first}")))?
            .filter(|a| a.ip().is_loopback())
            .collect();
    if addrs.is_empty() {
        return Err(BenchError::InvalidArgument(format!(
            "--client raw talks to one broker on the loopback interface (127.0.0.1) only; `{first}` is not a loopback address"
        )));
    }
    Ok(addrs)
}

/// Connects to the first broker of `brokers` (loopback only, see [`loopback_addrs`]).
async fn connect(brokers: &str, deadline: Instant) -> Result<TcpStream, BenchError> {
    let addrs = loopback_addrs(brokers, deadline).await?;
    let mut last = None;
    for addr in addrs {
        match tokio::time::timeout_at(deadline.into(), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                s.set_nodelay(true)
                    .map_err(BenchError::io("setting TCP_NODELAY"))?;
                return Ok(s);
            }
            Ok(Err(e)) => {
                last = Some(BenchError::Io {
                    context: format!("connecting to {addr}"),
                    source: e,
                })
            }
            Err(_) => return Err(BenchError::Timeout(format!("connecting to {addr}"))),
        }
    }
    Err(last.unwrap_or_else(|| BenchError::Protocol(format!("no address for {brokers}"))))
}

fn encode_error<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> BenchError + '_ {
    move |e| BenchError::Protocol(format!("encoding {what}: {e}"))
}

fn decode_error<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> BenchError + '_ {
    move |e| BenchError::Decode {
        what: what.to_string(),
        reason: e.to_string(),
    }
}

/// The shared framing (`rivulet_client::wire`) with the bench's errors: a timeout stays a
/// timeout, which ends a run with what was answered instead of failing it.
fn wire_error(e: ClientError) -> BenchError {
    match e {
        ClientError::Timeout(what) => BenchError::Timeout(what),
        other => BenchError::Client(other),
    }
}

fn put_header(
    buf: &mut BytesMut,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body_len: usize,
) -> Result<(), BenchError> {
    wire::put_header(buf, key, version, correlation_id, CLIENT_ID, body_len).map_err(wire_error)
}

async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    max: usize,
    deadline: Instant,
) -> Result<Bytes, BenchError> {
    wire::read_frame(r, buf, max, deadline.into())
        .await
        .map_err(wire_error)
}

fn take_header(
    frame: &mut Bytes,
    key: ApiKey,
    version: i16,
    expected: i32,
) -> Result<(), BenchError> {
    wire::take_header(frame, key, version, expected).map_err(wire_error)
}

fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(e) => format!("{e:?} ({code})"),
        None => format!("error code {code}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Produce
// ---------------------------------------------------------------------------------------------

/// What to produce.
pub(super) struct ProduceSpec<'a> {
    pub topic: &'a str,
    /// Partition ids, round-robin.
    pub partitions: &'a [i32],
    pub count: u64,
    pub record_size: usize,
    /// 1 or -1 (0 gets no responses and is refused before).
    pub acks: i16,
    pub compression: Compression,
    /// Largest encoded batch, from `--batch-size`.
    pub batch_bytes: usize,
    pub in_flight: usize,
    pub timeout: Duration,
}

/// One pre-encoded ProduceRequest body.
struct Prepared {
    body: Bytes,
    partition: i32,
    records: u64,
}

/// Every request of a produce run: request `i < full` is `pool[i % pool.len()]`, the last one
/// (if `count` is not a multiple of `per_batch`) is `tail`.
pub(super) struct Plan {
    pool: Vec<Prepared>,
    tail: Option<Prepared>,
    full: u64,
    /// Records per full batch.
    pub per_batch: u64,
    /// Encoded size of the first full batch.
    pub batch_len: usize,
}

impl Plan {
    pub(super) fn requests(&self) -> u64 {
        self.full + u64::from(self.tail.is_some())
    }

    fn request(&self, i: u64) -> Option<&Prepared> {
        if i < self.full {
            self.pool.get((i % self.pool.len().max(1) as u64) as usize)
        } else if i == self.full {
            self.tail.as_ref()
        } else {
            None
        }
    }
}

/// Encodes one v2 batch of the records with ids `first..first + n`.
fn encode_batch(
    gen: &mut PayloadGen,
    first: u64,
    n: u64,
    compression: Compression,
    timestamp: i64,
) -> Result<Bytes, BenchError> {
    let records = (0..n).map(|i| {
        NewRecord::new(
            None,
            Bytes::copy_from_slice(gen.record(first + i)),
            timestamp,
        )
    });
    let mut buf = BytesMut::with_capacity(n as usize * 128 + BatchHeader::SIZE);
    encode_batch_into(&mut buf, records, &BatchSpec::compressed(compression))
        .map_err(encode_error("a record batch"))?;
    Ok(buf.freeze())
}

fn encode_produce_body(
    topic: &str,
    partition: i32,
    acks: i16,
    batch: Bytes,
) -> Result<Bytes, BenchError> {
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(PRODUCE_TIMEOUT_MS)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])]);
    let mut buf = BytesMut::with_capacity(
        req.compute_size(PRODUCE_VERSION)
            .map_err(encode_error("a produce request"))?,
    );
    req.encode(&mut buf, PRODUCE_VERSION)
        .map_err(encode_error("a produce request"))?;
    Ok(buf.freeze())
}

/// Encodes the batches and request bodies of a produce run (untimed).
pub(super) fn plan(spec: &ProduceSpec<'_>) -> Result<Plan, BenchError> {
    if spec.partitions.is_empty() {
        return Err(BenchError::Protocol(format!(
            "topic {} has no partitions",
            spec.topic
        )));
    }
    let mut gen = PayloadGen::new(spec.record_size, spec.count)?;
    let batch_bytes = spec.batch_bytes.min(MAX_BATCH_BYTES);
    let timestamp = rivulet_time::now_ms();
    // First guess from the record size, then shrink (bounded) until a batch fits.
    let mut per_batch =
        ((batch_bytes / (spec.record_size + RECORD_OVERHEAD)) as u64).clamp(1, spec.count);
    let mut first_batch = encode_batch(&mut gen, 0, per_batch, spec.compression, timestamp)?;
    for _ in 0..16 {
        if first_batch.len() <= batch_bytes || per_batch == 1 {
            break;
        }
        per_batch = (per_batch * batch_bytes as u64 / first_batch.len() as u64 * 98 / 100)
            .clamp(1, per_batch - 1);
        first_batch = encode_batch(&mut gen, 0, per_batch, spec.compression, timestamp)?;
    }
    if first_batch.len() > batch_bytes {
        return Err(BenchError::InvalidArgument(format!(
            "--batch-size {} cannot hold a batch of {per_batch} record(s) of {} bytes ({} bytes encoded)",
            batch_bytes,
            spec.record_size,
            first_batch.len()
        )));
    }
    let batch_len = first_batch.len();
    let full = spec.count / per_batch;
    let tail_records = spec.count % per_batch;
    let n_parts = spec.partitions.len();
    let pool_len = (n_parts * MIN_POOL.div_ceil(n_parts)).min(full as usize);
    let mut pool = Vec::with_capacity(pool_len);
    let mut first_batch = Some(first_batch);
    for j in 0..pool_len {
        let batch = match first_batch.take() {
            Some(b) => b,
            None => encode_batch(
                &mut gen,
                j as u64 * per_batch,
                per_batch,
                spec.compression,
                timestamp,
            )?,
        };
        let partition = spec.partitions[j % n_parts];
        pool.push(Prepared {
            body: encode_produce_body(spec.topic, partition, spec.acks, batch)?,
            partition,
            records: per_batch,
        });
    }
    let tail = if tail_records > 0 {
        let batch = encode_batch(
            &mut gen,
            full * per_batch,
            tail_records,
            spec.compression,
            timestamp,
        )?;
        let partition = spec.partitions[(full % n_parts as u64) as usize];
        Some(Prepared {
            body: encode_produce_body(spec.topic, partition, spec.acks, batch)?,
            partition,
            records: tail_records,
        })
    } else {
        None
    };
    Ok(Plan {
        pool,
        tail,
        full,
        per_batch,
        batch_len,
    })
}

/// A request on the wire, waiting for its response.
struct Pending {
    correlation_id: i32,
    partition: i32,
    records: u64,
    sent: Instant,
}

/// Counters the response reader keeps.
struct ProduceStats {
    delivered: u64,
    failed: u64,
    first_error: Option<String>,
    latency_us: Histogram<u64>,
}

impl ProduceStats {
    fn new() -> Result<ProduceStats, BenchError> {
        let latency_us = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)
            .map_err(|e| BenchError::Worker(format!("latency histogram: {e}")))?;
        Ok(ProduceStats {
            delivered: 0,
            failed: 0,
            first_error: None,
            latency_us,
        })
    }

    /// The run's outcome: a timeout still reports what was answered; other errors fail it.
    fn finish(
        self,
        result: Result<(), BenchError>,
        elapsed: Duration,
    ) -> Result<ProduceOutcome, BenchError> {
        let timed_out = match result {
            Ok(()) => false,
            Err(BenchError::Timeout(_)) => true,
            Err(e) => return Err(e),
        };
        Ok(ProduceOutcome {
            delivered: self.delivered,
            failed: self.failed,
            first_error: self.first_error,
            elapsed,
            latency_us: self.latency_us,
            timed_out,
        })
    }
}

/// Sends one produce request once an in-flight slot is free (the reader gives it back when the
/// response arrives), announcing it to the reader first so responses can be matched in order.
#[allow(clippy::too_many_arguments)]
async fn send_request<W: AsyncWrite + Unpin>(
    wr: &mut W,
    header: &mut BytesMut,
    in_flight: &Semaphore,
    tx: &mpsc::Sender<Pending>,
    correlation_id: i32,
    partition: i32,
    records: u64,
    body: &[u8],
    deadline: Instant,
) -> Result<(), BenchError> {
    tokio::time::timeout_at(deadline.into(), in_flight.acquire())
        .await
        .map_err(|_| BenchError::Timeout("waiting for an in-flight slot".into()))?
        .map_err(|e| BenchError::Worker(e.to_string()))?
        .forget();
    header.clear();
    put_header(
        header,
        ApiKey::Produce,
        PRODUCE_VERSION,
        correlation_id,
        body.len(),
    )?;
    tx.send(Pending {
        correlation_id,
        partition,
        records,
        sent: Instant::now(),
    })
    .await
    .map_err(|_| BenchError::Worker("the response reader stopped".into()))?;
    tokio::time::timeout_at(deadline.into(), async {
        wr.write_all(header).await?;
        wr.write_all(body).await
    })
    .await
    .map_err(|_| BenchError::Timeout("sending a produce request".into()))?
    .map_err(BenchError::io("sending a produce request"))
}

/// Sends every request of `plan`, at most `spec.in_flight` unanswered, and checks every
/// response. Returns when all are answered, on the first I/O or protocol error, or at the
/// deadline (then `timed_out` is set and the figures cover what was answered).
pub(super) async fn produce(
    brokers: &str,
    spec: &ProduceSpec<'_>,
    plan: &Plan,
) -> Result<ProduceOutcome, BenchError> {
    let mut stats = ProduceStats::new()?;
    let start = Instant::now();
    let deadline = start + spec.timeout;
    let stream = connect(brokers, deadline).await?;
    let (mut rd, mut wr) = stream.into_split();
    let in_flight = Semaphore::new(spec.in_flight.max(1));
    let (tx, rx) = mpsc::channel::<Pending>(spec.in_flight.max(1) + 1);
    // One task, two futures: writing can wait on socket space while responses are read.
    let result = tokio::try_join!(
        send_requests(&mut wr, plan, &in_flight, tx, deadline),
        read_responses(&mut rd, spec.topic, &in_flight, rx, &mut stats, deadline),
    );
    let elapsed = start.elapsed();
    let _ = wr.shutdown().await;
    stats.finish(result.map(|_| ()), elapsed)
}

async fn send_requests<W: AsyncWrite + Unpin>(
    wr: &mut W,
    plan: &Plan,
    in_flight: &Semaphore,
    tx: mpsc::Sender<Pending>,
    deadline: Instant,
) -> Result<(), BenchError> {
    let mut header = BytesMut::with_capacity(64);
    for i in 0..plan.requests() {
        let Some(req) = plan.request(i) else { break };
        let correlation_id = (i % i32::MAX as u64) as i32;
        send_request(
            wr,
            &mut header,
            in_flight,
            &tx,
            correlation_id,
            req.partition,
            req.records,
            &req.body,
            deadline,
        )
        .await?;
    }
    Ok(())
}

async fn read_responses<R: AsyncRead + Unpin>(
    rd: &mut R,
    topic: &str,
    in_flight: &Semaphore,
    mut rx: mpsc::Receiver<Pending>,
    stats: &mut ProduceStats,
    deadline: Instant,
) -> Result<(), BenchError> {
    let mut buf = BytesMut::with_capacity(4096);
    // One round per request sent; ends when the sender is done and everything is answered.
    loop {
        let pending = tokio::time::timeout_at(deadline.into(), rx.recv())
            .await
            .map_err(|_| BenchError::Timeout("waiting for the sender".into()))?;
        let Some(p) = pending else { return Ok(()) };
        let mut frame = read_frame(rd, &mut buf, MAX_PRODUCE_RESPONSE_BYTES, deadline).await?;
        let us = p.sent.elapsed().as_micros() as u64;
        stats.latency_us.saturating_record(us.max(1));
        take_header(
            &mut frame,
            ApiKey::Produce,
            PRODUCE_VERSION,
            p.correlation_id,
        )?;
        let resp = ProduceResponse::decode(&mut frame, PRODUCE_VERSION)
            .map_err(decode_error("a produce response"))?;
        match produce_error(&resp, topic, p.partition) {
            None => stats.delivered += p.records,
            Some(e) => {
                stats.failed += p.records;
                stats.first_error.get_or_insert(e);
            }
        }
        in_flight.add_permits(1);
    }
}

/// The error of a produce response for one batch to `topic`/`partition`, if any: an error code
/// on any partition in it, or no answer for that partition.
fn produce_error(resp: &ProduceResponse, topic: &str, partition: i32) -> Option<String> {
    let mut answered = false;
    for t in &resp.responses {
        for p in &t.partition_responses {
            if p.error_code != 0 {
                return Some(format!(
                    "{}/{}: {}{}",
                    t.name.0.as_str(),
                    p.index,
                    error_name(p.error_code),
                    p.error_message
                        .as_ref()
                        .map(|m| format!(": {}", m.as_str()))
                        .unwrap_or_default()
                ));
            }
            answered |= t.name.0.as_str() == topic && p.index == partition;
        }
    }
    (!answered).then(|| format!("{topic}/{partition}: no answer for the partition in the response"))
}

/// One record to encode with [`encode_records`]: key, value and timestamp (ms).
pub(super) type RawRecord = (Option<Bytes>, Bytes, i64);

/// Encodes `records` as one uncompressed v2 record batch (for `bench pipeline`'s pre-fill,
/// whose records are distinct generator events rather than a reused pool).
pub(super) fn encode_records(records: &[RawRecord]) -> Result<Bytes, BenchError> {
    let recs = records
        .iter()
        .map(|(key, value, timestamp)| NewRecord::new(key.clone(), value.clone(), *timestamp));
    let bytes: usize = records.iter().map(|(_, v, _)| v.len() + 32).sum();
    let mut buf = BytesMut::with_capacity(bytes + BatchHeader::SIZE);
    encode_batch_into(&mut buf, recs, &BatchSpec::default())
        .map_err(encode_error("a record batch"))?;
    Ok(buf.freeze())
}

/// Produces the record batches `batches` yields (each `(batch, records)`, encoded by the
/// caller, e.g. with [`encode_records`]) to `topic`/`partition`, one ProduceRequest per batch,
/// at most `in_flight` unanswered, checking every response. Batches are pulled lazily, so a
/// run of any length holds only the batches in flight.
pub(super) async fn produce_batches<I>(
    brokers: &str,
    topic: &str,
    partition: i32,
    acks: i16,
    in_flight: usize,
    timeout: Duration,
    batches: I,
) -> Result<ProduceOutcome, BenchError>
where
    I: Iterator<Item = Result<(Bytes, u64), BenchError>>,
{
    let mut stats = ProduceStats::new()?;
    let start = Instant::now();
    let deadline = start + timeout;
    let stream = connect(brokers, deadline).await?;
    let (mut rd, mut wr) = stream.into_split();
    let slots = Semaphore::new(in_flight.max(1));
    let (tx, rx) = mpsc::channel::<Pending>(in_flight.max(1) + 1);
    let send = async {
        let mut header = BytesMut::with_capacity(64);
        // Moved in: dropped when sending ends, which lets the reader finish.
        let tx = tx;
        for (i, batch) in batches.enumerate() {
            let (batch, records) = batch?;
            let body = encode_produce_body(topic, partition, acks, batch)?;
            let correlation_id = (i % i32::MAX as usize) as i32;
            send_request(
                &mut wr,
                &mut header,
                &slots,
                &tx,
                correlation_id,
                partition,
                records,
                &body,
                deadline,
            )
            .await?;
        }
        Ok::<(), BenchError>(())
    };
    let result = tokio::try_join!(
        send,
        read_responses(&mut rd, topic, &slots, rx, &mut stats, deadline),
    );
    let elapsed = start.elapsed();
    let _ = wr.shutdown().await;
    stats.finish(result.map(|_| ()), elapsed)
}

// ---------------------------------------------------------------------------------------------
// Consume
// ---------------------------------------------------------------------------------------------

/// What the batches of one partition's fetched records contained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Walk {
    /// Complete batches walked.
    pub batches: u64,
    /// Records in them (the recordCount fields).
    pub records: u64,
    /// Bytes of those batches (a trailing partial batch excluded).
    pub bytes: usize,
    /// The offset after the last batch: where the next fetch starts.
    pub next_offset: i64,
}

/// Walks the v2 record batches in `data` by their headers only, starting at `expected`
/// (the fetch offset): each batch must start exactly where the previous one ended and hold
/// `lastOffsetDelta + 1` records (dense offsets). A trailing partial batch (a fetch may end
/// in one) is left for the next fetch.
pub(super) fn walk_batches(mut data: &[u8], expected: i64) -> Result<Walk, String> {
    let mut walk = Walk {
        batches: 0,
        records: 0,
        bytes: 0,
        next_offset: expected,
    };
    // Each round consumes at least BatchHeader::SIZE bytes.
    while let Ok(h) = BatchHeader::parse(data) {
        let BatchHeader {
            base_offset,
            batch_length,
            magic,
            last_offset_delta,
            record_count,
            ..
        } = h;
        if batch_length < BatchHeader::MIN_BATCH_LENGTH {
            return Err(format!(
                "batch at offset {base_offset} has length {batch_length}"
            ));
        }
        let total = h.total_size();
        if total > data.len() {
            break;
        }
        if magic != 2 {
            return Err(format!(
                "batch at offset {base_offset} has magic {magic}; only v2 batches are walked"
            ));
        }
        if base_offset != walk.next_offset {
            return Err(format!(
                "offsets are not dense: batch starts at {base_offset}, expected {}",
                walk.next_offset
            ));
        }
        if record_count < 1 || last_offset_delta != record_count - 1 {
            return Err(format!(
                "offsets are not dense: batch at {base_offset} has {record_count} records and last offset delta {last_offset_delta}"
            ));
        }
        walk.batches += 1;
        walk.records += record_count as u64;
        walk.bytes += total;
        walk.next_offset = base_offset.saturating_add(i64::from(last_offset_delta) + 1);
        data = &data[total..];
    }
    Ok(walk)
}

/// What a raw consume run read.
pub(super) struct ConsumeOutcome {
    /// Records read, capped at the requested count.
    pub records: u64,
    /// Bytes of the complete record batches walked.
    pub bytes: u64,
    pub batches: u64,
    pub fetches: u64,
    pub elapsed: Duration,
    pub timed_out: bool,
    pub errors: u64,
    pub first_error: Option<String>,
}

/// Fetches `topic` from the given (partition, start offset) pairs until `count` records are
/// read, an error is reported (the run stops there), or the deadline passes.
pub(super) async fn consume(
    brokers: &str,
    topic: &str,
    starts: &[(i32, i64)],
    count: u64,
    timeout: Duration,
) -> Result<ConsumeOutcome, BenchError> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut stream = connect(brokers, deadline).await?;
    let mut offsets: Vec<(i32, i64)> = starts.to_vec();
    let topic_name = TopicName(StrBytes::from_string(topic.to_string()));
    let mut out = ConsumeOutcome {
        records: 0,
        bytes: 0,
        batches: 0,
        fetches: 0,
        elapsed: Duration::ZERO,
        timed_out: false,
        errors: 0,
        first_error: None,
    };
    let mut req_buf = BytesMut::with_capacity(256);
    let mut resp_buf = BytesMut::new();
    let mut total: u64 = 0;
    // One fetch per round; ends at `count`, on an error, or at the deadline.
    while total < count && out.errors == 0 {
        if Instant::now() >= deadline {
            out.timed_out = true;
            break;
        }
        let correlation_id = (out.fetches % i32::MAX as u64) as i32;
        let req = FetchRequest::default()
            .with_max_wait_ms(FETCH_MAX_WAIT_MS)
            .with_min_bytes(FETCH_MIN_BYTES)
            .with_max_bytes(FETCH_MAX_BYTES)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name.clone())
                .with_partitions(
                    offsets
                        .iter()
                        .map(|&(p, o)| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(o)
                                .with_partition_max_bytes(FETCH_PARTITION_MAX_BYTES)
                        })
                        .collect(),
                )]);
        let body_len = req
            .compute_size(FETCH_VERSION)
            .map_err(encode_error("a fetch request"))?;
        req_buf.clear();
        put_header(
            &mut req_buf,
            ApiKey::Fetch,
            FETCH_VERSION,
            correlation_id,
            body_len,
        )?;
        req.encode(&mut req_buf, FETCH_VERSION)
            .map_err(encode_error("a fetch request"))?;
        match tokio::time::timeout_at(deadline.into(), stream.write_all(&req_buf)).await {
            Err(_) => {
                out.timed_out = true;
                break;
            }
            Ok(r) => r.map_err(BenchError::io("sending a fetch request"))?,
        }
        let mut frame =
            match read_frame(&mut stream, &mut resp_buf, MAX_RESPONSE_BYTES, deadline).await {
                Err(BenchError::Timeout(_)) => {
                    out.timed_out = true;
                    break;
                }
                r => r?,
            };
        out.fetches += 1;
        take_header(&mut frame, ApiKey::Fetch, FETCH_VERSION, correlation_id)?;
        let resp = FetchResponse::decode(&mut frame, FETCH_VERSION)
            .map_err(decode_error("a fetch response"))?;
        let mut error = |msg: String| {
            out.errors += 1;
            out.first_error.get_or_insert(msg);
        };
        if resp.error_code != 0 {
            error(format!("fetch: {}", error_name(resp.error_code)));
        }
        for t in &resp.responses {
            for p in &t.partitions {
                let name = t.topic.0.as_str();
                let slot = (name == topic)
                    .then(|| offsets.iter_mut().find(|(id, _)| *id == p.partition_index))
                    .flatten();
                let Some(slot) = slot else {
                    error(format!("{name}/{}: not requested", p.partition_index));
                    continue;
                };
                if p.error_code != 0 {
                    error(format!(
                        "{name}/{}: {}",
                        p.partition_index,
                        error_name(p.error_code)
                    ));
                    continue;
                }
                let Some(records) = &p.records else { continue };
                match walk_batches(records, slot.1) {
                    Ok(w) => {
                        total += w.records;
                        out.batches += w.batches;
                        out.bytes += w.bytes as u64;
                        slot.1 = w.next_offset;
                    }
                    Err(e) => error(format!("{name}/{}: {e}", p.partition_index)),
                }
            }
        }
    }
    out.elapsed = start.elapsed();
    out.records = total.min(count);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batches(
        counts: &[u64],
        first_offset: i64,
        compression: Compression,
    ) -> (Vec<u8>, Vec<usize>) {
        let mut gen = PayloadGen::new(100, 1_000_000).expect("size fits");
        let mut data = Vec::new();
        let mut lens = Vec::new();
        let mut offset = first_offset;
        for &n in counts {
            let b = encode_batch(&mut gen, 0, n, compression, 1_700_000_000_000).expect("encodes");
            let mut b = b.to_vec();
            // Brokers assign offsets by rewriting baseOffset (outside the CRC).
            b[0..8].copy_from_slice(&offset.to_be_bytes());
            offset += n as i64;
            lens.push(b.len());
            data.extend_from_slice(&b);
        }
        (data, lens)
    }

    #[test]
    fn walks_batch_headers() {
        for compression in [Compression::None, Compression::Lz4] {
            let (data, lens) = batches(&[10, 1, 250], 1000, compression);
            let w = walk_batches(&data, 1000).expect("dense");
            assert_eq!(
                w,
                Walk {
                    batches: 3,
                    records: 261,
                    bytes: data.len(),
                    next_offset: 1261
                }
            );
            // A trailing partial batch is left for the next fetch.
            for cut in [1, BatchHeader::SIZE - 1, BatchHeader::SIZE + 3, lens[2] - 1] {
                let w = walk_batches(&data[..data.len() - cut], 1000).expect("dense");
                assert_eq!((w.batches, w.records, w.next_offset), (2, 11, 1011));
                assert_eq!(w.bytes, lens[0] + lens[1]);
            }
            // Continuing from there reads the rest.
            let rest = &data[lens[0] + lens[1]..];
            assert_eq!(walk_batches(rest, 1011).expect("dense").records, 250);
        }
        let empty = walk_batches(&[], 7).expect("empty");
        assert_eq!((empty.records, empty.next_offset), (0, 7));
    }

    #[test]
    fn walker_rejects_gaps_and_garbage() {
        let (data, _) = batches(&[5, 5], 0, Compression::None);
        assert!(walk_batches(&data, 1).is_err(), "wrong start offset");
        let mut gap = data.clone();
        let second = gap.len() / 2;
        gap[second..second + 8].copy_from_slice(&6i64.to_be_bytes());
        assert!(walk_batches(&gap, 0)
            .expect_err("gap")
            .contains("not dense"));
        let mut bad_len = data.clone();
        bad_len[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(walk_batches(&bad_len, 0).is_err());
        let mut bad_magic = data;
        bad_magic[16] = 1;
        assert!(walk_batches(&bad_magic, 0).is_err());
    }

    #[test]
    fn plans_round_robin_batches_with_exact_count() {
        let parts = [0, 1, 2];
        let spec = ProduceSpec {
            topic: "t",
            partitions: &parts,
            count: 25_005,
            record_size: 100,
            acks: 1,
            compression: Compression::None,
            batch_bytes: 100_000,
            in_flight: 4,
            timeout: Duration::from_secs(1),
        };
        let plan = plan(&spec).expect("plans");
        assert!(
            plan.batch_len <= 100_000 && plan.per_batch > 800,
            "{}",
            plan.per_batch
        );
        let mut total = 0;
        for i in 0..plan.requests() {
            let r = plan.request(i).expect("request");
            assert_eq!(r.partition, parts[(i % 3) as usize]);
            total += r.records;
            let req =
                ProduceRequest::decode(&mut r.body.clone(), PRODUCE_VERSION).expect("decodes");
            let batch = req.topic_data[0].partition_data[0]
                .records
                .clone()
                .expect("records");
            assert_eq!(walk_batches(&batch, 0).expect("walks").records, r.records);
        }
        assert_eq!(total, 25_005);
        assert!(plan.request(plan.requests()).is_none());
        assert_eq!(plan.pool.len(), 9);
    }
}
