//! Exactly-once of `rivulet run` across SIGKILL, with the real binaries: a `rivulet broker`
//! child, a fixed seeded input produced by `rivulet gen`, and a `rivulet run` child (tumbling
//! 1 s windows per id, append mode, file, Kafka, Parquet and PostgreSQL sinks, late rows to a
//! topic) killed with -9 at seeded moments and restarted with the same flags until it has
//! consumed the whole input.
//! Afterwards the file sink and the `stats` topic must each hold every window exactly once, equal
//! to a ground truth computed with plain loops from `rivulet_gen::EventStream` (minus the rows the
//! query reported as late on the `late` topic). The storage sinks make committed rows visible
//! later (a Parquet file when it rolls, PostgreSQL when its transaction commits), so one more
//! start, stopped cleanly with SIGTERM, finishes what the last kill left; then the Parquet
//! dataset (read by pyarrow) and the PostgreSQL table (a real server started by the test) must
//! hold the same windows, each once, and no temporary file may be visible.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rivulet_gen::Event;
use rivulet_testkit::*;

const BIN: &str = env!("CARGO_BIN_EXE_rivulet");

const SEED: u64 = 20_261_124;
const COUNT: u64 = 20_000;
const KEYS: u64 = 10;
const WINDOW_MS: i64 = 1_000;
/// Event time of the closing records (one per partition) that push the watermark past every
/// real window; their own windows never close and are excluded from the comparison.
const CLOSE_MS: i64 = START_MS + 3_600_000;
const PARTITIONS: i32 = 3;
const MAX_RECORDS_PER_TRIGGER: u64 = 200;
/// Planned SIGKILLs of `rivulet run`.
const KILLS: usize = 5;
/// Bound on one `rivulet run` process's wait for progress (loaded 2-core machine).
const PROGRESS_WAIT: Duration = Duration::from_secs(180);

/// The generator run: late events, seeded (brokers and topic are given on the command line).
fn gen_config() -> rivulet_gen::GenConfig {
    quick_config("", "events", SEED, COUNT, KEYS, Mix::late(0.02, 3000))
}

/// `rivulet gen` flags for [`gen_config`].
fn gen_flags() -> Vec<String> {
    cli_flags(&gen_config())
}

/// The events `rivulet gen` produces with [`gen_flags`].
fn gen_events() -> Vec<Event> {
    expected_events(&gen_config())
}

fn pipeline_text(bootstrap: &str, dir: &Path, out: &Path, parquet: &Path, pg_url: &str) -> String {
    let sinks = format!(
        r#"{}
[[sinks]]
type = "kafka"
topic = "stats"
[[sinks]]
type = "parquet"
path = "{}"
# Rolls often, so kills land before, during and after rolls and compactions.
roll_interval = "300ms"
compact_min_files = 4
[[sinks]]
type = "postgres"
url = "{pg_url}"
table = "stats"
"#,
        file_sink(out),
        parquet.display()
    );
    plan_toml(&PlanParts {
        name: "eo-kill",
        brokers: bootstrap,
        dir,
        max_records_per_trigger: MAX_RECORDS_PER_TRIGGER,
        source_extra: "late_topic = \"late\"",
        // Idleness is measured in wall-clock time; keep it out of this test (restarts take a
        // while).
        event_time_extra: "allowed_lateness = \"1s\"\nidle_timeout = \"10m\"",
        window: "type = \"tumbling\"\nsize = \"1s\"",
        aggregates: &STANDARD_AGGREGATES.replacen(
            "[[aggregates]]\nfunction = \"avg\"",
            "[[aggregates]]\nfunction = \"sum\"\ncolumn = \"value\"\n[[aggregates]]\nfunction = \"avg\"",
            1,
        ),
        mode: "append",
        trigger: "100ms",
        sinks: &sinks,
    })
}

/// A `rivulet run` child process, its stderr appended to a log file.
struct RunProcess {
    child: Option<Child>,
    log: PathBuf,
}

impl RunProcess {
    fn start(pipeline: &Path, checkpoint: &Path, log: &Path, n: usize) -> RunProcess {
        let f = append_log(log, &format!("===== rivulet run start #{n} ====="));
        let child = Command::new(BIN)
            .arg("run")
            .arg("--pipeline")
            .arg(pipeline)
            .arg("--checkpoint-dir")
            .arg(checkpoint)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(f))
            .spawn()
            .unwrap();
        RunProcess {
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    /// Panics (with the log) when the process exited on its own.
    fn assert_running(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if let Some(st) = c.try_wait().unwrap() {
                self.child = None;
                panic!("rivulet run exited on its own: {st}; log:\n{}", self.tail());
            }
        }
    }

    /// SIGTERM (a clean stop: the epoch in flight finishes, sinks close), bounded wait.
    fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            match stop_child(&mut c, "TERM", Duration::from_secs(120)) {
                Some(st) => assert!(
                    st.success(),
                    "rivulet run exited with {st}:\n{}",
                    self.tail()
                ),
                None => panic!("rivulet run did not stop on SIGTERM:\n{}", self.tail()),
            }
        }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn tail(&self) -> String {
        log_tail(&self.log)
    }
}

impl Drop for RunProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- rivulet run log tail ----\n{}", self.tail());
        }
        self.kill9();
    }
}

/// The latest committed epoch and the end offsets of its input per partition of `events`.
fn committed_input(checkpoint: &Path) -> Option<(u64, BTreeMap<i32, i64>)> {
    let (epoch, ranges) = latest_commit(checkpoint)?;
    let ends = ranges
        .into_iter()
        .filter(|r| r.topic == "events")
        .map(|r| (r.partition, r.end))
        .collect();
    Some((epoch, ends))
}

/// Ground truth: (id, window start, window end) → aggregate over the well-formed events minus
/// the rows the query reported late (see `rivulet_testkit::on_time`).
fn expected(events: &[Event], late: &[serde_json::Value]) -> Truth {
    truth_fixed(&on_time(&well_formed(events), late), tumbling(WINDOW_MS))
}

/// Checks that `rows` hold every window of `truth` exactly once with the right aggregates.
fn check_rows(what: &str, rows: &[serde_json::Value], truth: &Truth) {
    eprintln!("checking the {what}: {} rows", rows.len());
    check_append(rows, truth, i64::MAX);
}

/// Excludes the windows of the closing records (never closed in append mode, but be explicit).
fn real_windows(rows: Vec<serde_json::Value>) -> Vec<serde_json::Value> {
    let close = rfc3339_ms(CLOSE_MS.div_euclid(WINDOW_MS) * WINDOW_MS);
    rows.into_iter()
        .filter(|r| r["window_start"].as_str() != Some(close.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_exactly_once_across_sigkill() {
    let pg = storage::PgServer::start();
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(
        BIN,
        &dir.path().join("broker-data"),
        &dir.path().join("broker.log"),
        "always",
    );
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "events", PARTITIONS, &[]).await;
    create_topic(&bootstrap, "stats", PARTITIONS, &[]).await;
    create_topic(&bootstrap, "late", 1, &[]).await;

    // The input: `rivulet gen` (the binary), then one closing record per partition.
    let mut gen = Command::new(BIN);
    gen.arg("gen")
        .arg("--brokers")
        .arg(&bootstrap)
        .arg("--topic")
        .arg("events")
        .args(gen_flags())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    run_bounded(&mut gen, Duration::from_secs(300), "rivulet gen");
    let closing: Vec<(i32, String, String)> = (0..PARTITIONS)
        .map(|p| {
            let payload = format!(
                r#"{{"id":{p},"value":1.5,"timestamp":"{}"}}"#,
                rfc3339_ms(CLOSE_MS)
            );
            (p, p.to_string(), payload)
        })
        .collect();
    produce_records(
        &bootstrap,
        "events",
        closing
            .iter()
            .map(|(p, k, v)| (Some(*p), Some(k.as_str()), v.as_str())),
    );
    let ends: BTreeMap<i32, i64> = (0..PARTITIONS)
        .map(|p| (p, watermarks(&bootstrap, "events", p).1))
        .collect();
    assert_eq!(
        ends.values().sum::<i64>(),
        COUNT as i64 + i64::from(PARTITIONS),
        "input on the broker: {ends:?}"
    );

    let out = dir.path().join("out");
    let parquet = dir.path().join("parquet");
    let checkpoint = dir.path().join("checkpoint");
    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(
        &pipeline,
        pipeline_text(&bootstrap, dir.path(), &out, &parquet, &pg.url()),
    )
    .unwrap();
    let log = dir.path().join("run.log");

    // Seeded kill points: the k-th kill once the latest committed epoch reaches a threshold in
    // the k-th slice of the first ~80% of the epochs (there are at least COUNT / max records per
    // trigger of them), then a seeded sub-trigger delay so kills land at various phases of an
    // epoch (reading, sinks, state, commit).
    let min_epochs = COUNT / MAX_RECORDS_PER_TRIGGER;
    let slice = (min_epochs * 8 / 10) / KILLS as u64;
    let mut rng = Rng::new(SEED);
    // Every other kill instead waits for an epoch in flight (`offsets/<e>` written, no
    // `commits/<e>` yet, e >= threshold) and kills at once, so the restart has to replay it.
    let plan: Vec<(u64, u64, bool)> = (0..KILLS as u64)
        .map(|k| {
            (
                2 + k * slice + rng.range(0, slice),
                rng.range(0, 250),
                k % 2 == 1,
            )
        })
        .collect();
    eprintln!("kill plan (epoch threshold, delay ms, mid-epoch): {plan:?}");

    let mut kills = 0;
    let mut starts = 0;
    let mut seen_epochs = Vec::new();
    loop {
        assert!(starts < KILLS + 5, "too many starts");
        starts += 1;
        let mut run = RunProcess::start(&pipeline, &checkpoint, &log, starts);
        let deadline = Instant::now() + PROGRESS_WAIT;
        if let Some(&(threshold, delay, mid_epoch)) = plan.get(kills) {
            loop {
                run.assert_running();
                let latest = committed_input(&checkpoint).map(|(e, _)| e);
                if mid_epoch {
                    let in_flight = latest_epoch(&checkpoint.join("offsets"));
                    if in_flight.is_some_and(|o| o >= threshold && latest.is_none_or(|c| o > c)) {
                        break;
                    }
                    // Never caught one in flight (too fast to see): kill between epochs.
                    if latest.is_some_and(|c| c >= threshold + 10) {
                        break;
                    }
                } else if latest.is_some_and(|e| e >= threshold) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "no commit >= {threshold} within {PROGRESS_WAIT:?} (latest {latest:?})"
                );
                std::thread::sleep(Duration::from_millis(if mid_epoch { 1 } else { 10 }));
            }
            if !mid_epoch {
                std::thread::sleep(Duration::from_millis(delay));
            }
            run.assert_running();
            run.kill9();
            kills += 1;
            seen_epochs.push(committed_input(&checkpoint).map(|(e, _)| e));
            continue;
        }
        // No more kills: let it consume everything. Done when the latest committed epoch's
        // input reaches the end of every partition (its output is then durable in both sinks).
        loop {
            run.assert_running();
            if let Some((_, got)) = committed_input(&checkpoint) {
                if got == ends {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the query did not consume all input within {PROGRESS_WAIT:?}: {:?} vs {ends:?}",
                committed_input(&checkpoint)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        run.kill9();
        break;
    }
    let replays = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .matches("re-running epoch")
        .count();
    eprintln!(
        "killed {kills} times; latest commit after each kill: {seen_epochs:?}; \
         {replays} restarts replayed a pending epoch"
    );
    assert!(kills >= 4);

    let late = topic_rows(&bootstrap, "late");
    assert!(
        !late.is_empty(),
        "some late events are behind the watermark"
    );
    let events = gen_events();
    let truth = expected(&events, &late);
    assert!(
        truth.len() >= 200,
        "20 s of events over 10 ids: {}",
        truth.len()
    );

    let files = real_windows(file_rows(&out));
    check_rows("file sink", &files, &truth);
    let kafka = real_windows(topic_rows(&bootstrap, "stats"));
    check_rows("kafka sink", &kafka, &truth);
    // Every record of the `stats` topic is exactly one file row (same JSON).
    let mut a: Vec<String> = files.iter().map(|r| r.to_string()).collect();
    let mut b: Vec<String> = kafka.iter().map(|r| r.to_string()).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);

    // One more start (no new input) finishes the storage sinks' committed epochs, and a clean
    // stop closes them.
    let mut run = RunProcess::start(&pipeline, &checkpoint, &log, starts + 1);
    std::thread::sleep(Duration::from_secs(2));
    run.assert_running();
    run.terminate();
    let read = storage::read_parquet(&parquet);
    check_rows("parquet sink", &real_windows(read.rows), &truth);
    assert_eq!(read.schema["window_start"], "timestamp[ms, tz=UTC]");
    let visible = storage::visible_parquet_files(&parquet);
    assert_eq!(visible.len(), read.files.len());
    assert!(
        storage::inprogress_files(&parquet).is_empty(),
        "{:?}",
        storage::inprogress_files(&parquet)
    );
    check_rows("postgres sink", &real_windows(pg.rows("stats")), &truth);
    drop(broker);
}
