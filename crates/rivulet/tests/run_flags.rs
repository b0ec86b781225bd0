//! `rivulet run` with query flags instead of (or over) a pipeline file.

use std::path::PathBuf;
use std::process::Output;

use rivulet_testkit::run_cli;

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/pipeline.toml")
}

fn rivulet(args: &[&str]) -> Output {
    run_cli(env!("CARGO_BIN_EXE_rivulet"), args)
}

fn plan_json(args: &[&str]) -> serde_json::Value {
    let out = rivulet(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("--print-plan prints JSON")
}

const EXAMPLE_FLAGS: &[&str] = &[
    "run",
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
    "--print-plan",
];

#[test]
fn flags_alone_build_the_example_pipeline() {
    let path = example();
    let path = path.to_str().expect("utf-8 path");
    let from_file = plan_json(&["run", "--pipeline", path, "--print-plan"]);
    let from_flags = plan_json(EXAMPLE_FLAGS);
    assert_eq!(from_flags, from_file);
}

#[test]
fn flags_override_the_file_and_errors_name_the_flag() {
    let path = example();
    let path = path.to_str().expect("utf-8 path");
    let p = plan_json(&[
        "run",
        "--pipeline",
        path,
        "--window",
        "hopping:10s:5s",
        "--trigger",
        "on-arrival",
        "--print-plan",
    ]);
    assert_eq!(p["window"]["type"], "hopping");
    assert_eq!(p["output"]["trigger"], "on-arrival");
    assert_eq!(p["name"], "stats");

    let out = rivulet(&[
        "run",
        "--pipeline",
        path,
        "--agg",
        "avg:vale",
        "--print-plan",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--agg 1 (aggregates[0].column): unknown column"),
        "{err}"
    );

    let out = rivulet(&["run", "--topic", "events", "--print-plan"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--schema, --event-time required"), "{err}");
}
