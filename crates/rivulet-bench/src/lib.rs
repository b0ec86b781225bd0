//! `rivulet-bench`: the benchmarks behind `rivulet bench` — the broker's produce and consume
//! throughput and latency, and the whole pipeline (engine alone, generator + broker + engine,
//! latency, memory, sinks). They measure; the pipeline itself is in the library crates they
//! drive, and the binary only parses `rivulet bench`'s flags into a [`BenchCommand`].
//!
//! Without `--brokers` a bench starts its own broker as a separate process, through the
//! [`Launcher`] the binary hands in, on a free loopback port with a
//! throw-away data directory, and reports the broker's memory use too. Producing and
//! consuming run on dedicated threads with librdkafka's non-async API (`BaseProducer`,
//! `BaseConsumer`): a future per message would cost more than the broker does. Every loop is
//! bounded by the record count and by `--timeout-secs`. Results are printed as aligned
//! `key: value` lines and one final JSON line (for docs/BENCHMARKS.md).
//!
//! `--client raw` swaps librdkafka for the minimal client in `raw.rs` (pre-encoded batches,
//! batch-header-only fetch parsing) so that the broker, not the client, is the bottleneck on a
//! small machine; see there. `rivulet bench pipeline` is `pipeline.rs`, `rivulet bench scale` `scale.rs`,
//! `rivulet bench compaction` `compaction.rs`.

mod broker;
pub mod compaction;
mod error;
mod kafka;
mod payload;
mod pipeline;
mod raw;
mod report;
mod scale;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use rivulet_client::KafkaConnection;

use broker::{BenchBroker, Rss};
pub use broker::{Launcher, READY_PREFIX};
pub use error::BenchError;
use kafka::{blocking, client_config, ensure_topic, topic_offsets, REQUEST_TIMEOUT};
use payload::PayloadGen;
use report::{round2, Report};

/// Produce latency is recorded for one record in this many: enough samples for p99 of
/// millions of records, without a clock read and histogram update per record.
const LATENCY_SAMPLE_EVERY: u64 = 100;

/// `rivulet bench …`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchCommand {
    /// Produce `--count` records as fast as possible; report throughput and latency.
    Produce(ProduceArgs),
    /// Consume `--count` records from offset 0 (producing them first if the topic has fewer).
    Consume(ConsumeArgs),
    /// The log cleaner: a compacted topic of `--mb` megabytes cleaned in one pass; its
    /// throughput and the broker's memory meanwhile.
    Compaction(compaction::CompactionArgs),
    /// The whole pipeline: engine alone over a pre-filled topic, generator + broker + engine,
    /// latency at a fixed rate, RSS of `rivulet up` (see `bench::pipeline`).
    Pipeline(pipeline::PipelineArgs),
    /// One query spread over processes (a checkpoint in Kafka): events/s with 1, 2, …
    /// processes, restore time against state size, the pause of a failover and of a join
    /// (see `bench::scale`).
    Scale(scale::ScaleArgs),
}

/// Flags shared by both benches (the consume bench produces with them when it pre-fills).
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Bootstrap servers; without it the bench starts its own broker on 127.0.0.1.
    #[arg(long)]
    pub brokers: Option<String>,
    /// A Kafka client property for the librdkafka client, e.g. `-X security.protocol=SASL_SSL`
    /// (repeatable; `${ENV_VAR}` in values).
    #[arg(short = 'X', long = "client-config", value_name = "NAME=VALUE")]
    pub client_config: Vec<String>,
    /// A properties file of client properties.
    #[arg(long, value_name = "FILE")]
    pub client_config_file: Option<std::path::PathBuf>,
    /// Topic to use; created (with --partitions) if missing.
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Number of records.
    #[arg(long, default_value_t = 5_000_000)]
    pub count: u64,
    /// Record size in bytes (a JSON object padded to exactly this size).
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Partitions of the topic when the bench creates it.
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    /// Producer acks: 0, 1 or all (-1) [default: 1, or all with --idempotent].
    #[arg(long, allow_hyphen_values = true, value_parser = parse_acks)]
    pub acks: Option<String>,
    /// Producer compression.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,
    /// Producer batch.size in bytes (librdkafka caps it at message.max.bytes).
    #[arg(long, default_value_t = 1_000_000)]
    pub batch_size: u32,
    /// Producer linger.ms.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u32,
    /// Use the idempotent producer (enable.idempotence=true).
    #[arg(long)]
    pub idempotent: bool,
    /// --fsync of the broker the bench starts: `always` or an interval like `100ms`.
    #[arg(long, default_value = "always")]
    pub fsync: String,
    /// Give up on each phase (pre-fill, produce, consume) after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
    /// Client for the measured phase: `librdkafka` (what applications see) or `raw` (a
    /// minimal client with pre-encoded batches and no per-record work, to load the broker
    /// rather than the client; loopback brokers only). Pre-filling always uses librdkafka.
    #[arg(long, value_enum, default_value_t = ClientKind::Librdkafka)]
    pub client: ClientKind,
    /// Records per transaction (librdkafka: a transactional producer commits every this many
    /// records; 0: no transactions). Implies acks=all and idempotence, as Kafka requires.
    #[arg(long, default_value_t = 0)]
    pub transaction_size: u64,
    /// What the consume bench reads: `read_committed` (librdkafka's default: up to the last
    /// stable offset, aborted records dropped) or `read_uncommitted`.
    #[arg(long, value_enum, default_value_t = Isolation::ReadCommitted)]
    pub isolation: Isolation,
    /// `--client raw` produce: produce requests in flight on its one connection.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub in_flight: u16,
}

/// A consumer's `isolation.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Isolation {
    #[value(name = "read_committed")]
    ReadCommitted,
    #[value(name = "read_uncommitted")]
    ReadUncommitted,
}

impl Isolation {
    fn as_str(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read_committed",
            Isolation::ReadUncommitted => "read_uncommitted",
        }
    }
}

/// The client a bench measures with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientKind {
    /// librdkafka through the rdkafka crate.
    Librdkafka,
    /// The minimal kafka-protocol client of `bench::raw`.
    Raw,
}

impl ClientKind {
    fn as_str(self) -> &'static str {
        match self {
            ClientKind::Librdkafka => "librdkafka",
            ClientKind::Raw => "raw",
        }
    }
}

/// `rivulet bench produce` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `rivulet bench consume` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Producer compression codecs (librdkafka's `compression.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl CommonArgs {
    /// The effective `acks`: the idempotent producer requires `all`.
    fn acks(&self) -> Result<&str, BenchError> {
        // Transactions need an idempotent producer.
        match (
            self.acks.as_deref(),
            self.idempotent || self.transaction_size > 0,
        ) {
            (None, false) => Ok("1"),
            (None, true) | (Some("all"), _) => Ok("all"),
            (Some(a), false) => Ok(a),
            (Some(a), true) => Err(BenchError::InvalidArgument(format!(
                "--idempotent and --transaction-size need --acks all, got --acks {a}"
            ))),
        }
    }

    /// Refuses what `--client raw` does not do, before any broker is started.
    fn check_client(&self, mode: &str) -> Result<(), BenchError> {
        if self.client != ClientKind::Raw {
            return Ok(());
        }
        if self.transaction_size > 0 {
            return Err(BenchError::InvalidArgument(
                "--client raw has no transactional producer; use --client librdkafka".into(),
            ));
        }
        if self.idempotent {
            return Err(BenchError::InvalidArgument(
                "--client raw has no idempotent producer; drop --idempotent".into(),
            ));
        }
        if mode == "produce" && self.acks()? == "0" {
            return Err(BenchError::InvalidArgument(
                "--client raw needs --acks 1 or all: with acks 0 the broker sends no responses, so nothing would be checked or timed".into(),
            ));
        }
        Ok(())
    }

    /// `acks` as the protocol's number.
    fn acks_num(&self) -> Result<i16, BenchError> {
        Ok(match self.acks()? {
            "0" => 0,
            "1" => 1,
            _ => -1,
        })
    }
}

fn parse_acks(s: &str) -> Result<String, String> {
    match s {
        "0" | "1" => Ok(s.to_string()),
        "all" | "-1" => Ok("all".to_string()),
        _ => Err(format!("expected 0, 1, all or -1, got `{s}`")),
    }
}

impl BenchCommand {
    /// Runs the benchmark, printing its figures to stdout; a broker (or `rivulet up`) the
    /// bench starts itself comes from `launcher`.
    pub async fn run(self, launcher: Arc<dyn Launcher>) -> Result<(), BenchError> {
        let (mode, common) = match &self {
            BenchCommand::Produce(a) => ("produce", &a.common),
            BenchCommand::Consume(a) => ("consume", &a.common),
            BenchCommand::Pipeline(a) => return pipeline::run(a.clone(), launcher).await,
            BenchCommand::Compaction(a) => return compaction::run(a.clone(), launcher).await,
            BenchCommand::Scale(a) => return scale::run(a.clone(), launcher).await,
        };
        if common.count == 0 {
            return Err(BenchError::InvalidArgument(
                "--count must be at least 1".into(),
            ));
        }
        common.acks()?;
        common.check_client(mode)?;
        if common.timeout_secs == 0 {
            return Err(BenchError::InvalidArgument(
                "--timeout-secs must be at least 1".into(),
            ));
        }
        // Checked before any broker is started.
        PayloadGen::new(common.size, common.count)?;

        let own = match &common.brokers {
            Some(_) => None,
            None => Some(BenchBroker::start(launcher, &common.fsync).await?),
        };
        let brokers = match (&common.brokers, &own) {
            (Some(b), _) => b.clone(),
            (None, Some(o)) => o.addr().to_string(),
            (None, None) => return Err(BenchError::BrokerProcess("no broker".into())),
        };

        let conn = KafkaConnection::from_cli(
            &brokers,
            common.client_config_file.as_deref(),
            &common.client_config,
        )
        .map_err(BenchError::InvalidArgument)?;
        if common.client == ClientKind::Raw && !conn.properties.is_empty() {
            return Err(BenchError::InvalidArgument(
                "client properties (-X, --client-config-file) are for --client librdkafka; the raw \
                 client speaks plaintext only"
                    .into(),
            ));
        }
        if common.client == ClientKind::Raw {
            let deadline = Instant::now() + REQUEST_TIMEOUT;
            raw::loopback_addrs(&brokers, deadline).await?;
        }
        let mut report = Report::new(mode);
        report.add("broker", brokers.clone());
        report.add("security_protocol", conn.security_protocol());
        report.add("broker_started_by_bench", own.is_some());
        if own.is_some() {
            report.add("broker_fsync", common.fsync.clone());
        }
        let result = match self {
            BenchCommand::Produce(a) => produce_bench(&conn, a.common, &mut report).await,
            BenchCommand::Consume(a) => consume_bench(&conn, a.common, &mut report).await,
            BenchCommand::Pipeline(_) | BenchCommand::Compaction(_) | BenchCommand::Scale(_) => {
                Ok(())
            }
        };
        if let Some(b) = own {
            let Rss {
                peak_kib,
                current_kib,
            } = b.stop();
            report.add("broker_peak_rss_mib", round2(peak_kib as f64 / 1024.0));
            report.add("broker_rss_mib", round2(current_kib as f64 / 1024.0));
        }
        report.print();
        result
    }
}

/// Delivery reports: counts, the first error, and sampled latencies.
struct BenchContext {
    start: Instant,
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    latency_us: Mutex<Histogram<u64>>,
}

impl ClientContext for BenchContext {}

impl ProducerContext for BenchContext {
    /// 0: not sampled; otherwise 1 + nanoseconds from `start` to the send.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: usize) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| e.to_string());
                }
            }
        }
        if sent != 0 {
            let now = self.start.elapsed().as_nanos() as u64;
            let us = now.saturating_sub(sent as u64 - 1) / 1000;
            if let Ok(mut h) = self.latency_us.lock() {
                h.saturating_record(us.max(1));
            }
        }
    }
}

/// What a produce run achieved.
struct ProduceOutcome {
    delivered: u64,
    failed: u64,
    first_error: Option<String>,
    elapsed: Duration,
    latency_us: Histogram<u64>,
    timed_out: bool,
}

/// Produces records `first_id..first_id + count` to `args.topic` on a dedicated thread.
async fn produce(
    brokers: &KafkaConnection,
    args: &CommonArgs,
    first_id: u64,
    count: u64,
) -> Result<ProduceOutcome, BenchError> {
    let mut config = client_config(brokers);
    config
        .set("acks", args.acks()?)
        .set("compression.type", args.compression.as_str())
        .set("batch.size", args.batch_size.to_string())
        .set("linger.ms", args.linger_ms.to_string())
        .set("batch.num.messages", "100000")
        // A deep local queue: the sender should wait on the broker, not on librdkafka.
        .set("queue.buffering.max.messages", "2000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set(
            "enable.idempotence",
            if args.idempotent || args.transaction_size > 0 {
                "true"
            } else {
                "false"
            },
        );
    let transaction_size = args.transaction_size;
    if transaction_size > 0 {
        config
            .set(
                "transactional.id",
                format!("rivulet-bench-{}", std::process::id()),
            )
            .set("acks", "all");
    }
    let histogram = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)
        .map_err(|e| BenchError::Worker(format!("latency histogram: {e}")))?;
    let context = BenchContext {
        start: Instant::now(),
        delivered: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        first_error: Mutex::new(None),
        latency_us: Mutex::new(histogram),
    };
    let producer: BaseProducer<BenchContext> =
        config
            .create_with_context(context)
            .map_err(BenchError::kafka(format!(
                "creating a producer for {brokers}"
            )))?;
    let mut gen = PayloadGen::new(args.size, first_id + count)?;
    let topic = args.topic.clone();
    let timeout = Duration::from_secs(args.timeout_secs);

    blocking(move || {
        let txn_error = |what: &str| {
            let what = what.to_string();
            move |e| BenchError::Kafka {
                context: format!("{what} (transactional producer)"),
                source: e,
            }
        };
        if transaction_size > 0 {
            producer
                .init_transactions(timeout)
                .map_err(txn_error("initialising transactions"))?;
        }
        let start = Instant::now();
        let deadline = start + timeout;
        let mut timed_out = false;
        if transaction_size > 0 {
            producer
                .begin_transaction()
                .map_err(txn_error("beginning a transaction"))?;
        }
        'records: for i in 0..count {
            let id = first_id + i;
            if transaction_size > 0 && i > 0 && i.is_multiple_of(transaction_size) {
                // Serve the deliveries here: librdkafka's own flush inside the commit checks
                // for them only every 100 ms when the application polls its events itself.
                while producer.in_flight_count() > 0 && Instant::now() < deadline {
                    producer.poll(Duration::from_millis(1));
                }
                let left = deadline.saturating_duration_since(Instant::now());
                producer
                    .commit_transaction(left.max(Duration::from_millis(1)))
                    .map_err(txn_error("committing a transaction"))?;
                producer
                    .begin_transaction()
                    .map_err(txn_error("beginning a transaction"))?;
            }
            // Cheap enough to check every 1024 records; also serves delivery reports.
            if i.is_multiple_of(1024) {
                producer.poll(Duration::ZERO);
                if Instant::now() >= deadline {
                    timed_out = true;
                    break;
                }
            }
            let opaque = if i.is_multiple_of(LATENCY_SAMPLE_EVERY) {
                producer.context().start.elapsed().as_nanos() as usize + 1
            } else {
                0
            };
            let mut record = BaseRecord::<(), [u8], usize>::with_opaque_to(&topic, opaque)
                .payload(gen.record(id));
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        // The local queue is full: serve delivery reports until there is room.
                        record = r;
                        producer.poll(Duration::from_millis(5));
                        if Instant::now() >= deadline {
                            timed_out = true;
                            break 'records;
                        }
                    }
                    Err((e, _)) => {
                        return Err(BenchError::Kafka {
                            context: format!("producing to {topic}"),
                            source: e,
                        })
                    }
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if transaction_size > 0 && !timed_out {
            while producer.in_flight_count() > 0 && Instant::now() < deadline {
                producer.poll(Duration::from_millis(1));
            }
            producer
                .commit_transaction(left.max(Duration::from_millis(1)))
                .map_err(txn_error("committing a transaction"))?;
        } else if producer.flush(left.max(Duration::from_millis(1))).is_err() {
            timed_out = true;
        }
        let elapsed = start.elapsed();
        let ctx = producer.context();
        let first_error = ctx.first_error.lock().ok().and_then(|f| f.clone());
        let latency_us = ctx
            .latency_us
            .lock()
            .map(|h| h.clone())
            .map_err(|e| BenchError::Worker(e.to_string()))?;
        Ok(ProduceOutcome {
            delivered: ctx.delivered.load(Ordering::Relaxed),
            failed: ctx.failed.load(Ordering::Relaxed),
            first_error,
            elapsed,
            latency_us,
            timed_out,
        })
    })
    .await
}

fn add_setup(report: &mut Report, args: &CommonArgs, partitions: usize) {
    report.add("client", args.client.as_str());
    report.add("topic", args.topic.clone());
    report.add("partitions", partitions);
    report.add("records", args.count);
    report.add("record_bytes", args.size);
    report.add("acks", args.acks().unwrap_or("?"));
    report.add("compression", args.compression.as_str());
    report.add("batch_size", args.batch_size);
    if args.client == ClientKind::Librdkafka {
        report.add("linger_ms", args.linger_ms);
    }
    report.add("idempotent", args.idempotent || args.transaction_size > 0);
    if args.transaction_size > 0 {
        report.add("transaction_size", args.transaction_size);
    }
}

async fn produce_bench(
    conn: &KafkaConnection,
    args: CommonArgs,
    report: &mut Report,
) -> Result<(), BenchError> {
    let brokers = conn.bootstrap_servers.as_str();
    let partitions = ensure_topic(conn, &args.topic, args.partitions).await?;
    add_setup(report, &args, partitions);
    let out = match args.client {
        ClientKind::Librdkafka => produce(conn, &args, 0, args.count).await?,
        ClientKind::Raw => {
            let (_, offsets) = topic_offsets(conn, &args.topic).await?;
            let ids: Vec<i32> = offsets.iter().map(|(p, _, _)| *p).collect();
            let spec = raw::ProduceSpec {
                topic: &args.topic,
                partitions: &ids,
                count: args.count,
                record_size: args.size,
                acks: args.acks_num()?,
                compression: raw::codec(args.compression),
                batch_bytes: args.batch_size as usize,
                in_flight: usize::from(args.in_flight),
                timeout: Duration::from_secs(args.timeout_secs),
            };
            // Encoding the batches is setup, not measured.
            let plan = raw::plan(&spec)?;
            report.add("in_flight", args.in_flight);
            report.add("records_per_batch", plan.per_batch);
            report.add("batch_bytes", plan.batch_len);
            report.add("requests", plan.requests());
            raw::produce(brokers, &spec, &plan).await?
        }
    };
    let secs = out.elapsed.as_secs_f64().max(1e-9);
    let ms = |q: f64| round2(out.latency_us.value_at_quantile(q) as f64 / 1000.0);
    report.add("delivered", out.delivered);
    report.add("errors", out.failed);
    report.add(
        "records_per_sec",
        (out.delivered as f64 / secs).round() as u64,
    );
    report.add(
        "mb_per_sec",
        round2(out.delivered as f64 * args.size as f64 / secs / 1e6),
    );
    report.add("latency_p50_ms", ms(0.50));
    report.add("latency_p99_ms", ms(0.99));
    report.add(
        "latency_max_ms",
        round2(out.latency_us.max() as f64 / 1000.0),
    );
    report.add("latency_samples", out.latency_us.len());
    report.add("total_secs", round2(secs));
    check_outcome(&out, args.count, args.timeout_secs)
}

fn check_outcome(out: &ProduceOutcome, count: u64, timeout_secs: u64) -> Result<(), BenchError> {
    if out.failed > 0 {
        return Err(BenchError::Incomplete(format!(
            "{} of {count} records failed; first error: {}",
            out.failed,
            out.first_error.as_deref().unwrap_or("unknown")
        )));
    }
    if out.timed_out || out.delivered < count {
        return Err(BenchError::Timeout(format!(
            "{} of {count} records delivered within {timeout_secs}s",
            out.delivered
        )));
    }
    Ok(())
}

async fn consume_bench(
    conn: &KafkaConnection,
    args: CommonArgs,
    report: &mut Report,
) -> Result<(), BenchError> {
    let brokers = conn.bootstrap_servers.as_str();
    ensure_topic(conn, &args.topic, args.partitions).await?;
    let (_, offsets) = topic_offsets(conn, &args.topic).await?;
    let existing: u64 = offsets
        .iter()
        .map(|(_, low, high)| (high - low).max(0) as u64)
        .sum();
    let mut prefilled = 0;
    if existing < args.count {
        // Untimed: the consume bench measures consuming only.
        let missing = args.count - existing;
        let out = produce(conn, &args, existing, missing).await?;
        check_outcome(&out, missing, args.timeout_secs)?;
        prefilled = missing;
    }
    let (partitions, offsets) = topic_offsets(conn, &args.topic).await?;
    add_setup(report, &args, partitions);
    report.add("prefilled", prefilled);
    report.add("isolation", args.isolation.as_str());
    if args.client == ClientKind::Raw {
        return consume_raw(brokers, &args, &offsets, report).await;
    }

    let mut config = client_config(conn);
    config
        // librdkafka wants a group.id even for assign(); nothing is committed to it.
        .set("group.id", "rivulet-bench")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("isolation.level", args.isolation.as_str())
        // Large fetches: the bench measures the broker's read path, not request overhead.
        .set("fetch.min.bytes", "1048576")
        .set("fetch.wait.max.ms", "100")
        .set("fetch.max.bytes", "67108864")
        .set("max.partition.fetch.bytes", "16777216")
        .set("receive.message.max.bytes", "100000000")
        .set("queued.max.messages.kbytes", "262144")
        .set("queued.min.messages", "1000000");
    let consumer: BaseConsumer = config.create().map_err(BenchError::kafka(format!(
        "creating a consumer for {brokers}"
    )))?;
    // assign, not subscribe: no group, no rebalance, every partition from its start.
    let mut tpl = TopicPartitionList::new();
    for (p, _, _) in &offsets {
        tpl.add_partition_offset(&args.topic, *p, Offset::Beginning)
            .map_err(BenchError::kafka("building the assignment"))?;
    }
    consumer.assign(&tpl).map_err(BenchError::kafka(format!(
        "assigning the partitions of {}",
        args.topic
    )))?;

    let count = args.count;
    let timeout = Duration::from_secs(args.timeout_secs);
    let topic = args.topic.clone();
    let (records, bytes, elapsed, timed_out, errors) = blocking(move || {
        let start = Instant::now();
        let deadline = start + timeout;
        let (mut records, mut bytes) = (0u64, 0u64);
        let mut errors: (u64, Option<String>) = (0, None);
        let mut timed_out = false;
        while records < count {
            if Instant::now() >= deadline {
                timed_out = true;
                break;
            }
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Ok(m)) => {
                    records += 1;
                    bytes += m.payload_len() as u64;
                }
                // librdkafka retries by itself (e.g. after a dropped connection): count the
                // error and go on; the deadline bounds a consumer that never recovers.
                Some(Err(e)) => {
                    errors.0 += 1;
                    errors
                        .1
                        .get_or_insert_with(|| format!("consuming {topic}: {e}"));
                }
            }
        }
        Ok((records, bytes, start.elapsed(), timed_out, errors))
    })
    .await?;
    let secs = elapsed.as_secs_f64().max(1e-9);
    report.add("consumed", records);
    report.add("records_per_sec", (records as f64 / secs).round() as u64);
    report.add("mb_per_sec", round2(bytes as f64 / secs / 1e6));
    report.add("total_secs", round2(secs));
    report.add("errors", errors.0);
    if timed_out {
        return Err(BenchError::Timeout(format!(
            "{records} of {count} records consumed within {}s{}",
            args.timeout_secs,
            errors
                .1
                .map(|e| format!("; first error: {e}"))
                .unwrap_or_default()
        )));
    }
    Ok(())
}

/// The measured phase of `bench consume --client raw`, from each partition's start.
async fn consume_raw(
    brokers: &str,
    args: &CommonArgs,
    offsets: &[(i32, i64, i64)],
    report: &mut Report,
) -> Result<(), BenchError> {
    let starts: Vec<(i32, i64)> = offsets.iter().map(|(p, low, _)| (*p, *low)).collect();
    let out = raw::consume(
        brokers,
        &args.topic,
        &starts,
        args.count,
        Duration::from_secs(args.timeout_secs),
    )
    .await?;
    let secs = out.elapsed.as_secs_f64().max(1e-9);
    report.add("consumed", out.records);
    report.add(
        "records_per_sec",
        (out.records as f64 / secs).round() as u64,
    );
    // Record-batch bytes as served (headers and record framing included).
    report.add("mb_per_sec", round2(out.bytes as f64 / secs / 1e6));
    report.add("total_secs", round2(secs));
    report.add("fetches", out.fetches);
    report.add("batches", out.batches);
    report.add("errors", out.errors);
    if let Some(e) = out.first_error {
        return Err(BenchError::Incomplete(format!(
            "{} fetch error(s) after {} records; first: {e}",
            out.errors, out.records
        )));
    }
    if out.timed_out || out.records < args.count {
        return Err(BenchError::Timeout(format!(
            "{} of {} records consumed within {}s",
            out.records, args.count, args.timeout_secs
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        bench: BenchCommand,
    }

    #[test]
    fn parses_flags_and_defaults() {
        let cli = Cli::try_parse_from(["x", "produce"]).expect("parses");
        let BenchCommand::Produce(a) = cli.bench else {
            panic!("not produce")
        };
        let c = a.common;
        assert_eq!(
            (c.count, c.size, c.partitions, c.topic.as_str()),
            (5_000_000, 100, 1, "bench")
        );
        assert_eq!(
            (c.acks().ok(), c.fsync.as_str(), c.timeout_secs),
            (Some("1"), "always", 300)
        );
        assert!(c.brokers.is_none());

        let cli = Cli::try_parse_from([
            "x",
            "consume",
            "--brokers",
            "localhost:9092",
            "--acks",
            "-1",
            "--compression",
            "zstd",
            "--count",
            "10",
        ])
        .expect("parses");
        let BenchCommand::Consume(a) = cli.bench else {
            panic!("not consume")
        };
        assert_eq!(a.common.acks().ok(), Some("all"));
        let idem = |extra: &[&str]| {
            let mut argv = vec!["x", "produce", "--idempotent"];
            argv.extend_from_slice(extra);
            let cli = Cli::try_parse_from(argv).expect("parses");
            let BenchCommand::Produce(a) = cli.bench else {
                panic!("not produce")
            };
            a.common.acks().ok().map(str::to_string)
        };
        assert_eq!(idem(&[]).as_deref(), Some("all"));
        assert_eq!(idem(&["--acks", "1"]), None);
        assert_eq!(a.common.compression, Compression::Zstd);
        assert!(Cli::try_parse_from(["x", "produce", "--acks", "2"]).is_err());
    }
}
