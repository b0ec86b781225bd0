//! The query plan: a plain, serialisable data structure. The TOML pipeline file deserialises
//! straight into it (unknown fields are errors), CLI flags fill the same structure, and the SQL
//! front end will compile to it.
//!
//! ```toml
//! name = "stats"
//! group_by = ["id"]
//! [source]
//! brokers = "127.0.0.1:9092"
//! topics = ["events"]
//! starting_offsets = "earliest"
//! [[schema]]
//! name = "id"
//! type = "bigint"
//! [[schema]]
//! name = "value"
//! type = "double"
//! [[schema]]
//! name = "timestamp"
//! type = "timestamp"
//! [event_time]
//! field = "timestamp"
//! allowed_lateness = "5s"
//! [window]
//! type = "tumbling"
//! size = "10s"
//! [[aggregates]]
//! function = "count"
//! [[aggregates]]
//! function = "avg"
//! column = "value"
//! [output]
//! mode = "update"
//! trigger = "1s"
//! [[sinks]]
//! type = "console"
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::expr;

/// A duration written as `"500ms"`, `"10s"`, `"5m"`, `"1h"` in pipeline files; stored in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DurationMs(pub i64);

impl TryFrom<String> for DurationMs {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("duration `{s}` needs a unit (ms, s, m, h)"))?;
        let (num, unit) = t.split_at(split);
        let n: i64 = num
            .parse()
            .map_err(|_| format!("duration `{s}` must start with a whole number"))?;
        let mult = match unit.trim() {
            "ms" => 1,
            "s" => 1_000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            other => {
                return Err(format!(
                    "unknown duration unit `{other}` in `{s}` (ms, s, m, h)"
                ))
            }
        };
        n.checked_mul(mult)
            .map(DurationMs)
            .ok_or_else(|| format!("duration `{s}` is too large"))
    }
}

impl From<DurationMs> for String {
    fn from(d: DurationMs) -> String {
        format!("{}ms", d.0)
    }
}

/// Column metadata every decoded batch carries besides the declared schema.
pub mod columns {
    /// Kafka record key (Utf8, nullable).
    pub const KEY: &str = "_key";
    /// Kafka partition (Int32).
    pub const PARTITION: &str = "_partition";
    /// Kafka offset (Int64).
    pub const OFFSET: &str = "_offset";
    /// Kafka record timestamp (Timestamp(ms, UTC)).
    pub const KAFKA_TIMESTAMP: &str = "_timestamp";
    /// Event time of the row in ms since the epoch (Int64), from the event-time field.
    pub const EVENT_TIME: &str = "_event_time";
    /// Window bounds on aggregate output (Timestamp(ms, UTC)).
    pub const WINDOW_START: &str = "window_start";
    pub const WINDOW_END: &str = "window_end";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Query name: progress records, checkpoint directory and consumer group derive from it.
    #[serde(default = "default_name")]
    pub name: String,
    pub source: SourceSpec,
    /// Fields decoded from each JSON record.
    pub schema: Vec<FieldSpec>,
    pub event_time: EventTimeSpec,
    /// Row filter applied before aggregation, as a SQL expression (`value > 0 AND id % 2 = 0`).
    #[serde(default)]
    pub filter: Option<String>,
    /// Derived columns computed before grouping, as SQL expressions.
    #[serde(default)]
    pub columns: Vec<DerivedColumn>,
    /// Grouping columns (schema fields or derived columns), besides the window.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Event-time window; `None` means a running aggregation per group (update mode only).
    #[serde(default)]
    pub window: Option<WindowSpec>,
    #[serde(default)]
    pub aggregates: Vec<AggregateSpec>,
    /// SQL `HAVING`: keeps the aggregate's output rows for which this SQL expression (over the
    /// group keys, `window_start`/`window_end` and the aggregates' output names) is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub having: Option<String>,
    /// The result columns in order, as SQL expressions over the aggregate's output (SQL
    /// `SELECT`); empty: the aggregate's output as it is. Every group key and `window_start`
    /// must be kept under its name: sinks and the dashboard key rows by them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub select: Vec<DerivedColumn>,
    #[serde(default)]
    pub output: OutputSpec,
    #[serde(default)]
    pub sinks: Vec<SinkSpec>,
    #[serde(default)]
    pub checkpoint: CheckpointSpec,
}

fn default_name() -> String {
    "query".to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    #[serde(default = "default_brokers")]
    pub brokers: String,
    pub topics: Vec<String>,
    /// Consumer group; defaults to `rivulet-<query name>`.
    #[serde(default)]
    pub group_id: Option<String>,
    /// Where the first start reads from; later starts resume from the checkpoint.
    #[serde(default)]
    pub starting_offsets: StartingOffsets,
    /// Back-pressure: at most this many records per trigger.
    #[serde(default)]
    pub max_records_per_trigger: Option<u64>,
    /// Dead-letter topic for records that fail decoding; default `<topic>.dlq`.
    #[serde(default)]
    pub dlq_topic: Option<String>,
    /// Topic receiving records later than the watermark; counted and dropped when unset.
    #[serde(default)]
    pub late_topic: Option<String>,
    /// Which Kafka client reads the topics (default: Rivulet's own fetcher).
    #[serde(default)]
    pub client: SourceClient,
}

/// The Kafka client of the source. Both read the same partitions from the same offsets and
/// commit to the same group; they differ in speed and in what they can connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceClient {
    /// Rivulet's own fetcher (the `kafka-protocol` codecs): parses record batches without a
    /// per-message hand-off, several times librdkafka's consume rate on two cores. Plaintext
    /// connections only.
    #[default]
    Native,
    /// librdkafka (the `rdkafka` crate): for what the native fetcher does not speak (TLS, SASL).
    Librdkafka,
}

fn default_brokers() -> String {
    "127.0.0.1:9092".to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartingOffsets {
    #[default]
    Earliest,
    Latest,
    /// First offset whose Kafka timestamp is at or after this time (ms since the epoch).
    Timestamp(i64),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: FieldType,
    /// When false, a record without this field (or with null) is a dead letter.
    #[serde(default)]
    pub nullable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Bigint,
    Int,
    Double,
    String,
    Boolean,
    /// RFC 3339 string or epoch number, per [`EventTimeSpec::format`] when it is the event-time
    /// field; decoded to Timestamp(ms, UTC).
    Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventTimeSpec {
    /// The schema field holding event time.
    pub field: String,
    #[serde(default)]
    pub format: TimeFormat,
    /// Watermark = max event time seen − allowed lateness.
    #[serde(default = "default_lateness")]
    pub allowed_lateness: DurationMs,
    /// A partition with no data for this long stops holding the watermark back.
    #[serde(default = "default_idle")]
    pub idle_timeout: DurationMs,
}

fn default_lateness() -> DurationMs {
    DurationMs(0)
}
fn default_idle() -> DurationMs {
    DurationMs(30_000)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    #[default]
    Rfc3339,
    EpochMillis,
    EpochSeconds,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DerivedColumn {
    pub name: String,
    /// SQL expression over schema fields and earlier derived columns.
    pub expr: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum WindowSpec {
    Tumbling { size: DurationMs },
    Hopping { size: DurationMs, slide: DurationMs },
    Session { gap: DurationMs },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateSpec {
    pub function: AggregateFunction,
    /// Input column; not needed for `count`.
    #[serde(default)]
    pub column: Option<String>,
    /// For `approx_percentile`: the quantile in [0, 1].
    #[serde(default)]
    pub percentile: Option<f64>,
    /// Output column name; default `count` or `<function>_<column>`.
    #[serde(default)]
    pub alias: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggregateFunction {
    Count,
    Sum,
    Avg,
    Min,
    Max,
    Stddev,
    ApproxPercentile,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    #[serde(default)]
    pub mode: OutputMode,
    #[serde(default)]
    pub trigger: TriggerSpec,
}

/// Spark's output modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputMode {
    /// Each window emitted once, final, after the watermark passes its end.
    Append,
    /// Rows whose aggregates changed are emitted at every trigger.
    #[default]
    Update,
}

/// When a micro-batch runs: every interval (`"1s"`), or as soon as data arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum TriggerSpec {
    ProcessingTime(DurationMs),
    OnArrival,
}

impl Default for TriggerSpec {
    fn default() -> Self {
        TriggerSpec::ProcessingTime(DurationMs(1_000))
    }
}

impl TryFrom<String> for TriggerSpec {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s == "on-arrival" || s == "on_arrival" {
            Ok(TriggerSpec::OnArrival)
        } else {
            DurationMs::try_from(s).map(TriggerSpec::ProcessingTime)
        }
    }
}

impl From<TriggerSpec> for String {
    fn from(t: TriggerSpec) -> String {
        match t {
            TriggerSpec::OnArrival => "on-arrival".to_string(),
            TriggerSpec::ProcessingTime(d) => d.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[serde(from = "SinkSpecRepr")]
pub enum SinkSpec {
    /// Spark-like table per trigger on stdout.
    Console,
    /// JSON rows keyed by the group keys.
    Kafka {
        topic: String,
        /// Defaults to the source's brokers.
        #[serde(default)]
        brokers: Option<String>,
    },
    /// JSON lines, exactly once per checkpoint epoch.
    File { path: PathBuf },
    /// Parquet files, Hive-partitioned, rolled by size and time, exactly once per epoch.
    Parquet(ParquetSinkSpec),
    /// Upserts into a PostgreSQL table keyed by the group keys and the window start.
    Postgres(PostgresSinkSpec),
}

/// `[[sinks]] type = "parquet"`: see the runtime's `sinks::parquet` module for the layout and
/// the commit protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetSinkSpec {
    /// Root directory of the dataset (created when missing).
    pub path: PathBuf,
    /// Hive partition columns (`col=value/` directories, the columns leave the files). Unset:
    /// the UTC date and hour of `window_start` (`date=2026-11-24/hour=10/`; the files keep
    /// `window_start`); `[]`: no partitioning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_by: Option<Vec<String>>,
    /// Page compression [default: zstd].
    #[serde(default)]
    pub compression: ParquetCompression,
    /// A file is finished once it reaches this size (`"128MiB"`) [default: 128MiB].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roll_size: Option<ByteSize>,
    /// ... or once it has been open this long [default: 1m]. Rows become visible when their
    /// file is finished, so this is also the longest delay before readers see them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roll_interval: Option<DurationMs>,
    /// Merge a partition's small files (under half of `roll_size`) into one once it has at
    /// least this many (at least 2). Unset: never merge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compact_min_files: Option<u32>,
}

/// Parquet page compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParquetCompression {
    #[default]
    Zstd,
    Snappy,
    Uncompressed,
}

/// `[[sinks]] type = "postgres"`: see the runtime's `sinks::postgres` module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSinkSpec {
    /// Connection string: `postgres://user:password@host:port/database` or libpq's
    /// `key=value` form.
    pub url: String,
    /// Target table, `name` or `schema.name` (created when missing) [default: the query name].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Committed epochs held on local disk while the server is away; the query pauses (and
    /// the source holds the rest) beyond that [default: 1000].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending_epochs: Option<u32>,
}

impl PostgresSinkSpec {
    /// The target table for a query named `query_name`.
    pub fn table_name(&self, query_name: &str) -> String {
        self.table.clone().unwrap_or_else(|| query_name.to_string())
    }
}

/// A byte size written as `"128MiB"`, `"10MB"`, `"4096"` in pipeline files; stored in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ByteSize(pub u64);

impl TryFrom<String> for ByteSize {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("size `{s}` must start with a whole number"))?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            other => {
                return Err(format!(
                    "unknown size unit `{other}` in `{s}` (B, KB, MB, GB, KiB, MiB, GiB)"
                ))
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("size `{s}` is too large"))
    }
}

impl From<ByteSize> for String {
    fn from(b: ByteSize) -> String {
        b.0.to_string()
    }
}

/// How [`SinkSpec`] is read: serde does not apply `deny_unknown_fields` to the unit variant of
/// an internally tagged enum, so `Console` is an empty struct variant here (a typo such as
/// `topic = ...` under a console sink is then an error instead of silently ignored).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum SinkSpecRepr {
    Console {},
    Kafka {
        topic: String,
        #[serde(default)]
        brokers: Option<String>,
    },
    File {
        path: PathBuf,
    },
    Parquet(ParquetSinkSpec),
    Postgres(PostgresSinkSpec),
}

impl From<SinkSpecRepr> for SinkSpec {
    fn from(r: SinkSpecRepr) -> SinkSpec {
        match r {
            SinkSpecRepr::Console {} => SinkSpec::Console,
            SinkSpecRepr::Kafka { topic, brokers } => SinkSpec::Kafka { topic, brokers },
            SinkSpecRepr::File { path } => SinkSpec::File { path },
            SinkSpecRepr::Parquet(p) => SinkSpec::Parquet(p),
            SinkSpecRepr::Postgres(p) => SinkSpec::Postgres(p),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSpec {
    /// Directory for offsets/, state/, commits/; default `./checkpoints/<query name>`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

/// Timezone of every timestamp column the engine produces.
pub const UTC: &str = "UTC";

/// The Arrow type of every timestamp column: milliseconds, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some(UTC.into()))
}

impl FieldType {
    /// The Arrow type a decoded field of this type has.
    pub fn arrow_type(self) -> DataType {
        match self {
            FieldType::Bigint => DataType::Int64,
            FieldType::Int => DataType::Int32,
            FieldType::Double => DataType::Float64,
            FieldType::String => DataType::Utf8,
            FieldType::Boolean => DataType::Boolean,
            FieldType::Timestamp => timestamp_type(),
        }
    }

    /// The name used in pipeline files (`bigint`, `timestamp`, ...).
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Bigint => "bigint",
            FieldType::Int => "int",
            FieldType::Double => "double",
            FieldType::String => "string",
            FieldType::Boolean => "boolean",
            FieldType::Timestamp => "timestamp",
        }
    }
}

impl AggregateFunction {
    /// The name used in pipeline files.
    pub fn name(self) -> &'static str {
        match self {
            AggregateFunction::Count => "count",
            AggregateFunction::Sum => "sum",
            AggregateFunction::Avg => "avg",
            AggregateFunction::Min => "min",
            AggregateFunction::Max => "max",
            AggregateFunction::Stddev => "stddev",
            AggregateFunction::ApproxPercentile => "approx_percentile",
        }
    }
}

impl AggregateSpec {
    /// The output column name: the alias, else `count` or `<function>_<column>`.
    pub fn output_name(&self) -> String {
        if let Some(alias) = &self.alias {
            return alias.clone();
        }
        match (&self.function, &self.column) {
            (AggregateFunction::Count, None) => "count".to_string(),
            (f, Some(c)) => format!("{}_{c}", f.name()),
            (f, None) => f.name().to_string(),
        }
    }
}

/// Metadata columns appended to every decoded batch, in order, with their Arrow fields.
fn metadata_fields() -> [Field; 5] {
    [
        Field::new(columns::KEY, DataType::Utf8, true),
        Field::new(columns::PARTITION, DataType::Int32, false),
        Field::new(columns::OFFSET, DataType::Int64, false),
        Field::new(columns::KAFKA_TIMESTAMP, timestamp_type(), false),
        Field::new(columns::EVENT_TIME, DataType::Int64, false),
    ]
}

/// Names no schema field or derived column may take (they would shadow engine columns).
fn is_reserved_name(name: &str) -> bool {
    matches!(
        name,
        columns::KEY
            | columns::PARTITION
            | columns::OFFSET
            | columns::KAFKA_TIMESTAMP
            | columns::EVENT_TIME
            | columns::WINDOW_START
            | columns::WINDOW_END
    )
}

impl Plan {
    /// Parses and validates a pipeline file's text. Errors point at `line:column` and name the
    /// field (`12:3: aggregates[1].windw: unknown field ...`).
    pub fn from_toml(text: &str) -> Result<Plan, EngineError> {
        let plan: Plan =
            toml::from_str(text).map_err(|e| EngineError::Plan(toml_error_message(text, &e)))?;
        plan.validate()?;
        Ok(plan)
    }

    /// [`Plan::from_toml`] on a file; messages are prefixed with the path
    /// (`pipeline.toml:12:3: ...`).
    pub fn from_toml_file(path: &Path) -> Result<Plan, EngineError> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| EngineError::Plan(format!("{shown}: cannot read: {e}")))?;
        let plan: Plan = toml::from_str(&text).map_err(|e| {
            let m = toml_error_message(&text, &e);
            // `path:line:col: ...` when the error has a position, else `path: ...`.
            let sep = if m.starts_with(|c: char| c.is_ascii_digit()) {
                ":"
            } else {
                ": "
            };
            EngineError::Plan(format!("{shown}{sep}{m}"))
        })?;
        plan.validate().map_err(|e| match e {
            EngineError::Plan(msg) => EngineError::Plan(format!("{shown}: {msg}")),
            other => other,
        })?;
        Ok(plan)
    }

    /// Schema of decoded batches: the declared fields in order, then the metadata columns
    /// ([`columns::KEY`], [`columns::PARTITION`], [`columns::OFFSET`],
    /// [`columns::KAFKA_TIMESTAMP`], [`columns::EVENT_TIME`]).
    pub fn input_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .schema
            .iter()
            .map(|f| {
                // The event-time field can never be null in a batch: such records are dead
                // letters (they cannot be placed in time).
                let nullable = f.nullable && f.name != self.event_time.field;
                Field::new(&f.name, f.data_type.arrow_type(), nullable)
            })
            .collect();
        fields.extend(metadata_fields());
        Arc::new(Schema::new(fields))
    }

    /// Checks everything that can be checked before running: names, types, expressions,
    /// window and output settings. All problems are reported at once, `; `-separated, each
    /// starting with the field path (`aggregates[2].column: unknown column "vale" (did you
    /// mean "value"?)`).
    pub fn validate(&self) -> Result<(), EngineError> {
        let mut errs: Vec<String> = Vec::new();
        let mut err = |s: String| errs.push(s);

        if self.name.trim().is_empty() {
            err("name: must not be empty".into());
        }

        // --- source
        let src = &self.source;
        if src.brokers.trim().is_empty() {
            err("source.brokers: must not be empty".into());
        }
        if src.topics.is_empty() {
            err("source.topics: at least one topic is required".into());
        }
        for (i, t) in src.topics.iter().enumerate() {
            if t.trim().is_empty() {
                err(format!("source.topics[{i}]: empty topic name"));
            }
        }
        if src.max_records_per_trigger == Some(0) {
            err("source.max_records_per_trigger: must be > 0".into());
        }
        for (what, v) in [
            ("group_id", &src.group_id),
            ("dlq_topic", &src.dlq_topic),
            ("late_topic", &src.late_topic),
        ] {
            if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
                err(format!("source.{what}: must not be empty when set"));
            }
        }

        // --- schema
        if self.schema.is_empty() {
            err("schema: at least one field is required".into());
        }
        let mut seen = HashSet::new();
        for (i, f) in self.schema.iter().enumerate() {
            if f.name.is_empty() {
                err(format!("schema[{i}].name: empty field name"));
            } else if is_reserved_name(&f.name) {
                err(format!(
                    "schema[{i}].name: \"{}\" is reserved for an engine column",
                    f.name
                ));
            } else if !seen.insert(f.name.as_str()) {
                err(format!("schema[{i}].name: duplicate field \"{}\"", f.name));
            }
        }

        // --- event time
        let et = &self.event_time;
        match self.schema.iter().find(|f| f.name == et.field) {
            None => err(format!(
                "event_time.field: {}",
                expr::unknown_column_message(
                    &et.field,
                    self.schema.iter().map(|f| f.name.as_str())
                )
            )),
            Some(f) => match (f.data_type, et.format) {
                (FieldType::Timestamp, _) => {}
                (FieldType::Bigint, TimeFormat::EpochMillis | TimeFormat::EpochSeconds) => {}
                (FieldType::Bigint, TimeFormat::Rfc3339) => err(format!(
                    "event_time.format: the event-time field \"{}\" is a bigint, so the format \
                     must be \"epoch_millis\" or \"epoch_seconds\"",
                    f.name
                )),
                (t, _) => err(format!(
                    "event_time.field: \"{}\" has type {}; the event-time field must be a \
                     timestamp (or a bigint with an epoch format)",
                    f.name,
                    t.name()
                )),
            },
        }
        if et.allowed_lateness.0 < 0 {
            err("event_time.allowed_lateness: must not be negative".into());
        }
        if et.idle_timeout.0 <= 0 {
            err("event_time.idle_timeout: must be > 0".into());
        }

        // --- expressions: the filter sees the decoded batch, derived columns see it plus the
        // derived columns before them.
        let input = self.input_schema();
        if let Some(filter) = &self.filter {
            match expr::compile(filter, &input) {
                Err(e) => err(format!("filter: {}", expr_reason(e))),
                Ok(c) => {
                    if !matches!(c.data_type(), DataType::Boolean | DataType::Null) {
                        err(format!(
                            "filter: must be a boolean expression, got {}",
                            expr::sql_type_name(c.data_type())
                        ));
                    }
                }
            }
        }
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        for (i, c) in self.columns.iter().enumerate() {
            let name_ok = if c.name.is_empty() {
                err(format!("columns[{i}].name: empty column name"));
                false
            } else if c.name.starts_with('_') || is_reserved_name(&c.name) {
                err(format!(
                    "columns[{i}].name: \"{}\" is reserved (names starting with `_`, \
                     `window_start` and `window_end` are engine columns)",
                    c.name
                ));
                false
            } else if fields.iter().any(|f| f.name() == &c.name) {
                err(format!(
                    "columns[{i}].name: \"{}\" clashes with an existing column",
                    c.name
                ));
                false
            } else {
                true
            };
            let schema = Schema::new(fields.clone());
            match expr::compile_column(&c.expr, &schema) {
                Err(e) => err(format!("columns[{i}].expr: {}", expr_reason(e))),
                Ok(compiled) if name_ok => {
                    fields.push(Field::new(&c.name, compiled.data_type().clone(), true));
                }
                Ok(_) => {}
            }
        }
        let all = Schema::new(fields);
        let all_names = || all.fields().iter().map(|f| f.name().as_str());

        // --- grouping
        let mut seen = HashSet::new();
        for (i, g) in self.group_by.iter().enumerate() {
            if all.index_of(g).is_err() {
                err(format!(
                    "group_by[{i}]: {}",
                    expr::unknown_column_message(g, all_names())
                ));
            } else if !seen.insert(g.as_str()) {
                err(format!("group_by[{i}]: duplicate column \"{g}\""));
            }
        }

        // --- window
        match &self.window {
            Some(WindowSpec::Tumbling { size }) if size.0 <= 0 => {
                err("window.size: must be > 0".into());
            }
            Some(WindowSpec::Hopping { size, slide }) => {
                if size.0 <= 0 {
                    err("window.size: must be > 0".into());
                }
                if slide.0 <= 0 {
                    err("window.slide: must be > 0".into());
                } else if slide.0 > size.0 {
                    err(format!(
                        "window.slide: {}ms must not exceed window.size {}ms",
                        slide.0, size.0
                    ));
                }
            }
            Some(WindowSpec::Session { gap }) if gap.0 <= 0 => {
                err("window.gap: must be > 0".into());
            }
            _ => {}
        }

        // --- aggregates
        if self.aggregates.is_empty() && (!self.group_by.is_empty() || self.window.is_some()) {
            err(
                "aggregates: at least one aggregate is required when group_by or window is set"
                    .into(),
            );
        }
        let mut outputs: HashSet<String> = self.group_by.iter().cloned().collect();
        if self.window.is_some() {
            outputs.insert(columns::WINDOW_START.into());
            outputs.insert(columns::WINDOW_END.into());
        }
        for (i, a) in self.aggregates.iter().enumerate() {
            let f = a.function;
            match (&a.column, f) {
                (None, AggregateFunction::Count) => {}
                (None, _) => err(format!("aggregates[{i}].column: required for {}", f.name())),
                (Some(col), _) => match all.field_with_name(col) {
                    Err(_) => err(format!(
                        "aggregates[{i}].column: {}",
                        expr::unknown_column_message(col, all_names())
                    )),
                    Ok(field) => {
                        let t = field.data_type();
                        let numeric =
                            matches!(t, DataType::Int32 | DataType::Int64 | DataType::Float64);
                        let ok = match f {
                            AggregateFunction::Count => true,
                            AggregateFunction::Min | AggregateFunction::Max => {
                                numeric || matches!(t, DataType::Timestamp(_, _))
                            }
                            _ => numeric,
                        };
                        if !ok {
                            err(format!(
                                "aggregates[{i}].column: {} needs a numeric column{}, \"{col}\" \
                                 is {}",
                                f.name(),
                                if matches!(f, AggregateFunction::Min | AggregateFunction::Max) {
                                    " or a timestamp"
                                } else {
                                    ""
                                },
                                expr::sql_type_name(t)
                            ));
                        }
                    }
                },
            }
            match (f, a.percentile) {
                (AggregateFunction::ApproxPercentile, None) => err(format!(
                    "aggregates[{i}].percentile: required for approx_percentile"
                )),
                (AggregateFunction::ApproxPercentile, Some(p)) if !(0.0..=1.0).contains(&p) => err(
                    format!("aggregates[{i}].percentile: must be within [0, 1], got {p}"),
                ),
                (AggregateFunction::ApproxPercentile, Some(_)) | (_, None) => {}
                (_, Some(_)) => err(format!(
                    "aggregates[{i}].percentile: only valid for approx_percentile"
                )),
            }
            if a.alias.as_deref().is_some_and(str::is_empty) {
                err(format!("aggregates[{i}].alias: must not be empty when set"));
            }
            let out = a.output_name();
            if !outputs.insert(out.clone()) {
                err(format!(
                    "aggregates[{i}]: output column \"{out}\" is already taken (set a distinct \
                     `alias`)"
                ));
            }
        }

        // --- HAVING and the result columns
        match self.result_stage(&all) {
            Ok(Some(names)) => outputs = names,
            Ok(None) => {}
            Err(problems) => problems.into_iter().for_each(&mut err),
        }

        // --- output
        if self.output.mode == OutputMode::Append
            && self.window.is_none()
            && !self.aggregates.is_empty()
        {
            err(
                "output.mode: \"append\" needs a window (a running aggregate never finalises); \
                 use \"update\" or add a [window]"
                    .into(),
            );
        }
        if let TriggerSpec::ProcessingTime(d) = self.output.trigger {
            if d.0 <= 0 {
                err("output.trigger: must be > 0 (or \"on-arrival\")".into());
            }
        }

        // --- sinks
        for (i, s) in self.sinks.iter().enumerate() {
            match s {
                SinkSpec::Console => {}
                SinkSpec::Kafka { topic, brokers } => {
                    if topic.trim().is_empty() {
                        err(format!("sinks[{i}].topic: empty topic name"));
                    }
                    if brokers.as_deref().is_some_and(|b| b.trim().is_empty()) {
                        err(format!("sinks[{i}].brokers: must not be empty when set"));
                    }
                }
                SinkSpec::File { path } => {
                    if path.as_os_str().is_empty() {
                        err(format!("sinks[{i}].path: must not be empty"));
                    }
                }
                SinkSpec::Parquet(p) => {
                    if p.path.as_os_str().is_empty() {
                        err(format!("sinks[{i}].path: must not be empty"));
                    }
                    let mut seen = HashSet::new();
                    for (j, c) in p.partition_by.iter().flatten().enumerate() {
                        if !outputs.contains(c) {
                            let mut names: Vec<&str> = outputs.iter().map(String::as_str).collect();
                            names.sort_unstable();
                            err(format!(
                                "sinks[{i}].partition_by[{j}]: \"{c}\" is not an output column \
                                 (output columns: {})",
                                names.join(", ")
                            ));
                        } else if !seen.insert(c) {
                            err(format!(
                                "sinks[{i}].partition_by[{j}]: duplicate column \"{c}\""
                            ));
                        }
                    }
                    if p.partition_by.is_none() && self.window.is_none() {
                        err(format!(
                            "sinks[{i}].partition_by: the default (date and hour of window_start) \
                             needs a [window]; set partition_by = [] or name columns"
                        ));
                    }
                    if p.roll_size.is_some_and(|b| b.0 == 0) {
                        err(format!("sinks[{i}].roll_size: must be > 0"));
                    }
                    if p.roll_interval.is_some_and(|d| d.0 <= 0) {
                        err(format!("sinks[{i}].roll_interval: must be > 0"));
                    }
                    if p.compact_min_files.is_some_and(|n| n < 2) {
                        err(format!("sinks[{i}].compact_min_files: must be at least 2"));
                    }
                }
                SinkSpec::Postgres(p) => {
                    if p.url.trim().is_empty() {
                        err(format!("sinks[{i}].url: must not be empty"));
                    }
                    let table = p.table_name(&self.name);
                    if let Err(m) = check_table_name(&table) {
                        err(format!("sinks[{i}].table: {m}"));
                    }
                    if self.group_by.is_empty() && self.window.is_none() {
                        err(format!(
                            "sinks[{i}]: a postgres sink upserts by group keys and window; the \
                             query has neither"
                        ));
                    }
                    if p.max_pending_epochs == Some(0) {
                        err(format!("sinks[{i}].max_pending_epochs: must be > 0"));
                    }
                }
            }
        }

        if errs.is_empty() {
            Ok(())
        } else {
            Err(EngineError::Plan(errs.join("; ")))
        }
    }
}

impl Plan {
    /// No aggregation at all (no aggregates, keys or window): rows pass from the source to the
    /// sinks as they arrive, through the filter and the SELECT list.
    pub fn is_passthrough(&self) -> bool {
        self.aggregates.is_empty() && self.group_by.is_empty() && self.window.is_none()
    }

    /// The columns a pass-through query emits without a SELECT list: the declared and derived
    /// columns (not the engine's `_` metadata columns).
    pub fn passthrough_columns(input: &Schema) -> Vec<DerivedColumn> {
        input
            .fields()
            .iter()
            .filter(|f| !f.name().starts_with('_'))
            .map(|f| DerivedColumn {
                name: f.name().clone(),
                expr: format!("\"{}\"", f.name().replace('"', "\"\"")),
            })
            .collect()
    }

    /// Checks `having` and `select` against the aggregate's output (built from `input`, the
    /// decoded and derived columns); the result column names when `select` is set. `Ok(None)`
    /// also when the aggregate itself is invalid: that is reported by the checks before.
    fn result_stage(&self, input: &Schema) -> Result<Option<HashSet<String>>, Vec<String>> {
        if self.having.is_none() && self.select.is_empty() {
            return Ok(None);
        }
        let mut errs = Vec::new();
        let out = if self.is_passthrough() {
            if self.having.is_some() {
                errs.push("having: needs an aggregation (aggregates, group_by or a window)".into());
            }
            Arc::new(input.clone())
        } else {
            let Ok(agg) = crate::window::WindowAggregate::new(
                Arc::new(input.clone()),
                &self.group_by,
                self.window.as_ref(),
                &self.aggregates,
                self.output.mode,
            ) else {
                return Ok(None);
            };
            agg.output_schema()
        };
        if let Some(h) = &self.having {
            match expr::compile(h, &out) {
                Err(e) => errs.push(format!("having: {}", expr_reason(e))),
                Ok(c) if !matches!(c.data_type(), DataType::Boolean | DataType::Null) => {
                    errs.push(format!(
                        "having: must be a boolean expression, got {}",
                        expr::sql_type_name(c.data_type())
                    ))
                }
                Ok(_) => {}
            }
        }
        if self.select.is_empty() {
            return if errs.is_empty() { Ok(None) } else { Err(errs) };
        }
        for (i, c) in self.select.iter().enumerate() {
            if c.name.is_empty() || c.name.starts_with('_') {
                errs.push(format!(
                    "select[{i}].name: \"{}\" is not a valid result column name (empty, or \
                     starting with `_`, reserved for engine columns)",
                    c.name
                ));
            }
        }
        if let Err(e) = crate::operators::project::Project::select(&self.select, &out) {
            errs.push(format!("select: {}", expr_reason(e)));
        }
        let mut keep: Vec<&str> = self.group_by.iter().map(String::as_str).collect();
        if self.window.is_some() {
            keep.push(columns::WINDOW_START);
        }
        for k in keep {
            let kept = self
                .select
                .iter()
                .any(|c| c.name == k && c.expr.trim().trim_matches('"').eq_ignore_ascii_case(k));
            if !kept {
                errs.push(format!(
                    "select: the result must keep \"{k}\" under its own name (sinks and the \
                     dashboard key rows by the group keys and window_start)"
                ));
            }
        }
        if errs.is_empty() {
            Ok(Some(self.select.iter().map(|c| c.name.clone()).collect()))
        } else {
            Err(errs)
        }
    }
}

/// A PostgreSQL table name the sink accepts: `name` or `schema.name`, each an unquoted
/// identifier (letters, digits, `_`, not starting with a digit, at most 63 bytes). Upper-case
/// letters are kept as written (the sink quotes identifiers).
pub fn check_table_name(table: &str) -> Result<(), String> {
    let parts: Vec<&str> = table.split('.').collect();
    if parts.len() > 2 {
        return Err(format!("`{table}`: expected NAME or SCHEMA.NAME"));
    }
    for p in parts {
        let ok = !p.is_empty()
            && p.len() <= 63
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !p.starts_with(|c: char| c.is_ascii_digit());
        if !ok {
            return Err(format!(
                "`{table}`: `{p}` is not a plain identifier (letters, digits and _, not starting \
                 with a digit, at most 63 bytes)"
            ));
        }
    }
    Ok(())
}

/// The reason of an expression error, without the `invalid expression` wrapper (the plan
/// message names the field instead).
fn expr_reason(e: EngineError) -> String {
    match e {
        EngineError::Expr { expr, reason } => format!("`{expr}`: {reason}"),
        other => other.to_string(),
    }
}

/// `line:col: [path: ]message` for a TOML error, from its byte span.
fn toml_error_message(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim_end();
    let Some(span) = e.span() else {
        return msg.to_string();
    };
    let start = refine_in_table(text, span.start, msg).unwrap_or(span.start);
    let (line, col) = line_col(text, start);
    match field_path_at(text, start) {
        Some(path) if !msg.contains(&format!("`{path}`")) => format!("{line}:{col}: {path}: {msg}"),
        _ => format!("{line}:{col}: {msg}"),
    }
}

/// Errors inside internally tagged tables (`[window]`, `[[sinks]]`) lose their span: serde
/// buffers the table, so toml can only point at its header. Find the key the message talks
/// about (`unknown field `windw``, or a value quoted in it such as `10x`) among the table's
/// lines and point there instead.
fn refine_in_table(text: &str, offset: usize, msg: &str) -> Option<usize> {
    let rest = text.get(offset..)?;
    let mut lines = rest.split_inclusive('\n');
    let header = lines.next()?;
    if !header.trim_start().starts_with('[') {
        return None;
    }
    let tokens: Vec<&str> = msg.split('`').skip(1).step_by(2).collect();
    let mut pos = offset + header.len();
    for line in lines {
        let t = line.trim_start();
        if t.starts_with('[') {
            break;
        }
        if let Some((key, value)) = t.split_once('=') {
            let key = key.trim().trim_matches('"');
            let value = value.trim().trim_matches('"');
            let unknown_key = msg.starts_with("unknown field") && tokens.first() == Some(&key);
            if unknown_key || tokens.iter().any(|tok| !tok.is_empty() && *tok == value) {
                return Some(pos + (line.len() - t.len()));
            }
        }
        pos += line.len();
    }
    None
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Best-effort field path (`aggregates[1].column`) of the line holding `offset`: the last table
/// header before it (array tables counted) plus the key on that line. `None` when unsure.
fn field_path_at(text: &str, offset: usize) -> Option<String> {
    let mut header: Option<String> = None;
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let end = pos + line.len();
        let t = line.trim();
        let is_header = t.starts_with('[');
        if is_header {
            if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
                let name = name.trim().to_string();
                let n = counts.entry(name.clone()).or_insert(0);
                header = Some(format!("{name}[{n}]"));
                *n += 1;
            } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
                header = Some(name.trim().to_string());
            }
        }
        if offset < end || end == text.len() {
            if is_header {
                return header;
            }
            let (key, _) = t.split_once('=')?;
            let key = key.trim().trim_matches('"');
            if key.is_empty()
                || !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
            {
                return None;
            }
            return Some(match header {
                Some(h) => format!("{h}.{key}"),
                None => key.to_string(),
            });
        }
        pos = end;
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The example in this module's documentation, so the docs cannot rot.
    fn doc_example() -> String {
        let src = include_str!("plan.rs");
        let start = src.find("//! ```toml\n").unwrap() + "//! ```toml\n".len();
        let len = src[start..].find("//! ```\n").unwrap();
        src[start..start + len]
            .lines()
            .map(|l| {
                l.strip_prefix("//! ")
                    .unwrap_or(l.trim_start_matches("//!"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn plan_err(text: &str) -> String {
        match Plan::from_toml(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(EngineError::Plan(m)) => m,
            Err(other) => panic!("unexpected error kind {other}"),
        }
    }

    /// The doc example with `from` replaced by `to` (which must be present).
    fn with(from: &str, to: &str) -> String {
        let base = doc_example();
        assert!(base.contains(from), "{from:?} not in the example");
        base.replacen(from, to, 1)
    }

    fn assert_contains(haystack: &str, needle: &str) {
        assert!(haystack.contains(needle), "{needle:?} not in {haystack:?}");
    }

    #[test]
    fn doc_example_parses() {
        let plan = Plan::from_toml(&doc_example()).unwrap();
        assert_eq!(plan.name, "stats");
        assert_eq!(plan.source.topics, ["events"]);
        assert_eq!(plan.schema.len(), 3);
        assert_eq!(plan.event_time.allowed_lateness, DurationMs(5_000));
        assert_eq!(
            plan.window,
            Some(WindowSpec::Tumbling {
                size: DurationMs(10_000)
            })
        );
        assert_eq!(plan.aggregates.len(), 2);
        assert_eq!(plan.aggregates[1].output_name(), "avg_value");
        assert_eq!(
            plan.output.trigger,
            TriggerSpec::ProcessingTime(DurationMs(1_000))
        );
        assert_eq!(plan.sinks, [SinkSpec::Console]);
        let s = plan.input_schema();
        assert_eq!(s.fields().len(), 3 + 5);
        assert_eq!(s.field(2).data_type(), &timestamp_type());
        assert_eq!(s.field(7).name(), columns::EVENT_TIME);
    }

    #[test]
    fn round_trip_through_toml() {
        let mut plan = Plan::from_toml(&doc_example()).unwrap();
        plan.filter = Some("value > 0".into());
        plan.columns.push(DerivedColumn {
            name: "bucket".into(),
            expr: "id % 10".into(),
        });
        plan.group_by.push("bucket".into());
        plan.source.starting_offsets = StartingOffsets::Timestamp(1_700_000_000_000);
        plan.source.dlq_topic = Some("events.dlq".into());
        plan.window = Some(WindowSpec::Hopping {
            size: DurationMs(60_000),
            slide: DurationMs(10_000),
        });
        plan.aggregates.push(AggregateSpec {
            function: AggregateFunction::ApproxPercentile,
            column: Some("value".into()),
            percentile: Some(0.95),
            alias: Some("p95".into()),
        });
        plan.output.mode = OutputMode::Append;
        plan.output.trigger = TriggerSpec::OnArrival;
        plan.sinks.push(SinkSpec::Kafka {
            topic: "out".into(),
            brokers: None,
        });
        plan.sinks.push(SinkSpec::File {
            path: "/tmp/out.jsonl".into(),
        });
        plan.checkpoint.dir = Some("/tmp/cp".into());
        plan.validate().unwrap();
        let text = toml::to_string(&plan).unwrap();
        assert_eq!(Plan::from_toml(&text).unwrap(), plan, "{text}");
        // The doc example as is, too.
        let plain = Plan::from_toml(&doc_example()).unwrap();
        let text = toml::to_string(&plain).unwrap();
        assert_eq!(Plan::from_toml(&text).unwrap(), plain);
    }

    #[test]
    fn storage_sinks_parse_validate_and_round_trip() {
        let text = with(
            "[[sinks]]\ntype = \"console\"",
            "[[sinks]]\ntype = \"parquet\"\npath = \"./results\"\nroll_size = \"64MiB\"\n\
             roll_interval = \"30s\"\ncompression = \"snappy\"\ncompact_min_files = 4\n\
             [[sinks]]\ntype = \"parquet\"\npath = \"./by-id\"\npartition_by = [\"id\"]\n\
             [[sinks]]\ntype = \"postgres\"\nurl = \"postgres://u:p@127.0.0.1/db\"\n\
             table = \"analytics.stats\"",
        );
        let plan = Plan::from_toml(&text).unwrap();
        assert_eq!(
            plan.sinks[0],
            SinkSpec::Parquet(ParquetSinkSpec {
                path: "./results".into(),
                partition_by: None,
                compression: ParquetCompression::Snappy,
                roll_size: Some(ByteSize(64 << 20)),
                roll_interval: Some(DurationMs(30_000)),
                compact_min_files: Some(4),
            })
        );
        match &plan.sinks[1] {
            SinkSpec::Parquet(p) => {
                assert_eq!(p.partition_by.as_deref(), Some(&["id".to_string()][..]));
                assert_eq!(p.compression, ParquetCompression::Zstd);
            }
            other => panic!("{other:?}"),
        }
        match &plan.sinks[2] {
            SinkSpec::Postgres(p) => {
                assert_eq!(p.table_name("stats"), "analytics.stats");
                assert_eq!(p.max_pending_epochs, None);
            }
            other => panic!("{other:?}"),
        }
        let again = toml::to_string(&plan).unwrap();
        assert_eq!(Plan::from_toml(&again).unwrap(), plan, "{again}");

        for (sink, want) in [
            (
                "type = \"parquet\"\npath = \"x\"\npartition_by = [\"nope\"]",
                "sinks[0].partition_by[0]: \"nope\" is not an output column",
            ),
            (
                "type = \"parquet\"\npath = \"x\"\nroll_size = \"12 parsecs\"",
                "unknown size unit `parsecs`",
            ),
            (
                "type = \"parquet\"\npath = \"x\"\ncompact_min_files = 1",
                "sinks[0].compact_min_files: must be at least 2",
            ),
            (
                "type = \"parquet\"\npath = \"x\"\ncompression = \"lzma\"",
                "unknown variant `lzma`",
            ),
            (
                "type = \"parquet\"\npath = \"x\"\nrol_size = \"1MB\"",
                "unknown field `rol_size`",
            ),
            (
                "type = \"postgres\"\nurl = \"postgres://h/db\"\ntable = \"a.b.c\"",
                "sinks[0].table: `a.b.c`: expected NAME or SCHEMA.NAME",
            ),
            (
                "type = \"postgres\"\nurl = \"postgres://h/db\"\ntable = \"drop table\"",
                "is not a plain identifier",
            ),
            (
                "type = \"postgres\"\nurl = \"\"",
                "sinks[0].url: must not be empty",
            ),
        ] {
            let e = plan_err(&with("type = \"console\"", sink));
            assert_contains(&e, want);
        }
        // The default date/hour partitioning needs a window.
        let e = plan_err(
            &with(
                "[[sinks]]\ntype = \"console\"",
                "[[sinks]]\ntype = \"parquet\"\npath = \"x\"",
            )
            .replace("[window]\ntype = \"tumbling\"\nsize = \"10s\"\n", ""),
        );
        assert_contains(
            &e,
            "sinks[0].partition_by: the default (date and hour of window_start)",
        );
    }

    #[test]
    fn toml_errors_point_at_line_and_column() {
        // Top-level unknown key: line 2 of the example after the inserted one.
        let m = plan_err(&with(
            "group_by = [\"id\"]\n",
            "group_by = [\"id\"]\nwindw = 1\n",
        ));
        assert_contains(&m, "3:1: unknown field `windw`, expected one of");
        assert_contains(&m, "`window`");
        // Unknown key in the second [[aggregates]]: path with the array index.
        let m = plan_err(&with(
            "column = \"value\"\n",
            "column = \"value\"\n  colum = \"x\"\n",
        ));
        let line = doc_example()
            .lines()
            .position(|l| l == "column = \"value\"")
            .unwrap()
            + 2;
        assert_contains(
            &m,
            &format!("{line}:3: aggregates[1].colum: unknown field `colum`"),
        );
        // Invalid values name the key.
        let m = plan_err(&with("size = \"10s\"", "size = \"10x\""));
        assert_contains(&m, "window.size: unknown duration unit `x`");
        assert!(m.starts_with(|c: char| c.is_ascii_digit()), "{m}");
        let m = plan_err(&with("topics = [\"events\"]", "topics = \"events\""));
        assert_contains(
            &m,
            "source.topics: invalid type: string \"events\", expected a sequence",
        );
        let m = plan_err(&with("type = \"double\"", "type = \"float\""));
        assert_contains(&m, "schema[1].type: unknown variant `float`");
        let m = plan_err(&with("mode = \"update\"", "mode = \"complete\""));
        assert_contains(&m, "output.mode: unknown variant `complete`");
        let m = plan_err(&with("trigger = \"1s\"", "trigger = \"soon\""));
        assert_contains(&m, "output.trigger: ");
        let m = plan_err(&with(
            "[event_time]\nfield = \"timestamp\"\n",
            "[event_time]\n",
        ));
        assert_contains(&m, "missing field `field`");
        assert_contains(&m, "event_time");
        let m = plan_err("name = \"x\"\n[source]\ntopics = [\"a\"]\n");
        assert_contains(&m, "missing field `schema`");
        let m = plan_err("name = = 1");
        assert_contains(&m, "1:");
        let m = plan_err(&with(
            "type = \"console\"",
            "type = \"console\"\ntopic = \"x\"",
        ));
        assert_contains(&m, "unknown field `topic`");
    }

    #[test]
    fn toml_file_errors_carry_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pipeline.toml");
        std::fs::write(&path, with("[window]\n", "[window]\nwindw = 1\n")).unwrap();
        let m = Plan::from_toml_file(&path).unwrap_err().to_string();
        assert_contains(&m, &format!("{}:", path.display()));
        assert_contains(&m, "pipeline.toml:");
        assert_contains(&m, ": window.windw: unknown field `windw`");
        std::fs::write(&path, with("size = \"10s\"", "size = \"0ms\"")).unwrap();
        let m = Plan::from_toml_file(&path).unwrap_err().to_string();
        assert_contains(&m, "pipeline.toml: window.size: must be > 0");
        std::fs::write(&path, doc_example()).unwrap();
        assert!(Plan::from_toml_file(&path).is_ok());
        let m = Plan::from_toml_file(&dir.path().join("nope.toml"))
            .unwrap_err()
            .to_string();
        assert_contains(&m, "nope.toml: cannot read");
    }

    #[test]
    fn validation_errors_name_the_field() {
        let cases: &[(&str, &str, &str)] = &[
            ("topics = [\"events\"]", "topics = []", "source.topics: at least one topic"),
            ("topics = [\"events\"]", "topics = [\"\"]", "source.topics[0]: empty topic name"),
            (
                "[[schema]]\nname = \"value\"\ntype = \"double\"\n",
                "",
                "aggregates[1].column: unknown column \"value\"",
            ),
            (
                "name = \"value\"",
                "name = \"id\"",
                "schema[1].name: duplicate field \"id\"",
            ),
            (
                "name = \"value\"",
                "name = \"_offset\"",
                "schema[1].name: \"_offset\" is reserved",
            ),
            (
                "field = \"timestamp\"",
                "field = \"tmestamp\"",
                "event_time.field: unknown column \"tmestamp\" (did you mean \"timestamp\"?)",
            ),
            (
                "field = \"timestamp\"",
                "field = \"value\"",
                "event_time.field: \"value\" has type double",
            ),
            (
                "field = \"timestamp\"",
                "field = \"id\"",
                "event_time.format: the event-time field \"id\" is a bigint",
            ),
            (
                "group_by = [\"id\"]",
                "group_by = [\"idd\"]",
                "group_by[0]: unknown column \"idd\" (did you mean \"id\"?)",
            ),
            (
                "group_by = [\"id\"]",
                "group_by = [\"id\", \"id\"]",
                "group_by[1]: duplicate column \"id\"",
            ),
            (
                "column = \"value\"",
                "column = \"vale\"",
                "aggregates[1].column: unknown column \"vale\" (did you mean \"value\"?)",
            ),
            (
                "function = \"avg\"\ncolumn = \"value\"",
                "function = \"sum\"",
                "aggregates[1].column: required for sum",
            ),
            (
                "function = \"avg\"\ncolumn = \"value\"",
                "function = \"avg\"\ncolumn = \"timestamp\"",
                "aggregates[1].column: avg needs a numeric column, \"timestamp\" is TIMESTAMP",
            ),
            (
                "function = \"avg\"\ncolumn = \"value\"",
                "function = \"approx_percentile\"\ncolumn = \"value\"",
                "aggregates[1].percentile: required for approx_percentile",
            ),
            (
                "function = \"avg\"\ncolumn = \"value\"",
                "function = \"approx_percentile\"\ncolumn = \"value\"\npercentile = 1.5",
                "aggregates[1].percentile: must be within [0, 1], got 1.5",
            ),
            (
                "function = \"avg\"\ncolumn = \"value\"",
                "function = \"avg\"\ncolumn = \"value\"\npercentile = 0.5",
                "aggregates[1].percentile: only valid for approx_percentile",
            ),
            (
                "function = \"avg\"\ncolumn = \"value\"",
                "function = \"count\"",
                "aggregates[1]: output column \"count\" is already taken",
            ),
            ("size = \"10s\"", "size = \"0s\"", "window.size: must be > 0"),
            (
                "type = \"tumbling\"\nsize = \"10s\"",
                "type = \"hopping\"\nsize = \"10s\"\nslide = \"20s\"",
                "window.slide: 20000ms must not exceed window.size 10000ms",
            ),
            (
                "type = \"tumbling\"\nsize = \"10s\"",
                "type = \"hopping\"\nsize = \"10s\"\nslide = \"0s\"",
                "window.slide: must be > 0",
            ),
            (
                "type = \"tumbling\"\nsize = \"10s\"",
                "type = \"session\"\ngap = \"0s\"",
                "window.gap: must be > 0",
            ),
            (
                "[window]\ntype = \"tumbling\"\nsize = \"10s\"\n",
                "",
                "output.mode: \"append\" needs a window",
            ),
            (
                "[[aggregates]]\nfunction = \"count\"\n[[aggregates]]\nfunction = \"avg\"\ncolumn = \"value\"\n",
                "",
                "aggregates: at least one aggregate is required",
            ),
            (
                "type = \"console\"",
                "type = \"kafka\"\ntopic = \"\"",
                "sinks[0].topic: empty topic name",
            ),
            ("trigger = \"1s\"", "trigger = \"0ms\"", "output.trigger: must be > 0"),
            (
                "group_by = [\"id\"]",
                "group_by = [\"id\"]\nfilter = \"vlue > 1\"",
                "filter: `vlue > 1`: unknown column \"vlue\" (did you mean \"value\"?)",
            ),
            (
                "group_by = [\"id\"]",
                "group_by = [\"id\"]\nfilter = \"value + 1\"",
                "filter: must be a boolean expression, got DOUBLE",
            ),
            (
                "group_by = [\"id\"]",
                "group_by = [\"id\"]\nfilter = \"value >\"",
                "filter: `value >`: syntax error",
            ),
            (
                "group_by = [\"id\"]",
                "group_by = [\"id\"]\ncolumns = [{ name = \"id\", expr = \"1\" }]",
                "columns[0].name: \"id\" clashes with an existing column",
            ),
            (
                "group_by = [\"id\"]",
                "group_by = [\"id\"]\ncolumns = [{ name = \"_x\", expr = \"1\" }]",
                "columns[0].name: \"_x\" is reserved",
            ),
            (
                "group_by = [\"id\"]",
                "group_by = [\"id\"]\ncolumns = [{ name = \"window_start\", expr = \"1\" }]",
                "columns[0].name: \"window_start\" is reserved",
            ),
            (
                "group_by = [\"id\"]",
                "group_by = [\"id\"]\ncolumns = [{ name = \"v\", expr = \"lower(value)\" }]",
                "columns[0].expr: `lower(value)`: Error during planning: Function 'lower' requires String, but received Float64",
            ),
        ];
        for (from, to, expected) in cases {
            let mut text = with(from, to);
            if expected.starts_with("output.mode") {
                text = text.replace("mode = \"update\"", "mode = \"append\"");
            }
            assert_contains(&plan_err(&text), expected);
        }
        // Everything at once is reported together.
        let m = plan_err(&with("group_by = [\"id\"]", "group_by = [\"x\", \"y\"]"));
        assert_contains(&m, "group_by[0]");
        assert_contains(&m, "; group_by[1]");
    }

    #[test]
    fn having_and_select_are_checked_against_the_aggregate_output() {
        // The doc example's output: id, window_start, window_end, count, avg_value.
        let ok = with(
            "[output]",
            "[[select]]\nname = \"window_start\"\nexpr = \"window_start\"\n\
             [[select]]\nname = \"id\"\nexpr = \"id\"\n\
             [[select]]\nname = \"mean\"\nexpr = \"round(avg_value, 1)\"\n\
             [[select]]\nname = \"level\"\n\
             expr = \"CASE WHEN count > 10 THEN 'busy' ELSE 'quiet' END\"\n[output]",
        );
        let ok = ok.replacen(
            "group_by = [\"id\"]",
            "group_by = [\"id\"]\nhaving = \"count > 1 AND avg_value >= 0\"",
            1,
        );
        let plan = Plan::from_toml(&ok).unwrap();
        assert_eq!(plan.having.as_deref(), Some("count > 1 AND avg_value >= 0"));
        assert_eq!(plan.select.len(), 4);
        let select = |items: &str| with("[output]", &format!("{items}\n[output]"));
        let item =
            |name: &str, expr: &str| format!("[[select]]\nname = \"{name}\"\nexpr = \"{expr}\"\n");
        let keys = format!(
            "{}{}",
            item("id", "id"),
            item("window_start", "window_start")
        );
        assert_contains(
            &plan_err(&with(
                "group_by = [\"id\"]",
                "group_by = [\"id\"]\nhaving = \"avg_value\"",
            )),
            "having: must be a boolean expression, got DOUBLE",
        );
        assert_contains(
            &plan_err(&with(
                "group_by = [\"id\"]",
                "group_by = [\"id\"]\nhaving = \"value > 1\"",
            )),
            "having: `value > 1`: unknown column \"value\"",
        );
        assert_contains(
            &plan_err(&select(&item("n", "count"))),
            "select: the result must keep \"id\" under its own name",
        );
        assert_contains(
            &plan_err(&select(&format!("{keys}{}", item("x", "nope + 1")))),
            "select: `nope + 1`: unknown column \"nope\"",
        );
        assert_contains(
            &plan_err(&select(&format!("{keys}{}", item("_x", "count")))),
            "select[2].name: \"_x\" is not a valid result column name",
        );
        assert_contains(
            &plan_err(&select(&format!(
                "{}{}",
                item("id", "id + 1"),
                item("window_start", "window_start")
            ))),
            "select: the result must keep \"id\"",
        );
    }

    #[test]
    fn valid_variants() {
        // Derived columns can be grouped and aggregated, and reference earlier ones.
        let text = with(
            "group_by = [\"id\"]",
            "group_by = [\"bucket\"]\nfilter = \"value > 0 AND timestamp >= '2026-01-01T00:00:00Z'\"\n\
             columns = [{ name = \"bucket\", expr = \"id % 10\" }, { name = \"v2\", expr = \"value * bucket\" }]",
        )
        .replace("column = \"value\"", "column = \"v2\"");
        let plan = Plan::from_toml(&text).unwrap();
        assert_eq!(plan.columns.len(), 2);
        // Bigint event time with an epoch format; min over a timestamp; count(column).
        let text = with(
            "field = \"timestamp\"",
            "field = \"id\"\nformat = \"epoch_seconds\"",
        )
        .replace(
            "function = \"count\"",
            "function = \"min\"\ncolumn = \"timestamp\"",
        )
        .replace(
            "function = \"avg\"\ncolumn = \"value\"",
            "function = \"count\"\ncolumn = \"value\"",
        );
        Plan::from_toml(&text).unwrap();
        // A stateless pipeline (no aggregates) may use append without a window.
        let text = doc_example();
        let stateless: String = text
            .split("[window]")
            .next()
            .unwrap()
            .replace("group_by = [\"id\"]\n", "")
            + "[output]\nmode = \"append\"\n";
        Plan::from_toml(&stateless).unwrap();
        // Plans built in code are validated the same way.
        let mut plan = Plan::from_toml(&doc_example()).unwrap();
        plan.window = Some(WindowSpec::Hopping {
            size: DurationMs(10_000),
            slide: DurationMs(3_000),
        });
        plan.validate().unwrap();
        plan.event_time.idle_timeout = DurationMs(0);
        assert_contains(
            &plan.validate().unwrap_err().to_string(),
            "event_time.idle_timeout",
        );
    }
}
