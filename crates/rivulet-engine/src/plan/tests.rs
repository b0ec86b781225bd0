//! The plan's own tests: the documented example, TOML round trips and positions, validation
//! messages. Connector options are tested with their connectors (the runtime's
//! `connectors` modules).
#![allow(clippy::unwrap_used)]

use super::*;
use crate::EngineError;

/// The example in this module's documentation, so the docs cannot rot.
fn doc_example() -> String {
    let src = include_str!("mod.rs");
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
    assert_eq!(
        plan.source.get("topics"),
        Some(&OptionValue::List(vec!["events".into()]))
    );
    assert_eq!(plan.source.connector, "kafka");
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
    assert_eq!(plan.sinks, [ConnectorSpec::new("console")]);
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
    plan.source
        .set("starting_offsets", OptionValue::Integer(1_700_000_000_000));
    plan.source.set("dlq_topic", "events.dlq");
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
    plan.sinks
        .push(ConnectorSpec::new("kafka").with("topic", "out"));
    plan.sinks
        .push(ConnectorSpec::new("file").with("path", "/tmp/out.jsonl"));
    plan.sinks.push(
        ConnectorSpec::new("parquet")
            .with("path", "./results")
            .with("partition_by", OptionValue::List(vec!["id".into()]))
            .with("compact_min_files", OptionValue::Integer(4)),
    );
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
    let m = plan_err(&with("group_by = [\"id\"]", "group_by = \"id\""));
    assert_contains(
        &m,
        "group_by: invalid type: string \"id\", expected a sequence",
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
    // A connector option of the wrong shape (connectors check names and values).
    let m = plan_err(&with(
        "type = \"console\"",
        "type = \"console\"\ntopic = [1]",
    ));
    assert_contains(&m, "sinks");
    assert_contains(&m, "option `topic`");
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
