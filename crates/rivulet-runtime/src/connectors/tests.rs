//! The registry over whole plans: pipeline files with every connector, problems with their
//! field paths, the job's distinct-targets rule, and secrets kept out of what is printed.
//! (Moved here from the engine's plan tests when the connectors took over their options.)

use super::*;
use rivulet_engine::plan::OptionValue;

fn with(from: &str, to: &str) -> String {
    rivulet_testkit::small_plan_with(&[(from, to)])
}

fn problem(text: &str) -> String {
    match load_toml(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn assert_contains(haystack: &str, needle: &str) {
    assert!(haystack.contains(needle), "{needle:?} not in {haystack:?}");
}

#[test]
fn storage_sinks_parse_validate_and_describe() {
    let text = with(
        "[[sinks]]\ntype = \"console\"",
        "[[sinks]]\ntype = \"parquet\"\npath = \"./results\"\nroll_size = \"64MiB\"\n\
         roll_interval = \"30s\"\ncompression = \"snappy\"\ncompact_min_files = 4\n\
         [[sinks]]\ntype = \"parquet\"\npath = \"./by-id\"\npartition_by = [\"id\"]\n\
         [[sinks]]\ntype = \"postgres\"\nurl = \"postgres://u:s3cret@127.0.0.1/db\"\n\
         table = \"analytics.stats\"",
    );
    let plan = load_toml(&text).unwrap();
    let p = parquet::ParquetOptions::parse(&plan.sinks[0]).unwrap();
    assert_eq!(
        p,
        parquet::ParquetOptions {
            compression: parquet::ParquetCompression::Snappy,
            roll_size: 64 << 20,
            roll_interval: std::time::Duration::from_secs(30),
            compact_min_files: Some(4),
            ..parquet::ParquetOptions::at("./results")
        }
    );
    let p = parquet::ParquetOptions::parse(&plan.sinks[1]).unwrap();
    assert_eq!(p.partition_by.as_deref(), Some(&["id".to_string()][..]));
    assert_eq!(p.compression, parquet::ParquetCompression::Zstd);
    let pg = postgres::PostgresOptions::parse(&plan.sinks[2]).unwrap();
    assert_eq!(pg.table_name("stats"), "analytics.stats");
    assert_eq!(pg.max_pending_epochs, postgres::DEFAULT_MAX_PENDING_EPOCHS);
    assert_eq!(
        describe_sinks(&plan).unwrap(),
        [
            "parquet files under ./results",
            "parquet files under ./by-id",
            "postgres table analytics.stats"
        ]
    );
    // Round trip through TOML keeps the options.
    let again = load_toml(&toml::to_string(&plan).unwrap()).unwrap();
    assert_eq!(again, plan);

    for (sink, want) in [
        (
            "type = \"parquet\"\npath = \"x\"\npartition_by = [\"nope\"]",
            "sinks[0].partition_by[0]: \"nope\" is not an output column",
        ),
        (
            "type = \"parquet\"\npath = \"x\"\nroll_size = \"12 parsecs\"",
            "sinks[0].roll_size: unknown size unit `parsecs`",
        ),
        (
            "type = \"parquet\"\npath = \"x\"\ncompact_min_files = 1",
            "sinks[0].compact_min_files: must be at least 2",
        ),
        (
            "type = \"parquet\"\npath = \"x\"\ncompression = \"lzma\"",
            "sinks[0].compression: `lzma` is not valid; expected one of",
        ),
        (
            "type = \"parquet\"\npath = \"x\"\nrol_size = \"1MB\"",
            "sinks[0].rol_size: unknown option `rol_size` (did you mean \"roll_size\"?)",
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
        (
            "type = \"postgres\"\nurl = \"postgres://h/db\"\nmax_pending_epochs = 0",
            "sinks[0].max_pending_epochs: must be > 0",
        ),
        (
            "type = \"console\"\ntopic = \"x\"",
            "sinks[0].topic: unknown option `topic`, expected one of `format`",
        ),
        (
            "type = \"kafka\"\ntopic = \"\"",
            "sinks[0].topic: must not be empty",
        ),
        ("type = \"kafka\"", "sinks[0].topic: required"),
        (
            "type = \"s3\"",
            "sinks[0].type: unknown sink type `s3`, expected one of `console`",
        ),
    ] {
        assert_contains(&problem(&with("type = \"console\"", sink)), want);
    }
    // The default date/hour partitioning needs a window.
    let e = problem(
        &with(
            "[[sinks]]\ntype = \"console\"",
            "[[sinks]]\ntype = \"parquet\"\npath = \"x\"",
        )
        .replace("[window]\ntype = \"tumbling\"\nsize = \"10s\"\n", "")
        .replace("group_by = [\"id\"]\n", "")
        .replace("[[aggregates]]\nfunction = \"count\"\n", ""),
    );
    assert_contains(
        &e,
        "sinks[0].partition_by: the default (date and hour of window_start)",
    );
}

#[test]
fn source_problems_carry_the_source_path() {
    for (from, to, want) in [
        (
            "topics = [\"events\"]",
            "topics = []",
            "source.topics: at least one topic",
        ),
        (
            "topics = [\"events\"]",
            "topics = [\"\"]",
            "source.topics[0]: empty topic name",
        ),
        (
            "topics = [\"events\"]",
            "topics = [\"events\"]\nmax_records_per_trigger = 0",
            "source.max_records_per_trigger: must be > 0",
        ),
        (
            "[source]",
            "[source]\ntype = \"pulsar\"",
            "source.type: unknown source type `pulsar`",
        ),
    ] {
        assert_contains(&problem(&with(from, to)), want);
    }
    // A file's messages carry its path.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipeline.toml");
    std::fs::write(&path, with("topics = [\"events\"]", "topics = []")).unwrap();
    let m = load_toml_file(&path).unwrap_err().to_string();
    assert_contains(&m, "pipeline.toml: source.topics: at least one topic");
}

#[test]
fn two_branches_may_not_write_one_place() {
    let a = load_toml(&with(
        "[[sinks]]\ntype = \"console\"",
        "[[sinks]]\ntype = \"file\"\npath = \"out-a\"",
    ))
    .unwrap();
    let mut b = a.clone();
    b.name = "b".into();
    let job = |b: &Plan| Job {
        name: "job".into(),
        branches: vec![a.clone(), b.clone()],
    };
    let e = check_job(&job(&b)).unwrap_err().to_string();
    assert_contains(
        &e,
        "file sink path out-a is already written by another sink",
    );
    b.sinks = vec![ConnectorSpec::new("file").with("path", "out-b")];
    check_job(&job(&b)).unwrap();
    // Consoles are not a shared place.
    b.sinks = vec![ConnectorSpec::new("console")];
    let mut a2 = a.clone();
    a2.sinks = vec![ConnectorSpec::new("console")];
    check_job(&Job {
        name: "job".into(),
        branches: vec![a2, b],
    })
    .unwrap();
}

#[test]
fn secrets_stay_out_of_printed_plans_and_descriptions() {
    let mut plan = load_toml(&with(
        "[[sinks]]\ntype = \"console\"",
        "[[sinks]]\ntype = \"postgres\"\nurl = \"postgres://rivulet:s3cret@127.0.0.1:5432/db\"",
    ))
    .unwrap();
    plan.source.set(
        "properties.sasl.password",
        OptionValue::Text("hunter2".into()),
    );
    plan.source.set("properties.sasl.username", "alice");
    plan.sinks
        .push(ConnectorSpec::new("kafka").with("topic", "out"));
    check_plan(&plan).unwrap();
    let printed = serde_json::to_string(&redacted(&plan)).unwrap();
    assert!(
        !printed.contains("s3cret") && !printed.contains("hunter2"),
        "{printed}"
    );
    assert_contains(&printed, "alice");
    let d = describe_source(&plan).unwrap();
    let sinks = describe_sinks(&plan).unwrap().join("\n");
    for text in [&d.summary, &sinks] {
        assert!(
            !text.contains("s3cret") && !text.contains("hunter2"),
            "{text}"
        );
    }
    assert_contains(
        &sinks,
        "kafka topic out at 127.0.0.1:9092 (sasl.password=***",
    );
    // A job's target message names the server, not the password.
    let mut b = plan.clone();
    b.name = "b".into();
    let e = check_job(&Job {
        name: "j".into(),
        branches: vec![plan.clone(), b],
    })
    .unwrap_err()
    .to_string();
    assert!(!e.contains("s3cret"), "{e}");
}

#[test]
fn a_sql_declared_postgres_sink_defaults_its_table_to_the_sink_name() {
    let s = declare_sink(
        "totals",
        ConnectorSpec::new("postgres").with("url", "postgres://h/db"),
    )
    .unwrap();
    assert_eq!(
        postgres::PostgresOptions::parse(&s)
            .unwrap()
            .table_name("q"),
        "totals"
    );
    assert!(declare_sink("x", ConnectorSpec::new("nope")).is_err());
}

#[test]
fn shorthands() {
    assert_eq!(
        sink_from_shorthand("console").unwrap(),
        ConnectorSpec::new("console")
    );
    assert_eq!(
        sink_from_shorthand("file:/tmp/o").unwrap(),
        ConnectorSpec::new("file").with("path", "/tmp/o")
    );
    assert!(sink_from_shorthand("file:").is_err());
    assert!(sink_from_shorthand("s3:bucket")
        .unwrap_err()
        .contains("expected console, file:DIR"));
}

#[test]
fn the_checkpoint_store_is_read_and_checked() {
    let text = with(
        "[[sinks]]\ntype = \"console\"",
        "[[sinks]]\ntype = \"console\"\n[[sinks]]\ntype = \"kafka\"\ntopic = \"out\"\n\
         [[sinks]]\ntype = \"file\"\npath = \"out\"\n[checkpoint]\nstore = \"kafka\"",
    );
    let plan = load_toml(&text).unwrap();
    assert_eq!(
        plan.checkpoint.store,
        rivulet_engine::plan::CheckpointStoreKind::Kafka
    );
    let e = problem(&text.replace("store = \"kafka\"", "store = \"zookeeper\""));
    assert_contains(&e, "zookeeper");
}
