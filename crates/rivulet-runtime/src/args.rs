//! `rivulet run` flags equivalent to the pipeline file: [`PlanArgs`] builds the same
//! [`Plan`] a TOML file does, alone or on top of a file (`--pipeline`), whose values the
//! given flags override. List flags (`--topic`, `--group-by`, `--agg`, `--sink`) replace the
//! file's whole list when given at least once.
//!
//! ```text
//! rivulet run --name stats --topic events \
//!     --schema id:bigint,value:double,timestamp:timestamp \
//!     --event-time timestamp --lateness 5s --window tumbling:10s --group-by id \
//!     --agg count --agg avg:value --agg min:value --agg max:value \
//!     --mode update --trigger 1s --sink console
//! ```
//!
//! Errors name the flag: a malformed value (`--window: expected tumbling:SIZE, ...`) as well
//! as a [`Plan::validate`] problem (`--agg 2 (aggregates[1].column): unknown column ...`).

use rivulet_engine::plan::{
    AggregateFunction, AggregateSpec, CheckpointSpec, DurationMs, EventTimeSpec, FieldSpec,
    FieldType, OutputMode, OutputSpec, Plan, TimeFormat, TriggerSpec, WindowSpec,
};
use rivulet_engine::EngineError;

use crate::connectors::kafka::{self, StartingOffsets};
use crate::connectors::{check_plan, normalized, sink_from_shorthand};

/// The query flags of `rivulet run` (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, clap::Args)]
pub struct PlanArgs {
    /// Query name (progress records, default checkpoint directory and consumer group)
    /// [default: query].
    #[arg(long)]
    pub name: Option<String>,
    /// Source topic (repeatable).
    #[arg(long = "topic", value_name = "TOPIC")]
    pub topics: Vec<String>,
    /// Where a first start reads from: earliest, latest, or epoch milliseconds.
    #[arg(long, value_name = "earliest|latest|MS")]
    pub starting_offsets: Option<String>,
    /// At most this many records per micro-batch.
    #[arg(long)]
    pub max_records_per_trigger: Option<u64>,
    /// Kafka client of the source: native (Rivulet's fetcher) or librdkafka [default: native].
    #[arg(long, value_name = "native|librdkafka")]
    pub source_client: Option<String>,
    /// A field the topic's records are keyed by (repeatable; `source.key_fields`): with the
    /// checkpoint in Kafka, a GROUP BY that includes them all needs no repartition topic.
    #[arg(long = "key-field", value_name = "FIELD")]
    pub key_fields: Vec<String>,
    /// JSON fields: `name:type,...` with type bigint, int, double, string, boolean or
    /// timestamp; `name:type?` for a nullable field.
    #[arg(long, value_name = "NAME:TYPE,...")]
    pub schema: Option<String>,
    /// The event-time field, optionally with its format: `timestamp`,
    /// `ts:epoch_millis`, `ts:epoch_seconds` (default rfc3339).
    #[arg(long, value_name = "FIELD[:FORMAT]")]
    pub event_time: Option<String>,
    /// Allowed lateness behind the newest event time (`5s`) [default: 0ms].
    #[arg(long, value_name = "DURATION")]
    pub lateness: Option<String>,
    /// Window: `tumbling:10s`, `hopping:10s:5s` (size, slide), `session:30s` (gap), or `none`.
    #[arg(long, value_name = "SPEC")]
    pub window: Option<String>,
    /// Grouping column (repeatable).
    #[arg(long = "group-by", value_name = "COLUMN")]
    pub group_by: Vec<String>,
    /// Aggregate (repeatable): `count`, `avg:value`, `approx_percentile:value:0.99`;
    /// functions count, sum, avg, min, max, stddev, approx_percentile.
    #[arg(long = "agg", value_name = "FUNCTION[:COLUMN[:PERCENTILE]]")]
    pub aggs: Vec<String>,
    /// Row filter, a SQL expression (`value > 0`).
    #[arg(long, value_name = "SQL")]
    pub filter: Option<String>,
    /// Output mode: update or append [default: update].
    #[arg(long, value_name = "update|append")]
    pub mode: Option<String>,
    /// Trigger: an interval (`1s`) or `on-arrival` [default: 1s].
    #[arg(long, value_name = "INTERVAL|on-arrival")]
    pub trigger: Option<String>,
    /// Sink (repeatable): `console`, `file:DIR`, `kafka:TOPIC`, `parquet:DIR`, or
    /// `postgres://USER:PASSWORD@HOST:PORT/DB[?table=NAME]` (table default: the query name).
    #[arg(
        long = "sink",
        value_name = "console|file:DIR|kafka:TOPIC|parquet:DIR|postgres://..."
    )]
    pub sinks: Vec<String>,
}

fn flag_err(flag: &str, msg: impl std::fmt::Display) -> EngineError {
    EngineError::Plan(format!("{flag}: {msg}"))
}

impl PlanArgs {
    /// True when no query flag is given.
    pub fn is_empty(&self) -> bool {
        *self == PlanArgs::default()
    }

    /// The plan these flags describe, on top of `base` (a pipeline file's plan) when given,
    /// validated with [`Plan::validate`]. Without a base, `--topic`, `--schema` and
    /// `--event-time` are required; everything else has the pipeline file's defaults.
    pub fn build(&self, base: Option<Plan>) -> Result<Plan, EngineError> {
        let mut plan = match base {
            Some(p) => p,
            None => {
                let mut missing = Vec::new();
                if self.topics.is_empty() {
                    missing.push("--topic");
                }
                if self.schema.is_none() {
                    missing.push("--schema");
                }
                if self.event_time.is_none() {
                    missing.push("--event-time");
                }
                if !missing.is_empty() {
                    return Err(EngineError::Plan(format!(
                        "{} required without --pipeline",
                        missing.join(", ")
                    )));
                }
                empty_plan()
            }
        };
        if let Some(n) = &self.name {
            plan.name = n.clone();
        }
        // The source's options are the Kafka connector's; each setter says which option it
        // set, so problems with it name the flag.
        let mut source_flags: Vec<(&'static str, &'static str)> = Vec::new();
        if !self.topics.is_empty() {
            source_flags.push((kafka::set_topics(&mut plan.source, &self.topics), "--topic"));
        }
        if let Some(s) = &self.starting_offsets {
            let start =
                kafka::parse_starting_offsets(s).map_err(|m| flag_err("--starting-offsets", m))?;
            source_flags.push((
                kafka::set_starting_offsets(&mut plan.source, start),
                "--starting-offsets",
            ));
        }
        if let Some(n) = self.max_records_per_trigger {
            source_flags.push((
                kafka::set_max_records_per_trigger(&mut plan.source, Some(n)),
                "--max-records-per-trigger",
            ));
        }
        if let Some(c) = &self.source_client {
            source_flags.push((
                kafka::set_client(&mut plan.source, c)
                    .map_err(|m| flag_err("--source-client", m))?,
                "--source-client",
            ));
        }
        if !self.key_fields.is_empty() {
            source_flags.push((
                kafka::set_key_fields(&mut plan.source, &self.key_fields),
                "--key-field",
            ));
        }
        if let Some(s) = &self.schema {
            plan.schema = parse_schema(s)?;
        }
        if let Some(e) = &self.event_time {
            let (field, format) = parse_event_time(e)?;
            plan.event_time.field = field;
            plan.event_time.format = format;
        }
        if let Some(l) = &self.lateness {
            plan.event_time.allowed_lateness = duration("--lateness", l)?;
        }
        if let Some(w) = &self.window {
            plan.window = parse_window(w)?;
        }
        if !self.group_by.is_empty() {
            plan.group_by = self.group_by.clone();
        }
        if !self.aggs.is_empty() {
            plan.aggregates = self
                .aggs
                .iter()
                .enumerate()
                .map(|(i, a)| parse_agg(a).map_err(|m| flag_err(&format!("--agg {}", i + 1), m)))
                .collect::<Result<_, _>>()?;
        }
        if let Some(f) = &self.filter {
            plan.filter = Some(f.clone());
        }
        if let Some(m) = &self.mode {
            plan.output.mode = match m.as_str() {
                "update" => OutputMode::Update,
                "append" => OutputMode::Append,
                other => {
                    return Err(flag_err(
                        "--mode",
                        format!("expected update or append, got `{other}`"),
                    ))
                }
            };
        }
        if let Some(t) = &self.trigger {
            plan.output.trigger =
                TriggerSpec::try_from(t.clone()).map_err(|m| flag_err("--trigger", m))?;
        }
        if !self.sinks.is_empty() {
            plan.sinks = self
                .sinks
                .iter()
                .map(|s| sink_from_shorthand(s).map_err(|m| flag_err("--sink", m)))
                .collect::<Result<_, _>>()?;
        }
        check_plan(&plan).map_err(|e| match e {
            EngineError::Plan(msg) => EngineError::Plan(name_flags(&msg, &source_flags)),
            other => other,
        })?;
        Ok(normalized(plan))
    }
}

/// A plan with the pipeline file's defaults and nothing else.
fn empty_plan() -> Plan {
    // The Kafka source with its address and start written out, as the example file has them,
    // so `--print-plan` shows where a flags-only query reads from.
    let mut source = kafka::source_spec(kafka::DEFAULT_BROKERS, &[]);
    kafka::set_starting_offsets(&mut source, StartingOffsets::Earliest);
    Plan {
        name: "query".to_string(),
        source,
        schema: Vec::new(),
        event_time: EventTimeSpec {
            field: String::new(),
            format: TimeFormat::default(),
            allowed_lateness: DurationMs(0),
            idle_timeout: DurationMs(30_000),
        },
        filter: None,
        columns: Vec::new(),
        group_by: Vec::new(),
        window: None,
        aggregates: Vec::new(),
        having: None,
        select: Vec::new(),
        output: OutputSpec::default(),
        sinks: Vec::new(),
        checkpoint: CheckpointSpec::default(),
    }
}

/// Rewrites `Plan::validate` messages (`; `-separated, each starting with a field path) so
/// that each names the flag setting that field: `aggregates[1].column: ...` becomes
/// `--agg 2 (aggregates[1].column): ...`. `source` maps source options to their flags.
fn name_flags(msg: &str, source: &[(&str, &str)]) -> String {
    msg.split("; ")
        .map(|part| match part.split_once(": ") {
            Some((path, rest)) => match flag_for(path, source) {
                Some(flag) => format!("{flag} ({path}): {rest}"),
                None => part.to_string(),
            },
            None => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The flag that sets the plan field `path` (`aggregates[1].column` → `--agg 2`).
fn flag_for(path: &str, source: &[(&str, &str)]) -> Option<String> {
    let indexed = |prefix: &str, flag: &str| -> Option<String> {
        let rest = path.strip_prefix(prefix)?.strip_prefix('[')?;
        let n: usize = rest.split(']').next()?.parse().ok()?;
        Some(format!("{flag} {}", n + 1))
    };
    let found = indexed("aggregates", "--agg")
        .or_else(|| indexed("sinks", "--sink"))
        .or_else(|| indexed("group_by", "--group-by"));
    if found.is_some() {
        return found;
    }
    if let Some(option) = path.strip_prefix("source.") {
        let name = option.split(['.', '[']).next().unwrap_or(option);
        return source
            .iter()
            .find(|(o, _)| *o == name)
            .map(|(_, f)| (*f).to_string());
    }
    const TABLE: [(&str, &str); 11] = [
        ("name", "--name"),
        ("schema", "--schema"),
        ("event_time.field", "--event-time"),
        ("event_time.format", "--event-time"),
        ("event_time.allowed_lateness", "--lateness"),
        ("filter", "--filter"),
        ("window", "--window"),
        ("aggregates", "--agg"),
        ("group_by", "--group-by"),
        ("output.mode", "--mode"),
        ("output.trigger", "--trigger"),
    ];
    TABLE
        .iter()
        .find(|(p, _)| {
            path.strip_prefix(p)
                .is_some_and(|r| r.is_empty() || r.starts_with('.') || r.starts_with('['))
        })
        .map(|(_, f)| (*f).to_string())
}

fn duration(flag: &str, s: &str) -> Result<DurationMs, EngineError> {
    DurationMs::try_from(s.to_string()).map_err(|m| flag_err(flag, m))
}

const FIELD_TYPES: [FieldType; 6] = [
    FieldType::Bigint,
    FieldType::Int,
    FieldType::Double,
    FieldType::String,
    FieldType::Boolean,
    FieldType::Timestamp,
];

fn parse_schema(s: &str) -> Result<Vec<FieldSpec>, EngineError> {
    s.split(',')
        .map(str::trim)
        .enumerate()
        .map(|(i, item)| {
            let bad = |m: String| flag_err("--schema", format!("field {}: {m}", i + 1));
            let (name, ty) = item
                .split_once(':')
                .ok_or_else(|| bad(format!("expected NAME:TYPE, got `{item}`")))?;
            let (ty, nullable) = match ty.trim().strip_suffix('?') {
                Some(t) => (t, true),
                None => (ty.trim(), false),
            };
            let data_type = FIELD_TYPES
                .into_iter()
                .find(|t| t.name() == ty)
                .ok_or_else(|| {
                    bad(format!(
                        "unknown type `{ty}` (bigint, int, double, string, boolean, timestamp)"
                    ))
                })?;
            Ok(FieldSpec {
                name: name.trim().to_string(),
                data_type,
                nullable,
            })
        })
        .collect()
}

fn parse_event_time(s: &str) -> Result<(String, TimeFormat), EngineError> {
    let (field, format) = match s.split_once(':') {
        None => (s, TimeFormat::Rfc3339),
        Some((f, fmt)) => (
            f,
            match fmt {
                "rfc3339" => TimeFormat::Rfc3339,
                "epoch_millis" => TimeFormat::EpochMillis,
                "epoch_seconds" => TimeFormat::EpochSeconds,
                other => {
                    return Err(flag_err(
                        "--event-time",
                        format!("unknown format `{other}` (rfc3339, epoch_millis, epoch_seconds)"),
                    ))
                }
            },
        ),
    };
    Ok((field.to_string(), format))
}

fn parse_window(s: &str) -> Result<Option<WindowSpec>, EngineError> {
    let parts: Vec<&str> = s.split(':').collect();
    let d = |v: &str| duration("--window", v);
    Ok(Some(match parts.as_slice() {
        ["none"] => return Ok(None),
        ["tumbling", size] => WindowSpec::Tumbling { size: d(size)? },
        ["hopping", size, slide] => WindowSpec::Hopping {
            size: d(size)?,
            slide: d(slide)?,
        },
        ["session", gap] => WindowSpec::Session { gap: d(gap)? },
        _ => {
            return Err(flag_err(
                "--window",
                format!(
                    "expected tumbling:SIZE, hopping:SIZE:SLIDE, session:GAP or none, got `{s}`"
                ),
            ))
        }
    }))
}

const FUNCTIONS: [AggregateFunction; 7] = [
    AggregateFunction::Count,
    AggregateFunction::Sum,
    AggregateFunction::Avg,
    AggregateFunction::Min,
    AggregateFunction::Max,
    AggregateFunction::Stddev,
    AggregateFunction::ApproxPercentile,
];

fn parse_agg(s: &str) -> Result<AggregateSpec, String> {
    let mut parts = s.splitn(3, ':');
    let name = parts.next().unwrap_or("").trim();
    let function = FUNCTIONS
        .into_iter()
        .find(|f| f.name() == name)
        .ok_or_else(|| {
            format!(
                "unknown function `{name}` (count, sum, avg, min, max, stddev, approx_percentile)"
            )
        })?;
    let column = parts.next().map(|c| c.trim().to_string());
    let percentile = match parts.next() {
        None => None,
        Some(p) => Some(
            p.trim()
                .parse::<f64>()
                .map_err(|_| format!("percentile `{p}` is not a number"))?,
        ),
    };
    Ok(AggregateSpec {
        function,
        column,
        percentile,
        alias: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use rivulet_engine::plan::ConnectorSpec;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        plan: PlanArgs,
    }

    fn args(argv: &[&str]) -> PlanArgs {
        let mut v = vec!["x"];
        v.extend_from_slice(argv);
        Cli::try_parse_from(v).expect("parses").plan
    }

    const EXAMPLE: &str = include_str!("../../../examples/pipeline.toml");

    const EXAMPLE_FLAGS: &[&str] = &[
        "--name",
        "stats",
        "--topic",
        "events",
        "--key-field",
        "id",
        "--schema",
        "id:bigint,value:double,timestamp:timestamp",
        "--event-time",
        "timestamp",
        "--lateness",
        "5s",
        "--window",
        "tumbling:10s",
        "--group-by",
        "id",
        "--agg",
        "count",
        "--agg",
        "avg:value",
        "--agg",
        "min:value",
        "--agg",
        "max:value",
        "--mode",
        "update",
        "--trigger",
        "1s",
        "--sink",
        "console",
    ];

    fn err(argv: &[&str], base: Option<Plan>) -> String {
        args(argv).build(base).expect_err("invalid").to_string()
    }

    #[test]
    fn flags_build_the_example_plan() {
        let from_file = Plan::from_toml(EXAMPLE).expect("valid plan");
        let from_flags = args(EXAMPLE_FLAGS).build(None).expect("valid plan");
        // The source's options are written differently (the file spells out the defaults):
        // they must read the same.
        let source = |p: &Plan| kafka::SourceOptions::parse(&p.source).expect("valid source");
        assert_eq!(source(&from_flags), source(&from_file));
        let mut flags = from_flags.clone();
        flags.source = from_file.source.clone();
        assert_eq!(flags, from_file);
    }

    #[test]
    fn flags_override_a_file() {
        let base = Plan::from_toml(EXAMPLE).expect("valid plan");
        assert!(args(&[]).is_empty());
        assert_eq!(
            args(&[]).build(Some(base.clone())).expect("valid plan"),
            base
        );
        let p = args(&[
            "--window",
            "hopping:1m:10s",
            "--agg",
            "approx_percentile:value:0.99",
            "--agg",
            "count",
            "--filter",
            "value > 0",
            "--mode",
            "append",
            "--trigger",
            "on-arrival",
            "--sink",
            "file:/tmp/out",
            "--sink",
            "kafka:stats",
            "--sink",
            "parquet:./results",
            "--sink",
            "postgres://u:p@127.0.0.1:5433/db?sslmode=disable&table=win",
            "--sink",
            "postgresql://127.0.0.1/db",
            "--event-time",
            "timestamp:rfc3339",
        ])
        .build(Some(base.clone()))
        .expect("valid plan");
        assert_eq!(
            p.window,
            Some(WindowSpec::Hopping {
                size: DurationMs(60_000),
                slide: DurationMs(10_000)
            })
        );
        assert_eq!(p.aggregates.len(), 2);
        assert_eq!(
            p.aggregates[0].function,
            AggregateFunction::ApproxPercentile
        );
        assert_eq!(p.aggregates[0].column.as_deref(), Some("value"));
        assert_eq!(p.aggregates[0].percentile, Some(0.99));
        assert_eq!(p.filter.as_deref(), Some("value > 0"));
        assert_eq!(p.output.mode, OutputMode::Append);
        assert_eq!(p.output.trigger, TriggerSpec::OnArrival);
        assert_eq!(
            p.sinks,
            vec![
                ConnectorSpec::new("file").with("path", "/tmp/out"),
                ConnectorSpec::new("kafka").with("topic", "stats"),
                ConnectorSpec::new("parquet").with("path", "./results"),
                ConnectorSpec::new("postgres")
                    .with("url", "postgres://u:p@127.0.0.1:5433/db?sslmode=disable")
                    .with("table", "win"),
                ConnectorSpec::new("postgres").with("url", "postgresql://127.0.0.1/db"),
            ]
        );
        // Untouched values stay the file's.
        assert_eq!(p.group_by, base.group_by);
        assert_eq!(p.event_time, base.event_time);
        let s = args(&[
            "--window",
            "session:30s",
            "--schema",
            "id:bigint,ts:bigint?",
        ]);
        let p = args(&["--window", "none"])
            .build(Some(base.clone()))
            .expect("valid plan");
        assert_eq!(p.window, None);
        assert!(s.build(Some(base)).is_err(), "event-time field gone");
    }

    #[test]
    fn errors_name_the_flag() {
        let e = err(&["--topic", "t"], None);
        assert!(e.contains("--schema, --event-time required"), "{e}");
        let base = || Some(Plan::from_toml(EXAMPLE).expect("valid plan"));
        for (argv, want) in [
            (
                &["--window", "tumbling"][..],
                "--window: expected tumbling:SIZE",
            ),
            (
                &["--window", "tumbling:10"][..],
                "--window: duration `10` needs a unit",
            ),
            (
                &["--window", "hopping:5s:10s"][..],
                "--window (window.slide)",
            ),
            (
                &["--agg", "count", "--agg", "avg:vale"][..],
                "--agg 2 (aggregates[1].column): unknown column",
            ),
            (
                &["--agg", "median:value"][..],
                "--agg 1: unknown function `median`",
            ),
            (
                &["--agg", "approx_percentile:value"][..],
                "--agg 1 (aggregates[0].percentile): required",
            ),
            (&["--filter", "value +"][..], "--filter (filter)"),
            (
                &["--mode", "complete"][..],
                "--mode: expected update or append",
            ),
            (&["--trigger", "soon"][..], "--trigger: "),
            (
                &["--sink", "s3:bucket"][..],
                "--sink: expected console, file:DIR, kafka:TOPIC, parquet:DIR or postgres://",
            ),
            (
                &["--schema", "id:long"][..],
                "--schema: field 1: unknown type `long`",
            ),
            (
                &["--event-time", "ts"][..],
                "--event-time (event_time.field)",
            ),
            (&["--group-by", "idd"][..], "--group-by 1 (group_by[0])"),
            (
                &["--max-records-per-trigger", "0"][..],
                "--max-records-per-trigger (source.max_records_per_trigger): must be > 0",
            ),
            (
                &["--source-client", "java"][..],
                "--source-client: expected native or librdkafka",
            ),
            (
                &["--sink", "parquet:x", "--sink", "kafka:"][..],
                "--sink 2 (sinks[1].topic): must not be empty",
            ),
            (
                &["--lateness", "5"][..],
                "--lateness: duration `5` needs a unit",
            ),
        ] {
            let e = err(argv, base());
            assert!(e.contains(want), "{argv:?}: `{e}` lacks `{want}`");
        }
    }
}
