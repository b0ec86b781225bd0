//! Golden end-to-end tests of streaming SQL through the real broker (`tests/sql/e2e/`, format
//! in `tests/sql/README.md`).
//!
//! For every `NAME.sql`: a fresh single-partition topic on an in-process broker gets the lines
//! of `NAME.input.jsonl` as record values, in file order; the query is compiled with
//! `rivulet_sql::compile` (`${BROKERS}` and `${TOPIC}` substituted) and pointed at that topic,
//! from the earliest offset, with a file sink in a temporary directory, trigger on-arrival and
//! one record per micro-batch unless the file sets `max.records.per.trigger` (so the epochs,
//! and with them the watermark each record meets, are the same in every run). It then runs
//! twice, each bounded by `stop_when_caught_up`:
//!
//! - (a) uninterrupted;
//! - (b) with an in-process crash (a fail point) in the middle epoch, then a restart from the
//!   same checkpoint directory.
//!
//! Both outputs must equal `NAME.expected.jsonl` exactly (with several INSERTs, each sink its
//! own `NAME.expected.<sink>.jsonl`): the same rows in the same order
//! (epoch order, canonical order within an epoch). With one partition and fixed epochs that
//! order is deterministic, EMIT CHANGES updates included. When `NAME.late.jsonl` exists, late
//! rows go to a late topic and must equal it too (metadata columns `_...` left out). A file
//! whose first line is `-- error: <text>` must fail (compile or run) with an error containing
//! that text. `pending/` is skipped (queries for features still being built).
//!
//! `RIVULET_BLESS=1` writes a missing expected file from run (a): every blessed file must then
//! be checked by hand against the input before it is committed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use rivulet_engine::plan::{DurationMs, OptionValue, TriggerSpec};
use rivulet_engine::Job;
use rivulet_runtime::connectors::{file, kafka};
use rivulet_runtime::query::FailPoint;
use rivulet_runtime::{run_job, QuerySummary, RunOptions, RuntimeError};
use rivulet_testkit::{create_topic, file_rows, produce_records, topic_rows, TestBroker};
use tokio_util::sync::CancellationToken;

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/sql/e2e")
}

/// The `.sql` files of the folder (not of `pending/`), sorted.
fn cases() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(e2e_dir())
        .expect("tests/sql/e2e")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    files
}

fn sibling(sql: &Path, suffix: &str) -> PathBuf {
    let stem = sql.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    sql.with_file_name(format!("{stem}.{suffix}"))
}

/// JSON lines of a file (blank lines skipped); `None` when the file does not exist.
fn read_jsonl(path: &Path) -> Option<Vec<serde_json::Value>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{}: bad JSON line {l:?}: {e}", path.display()))
            })
            .collect(),
    )
}

/// Produces `lines` as record values to partition 0, in order (idempotent, so no reordering).
fn produce_lines(brokers: &str, topic: &str, lines: &[String]) {
    produce_records(
        brokers,
        topic,
        lines.iter().map(|l| (Some(0), None, l.as_str())),
    );
}

/// The case's job, pointed at `topic`: one INSERT writes to a file sink in `out`; with
/// several, each INSERT writes to `out/<its sink>`.
fn case_job(
    text: &str,
    brokers: &str,
    topic: &str,
    out: &Path,
    late: Option<&str>,
) -> Result<Job, String> {
    let text = text
        .replace("${BROKERS}", brokers)
        .replace("${TOPIC}", topic);
    let script = rivulet_sql::compile(&text).map_err(|e| format!("does not compile: {e}"))?;
    let single = script.branches.len() == 1;
    let mut job = script.job();
    for (plan, branch) in job.branches.iter_mut().zip(&script.branches) {
        kafka::set_brokers(&mut plan.source, brokers);
        kafka::set_topics(&mut plan.source, &[topic.to_string()]);
        kafka::set_starting_offsets(&mut plan.source, kafka::StartingOffsets::Earliest);
        // One record per micro-batch unless the case says otherwise.
        let limit = ["max_records_per_trigger", "max.records.per.trigger"]
            .iter()
            .find_map(|k| plan.source.get(k))
            .map(|v| v.to_string().parse::<u64>().unwrap());
        kafka::set_max_records_per_trigger(&mut plan.source, Some(limit.unwrap_or(1)));
        for k in ["late_topic", "late.topic"] {
            plan.source.options.remove(k);
        }
        if let Some(l) = late {
            plan.source.set("late_topic", OptionValue::from(l));
        }
        // Idleness is processing time: a slow machine must not make the partition idle and
        // move the watermark on its own.
        plan.event_time.idle_timeout = DurationMs(600_000);
        plan.output.trigger = TriggerSpec::OnArrival;
        let path = match single {
            true => out.to_path_buf(),
            false => out.join(&branch.sink_name),
        };
        plan.sinks = vec![file::spec(path)];
    }
    Ok(job)
}

/// The sinks of a case: `None` for the one sink of a single INSERT (`NAME.expected.jsonl`),
/// else each sink's name (`NAME.expected.<sink>.jsonl`).
fn case_sinks(text: &str) -> Vec<Option<String>> {
    match rivulet_sql::compile(text) {
        Ok(s) if s.branches.len() > 1 => s
            .branches
            .iter()
            .map(|b| Some(b.sink_name.clone()))
            .collect(),
        _ => vec![None],
    }
}

fn options(checkpoint: &Path, fail_point: Option<FailPoint>) -> RunOptions {
    RunOptions {
        stop_when_caught_up: true,
        checkpoint_dir: Some(checkpoint.to_path_buf()),
        fail_point,
        ..RunOptions::default()
    }
}

/// Late rows without the metadata columns (Kafka timestamps differ between runs).
fn without_metadata(rows: Vec<serde_json::Value>) -> Vec<serde_json::Value> {
    rows.into_iter()
        .map(|mut r| {
            if let Some(o) = r.as_object_mut() {
                o.retain(|k, _| !k.starts_with('_'));
            }
            r
        })
        .collect()
}

fn show(rows: &[serde_json::Value]) -> String {
    rows.iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A failure message when `got` is not `want`.
fn differs(
    name: &str,
    what: &str,
    got: &[serde_json::Value],
    want: &[serde_json::Value],
) -> Option<String> {
    (got != want).then(|| {
        format!(
            "{name}: {what}\n--- got\n{}\n--- want\n{}",
            show(got),
            show(want)
        )
    })
}

/// What one run produced.
struct Output {
    /// Per sink, in [`case_sinks`] order.
    rows: Vec<Vec<serde_json::Value>>,
    late: Vec<serde_json::Value>,
}

/// Runs one case; returns its failures (empty when it passed).
async fn run_case(broker: &TestBroker, sql: &Path, index: usize) -> Vec<String> {
    let name = sql.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    let text = std::fs::read_to_string(sql).unwrap();
    let input: Vec<String> = std::fs::read_to_string(sibling(sql, "input.jsonl"))
        .unwrap_or_else(|e| panic!("{name}: {name}.input.jsonl: {e}"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    let topic = format!("golden-{name}");
    create_topic(&broker.bootstrap(), &topic, 1, &[]).await;
    produce_lines(&broker.bootstrap(), &topic, &input);

    let expected_error = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("-- error: "))
        .map(|e| e.trim().to_string());
    if let Some(want) = expected_error {
        let dir = tempfile::tempdir().unwrap();
        let got = match case_job(
            &text,
            &broker.bootstrap(),
            &topic,
            &dir.path().join("out"),
            None,
        ) {
            Err(e) => e,
            Ok(job) => {
                match run_job(
                    job,
                    options(&dir.path().join("cp"), None),
                    CancellationToken::new(),
                )
                .await
                {
                    Ok(s) => return vec![format!("{name}: ran ({s:?}), expected `{want}`")],
                    Err(e) => e.to_string(),
                }
            }
        };
        return if got.contains(&want) {
            Vec::new()
        } else {
            vec![format!("{name}:\n  got:  {got}\n  want: {want}")]
        };
    }

    let expected_late = read_jsonl(&sibling(sql, "late.jsonl"));
    let sinks = case_sinks(&text);
    let run = |tag: &'static str, crash: Option<FailPoint>| {
        let text = text.clone();
        let topic = topic.clone();
        let brokers = broker.bootstrap().clone();
        let with_late = expected_late.is_some();
        let sinks = sinks.clone();
        async move {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join("out");
            let cp = dir.path().join("checkpoint");
            let late_topic = format!("{topic}.late.{tag}");
            let late = with_late.then_some(late_topic.as_str());
            if let Some(fp) = crash {
                let job = case_job(&text, &brokers, &topic, &out, late)?;
                match run_job(job, options(&cp, Some(fp)), CancellationToken::new()).await {
                    Err(RuntimeError::FailPoint(_)) => {}
                    Ok(s) => return Err(format!("run {tag}: no crash at {fp:?}: {s:?}")),
                    Err(e) => return Err(format!("run {tag}: {e}")),
                }
            }
            let job = case_job(&text, &brokers, &topic, &out, late)?;
            let summary: QuerySummary =
                match run_job(job, options(&cp, None), CancellationToken::new()).await {
                    Ok(s) => s,
                    Err(e) => return Err(format!("run {tag}: {e}")),
                };
            let late = match with_late {
                true => without_metadata(topic_rows(&brokers, &late_topic)),
                false => Vec::new(),
            };
            Ok((
                Output {
                    rows: sinks
                        .iter()
                        .map(|s| match s {
                            None => file_rows(&out),
                            Some(sink) => file_rows(&out.join(sink)),
                        })
                        .collect(),
                    late,
                },
                summary.last_committed.map_or(0, |c| c + 1),
            ))
        }
    };
    let (a, epochs) = match run("a", None).await {
        Ok(r) => r,
        Err(e) => return vec![format!("{name}: {e}")],
    };
    let mut expected = Vec::new();
    for (i, sink) in sinks.iter().enumerate() {
        let suffix = match sink {
            None => "expected.jsonl".to_string(),
            Some(s) => format!("expected.{s}.jsonl"),
        };
        let expected_path = sibling(sql, &suffix);
        expected.push(match read_jsonl(&expected_path) {
            Some(rows) => rows,
            None if std::env::var_os("RIVULET_BLESS").is_some() => {
                let text: String = a.rows[i].iter().map(|r| format!("{r}\n")).collect();
                std::fs::write(&expected_path, text).unwrap();
                eprintln!(
                    "{name}: wrote {} from the engine's output: CHECK IT BY HAND against the input",
                    expected_path.display()
                );
                a.rows[i].clone()
            }
            None => {
                return vec![format!(
                    "{name}: no {name}.{suffix} (RIVULET_BLESS=1 writes it)"
                )]
            }
        });
    }
    let mut failures = Vec::new();
    for (i, want) in expected.iter().enumerate() {
        failures.extend(differs(name, "run (a) output", &a.rows[i], want));
    }
    if let Some(late) = &expected_late {
        failures.extend(differs(name, "run (a) late rows", &a.late, late));
    }
    // (b): crash in the middle epoch, at a step that varies with the case.
    let middle = epochs / 2;
    let fp = match index % 3 {
        0 => FailPoint::AfterOffsets(middle),
        1 => FailPoint::AfterSinks(middle),
        _ => FailPoint::AfterState(middle),
    };
    match run("b", Some(fp)).await {
        Ok((b, _)) => {
            let what = format!("run (b) output, crash {fp:?}");
            for (i, want) in expected.iter().enumerate() {
                failures.extend(differs(name, &what, &b.rows[i], want));
            }
            if let Some(late) = &expected_late {
                let what = format!("run (b) late rows, crash {fp:?}");
                failures.extend(differs(name, &what, &b.late, late));
            }
        }
        Err(e) => failures.push(format!("{name}: {e}")),
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_queries_give_their_golden_output_through_the_broker_and_across_a_crash() {
    let files = cases();
    assert!(!files.is_empty(), "no .sql files in tests/sql/e2e");
    let mut broker = TestBroker::with_partitions(1).await;
    let mut failures = Vec::new();
    for (i, sql) in files.iter().enumerate() {
        failures.extend(run_case(&broker, sql, i).await);
    }
    broker.shutdown().await;
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every expected file belongs to a query, and every query has its input.
#[test]
fn the_e2e_folder_is_complete() {
    for dir in [e2e_dir(), e2e_dir().join("pending")] {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.filter_map(Result::ok) {
            let p = e.path();
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            // NAME.expected.jsonl, or NAME.expected.<sink>.jsonl for several INSERTs.
            let per_sink = name
                .strip_suffix(".jsonl")
                .and_then(|n| n.rsplit_once(".expected."))
                .map(|(stem, _)| stem);
            if let Some(stem) = name
                .strip_suffix(".input.jsonl")
                .or_else(|| name.strip_suffix(".expected.jsonl"))
                .or(per_sink)
                .or_else(|| name.strip_suffix(".late.jsonl"))
            {
                assert!(
                    dir.join(format!("{stem}.sql")).exists(),
                    "{}: no {stem}.sql",
                    p.display()
                );
            } else if name.ends_with(".sql") {
                let stem = name.trim_end_matches(".sql");
                assert!(
                    dir.join(format!("{stem}.input.jsonl")).exists(),
                    "{}: no {stem}.input.jsonl",
                    p.display()
                );
            }
        }
    }
}
