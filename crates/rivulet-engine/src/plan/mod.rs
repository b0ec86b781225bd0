//! The query plan: a plain, serialisable data structure. The TOML pipeline file deserialises
//! straight into it (unknown fields are errors, [`toml`]), `rivulet run`'s flags fill the same
//! structure, and the SQL front end (`rivulet-sql`) compiles to it. [`Plan::validate`]
//! ([`validate`]) checks the query; the source and sinks are [`ConnectorSpec`]s whose options
//! the runtime's connector modules check ([`connector`]).
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

use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

pub mod connector;
pub mod load;
#[cfg(test)]
mod tests;
pub mod validate;

pub use connector::{ConnectorSpec, OptionValue};

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
    /// The source: `[source]`, connector `kafka` unless its `type` says otherwise.
    #[serde(deserialize_with = "deserialize_source")]
    pub source: ConnectorSpec,
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
    /// `[[sinks]]`: each names its connector with `type`.
    #[serde(default)]
    pub sinks: Vec<ConnectorSpec>,
    #[serde(default)]
    pub checkpoint: CheckpointSpec,
}

fn default_name() -> String {
    "query".to_string()
}

/// The connector of a `[source]` without `type`.
pub const DEFAULT_SOURCE_CONNECTOR: &str = "kafka";

fn deserialize_source<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ConnectorSpec, D::Error> {
    let mut spec = ConnectorSpec::deserialize(d)?;
    if spec.connector.is_empty() {
        spec.connector = DEFAULT_SOURCE_CONNECTOR.to_string();
    }
    Ok(spec)
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

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSpec {
    /// Directory for offsets/, state/, commits/; default `./checkpoints/<query name>`. With
    /// the `kafka` store it holds only the Kafka writers' recovery hints (caches).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Where the offsets, operator state and epoch markers live.
    #[serde(default, skip_serializing_if = "CheckpointStoreKind::is_dir")]
    pub store: CheckpointStoreKind,
}

/// `checkpoint.store`: the local directory (the default), or a compacted topic
/// `<name>-changelog` in the source's Kafka cluster, written through Kafka transactions, so
/// the query can resume on any machine that reaches the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckpointStoreKind {
    #[default]
    Dir,
    Kafka,
}

impl CheckpointStoreKind {
    pub fn is_dir(&self) -> bool {
        *self == CheckpointStoreKind::Dir
    }
}

impl std::str::FromStr for CheckpointStoreKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "dir" => Ok(CheckpointStoreKind::Dir),
            "kafka" => Ok(CheckpointStoreKind::Kafka),
            other => Err(format!(
                "unknown checkpoint store `{}`: expected `dir` or `kafka`",
                other.escape_debug()
            )),
        }
    }
}

impl std::fmt::Display for CheckpointStoreKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CheckpointStoreKind::Dir => "dir",
            CheckpointStoreKind::Kafka => "kafka",
        })
    }
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
pub(crate) fn metadata_fields() -> [Field; 5] {
    [
        Field::new(columns::KEY, DataType::Utf8, true),
        Field::new(columns::PARTITION, DataType::Int32, false),
        Field::new(columns::OFFSET, DataType::Int64, false),
        Field::new(columns::KAFKA_TIMESTAMP, timestamp_type(), false),
        Field::new(columns::EVENT_TIME, DataType::Int64, false),
    ]
}

/// Names no schema field or derived column may take (they would shadow engine columns).
pub(crate) fn is_reserved_name(name: &str) -> bool {
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
}
