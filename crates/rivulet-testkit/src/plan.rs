//! The standard test plan as pipeline TOML: topic `events` from the earliest offset with
//! `id`/`value`/`timestamp`, grouped by id, aggregates of `value`, a checkpoint in
//! `<dir>/checkpoint`; what varies is given by [`PlanParts`].

use std::path::Path;

/// The schema every test plan reads: `id` bigint, `value` double, `timestamp` (event time).
macro_rules! standard_schema {
    () => {
        r#"[[schema]]
name = "id"
type = "bigint"
[[schema]]
name = "value"
type = "double"
[[schema]]
name = "timestamp"
type = "timestamp"
[event_time]
field = "timestamp"
"#
    };
}

/// count, avg, min and max of `value`: the standard aggregates.
pub const STANDARD_AGGREGATES: &str = r#"[[aggregates]]
function = "count"
[[aggregates]]
function = "avg"
column = "value"
[[aggregates]]
function = "min"
column = "value"
[[aggregates]]
function = "max"
column = "value""#;

/// The parts of a test plan that vary.
pub struct PlanParts<'a> {
    pub name: &'a str,
    pub brokers: &'a str,
    /// The checkpoint goes to `<dir>/checkpoint`.
    pub dir: &'a Path,
    pub max_records_per_trigger: u64,
    /// Extra `[source]` lines, e.g. `late_topic = "late"`.
    pub source_extra: &'a str,
    /// Extra `[event_time]` lines, e.g. `allowed_lateness = "20ms"`.
    pub event_time_extra: &'a str,
    /// The `[window]` lines.
    pub window: &'a str,
    /// The `[[aggregates]]` tables, usually [`STANDARD_AGGREGATES`].
    pub aggregates: &'a str,
    pub mode: &'a str,
    pub trigger: &'a str,
    /// The `[[sinks]]` tables (may be empty).
    pub sinks: &'a str,
}

/// The plan's TOML text.
pub fn plan_toml(p: &PlanParts) -> String {
    format!(
        r#"
name = "{}"
group_by = ["id"]
[source]
brokers = "{}"
topics = ["events"]
starting_offsets = "earliest"
max_records_per_trigger = {}
{}
{schema}{}
[window]
{}
{}
[output]
mode = "{}"
trigger = "{}"
{}
[checkpoint]
dir = "{}"
"#,
        p.name,
        p.brokers,
        p.max_records_per_trigger,
        p.source_extra,
        p.event_time_extra,
        p.window,
        p.aggregates,
        p.mode,
        p.trigger,
        p.sinks,
        p.dir.join("checkpoint").display(),
        schema = standard_schema!(),
    )
}

/// A `[[sinks]]` table for a file sink writing to `path`.
pub fn file_sink(path: &Path) -> String {
    format!("[[sinks]]\ntype = \"file\"\npath = \"{}\"", path.display())
}

/// The standard aggregates over tumbling windows of `window_ms`, 20 ms allowed lateness, a
/// 50 ms trigger, 400 records per trigger. Idleness is processing time, so it is off (10 min):
/// a loaded test machine must not turn slow partitions idle and change which rows are late.
pub fn tumbling_plan(
    name: &str,
    brokers: &str,
    dir: &Path,
    window_ms: i64,
    mode: &str,
    source_extra: &str,
    sinks: &str,
) -> String {
    plan_toml(&PlanParts {
        name,
        brokers,
        dir,
        max_records_per_trigger: 400,
        source_extra,
        event_time_extra: "allowed_lateness = \"20ms\"\nidle_timeout = \"10m\"",
        window: &format!("type = \"tumbling\"\nsize = \"{window_ms}ms\""),
        aggregates: STANDARD_AGGREGATES,
        mode,
        trigger: "50ms",
        sinks,
    })
}

/// The standard aggregates, 400 records per trigger, with a file sink in `<dir>/out` and late
/// rows to topic `late`.
pub fn plan_text(
    name: &str,
    brokers: &str,
    dir: &Path,
    window: &str,
    event_time_extra: &str,
    mode: &str,
    trigger: &str,
) -> String {
    plan_toml(&PlanParts {
        name,
        brokers,
        dir,
        max_records_per_trigger: 400,
        source_extra: "late_topic = \"late\"",
        event_time_extra,
        window,
        aggregates: STANDARD_AGGREGATES,
        mode,
        trigger,
        sinks: &file_sink(&dir.join("out")),
    })
}

/// The small plan that unit tests parse: `stats` over topic `events` on 127.0.0.1:9092 with
/// `id`/`value`/`timestamp`, grouped by id, a count per 10 s tumbling window, one console sink.
/// Tests that need another shape edit it with [`small_plan_with`].
pub const SMALL_PLAN: &str = concat!(
    r#"name = "stats"
group_by = ["id"]
[source]
brokers = "127.0.0.1:9092"
topics = ["events"]
"#,
    standard_schema!(),
    r#"[window]
type = "tumbling"
size = "10s"
[[aggregates]]
function = "count"
[[sinks]]
type = "console"
"#
);

/// [`SMALL_PLAN`] with each `(from, to)` replaced once, in order; panics when a `from` is not
/// there, so an edit cannot silently miss.
pub fn small_plan_with(edits: &[(&str, &str)]) -> String {
    let mut text = SMALL_PLAN.to_string();
    for (from, to) in edits {
        assert!(
            text.contains(from),
            "{from:?} not in the small plan:\n{text}"
        );
        text = text.replacen(from, to, 1);
    }
    text
}
