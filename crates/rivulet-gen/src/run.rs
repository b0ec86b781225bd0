//! The producing side: paces an [`EventStream`] into a topic through librdkafka.
//!
//! librdkafka's `ThreadedProducer` is used rather than the `FutureProducer`: a future per
//! event would cost more than generating it, and the producer's own thread serves delivery
//! reports, which land in [`GenContext`] counters. The send loop itself is async so pacing
//! sleeps, backpressure waits and cancellation are all plain `select!`s, with no thread
//! blocked in a sleep and no busy spinning.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::GenConfig;
use crate::error::GenError;
use crate::pacing::{Next, Schedule};
use crate::stream::{Event, EventKind, EventStream};
use crate::time;

/// librdkafka fails an event that could not be delivered within this long (then counted as
/// a delivery error).
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for delivery reports after the last send: past librdkafka's own
/// timeout, every event has a report by then, so anything still missing is counted as an
/// error rather than waited for forever.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(40);
/// A full local queue normally drains within milliseconds; after this long the brokers are
/// not taking events and the run fails instead of hanging.
const QUEUE_FULL_LIMIT: Duration = Duration::from_secs(40);
/// Pause before retrying a send refused with QueueFull (delivery reports free room).
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(5);
/// Bound on the first metadata request (reaching the brokers at all).
const METADATA_TIMEOUT: Duration = Duration::from_secs(15);
/// Most events sent without checking the clock, cancellation and progress; also the burst
/// size of unpaced runs between two yields to the runtime.
const MAX_BURST: u64 = 4096;
/// Progress line period.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// What a run did. `sent == acknowledged + errors` once `run` returns.
#[derive(Debug, Clone, PartialEq)]
pub struct GenSummary {
    /// Events handed to the producer.
    pub sent: u64,
    /// Events the brokers acknowledged (acks=all).
    pub acknowledged: u64,
    /// Events that failed delivery, or whose delivery was not confirmed by the end.
    pub errors: u64,
    /// Sent events with a malformed payload.
    pub bad: u64,
    /// Sent events with a late timestamp.
    pub late: u64,
    /// From the first send to the last delivery report.
    pub elapsed: Duration,
    /// The seed used (given or drawn), to reproduce the run.
    pub seed: u64,
    /// Event time of event 0 (given or the start time), epoch ms, to reproduce the run.
    pub start_ms: i64,
    /// The first delivery error, if any.
    pub first_error: Option<String>,
    /// Whether the run was stopped by cancellation (Ctrl-C) rather than `--count`.
    pub cancelled: bool,
}

impl GenSummary {
    fn new(seed: u64, start_ms: i64) -> GenSummary {
        GenSummary {
            sent: 0,
            acknowledged: 0,
            errors: 0,
            bad: 0,
            late: 0,
            elapsed: Duration::ZERO,
            seed,
            start_ms,
            first_error: None,
            cancelled: false,
        }
    }
}

impl fmt::Display for GenSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            (self.sent as f64 / secs).round()
        } else {
            0.0
        };
        write!(
            f,
            "sent {} events in {secs:.2}s ({rate}/s){}: {} acknowledged, {} delivery errors, \
             {} bad, {} late\nreproduce with --seed {} --start-time {}",
            self.sent,
            if self.cancelled {
                ", stopped early"
            } else {
                ""
            },
            self.acknowledged,
            self.errors,
            self.bad,
            self.late,
            self.seed,
            time::format_rfc3339_millis(self.start_ms),
        )?;
        if let Some(e) = &self.first_error {
            write!(f, "\nfirst delivery error: {e}")?;
        }
        Ok(())
    }
}

/// Live counters of a run, shared with whoever watches it (the dashboard of `rivulet up`):
/// `sent` is bumped by the send loop, `acknowledged` / `errors` by delivery reports. All are
/// running totals since the run started.
#[derive(Debug, Default)]
pub struct GenStats {
    pub sent: AtomicU64,
    pub acknowledged: AtomicU64,
    pub errors: AtomicU64,
    pub bad: AtomicU64,
    pub late: AtomicU64,
}

/// Delivery-report counters, updated on the producer's polling thread.
#[derive(Default)]
struct GenContext {
    acked: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// Mirrors of the counters for an outside watcher.
    stats: Arc<GenStats>,
}

impl GenContext {
    fn done(&self) -> (u64, u64) {
        (
            self.acked.load(Ordering::Acquire),
            self.failed.load(Ordering::Acquire),
        )
    }

    fn first_error(&self) -> Option<String> {
        self.first_error.lock().ok().and_then(|e| e.clone())
    }
}

impl ClientContext for GenContext {}

impl ProducerContext for GenContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.acked.fetch_add(1, Ordering::AcqRel);
                self.stats.acknowledged.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                // Record the message before counting, so a reader that sees the count also
                // sees the error text.
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| e.to_string());
                }
                self.failed.fetch_add(1, Ordering::AcqRel);
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

type GenProducer = ThreadedProducer<GenContext>;

fn producer_config(config: &GenConfig) -> rdkafka::ClientConfig {
    let mut c = config.connection.client_config();
    c.set("client.id", "rivulet-gen")
        .set("acks", "all")
        .set(
            "enable.idempotence",
            if config.idempotence { "true" } else { "false" },
        )
        .set("compression.type", config.compression.as_str())
        // Throughput: wait up to 5 ms to fill large batches (librdkafka caps batch.size at
        // message.max.bytes).
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "500000")
        .set("queue.buffering.max.kbytes", "262144")
        .set(
            "message.timeout.ms",
            MESSAGE_TIMEOUT.as_millis().to_string(),
        )
        // Same key → partition mapping as the Java client, so other producers of the same
        // ids agree with us.
        .set("partitioner", "murmur2_random");
    c
}

/// Produces events as `config` describes until its count is reached or `cancel` fires, then
/// waits (bounded) for every delivery report.
///
/// Returns `Err` only when the run cannot start or cannot go on (a bad configuration, brokers
/// not reachable, topic missing, a fatal producer error, a queue that stays full); failed
/// deliveries are counted in [`GenSummary::errors`].
pub async fn run(config: GenConfig, cancel: CancellationToken) -> Result<GenSummary, GenError> {
    run_with_stats(config, cancel, Arc::new(GenStats::default())).await
}

/// [`run`], keeping `stats` up to date while it runs (for a live view of the rate).
pub async fn run_with_stats(
    config: GenConfig,
    cancel: CancellationToken,
    stats: Arc<GenStats>,
) -> Result<GenSummary, GenError> {
    config.validate()?;
    // Without --seed a random one is drawn and reported, so any run can be replayed.
    let seed = config.seed.unwrap_or_else(rand::random);
    let start_ms = config.start_ms.unwrap_or_else(time::now_ms);
    let mut stream = EventStream::new(config.stream_config(seed, start_ms))?;
    let mut summary = GenSummary::new(seed, start_ms);

    let context = GenContext {
        stats: stats.clone(),
        ..GenContext::default()
    };
    let producer: GenProducer = producer_config(&config)
        .create_with_context(context)
        .map_err(GenError::kafka("creating the producer"))?;
    let checked = tokio::select! {
        r = check_topic(&producer, &config) => Some(r),
        _ = cancel.cancelled() => None,
    };
    let result = match checked {
        None => {
            summary.cancelled = true;
            Ok(())
        }
        Some(Err(e)) => Err(e),
        Some(Ok(())) => {
            if !config.quiet {
                eprintln!(
                    "rivulet gen: producing to {} on {} ({}), seed {seed}, start-time {}",
                    config.topic,
                    config.connection.describe(),
                    match config.rate {
                        0 => "unpaced".to_string(),
                        r => format!("{r} events/s"),
                    },
                    time::format_rfc3339_millis(start_ms),
                );
            }
            let started = Instant::now();
            let mut progress = Progress::new(started, config.quiet);
            let r = send_loop(
                &producer,
                &config,
                &mut stream,
                &cancel,
                &mut summary,
                &mut progress,
                &stats,
            )
            .await;
            // Even after a fatal error, collect the reports of what was sent so the counts
            // stay truthful.
            await_reports(&producer, &mut summary, &mut progress).await;
            summary.elapsed = started.elapsed();
            r
        }
    };
    // Dropping the producer joins its polling thread: not on the async runtime's threads.
    let _ = tokio::task::spawn_blocking(move || drop(producer)).await;
    result.map(|()| summary)
}

/// Fails fast when the brokers cannot be reached or the topic does not exist (instead of
/// 30 s of retries per event). For brokers that auto-create topics this creates it.
async fn check_topic(producer: &GenProducer, config: &GenConfig) -> Result<(), GenError> {
    let (p, topic) = (producer.clone(), config.topic.clone());
    let metadata = tokio::task::spawn_blocking(move || {
        p.client().fetch_metadata(Some(&topic), METADATA_TIMEOUT)
    })
    .await
    .map_err(|e| GenError::Internal(format!("metadata request: {e}")))?
    .map_err(GenError::kafka(format!(
        "reaching brokers {}",
        config.connection.describe()
    )))?;
    let missing = metadata.topics().iter().any(|t| {
        t.name() == config.topic
            && t.error().map(RDKafkaErrorCode::from)
                == Some(RDKafkaErrorCode::UnknownTopicOrPartition)
    });
    if missing {
        return Err(GenError::UnknownTopic(config.topic.clone()));
    }
    Ok(())
}

/// Sends events on schedule until the count is reached or `cancel` fires.
async fn send_loop(
    producer: &GenProducer,
    config: &GenConfig,
    stream: &mut EventStream,
    cancel: &CancellationToken,
    summary: &mut GenSummary,
    progress: &mut Progress,
    stats: &GenStats,
) -> Result<(), GenError> {
    let schedule = Schedule::new(config.rate);
    let limit = config.count.unwrap_or(u64::MAX);
    let started = progress.started;
    while summary.sent < limit {
        if cancel.is_cancelled() {
            summary.cancelled = true;
            return Ok(());
        }
        // Send everything due now (capped, so the clock and cancellation are checked often).
        let due = match schedule {
            Some(s) => s.due_by(started.elapsed()).min(limit),
            None => limit,
        };
        let burst_end = due.min(summary.sent.saturating_add(MAX_BURST));
        while summary.sent < burst_end {
            let Some(event) = stream.next() else {
                return Ok(());
            };
            if !send(producer, &config.topic, &event, cancel).await? {
                summary.cancelled = true;
                return Ok(());
            }
            summary.sent += 1;
            stats.sent.fetch_add(1, Ordering::Relaxed);
            match event.kind {
                EventKind::Bad => {
                    summary.bad += 1;
                    stats.bad.fetch_add(1, Ordering::Relaxed);
                }
                EventKind::Late => {
                    summary.late += 1;
                    stats.late.fetch_add(1, Ordering::Relaxed);
                }
                EventKind::Good => {}
            }
        }
        progress.tick(producer, summary.sent);
        if summary.sent >= limit {
            break;
        }
        let wake = match schedule.map(|s| s.next(summary.sent, started.elapsed())) {
            // Unpaced, or behind schedule: let other tasks run, then send again.
            None | Some(Next::SendNow) => {
                tokio::task::yield_now().await;
                continue;
            }
            Some(Next::SleepUntil(at)) => (started + at).min(progress.next),
        };
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            _ = cancel.cancelled() => {
                summary.cancelled = true;
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Hands one event to librdkafka, waiting while its queue is full. `Ok(false)`: cancelled
/// while waiting (the event was not sent).
async fn send(
    producer: &GenProducer,
    topic: &str,
    event: &Event,
    cancel: &CancellationToken,
) -> Result<bool, GenError> {
    let mut record = BaseRecord::<str, [u8]>::to(topic)
        .key(event.key.as_str())
        .payload(event.payload.as_slice());
    let mut waited = Duration::ZERO;
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(true),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                // Backpressure: the polling thread frees room as delivery reports arrive.
                if waited >= QUEUE_FULL_LIMIT {
                    return Err(GenError::Backpressure(waited));
                }
                record = r;
                tokio::select! {
                    _ = tokio::time::sleep(QUEUE_FULL_BACKOFF) => waited += QUEUE_FULL_BACKOFF,
                    _ = cancel.cancelled() => return Ok(false),
                }
            }
            Err((e, _)) => {
                return Err(GenError::Kafka {
                    context: format!("producing to {topic}"),
                    source: e,
                })
            }
        }
    }
}

/// Waits until every sent event has a delivery report, at most [`FLUSH_TIMEOUT`]; events
/// still unconfirmed then are counted as errors, never dropped from the counts.
async fn await_reports(producer: &GenProducer, summary: &mut GenSummary, progress: &mut Progress) {
    // Deliberately not interruptible by `cancel`: Ctrl-C means "stop producing", and the
    // summary must still account for what was already sent.
    let deadline = Instant::now() + FLUSH_TIMEOUT;
    let (acked, failed) = loop {
        let (acked, failed) = producer.context().done();
        if acked + failed >= summary.sent || Instant::now() >= deadline {
            break (acked, failed);
        }
        progress.tick(producer, summary.sent);
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    summary.acknowledged = acked;
    summary.errors = failed;
    summary.first_error = producer.context().first_error();
    let unconfirmed = summary.sent.saturating_sub(acked + failed);
    if unconfirmed > 0 {
        summary.errors += unconfirmed;
        summary.first_error.get_or_insert_with(|| {
            format!("{unconfirmed} events not confirmed within {FLUSH_TIMEOUT:?}")
        });
    }
}

/// The once-a-second progress line on stderr.
struct Progress {
    started: Instant,
    quiet: bool,
    next: Instant,
    last_at: Instant,
    last_sent: u64,
}

impl Progress {
    fn new(started: Instant, quiet: bool) -> Progress {
        Progress {
            started,
            quiet,
            next: started + PROGRESS_EVERY,
            last_at: started,
            last_sent: 0,
        }
    }

    /// Prints a line if one is due. The bookkeeping runs even when quiet, since the send
    /// loop's sleeps are bounded by `next`.
    fn tick(&mut self, producer: &GenProducer, sent: u64) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        let secs = (now - self.last_at).as_secs_f64().max(1e-9);
        let rate = ((sent - self.last_sent) as f64 / secs).round();
        if !self.quiet {
            let (acked, failed) = producer.context().done();
            eprintln!(
                "rivulet gen: {:>6.1}s  sent {sent} ({rate}/s)  acked {acked}  errors {failed}",
                (now - self.started).as_secs_f64(),
            );
        }
        self.last_at = now;
        self.last_sent = sent;
        while self.next <= now {
            self.next += PROGRESS_EVERY;
        }
    }
}
