//! `rivulet sql explain`, `rivulet run --sql`: the SQL form of the default query is the plan of
//! the pipeline file, explain prints the golden plan, and a bad query fails before anything
//! starts with `file:line:column: message`.

use std::path::PathBuf;
use std::process::Output;

use rivulet_testkit::run_cli;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rivulet(args: &[&str]) -> Output {
    run_cli(env!("CARGO_BIN_EXE_rivulet"), args)
}

fn stdout_of(args: &[&str]) -> String {
    let out = rivulet(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn run_sql_prints_the_same_plan_as_the_pipeline_file() {
    let sql = root().join("examples/pipeline.sql");
    let toml = root().join("examples/pipeline.toml");
    let from_sql = stdout_of(&[
        "run",
        "--sql",
        sql.to_str().expect("utf-8 path"),
        "--print-plan",
    ]);
    let from_toml = stdout_of(&[
        "run",
        "--pipeline",
        toml.to_str().expect("utf-8 path"),
        "--print-plan",
    ]);
    let a: serde_json::Value = serde_json::from_str(&from_sql).expect("JSON");
    let b: serde_json::Value = serde_json::from_str(&from_toml).expect("JSON");
    assert_eq!(a, b);
}

#[test]
fn sql_explain_prints_the_golden_plan() {
    let sql = root().join("tests/sql/plans/default.sql");
    let got = stdout_of(&["sql", "explain", sql.to_str().expect("utf-8 path")]);
    let want =
        std::fs::read_to_string(root().join("tests/sql/plans/default.plan")).expect("golden plan");
    assert_eq!(got, want);
}

#[test]
fn sql_errors_name_file_line_and_column() {
    let sql = root().join("tests/sql/errors/unknown_column.sql");
    let shown = sql.to_str().expect("utf-8 path");
    let out = rivulet(&["sql", "explain", shown]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{shown}:7:42: Schema error: No field named vale")),
        "{err}"
    );
    // `run --sql` checks the same way, before connecting anywhere.
    let out = rivulet(&["run", "--sql", shown]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{shown}:7:42:")), "{err}");
}

/// Several INSERTs over one source: explain shows the source once and every branch, `--json`
/// gives the job with one plan per branch, and flags meant for one query are refused.
#[test]
fn sql_explain_shows_every_branch_of_a_two_insert_file() {
    let sql = root().join("tests/sql/plans/two_inserts.sql");
    let shown = sql.to_str().expect("utf-8 path");
    let got = stdout_of(&["sql", "explain", shown]);
    let want = std::fs::read_to_string(root().join("tests/sql/plans/two_inserts.plan"))
        .expect("golden plan");
    assert_eq!(got, want);
    assert_eq!(got.matches("source events:").count(), 1, "{got}");
    assert!(got.contains("branch per_id (INSERT INTO per_id):"), "{got}");
    assert!(
        got.contains("branch high_buckets (INSERT INTO high_buckets):"),
        "{got}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&stdout_of(&["sql", "explain", "--json", shown])).expect("JSON");
    assert_eq!(json["name"], "fanout");
    let branches = json["branches"].as_array().expect("branches");
    let names: Vec<&str> = branches
        .iter()
        .map(|b| b["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["per_id", "high_buckets"]);
    assert_eq!(branches[0]["source"], branches[1]["source"]);
    assert_ne!(branches[0]["window"], branches[1]["window"]);

    // `run --print-plan` shows the same job; a query flag cannot say which branch it means.
    let plan: serde_json::Value =
        serde_json::from_str(&stdout_of(&["run", "--sql", shown, "--print-plan"])).expect("JSON");
    assert_eq!(plan, json);
    let out = rivulet(&["run", "--sql", shown, "--group-by", "id", "--print-plan"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 INSERTs"), "{err}");
}
