//! Golden-file tests over `tests/sql/` at the workspace root.
//!
//! - `tests/sql/plans/NAME.sql` compiles, and `rivulet sql explain` prints `NAME.plan`.
//! - `tests/sql/errors/NAME.sql` fails; its first line is `-- error: <expected message>` and
//!   the message (with its `line:column`) must be exactly that.
//!
//! `UPDATE_GOLDEN=1 cargo test -p rivulet-sql --test golden` rewrites the `.plan` files.

use std::path::{Path, PathBuf};

fn dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/sql")
        .join(sub)
}

fn sql_files(sub: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir(sub))
        .unwrap_or_else(|e| panic!("tests/sql/{sub}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .sql files in tests/sql/{sub}");
    files
}

#[test]
fn plans_match_their_golden_explain_output() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for sql in sql_files("plans") {
        let text = std::fs::read_to_string(&sql).expect("readable");
        let compiled = match rivulet_sql::compile(&text) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{}: does not compile: {e}", sql.display()));
                continue;
            }
        };
        let got = rivulet_sql::explain(&compiled);
        let golden = sql.with_extension("plan");
        if update {
            std::fs::write(&golden, &got).expect("writable");
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if got != want {
            failures.push(format!(
                "{}: explain differs from {}\n--- got\n{got}--- want\n{want}",
                sql.display(),
                golden.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn failing_queries_report_the_expected_error() {
    let mut failures = Vec::new();
    for sql in sql_files("errors") {
        let text = std::fs::read_to_string(&sql).expect("readable");
        let want = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("-- error: "))
            .unwrap_or_else(|| panic!("{}: first line must be `-- error: ...`", sql.display()))
            .trim();
        match rivulet_sql::compile(&text) {
            Ok(_) => failures.push(format!("{}: compiled, expected `{want}`", sql.display())),
            Err(e) if e.to_string() == want => {}
            Err(e) => failures.push(format!("{}:\n  got:  {e}\n  want: {want}", sql.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The SQL form of the default query is the very plan the pipeline file describes.
#[test]
fn default_query_in_sql_is_the_pipeline_file_plan() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let toml = std::fs::read_to_string(root.join("examples/pipeline.toml")).expect("readable");
    let from_toml = rivulet_sql::Plan::from_toml(&toml).expect("valid pipeline file");
    let from_sql =
        rivulet_sql::compile_file(&root.join("examples/pipeline.sql")).expect("valid SQL");
    assert_eq!(from_sql.single_plan(), Some(&from_toml));
}
