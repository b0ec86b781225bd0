//! `rivulet up`: one command runs broker, generator and the default query; results reach the
//! console within seconds, and Ctrl-C shuts everything down cleanly (generator first, then the
//! query's final checkpoint, then the broker's clean-shutdown marker).
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rivulet_testkit::{lines_of, storage, UP_ON_FREE_PORTS};

const BIN: &str = env!("CARGO_BIN_EXE_rivulet");

/// `rivulet up` on free ports at 2,000 events/s with its data in `data`, plus `extra` flags;
/// stdout and stderr piped.
fn spawn_up(data: &std::path::Path, extra: &[&str]) -> std::process::Child {
    Command::new(BIN)
        .args(UP_ON_FREE_PORTS)
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn up_runs_the_whole_pipeline_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = spawn_up(&data, &[]);
    let out = lines_of(child.stdout.take().unwrap());
    let err = lines_of(child.stderr.take().unwrap());

    // Wait (bounded) for a console table with all 10 ids of the default query.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stdout = Vec::new();
    let mut ids_seen = std::collections::BTreeSet::new();
    while ids_seen.len() < 10 && Instant::now() < deadline {
        if let Ok(line) = out.recv_timeout(Duration::from_millis(100)) {
            // Rows look like `|  3|2026-11-24 10:00:00|2026-11-24 10:00:10|  97| ...`.
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if cells.len() == 9 && cells[1].parse::<u64>().is_ok() {
                assert!(cells[4].parse::<u64>().unwrap() > 0, "count column: {line}");
                ids_seen.insert(cells[1].parse::<u64>().unwrap());
            }
            stdout.push(line);
        }
    }
    assert_eq!(
        ids_seen.len(),
        10,
        "expected 10 ids in the console output:\n{}",
        stdout.join("\n")
    );
    assert!(
        stdout.iter().any(|l| l.starts_with("Batch: ")),
        "Spark-like batch header"
    );
    assert!(stdout
        .iter()
        .any(|l| l.contains("window_start") && l.contains("avg_value")));

    // Ctrl-C: clean shutdown.
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "rivulet up did not stop after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr: Vec<String> = err.try_iter().collect();
    assert!(status.success(), "exit {status:?}\n{}", stderr.join("\n"));
    let log = stderr.join("\n");
    assert!(
        log.contains("progress") || log.contains("batch 0"),
        "progress lines:\n{log}"
    );
    assert!(log.contains("broker stopped cleanly"), "{log}");
    assert!(data.join("broker").join(".clean-shutdown").exists());
    // The query checkpointed: at least one committed epoch.
    let commits = data.join("checkpoints").join("stats").join("commits");
    assert!(
        std::fs::read_dir(&commits).unwrap().count() > 0,
        "no committed epoch in {commits:?}"
    );
}

/// `rivulet up --sink parquet:DIR`: the default query's results land in a Parquet dataset
/// (read back by pyarrow) once Ctrl-C stops the pipeline, and nothing goes to the console.
#[test]
fn up_writes_results_to_parquet_with_sink_flag() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let sink = format!("parquet:{}", results.display());
    let mut child = spawn_up(&dir.path().join("data"), &["--sink", &sink]);
    let out = lines_of(child.stdout.take().unwrap());
    let err = lines_of(child.stderr.take().unwrap());
    // Wait (bounded) until an epoch with results committed: the query logs a progress line
    // per micro-batch with its output rows.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut log = Vec::new();
    let produced = |l: &String| l.contains(" output rows") && !l.contains(", 0 output rows");
    while Instant::now() < deadline && !log.iter().any(produced) {
        if let Ok(l) = err.recv_timeout(Duration::from_millis(100)) {
            log.push(l);
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "exited:\n{}",
            log.join("\n")
        );
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "rivulet up did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    log.extend(err.try_iter());
    assert!(status.success(), "{}", log.join("\n"));
    let stdout: Vec<String> = out.try_iter().collect();
    assert!(
        !stdout.iter().any(|l| l.starts_with("Batch: ")),
        "--sink replaces the console sink"
    );
    let read = storage::read_parquet(&results);
    assert!(!read.rows.is_empty(), "{}", log.join("\n"));
    assert_eq!(read.schema["window_start"], "timestamp[ms, tz=UTC]");
    assert_eq!(
        read.schema["_epoch"], "int64",
        "the default query is in update mode"
    );
    assert!(read.rows.iter().all(|r| r["count"].as_i64().unwrap() > 0));
    assert!(storage::inprogress_files(&results).is_empty());
}
