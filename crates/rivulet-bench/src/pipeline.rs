//! `rivulet bench pipeline`: the whole pipeline (issue 3), in four parts.
//!
//! The bench starts its own broker ([`crate::broker`], a child process, so its RSS and CPU are
//! its own) unless `--brokers` is given, and runs the generator and the engine *in this
//! process*, exactly as `rivulet up` does. The query is the default one
//! (examples/pipeline.toml: 10 s tumbling windows per id, count/avg/min/max of `value`, 5 s
//! lateness, update mode) with a JSON-lines file sink in a temporary directory instead of the
//! console.
//!
//! - `engine` (a): pre-fills a topic with `--count` events of the generator's `EventStream`
//!   (seeded, `--keys` ids, 100,000 events per second of event time) through the raw
//!   kafka-protocol producer (untimed), then times `run_query` from open to return with
//!   `stop_when_caught_up`, trigger `on-arrival` (micro-batches back to back) and
//!   `--max-records-per-trigger`. events/s = count / that wall time. The run ends with one
//!   empty poll (≤ 0.5 s) that finds the source caught up; that idle tail is included.
//! - `e2e` (b): generator (`rivulet_gen::run`, `--rate 0`, acks=all, idempotent), broker and
//!   engine together for `--duration-secs`; sustained events/s from the progress records
//!   (input rows of the micro-batches that started after a 2 s warm-up, over that span).
//! - `latency` (c): generator at `--latency-rate` events/s, trigger `on-arrival`; per
//!   micro-batch, the time its result is at the sink is `timestamp` (the batch time, taken
//!   right after the poll) + `walCommit` + `addBatch` (decode, operators and sink write) of
//!   its progress record (+ `commitOffsets` for a Kafka sink with the checkpoint in Kafka,
//!   whose records are visible once the epoch's one transaction commits); the latency of an event is that minus the event's own `timestamp`
//!   field (the generator stamps events with their scheduled send time, and sends them when
//!   due). A batch's oldest event (`eventTime.min`) gives an upper bound for all its events,
//!   its newest (`eventTime.max`) a lower bound; both distributions are reported, weighted
//!   by the batch's rows. Resolution is 1 ms (progress times are whole milliseconds).
//! - `rss` (d): the bench's broker's peak RSS over the parts above, and `rivulet up` (a child
//!   from the [`Launcher`], on a free port with a temporary data directory, generator at
//!   `--up-rate`) after `--rss-secs`: VmHWM and VmRSS from `/proc/<pid>/status`.
//! - `sinks` (e): each sink alone (file, Parquet, and PostgreSQL when `--pg-url` is given),
//!   fed `--sink-rows` synthetic result rows of the default query's schema (1000 ids, 10 s
//!   windows, distinct (id, window) so PostgreSQL inserts) in epochs of
//!   `--sink-rows-per-epoch`, each `write_epoch` + `commit` as the driver calls them, then
//!   `close`. rows/s = rows / that wall time (the Parquet figure includes the final roll, the
//!   PostgreSQL one the wait until the server committed every epoch).
//!
//! `--sql` runs each of the parts (a) to (c) that is selected twice: first with the default
//! query from examples/pipeline.toml, then with its SQL form (examples/pipeline.sql compiled by
//! `rivulet-sql`); both get the same broker, topic, sink and checkpoint overrides. The SQL
//! run's figures carry a `sql_` prefix, and `sql_ratio_<figure>` is SQL / pipeline file for
//! the throughput and latency figures (the issue's bound: within 10 %).
//!
//! `--sink` picks the sink of the query in parts (a) to (c): `file` (default), `parquet`
//! (a dataset in the temporary directory, default options), `postgres` (table
//! `rivulet_bench` on `--pg-url`) or `kafka` (topic `<topic>-out` on the same broker: with
//! `--checkpoint-store kafka` each epoch is then one transaction, offsets to commit marker),
//! to compare the pipeline's figures across sinks.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use hdrhistogram::Histogram;
use rivulet_engine::plan::{Plan, TriggerSpec};
use rivulet_gen::{EventStream, GenConfig, StreamConfig, ValueDist};
use rivulet_runtime::connectors::{
    self, kafka, parquet::ParquetOptions, postgres::PostgresOptions,
};
use rivulet_runtime::progress::QueryProgress;
use rivulet_runtime::{run_query, QuerySummary, RunOptions};
use tokio_util::sync::CancellationToken;

use crate::broker::{BenchBroker, Launcher, Rss};
use crate::raw;
use crate::report::{round2, Report};
use crate::{check_outcome, BenchError};

/// The default query of `rivulet up`.
const DEFAULT_PIPELINE: &str = include_str!("../../../examples/pipeline.toml");
/// The same query in streaming SQL (`--sql`).
const DEFAULT_SQL: &str = include_str!("../../../examples/pipeline.sql");
/// Figures compared between the two forms of the query under `--sql`.
const SQL_RATIOS: [&str; 6] = [
    "engine_events_per_sec",
    "engine_events_per_busy_sec",
    "e2e_engine_events_per_sec",
    "latency_engine_events_per_sec",
    "latency_p50_ms",
    "latency_p99_ms",
];
/// Records per pre-fill batch (~0.7 MB of ~70-byte events).
const PREFILL_BATCH: usize = 10_000;
/// Produce requests in flight while pre-filling.
pub(crate) const PREFILL_IN_FLIGHT: usize = 8;
/// Event-time rate of the pre-filled stream (events per second of event time).
const PREFILL_EVENT_RATE: u64 = 100_000;
/// Event time of the first pre-filled event: 2026-11-24T00:00:00Z (fixed, reproducible).
const PREFILL_START_MS: i64 = 1_795_478_400_000;
/// Micro-batches starting in the first seconds of a timed part are not counted.
const WARMUP: Duration = Duration::from_secs(2);
/// Kernel clock ticks per second for `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const CLOCK_TICKS: f64 = 100.0;

/// What `bench pipeline` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// (a) the engine alone over a pre-filled topic.
    Engine,
    /// (b) generator, broker and engine together.
    E2e,
    /// (c) latency at a fixed generator rate.
    Latency,
    /// (d) RSS of `rivulet up`.
    Rss,
    /// (e) rows/s of each sink alone.
    Sinks,
}

/// The sink of the query in parts (a) to (c).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchSink {
    /// JSON lines in the temporary directory.
    File,
    /// A Parquet dataset in the temporary directory.
    Parquet,
    /// Table `rivulet_bench` on `--pg-url`.
    Postgres,
    /// Topic `<topic>-out` on the bench's broker (with `--checkpoint-store kafka`, in the
    /// task's one transaction per epoch).
    Kafka,
}

/// Where the bench's query comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryForm {
    /// examples/pipeline.toml
    #[default]
    PipelineFile,
    /// examples/pipeline.sql, compiled by rivulet-sql.
    Sql,
}

/// Distinct ids of the synthetic rows of part (e).
const SINK_BENCH_IDS: u64 = 1000;

/// `rivulet bench pipeline` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct PipelineArgs {
    /// Bootstrap servers; without it the bench starts its own broker on 127.0.0.1.
    #[arg(long)]
    pub brokers: Option<String>,
    /// Parts to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "engine,e2e,latency,rss,sinks"
    )]
    pub parts: Vec<Part>,
    /// (a)-(c) the query's sink.
    #[arg(long, value_enum, default_value = "file")]
    pub sink: BenchSink,
    /// PostgreSQL server for `--sink postgres` and part (e)
    /// (`postgres://USER:PASSWORD@127.0.0.1:PORT/DB`).
    #[arg(long)]
    pub pg_url: Option<String>,
    /// (e) rows written through each sink.
    #[arg(long, default_value_t = 1_000_000)]
    pub sink_rows: u64,
    /// (e) rows per epoch.
    #[arg(long, default_value_t = 10_000)]
    pub sink_rows_per_epoch: u64,
    /// (a) events pre-filled and processed.
    #[arg(long, default_value_t = 10_000_000)]
    pub count: u64,
    /// (a), (b) `max_records_per_trigger` of the query.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_records_per_trigger: u64,
    /// (b), (c) how long the generator runs.
    #[arg(long, default_value_t = 20)]
    pub duration_secs: u64,
    /// (c) generator rate in events/s.
    #[arg(long, default_value_t = 100_000)]
    pub latency_rate: u64,
    /// (d) how long `rivulet up` runs before its RSS is read.
    #[arg(long, default_value_t = 10)]
    pub rss_secs: u64,
    /// (d) generator rate of `rivulet up` (its default is 1000).
    #[arg(long, default_value_t = 1000)]
    pub up_rate: u64,
    /// Distinct ids.
    #[arg(long, default_value_t = 10)]
    pub keys: u64,
    /// Generator seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// --fsync of the broker the bench starts.
    #[arg(long, default_value = "always")]
    pub fsync: String,
    /// Where the query's checkpoint lives (`dir` or `kafka`: the cost of a checkpoint in
    /// Kafka, one transaction per write, against the local directory).
    #[arg(long, default_value = "dir", value_name = "dir|kafka")]
    pub checkpoint_store: rivulet_engine::plan::CheckpointStoreKind,
    /// Give up on each phase after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
    /// (a)-(c) also run the query's SQL form (examples/pipeline.sql) and print its figures
    /// (`sql_...`) and their ratio to the pipeline file's (`sql_ratio_...`).
    #[arg(long)]
    pub sql: bool,
    /// The form the parts run (set per run under `--sql`).
    #[arg(skip)]
    pub form: QueryForm,
}

impl PipelineArgs {
    fn check(&self) -> Result<(), BenchError> {
        let bad = |m: &str| Err(BenchError::InvalidArgument(m.to_string()));
        if self.count == 0 {
            return bad("--count must be at least 1");
        }
        if self.max_records_per_trigger == 0 {
            return bad("--max-records-per-trigger must be at least 1");
        }
        if self.duration_secs <= WARMUP.as_secs() {
            return bad("--duration-secs must be more than 2 (the warm-up)");
        }
        if self.latency_rate == 0 {
            return bad("--latency-rate must be at least 1");
        }
        if self.rss_secs == 0 || self.timeout_secs == 0 || self.keys == 0 {
            return bad("--rss-secs, --timeout-secs and --keys must be at least 1");
        }
        if self.sink == BenchSink::Postgres && self.pg_url.is_none() {
            return bad("--sink postgres needs --pg-url");
        }
        if self.sink_rows == 0 || self.sink_rows_per_epoch == 0 {
            return bad("--sink-rows and --sink-rows-per-epoch must be at least 1");
        }
        Ok(())
    }
}

/// Runs the selected parts and prints one report.
pub(crate) async fn run(args: PipelineArgs, launcher: Arc<dyn Launcher>) -> Result<(), BenchError> {
    args.check()?;
    let mut report = Report::new("pipeline");
    let needs_broker = args
        .parts
        .iter()
        .any(|p| !matches!(p, Part::Rss | Part::Sinks));
    let own = match (&args.brokers, needs_broker) {
        (None, true) => Some(BenchBroker::start(launcher.clone(), &args.fsync).await?),
        _ => None,
    };
    let brokers = match (&args.brokers, &own) {
        (Some(b), _) => b.clone(),
        (None, Some(o)) => o.addr().to_string(),
        (None, None) => String::new(),
    };
    let broker_pid = own.as_ref().map(BenchBroker::pid);
    if needs_broker {
        report.add("broker", brokers.clone());
        report.add("broker_started_by_bench", own.is_some());
        if own.is_some() {
            report.add("broker_fsync", args.fsync.clone());
        }
    }
    report.add("checkpoint_store", args.checkpoint_store.to_string());
    report.add("keys", args.keys);
    report.add("seed", args.seed);
    report.add(
        "query_sink",
        match args.sink {
            BenchSink::File => "file",
            BenchSink::Parquet => "parquet",
            BenchSink::Postgres => "postgres",
            BenchSink::Kafka => "kafka",
        },
    );
    if args.sql {
        report.add("query_forms", "pipeline file, then sql");
    }
    let mut result = Ok(());
    for part in args.parts.clone() {
        let mut r = run_part(part, &brokers, broker_pid, &args, &mut report).await;
        if r.is_ok() && args.sql && matches!(part, Part::Engine | Part::E2e | Part::Latency) {
            let sql_args = PipelineArgs {
                form: QueryForm::Sql,
                ..args.clone()
            };
            let mut sql = Report::empty();
            r = run_part(part, &brokers, broker_pid, &sql_args, &mut sql).await;
            let ratios: Vec<(String, f64)> = SQL_RATIOS
                .iter()
                .filter_map(|k| {
                    let a = report.get(k)?.as_f64()?;
                    let b = sql.get(k)?.as_f64()?;
                    (a > 0.0).then(|| (format!("sql_ratio_{k}"), round3(b / a)))
                })
                .collect();
            report.add_prefixed("sql_", sql);
            for (k, v) in ratios {
                report.add(k, v);
            }
        }
        if let Err(e) = r {
            result = Err(e);
            break;
        }
    }
    if let Some(b) = own {
        let Rss {
            peak_kib,
            current_kib,
        } = b.stop();
        report.add("broker_peak_rss_mib", round2(peak_kib as f64 / 1024.0));
        report.add("broker_rss_mib", round2(current_kib as f64 / 1024.0));
    }
    if result.is_ok() && args.parts.contains(&Part::Rss) {
        result = up_rss(&args, launcher, &mut report).await;
    }
    report.print();
    result
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One part of the bench, its figures into `report`.
async fn run_part(
    part: Part,
    brokers: &str,
    broker_pid: Option<u32>,
    args: &PipelineArgs,
    report: &mut Report,
) -> Result<(), BenchError> {
    match part {
        Part::Engine => engine_alone(brokers, broker_pid, args, report).await,
        Part::E2e => end_to_end(brokers, broker_pid, args, report).await,
        Part::Latency => latency(brokers, args, report).await,
        Part::Rss => Ok(()),
        Part::Sinks => sink_throughput(args, report).await,
    }
}

/// The default query (in the form `args.form` says) reading `topic` on `brokers`, with the
/// `--sink` sink and checkpoints in `dir`.
fn bench_plan(
    brokers: &str,
    topic: &str,
    dir: &Path,
    args: &PipelineArgs,
) -> Result<Plan, BenchError> {
    let mut plan = match args.form {
        QueryForm::PipelineFile => connectors::load_toml(DEFAULT_PIPELINE)
            .map_err(|e| BenchError::InvalidArgument(format!("the default pipeline: {e}")))?,
        QueryForm::Sql => rivulet_sql::compile(DEFAULT_SQL)
            .map_err(|e| BenchError::InvalidArgument(format!("examples/pipeline.sql: {e}")))?
            .single_plan()
            .cloned()
            .ok_or_else(|| {
                BenchError::InvalidArgument("examples/pipeline.sql: one INSERT expected".into())
            })?,
    };
    kafka::set_brokers(&mut plan.source, brokers);
    kafka::set_topics(&mut plan.source, &[topic.to_string()]);
    kafka::set_group_id(&mut plan.source, &format!("rivulet-bench-{topic}"));
    plan.sinks = vec![match args.sink {
        BenchSink::File => connectors::file::spec(dir.join("out")),
        BenchSink::Parquet => connectors::parquet::spec(dir.join("parquet")),
        BenchSink::Kafka => kafka::sink_spec(&format!("{topic}-out")),
        BenchSink::Postgres => {
            PostgresOptions::new(args.pg_url.clone().unwrap_or_default(), "rivulet_bench").spec()
        }
    }];
    plan.checkpoint.dir = Some(dir.join("checkpoint"));
    plan.checkpoint.store = args.checkpoint_store;
    Ok(plan)
}

/// The generator's stream the benches pre-fill topics with: seeded, `keys` ids, uniform values
/// in [0, 100) with two decimals, no late or bad events, [`PREFILL_EVENT_RATE`] events per
/// second of event time from `start_ms`.
pub(crate) fn bench_stream(seed: u64, start_ms: i64, keys: u64) -> Result<EventStream, BenchError> {
    EventStream::new(StreamConfig {
        seed,
        start_ms,
        rate: PREFILL_EVENT_RATE,
        keys,
        dist: ValueDist::Uniform {
            min: 0.0,
            max: 100.0,
        },
        decimals: 2,
        late_fraction: 0.0,
        late_by_ms: 0,
        bad_fraction: 0.0,
    })
    .map_err(|e| BenchError::InvalidArgument(format!("event stream: {e}")))
}

/// `events` as record batches of [`PREFILL_BATCH`] keyed records for `raw::produce_batches`,
/// encoded lazily.
pub(crate) fn raw_batches(
    mut events: impl Iterator<Item = rivulet_gen::Event>,
) -> impl Iterator<Item = Result<(Bytes, u64), BenchError>> {
    std::iter::from_fn(move || {
        let chunk: Vec<raw::RawRecord> = events
            .by_ref()
            .take(PREFILL_BATCH)
            .map(|e| {
                (
                    Some(Bytes::from(e.key.into_bytes())),
                    Bytes::from(e.payload),
                    e.timestamp_ms,
                )
            })
            .collect();
        if chunk.is_empty() {
            return None;
        }
        let n = chunk.len() as u64;
        Some(raw::encode_records(&chunk).map(|b| (b, n)))
    })
}

/// The default query (pipeline file form) named `name` over `topic`, checkpointed in Kafka
/// (`bench scale`), its JSON-lines sink in `dir/out`.
pub(crate) fn default_plan(
    brokers: &str,
    topic: &str,
    name: &str,
    dir: &Path,
) -> Result<Plan, BenchError> {
    let mut plan = connectors::load_toml(DEFAULT_PIPELINE)
        .map_err(|e| BenchError::InvalidArgument(format!("the default pipeline: {e}")))?;
    plan.name = name.to_string();
    kafka::set_brokers(&mut plan.source, brokers);
    kafka::set_topics(&mut plan.source, &[topic.to_string()]);
    kafka::set_max_records_per_trigger(&mut plan.source, Some(1_000_000));
    plan.sinks = vec![connectors::file::spec(dir.join("out"))];
    plan.checkpoint.dir = Some(dir.join("checkpoint"));
    plan.checkpoint.store = rivulet_engine::plan::CheckpointStoreKind::Kafka;
    plan.output.trigger = TriggerSpec::OnArrival;
    Ok(plan)
}

fn temp_dir() -> Result<tempfile::TempDir, BenchError> {
    tempfile::Builder::new()
        .prefix("rivulet-bench-pipeline-")
        .tempdir()
        .map_err(BenchError::io("creating a temporary directory"))
}

fn run_options(dir: &Path, stop_when_caught_up: bool) -> RunOptions {
    RunOptions {
        progress_json: Some(dir.join("progress.jsonl")),
        stop_when_caught_up,
        ..RunOptions::default()
    }
}

fn query_error(e: rivulet_runtime::RuntimeError) -> BenchError {
    BenchError::Worker(format!("query: {e}"))
}

/// Cancels `token` after `timeout` unless dropped first.
fn watchdog(token: &CancellationToken, timeout: Duration) -> tokio::task::JoinHandle<()> {
    let t = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        tracing::warn!("bench pipeline: timed out, stopping the query");
        t.cancel();
    })
}

/// The progress records a run wrote (with the checkpoint in Kafka the file also holds the
/// group's events, lines with an `event` field, which are skipped).
fn read_progress(dir: &Path) -> Result<Vec<QueryProgress>, BenchError> {
    let path = dir.join("progress.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    parse_progress(&text, &path)
}

fn parse_progress(text: &str, path: &Path) -> Result<Vec<QueryProgress>, BenchError> {
    let decode = |e: serde_json::Error| BenchError::Decode {
        what: format!("a progress record in {}", path.display()),
        reason: e.to_string(),
    };
    let mut out = Vec::new();
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(l).map_err(decode)?;
        if v.get("event").is_none() {
            out.push(serde_json::from_value(v).map_err(decode)?);
        }
    }
    Ok(out)
}

fn parse_ms(s: &str) -> Option<i64> {
    rivulet_gen::time::parse_rfc3339(s).ok()
}

/// User + system CPU seconds of a process so far (0 when /proc cannot be read).
pub(crate) fn cpu_secs(pid: Option<u32>) -> f64 {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces): state is the first, utime and
    // stime the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / CLOCK_TICKS
}

/// Sums of the progress records' `durationMs` parts, in seconds: where the engine's time went.
fn add_durations(report: &mut Report, progress: &[QueryProgress]) {
    let parts: [(&str, &'static str); 6] = [
        ("getBatch", "engine_secs_get_batch"),
        ("walCommit", "engine_secs_wal_commit"),
        ("addBatch", "engine_secs_add_batch"),
        ("commitOffsets", "engine_secs_commit"),
        ("latestOffset", "engine_secs_latest_offset"),
        ("triggerExecution", "engine_secs_trigger_total"),
    ];
    for (key, name) in parts {
        let ms: u64 = progress.iter().filter_map(|p| p.duration_ms.get(key)).sum();
        report.add(name, round2(ms as f64 / 1000.0));
    }
}

async fn create_topic(brokers: &str, topic: &str) -> Result<(), BenchError> {
    rivulet_client::admin::ensure_topic(
        &rivulet_client::KafkaConnection::new(brokers),
        topic,
        1,
        &[],
    )
    .await?;
    Ok(())
}

/// (a) the engine alone.
async fn engine_alone(
    brokers: &str,
    broker_pid: Option<u32>,
    args: &PipelineArgs,
    report: &mut Report,
) -> Result<(), BenchError> {
    let topic = "bench-pipeline-engine";
    create_topic(brokers, topic).await?;
    let (_, offsets) =
        crate::kafka::topic_offsets(&rivulet_client::KafkaConnection::new(brokers), topic).await?;
    let existing: u64 = offsets.iter().map(|(_, l, h)| (h - l).max(0) as u64).sum();
    if existing != 0 && existing != args.count {
        return Err(BenchError::InvalidArgument(format!(
            "topic {topic} already holds {existing} records, not --count {}: use an empty broker",
            args.count
        )));
    }
    let timeout = Duration::from_secs(args.timeout_secs);
    if existing == 0 {
        let events = bench_stream(args.seed, PREFILL_START_MS, args.keys)?
            .take(usize::try_from(args.count).unwrap_or(usize::MAX));
        let batches = raw_batches(events);
        let t = Instant::now();
        let out =
            raw::produce_batches(brokers, topic, 0, 1, PREFILL_IN_FLIGHT, timeout, batches).await?;
        check_outcome(&out, args.count, args.timeout_secs)?;
        report.add("engine_prefill_secs", round2(t.elapsed().as_secs_f64()));
    }
    report.add("engine_events", args.count);
    report.add(
        "engine_max_records_per_trigger",
        args.max_records_per_trigger,
    );

    let dir = temp_dir()?;
    let mut plan = bench_plan(brokers, topic, dir.path(), args)?;
    kafka::set_max_records_per_trigger(&mut plan.source, Some(args.max_records_per_trigger));
    plan.output.trigger = TriggerSpec::OnArrival;
    let cancel = CancellationToken::new();
    let dog = watchdog(&cancel, timeout);
    let (cpu0, bcpu0) = (cpu_secs(None), cpu_secs(broker_pid));
    let t = Instant::now();
    let summary = run_query(plan, run_options(dir.path(), true), cancel.clone()).await;
    let secs = t.elapsed().as_secs_f64().max(1e-9);
    let (cpu, bcpu) = (cpu_secs(None) - cpu0, cpu_secs(broker_pid) - bcpu0);
    dog.abort();
    let summary = summary.map_err(query_error)?;
    let progress = read_progress(dir.path())?;
    report.add("engine_processed", summary.input_rows);
    report.add("engine_epochs", summary.epochs);
    report.add("engine_output_rows", summary.output_rows);
    report.add("engine_dead_letters", summary.dead_letters);
    report.add("engine_late_rows", summary.late_rows);
    report.add("engine_wall_secs", round2(secs));
    report.add(
        "engine_events_per_sec",
        (summary.input_rows as f64 / secs).round() as u64,
    );
    let busy = progress
        .iter()
        .filter(|p| p.num_input_rows > 0)
        .filter_map(|p| p.duration_ms.get("triggerExecution"))
        .sum::<u64>() as f64
        / 1000.0;
    report.add(
        "engine_events_per_busy_sec",
        (summary.input_rows as f64 / busy.max(1e-9)).round() as u64,
    );
    report.add("engine_cpu_secs", round2(cpu));
    if broker_pid.is_some() {
        report.add("engine_broker_cpu_secs", round2(bcpu));
    }
    add_durations(report, &progress);
    if cancel.is_cancelled() || summary.input_rows < args.count {
        return Err(BenchError::Timeout(format!(
            "the engine processed {} of {} events within {}s",
            summary.input_rows, args.count, args.timeout_secs
        )));
    }
    Ok(())
}

/// The generator of a timed part: `rivulet gen`'s defaults at `rate`, `--keys` ids, `--seed`.
fn gen_config(brokers: &str, topic: &str, rate: u64, args: &PipelineArgs) -> GenConfig {
    GenConfig {
        rate,
        keys: args.keys,
        seed: Some(args.seed),
        quiet: true,
        ..GenConfig::new(brokers, topic)
    }
}

/// What a timed generator + engine run did.
struct Timed {
    generated: u64,
    gen_secs: f64,
    summary: QuerySummary,
    progress: Vec<QueryProgress>,
    /// Wall clock (ms) when the generator started and stopped.
    start_ms: i64,
    stop_ms: i64,
    cpu: f64,
    broker_cpu: f64,
}

/// Runs the generator at `rate` and the query (trigger on-arrival) for `--duration-secs`.
async fn timed_run(
    brokers: &str,
    broker_pid: Option<u32>,
    topic: &str,
    rate: u64,
    max_records: Option<u64>,
    args: &PipelineArgs,
) -> Result<Timed, BenchError> {
    create_topic(brokers, topic).await?;
    let dir = temp_dir()?;
    let mut plan = bench_plan(brokers, topic, dir.path(), args)?;
    kafka::set_max_records_per_trigger(&mut plan.source, max_records);
    plan.output.trigger = TriggerSpec::OnArrival;
    // Only what this run produces.
    kafka::set_starting_offsets(&mut plan.source, kafka::StartingOffsets::Latest);
    let gen = gen_config(brokers, topic, rate, args);
    let (gen_cancel, query_cancel) = (CancellationToken::new(), CancellationToken::new());
    let dog = watchdog(
        &query_cancel,
        Duration::from_secs(args.timeout_secs + args.duration_secs),
    );
    let (cpu0, bcpu0) = (cpu_secs(None), cpu_secs(broker_pid));
    let query = tokio::spawn(run_query(
        plan,
        run_options(dir.path(), false),
        query_cancel.clone(),
    ));
    // Let the query assign its partition at the latest offset before events arrive.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let start_ms = rivulet_gen::time::now_ms();
    let generator = tokio::spawn(rivulet_gen::run(gen, gen_cancel.clone()));
    tokio::time::sleep(Duration::from_secs(args.duration_secs)).await;
    gen_cancel.cancel();
    let stop_ms = rivulet_gen::time::now_ms();
    let gen_summary = generator
        .await
        .map_err(|e| BenchError::Worker(e.to_string()))?
        .map_err(|e| BenchError::Worker(format!("generator: {e}")))?;
    // Let the query drain what was produced (bounded), then stop it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    query_cancel.cancel();
    let summary = query
        .await
        .map_err(|e| BenchError::Worker(e.to_string()))?
        .map_err(query_error)?;
    let (cpu, broker_cpu) = (cpu_secs(None) - cpu0, cpu_secs(broker_pid) - bcpu0);
    dog.abort();
    Ok(Timed {
        generated: gen_summary.acknowledged,
        gen_secs: gen_summary.elapsed.as_secs_f64(),
        summary,
        progress: read_progress(dir.path())?,
        start_ms,
        stop_ms,
        cpu,
        broker_cpu,
    })
}

/// Rows of the micro-batches that started in `[from_ms, to_ms)`.
fn rows_between(progress: &[QueryProgress], from_ms: i64, to_ms: i64) -> u64 {
    progress
        .iter()
        .filter(|p| parse_ms(&p.timestamp).is_some_and(|t| t >= from_ms && t < to_ms))
        .map(|p| p.num_input_rows)
        .sum()
}

/// (b) generator, broker and engine together.
async fn end_to_end(
    brokers: &str,
    broker_pid: Option<u32>,
    args: &PipelineArgs,
    report: &mut Report,
) -> Result<(), BenchError> {
    let t = timed_run(
        brokers,
        broker_pid,
        "bench-pipeline-e2e",
        0,
        Some(args.max_records_per_trigger),
        args,
    )
    .await?;
    let from = t.start_ms + WARMUP.as_millis() as i64;
    let span = ((t.stop_ms - from) as f64 / 1000.0).max(1e-9);
    let sustained = rows_between(&t.progress, from, t.stop_ms) as f64 / span;
    report.add("e2e_secs", args.duration_secs);
    report.add("e2e_generated", t.generated);
    report.add(
        "e2e_gen_events_per_sec",
        (t.generated as f64 / t.gen_secs.max(1e-9)).round() as u64,
    );
    report.add("e2e_processed", t.summary.input_rows);
    report.add("e2e_engine_events_per_sec", sustained.round() as u64);
    report.add("e2e_epochs", t.summary.epochs);
    report.add(
        "e2e_unprocessed_at_end",
        t.generated.saturating_sub(t.summary.input_rows),
    );
    report.add("e2e_cpu_secs_gen_and_engine", round2(t.cpu));
    if broker_pid.is_some() {
        report.add("e2e_broker_cpu_secs", round2(t.broker_cpu));
    }
    Ok(())
}

/// (c) latency at a fixed generator rate.
async fn latency(
    brokers: &str,
    args: &PipelineArgs,
    report: &mut Report,
) -> Result<(), BenchError> {
    let t = timed_run(
        brokers,
        None,
        "bench-pipeline-latency",
        args.latency_rate,
        None,
        args,
    )
    .await?;
    let hist = || {
        Histogram::<u64>::new_with_bounds(1, 3_600_000, 3)
            .map_err(|e| BenchError::Worker(format!("latency histogram: {e}")))
    };
    // Microseconds would suggest precision the 1 ms progress times do not have: whole ms,
    // shifted by one so that 0 ms can be recorded.
    let (mut upper, mut lower) = (hist()?, hist()?);
    let joint_sink = args.sink == BenchSink::Kafka
        && args.checkpoint_store == rivulet_engine::plan::CheckpointStoreKind::Kafka;
    let from = t.start_ms + WARMUP.as_millis() as i64;
    let mut epochs = 0u64;
    for p in &t.progress {
        let Some(ts) = parse_ms(&p.timestamp) else {
            continue;
        };
        if p.num_input_rows == 0 || ts < from || ts >= t.stop_ms {
            continue;
        }
        let (Some(min), Some(max)) = (
            p.event_time.get("min").and_then(|s| parse_ms(s)),
            p.event_time.get("max").and_then(|s| parse_ms(s)),
        ) else {
            continue;
        };
        let d = |k: &str| p.duration_ms.get(k).copied().unwrap_or(0) as i64;
        // A Kafka sink in the task's transaction (checkpoint in Kafka) is visible to
        // read_committed consumers only once the epoch commits (`commitOffsets`).
        let visible =
            ts + d("walCommit") + d("addBatch") + if joint_sink { d("commitOffsets") } else { 0 };
        let rec = |h: &mut Histogram<u64>, ms: i64| {
            h.saturating_record_n(ms.max(0) as u64 + 1, p.num_input_rows);
        };
        rec(&mut upper, visible - min);
        rec(&mut lower, visible - max);
        epochs += 1;
    }
    let q = |h: &Histogram<u64>, x: f64| h.value_at_quantile(x).saturating_sub(1);
    let from_s = from;
    let span = ((t.stop_ms - from_s) as f64 / 1000.0).max(1e-9);
    report.add("latency_rate", args.latency_rate);
    report.add("latency_secs", args.duration_secs);
    report.add("latency_generated", t.generated);
    report.add("latency_processed", t.summary.input_rows);
    report.add(
        "latency_engine_events_per_sec",
        (rows_between(&t.progress, from_s, t.stop_ms) as f64 / span).round() as u64,
    );
    report.add("latency_epochs_measured", epochs);
    report.add("latency_p50_ms", q(&upper, 0.50));
    report.add("latency_p99_ms", q(&upper, 0.99));
    report.add("latency_max_ms", upper.max().saturating_sub(1));
    report.add("latency_newest_p50_ms", q(&lower, 0.50));
    report.add("latency_newest_p99_ms", q(&lower, 0.99));
    report.add("latency_cpu_secs_gen_and_engine", round2(t.cpu));
    if epochs == 0 {
        return Err(BenchError::Incomplete(
            "no micro-batch with data after the warm-up".into(),
        ));
    }
    Ok(())
}

/// (d) RSS of `rivulet up` under its default load.
async fn up_rss(
    args: &PipelineArgs,
    launcher: Arc<dyn Launcher>,
    report: &mut Report,
) -> Result<(), BenchError> {
    let rate = args.up_rate;
    let up = crate::kafka::blocking(move || {
        BenchBroker::start_with(|data_dir| launcher.up(data_dir, rate))
    })
    .await?;
    let pid = up.pid();
    tokio::time::sleep(Duration::from_secs(args.rss_secs)).await;
    let cpu = cpu_secs(Some(pid));
    let Rss {
        peak_kib,
        current_kib,
    } = up.stop();
    report.add("up_rate", args.up_rate);
    report.add("up_secs", args.rss_secs);
    report.add("up_peak_rss_mib", round2(peak_kib as f64 / 1024.0));
    report.add("up_rss_mib", round2(current_kib as f64 / 1024.0));
    report.add("up_cpu_secs", round2(cpu));
    Ok(())
}

/// (e) rows/s of each sink alone.
async fn sink_throughput(args: &PipelineArgs, report: &mut Report) -> Result<(), BenchError> {
    let a = args.clone();
    let figures = crate::kafka::blocking(move || sink_throughput_blocking(&a)).await?;
    report.add("sink_rows", args.sink_rows);
    report.add("sink_rows_per_epoch", args.sink_rows_per_epoch);
    for (k, v) in figures {
        report.add(k, v);
    }
    Ok(())
}

/// The default query's result schema and `n` synthetic rows of it from row `from` on.
fn synthetic_rows(
    schema: &arrow::datatypes::SchemaRef,
    from: u64,
    n: u64,
) -> Result<RecordBatch, BenchError> {
    use arrow::array::{ArrayRef, Float64Array, Int64Array, TimestampMillisecondArray};
    let g: Vec<u64> = (from..from + n).collect();
    let id: Vec<i64> = g.iter().map(|g| (g % SINK_BENCH_IDS) as i64).collect();
    let ws: Vec<i64> = g
        .iter()
        .map(|g| PREFILL_START_MS + (g / SINK_BENCH_IDS) as i64 * 10_000)
        .collect();
    let we: Vec<i64> = ws.iter().map(|w| w + 10_000).collect();
    let count: Vec<i64> = g.iter().map(|g| 1 + (g * 7 % 97) as i64).collect();
    let avg: Vec<f64> = g.iter().map(|g| (g % 10_000) as f64 / 100.0).collect();
    let min: Vec<f64> = avg.iter().map(|a| a / 2.0).collect();
    let max: Vec<f64> = avg.iter().map(|a| a * 1.5).collect();
    let ts = |v: Vec<i64>| -> ArrayRef {
        std::sync::Arc::new(TimestampMillisecondArray::from(v).with_timezone("UTC"))
    };
    let cols: Vec<ArrayRef> = vec![
        std::sync::Arc::new(Int64Array::from(id)),
        ts(ws),
        ts(we),
        std::sync::Arc::new(Int64Array::from(count)),
        std::sync::Arc::new(Float64Array::from(avg)),
        std::sync::Arc::new(Float64Array::from(min)),
        std::sync::Arc::new(Float64Array::from(max)),
    ];
    RecordBatch::try_new(schema.clone(), cols)
        .map_err(|e| BenchError::Worker(format!("synthetic rows: {e}")))
}

fn sink_throughput_blocking(
    args: &PipelineArgs,
) -> Result<Vec<(&'static str, serde_json::Value)>, BenchError> {
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use rivulet_runtime::sinks::{FileSink, ParquetSink, PostgresSink, Sink, SinkContext};
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let schema = std::sync::Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("window_start", ts.clone(), false),
        Field::new("window_end", ts, false),
        Field::new("count", DataType::Int64, false),
        Field::new("avg_value", DataType::Float64, true),
        Field::new("min_value", DataType::Float64, true),
        Field::new("max_value", DataType::Float64, true),
    ]));
    let dir = temp_dir()?;
    let plan = bench_plan("127.0.0.1:9", "unused", dir.path(), args)?;
    let run_id = format!("bench-{}", std::process::id());
    let writers =
        rivulet_runtime::sinks::kafka::WriterScope::local(dir.path(), &plan.name, &run_id);
    let ctx = SinkContext {
        plan: &plan,
        schema: &schema,
        checkpoint_dir: dir.path(),
        checkpoint_is_local: true,
        query_name: &plan.name,
        query_id: &run_id,
        last_committed: None,
        writers: &writers,
    };
    let sink_err = |e: rivulet_runtime::RuntimeError| BenchError::Worker(format!("sink: {e}"));
    let mut sinks: Vec<(&'static str, Box<dyn Sink>, Option<std::path::PathBuf>)> = vec![
        (
            "file",
            Box::new(FileSink::new(dir.path().join("file"), &run_id).map_err(sink_err)?),
            Some(dir.path().join("file")),
        ),
        (
            "parquet",
            Box::new(
                ParquetSink::open(&ParquetOptions::at(dir.path().join("parquet")), &ctx)
                    .map_err(sink_err)?,
            ),
            Some(dir.path().join("parquet")),
        ),
    ];
    if let Some(url) = &args.pg_url {
        let spec = PostgresOptions::new(
            url.clone(),
            format!("rivulet_bench_sink_{}", std::process::id()),
        );
        sinks.push((
            "postgres",
            Box::new(PostgresSink::open(&spec, &ctx).map_err(sink_err)?),
            None,
        ));
    }
    let per = args.sink_rows_per_epoch;
    let epochs = args.sink_rows.div_ceil(per);
    let mut out = Vec::new();
    for (name, mut sink, path) in sinks {
        // Rows are made outside the timed span.
        let batches: Vec<RecordBatch> = (0..epochs)
            .map(|e| synthetic_rows(&schema, e * per, per.min(args.sink_rows - e * per)))
            .collect::<Result<_, _>>()?;
        let t = Instant::now();
        for (e, b) in batches.iter().enumerate() {
            sink.write_epoch(e as u64, std::slice::from_ref(b))
                .map_err(sink_err)?;
            sink.commit(e as u64).map_err(sink_err)?;
        }
        sink.close().map_err(sink_err)?;
        let secs = t.elapsed().as_secs_f64().max(1e-9);
        let key: &'static str = match name {
            "file" => "sink_file_rows_per_sec",
            "parquet" => "sink_parquet_rows_per_sec",
            _ => "sink_postgres_rows_per_sec",
        };
        out.push((key, ((args.sink_rows as f64 / secs).round() as u64).into()));
        if let Some(p) = path {
            let bytes = dir_bytes(&p);
            let key: &'static str = match name {
                "file" => "sink_file_mib",
                _ => "sink_parquet_mib",
            };
            out.push((key, round2(bytes as f64 / (1 << 20) as f64).into()));
        }
    }
    Ok(out)
}

/// Bytes of the files under `dir`, recursively.
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// Regression: with the checkpoint in Kafka the progress file holds the group's events
    /// too, which failed the bench ("missing field `id`").
    #[test]
    fn group_events_in_the_progress_file_are_skipped() {
        let text = r#"{"event":"tasksAssigned","query":"stats","tasks":[0],"running":[0],"of":1}"#;
        let got = parse_progress(&format!("{text}\n\n"), Path::new("p.jsonl")).expect("parses");
        assert!(got.is_empty());
        assert!(parse_progress("{\"id\": 1}\n", Path::new("p.jsonl")).is_err());
    }

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        bench: super::super::BenchCommand,
    }

    fn parse(argv: &[&str]) -> PipelineArgs {
        let mut v = vec!["x", "pipeline"];
        v.extend_from_slice(argv);
        match Cli::try_parse_from(v).expect("parses").bench {
            super::super::BenchCommand::Pipeline(a) => a,
            _ => panic!("not pipeline"),
        }
    }

    #[test]
    fn parses_parts_and_defaults() {
        let a = parse(&[]);
        assert_eq!(
            a.parts,
            vec![
                Part::Engine,
                Part::E2e,
                Part::Latency,
                Part::Rss,
                Part::Sinks
            ]
        );
        assert_eq!(a.sink, BenchSink::File);
        assert!(parse(&["--sink", "postgres"]).check().is_err());
        assert!(
            parse(&["--sink", "postgres", "--pg-url", "postgres://u@h/d"])
                .check()
                .is_ok()
        );
        assert_eq!((a.count, a.keys, a.latency_rate), (10_000_000, 10, 100_000));
        assert!(a.check().is_ok());
        assert_eq!(
            parse(&["--parts", "engine,rss"]).parts,
            vec![Part::Engine, Part::Rss]
        );
        assert!(parse(&["--count", "0"]).check().is_err());
        assert!(parse(&["--duration-secs", "2"]).check().is_err());
    }

    #[test]
    fn the_bench_plan_is_the_default_query_with_a_file_sink() {
        let dir = std::path::Path::new("/tmp/x");
        let p = bench_plan("127.0.0.1:1", "t", dir, &parse(&[])).expect("valid");
        assert_eq!(
            kafka::SourceOptions::of(&p.source).expect("valid").topics,
            vec!["t".to_string()]
        );
        assert_eq!(p.sinks, vec![connectors::file::spec(dir.join("out"))]);
        assert_eq!(p.name, "stats");
        assert!(connectors::check_plan(&p).is_ok());
        let p = bench_plan("127.0.0.1:1", "t", dir, &parse(&["--sink", "parquet"])).expect("valid");
        assert_eq!(
            p.sinks,
            vec![connectors::parquet::spec(dir.join("parquet"))]
        );
        assert!(connectors::check_plan(&p).is_ok());
    }

    #[test]
    fn the_sql_form_gives_the_same_bench_plan() {
        let dir = std::path::Path::new("/tmp/x");
        let args = parse(&["--sql", "--parts", "engine"]);
        assert!(args.sql);
        assert_eq!(args.form, QueryForm::PipelineFile);
        let toml = bench_plan("127.0.0.1:1", "t", dir, &args).expect("valid");
        let sql_args = PipelineArgs {
            form: QueryForm::Sql,
            ..args
        };
        let sql = bench_plan("127.0.0.1:1", "t", dir, &sql_args).expect("valid");
        assert_eq!(sql, toml);
    }

    #[test]
    fn reads_cpu_of_this_process() {
        assert!(cpu_secs(None) >= 0.0);
    }
}
