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

mod common;
#[path = "../../rivulet-runtime/tests/common/storage.rs"]
mod storage;

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rivulet_gen::{Event, EventKind, EventStream, GenArgs};
use rivulet_runtime::rows::rfc3339_ms;

const SEED: u64 = 20_261_124;
const COUNT: u64 = 20_000;
const KEYS: u64 = 10;
const START: &str = "2026-11-24T10:00:00Z";
const START_MS: i64 = 1_795_514_400_000;
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

fn gen_flags() -> Vec<String> {
    [
        "--seed",
        &SEED.to_string(),
        "--start-time",
        START,
        "--rate",
        "0",
        "--count",
        &COUNT.to_string(),
        "--keys",
        &KEYS.to_string(),
        "--late-fraction",
        "0.02",
        "--late-by",
        "3s",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The events `rivulet gen` produces with [`gen_flags`].
fn gen_events() -> Vec<Event> {
    let mut argv = vec!["gen".to_string()];
    argv.extend(gen_flags());
    let args = GenArgs::try_parse_from(argv).unwrap();
    EventStream::new(args.stream_config(SEED, START_MS))
        .unwrap()
        .take(COUNT as usize)
        .collect()
}

/// Runs a command to completion, bounded.
fn run_bounded(cmd: &mut Command, within: Duration, what: &str) {
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let deadline = Instant::now() + within;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "{what} failed: {st}");
            return;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn pipeline_text(bootstrap: &str, out: &Path, parquet: &Path, pg_url: &str) -> String {
    format!(
        r#"
name = "eo-kill"
group_by = ["id"]
[source]
brokers = "{bootstrap}"
topics = ["events"]
starting_offsets = "earliest"
max_records_per_trigger = {MAX_RECORDS_PER_TRIGGER}
late_topic = "late"
[[schema]]
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
allowed_lateness = "1s"
# Idleness is measured in wall-clock time; keep it out of this test (restarts take a while).
idle_timeout = "10m"
[window]
type = "tumbling"
size = "1s"
[[aggregates]]
function = "count"
[[aggregates]]
function = "sum"
column = "value"
[[aggregates]]
function = "avg"
column = "value"
[[aggregates]]
function = "min"
column = "value"
[[aggregates]]
function = "max"
column = "value"
[output]
mode = "append"
trigger = "100ms"
[[sinks]]
type = "file"
path = "{}"
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
        out.display(),
        parquet.display()
    )
}

/// A `rivulet run` child process, its stderr appended to a log file.
struct RunProcess {
    child: Option<Child>,
    log: PathBuf,
}

impl RunProcess {
    fn start(pipeline: &Path, checkpoint: &Path, log: &Path, n: usize) -> RunProcess {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        use std::io::Write;
        writeln!(&f, "===== rivulet run start #{n} =====").unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rivulet"))
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
            let st = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status()
                .unwrap();
            assert!(st.success());
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                if let Some(st) = c.try_wait().unwrap() {
                    assert!(
                        st.success(),
                        "rivulet run exited with {st}:\n{}",
                        self.tail()
                    );
                    return;
                }
                if Instant::now() >= deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!("rivulet run did not stop on SIGTERM:\n{}", self.tail());
                }
                std::thread::sleep(Duration::from_millis(50));
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
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = s.len().saturating_sub(8192);
        let start = (start..s.len())
            .find(|i| s.is_char_boundary(*i))
            .unwrap_or(s.len());
        s[start..].to_string()
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

/// The largest epoch number among the files of a checkpoint subdirectory.
fn latest_epoch(dir: &Path) -> Option<u64> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
}

/// The latest committed epoch and the end offsets of its input per partition of `events`
/// (from `commits/` and `offsets/<epoch>`, see rivulet-runtime's checkpoint module). `None`
/// before the first commit (or when a file vanished under a concurrent purge: ask again).
fn latest_commit(checkpoint: &Path) -> Option<(u64, BTreeMap<i32, i64>)> {
    let epoch = latest_epoch(&checkpoint.join("commits"))?;
    let text = std::fs::read_to_string(checkpoint.join("offsets").join(epoch.to_string())).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let ends = v["ranges"]
        .as_array()?
        .iter()
        .filter(|r| r["topic"] == "events")
        .map(|r| {
            (
                r["partition"].as_i64().unwrap() as i32,
                r["end"].as_i64().unwrap(),
            )
        })
        .collect();
    Some((epoch, ends))
}

#[derive(Debug, Clone, PartialEq)]
struct Agg {
    count: i64,
    sum: f64,
    min: f64,
    max: f64,
}

/// Ground truth: (id, window start) → aggregate over the well-formed events minus the rows the
/// query reported late, matched by id, event time and value (as in rivulet-runtime's
/// tests/pipeline.rs `expected()`: two events may share id and timestamp).
fn expected(events: &[Event], late: &[serde_json::Value]) -> BTreeMap<(i64, i64), Agg> {
    let mut late_values: HashMap<(i64, String), Vec<f64>> = HashMap::new();
    for l in late {
        late_values
            .entry((
                l["id"].as_i64().unwrap(),
                l["timestamp"].as_str().unwrap().to_string(),
            ))
            .or_default()
            .push(l["value"].as_f64().unwrap());
    }
    let same = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(1.0);
    let mut m: BTreeMap<(i64, i64), Agg> = BTreeMap::new();
    for e in events {
        if e.kind == EventKind::Bad {
            continue;
        }
        let id = e.id as i64;
        if let Some(vs) = late_values.get_mut(&(id, rfc3339_ms(e.timestamp_ms))) {
            if let Some(i) = vs.iter().position(|v| same(*v, e.value)) {
                vs.swap_remove(i);
                continue;
            }
        }
        let ws = e.timestamp_ms.div_euclid(WINDOW_MS) * WINDOW_MS;
        let a = m.entry((id, ws)).or_insert(Agg {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        });
        a.count += 1;
        a.sum += e.value;
        a.min = a.min.min(e.value);
        a.max = a.max.max(e.value);
    }
    assert!(
        late_values.values().all(Vec::is_empty),
        "late rows not in the input (or reported twice): {late_values:?}"
    );
    m
}

/// Checks that `rows` hold every window of `truth` exactly once with the right aggregates.
fn check_rows(what: &str, rows: &[serde_json::Value], truth: &BTreeMap<(i64, i64), Agg>) {
    let by_start: HashMap<String, i64> =
        truth.keys().map(|(_, ws)| (rfc3339_ms(*ws), *ws)).collect();
    let mut seen = BTreeMap::new();
    for r in rows {
        let id = r["id"].as_i64().unwrap();
        let ws_s = r["window_start"].as_str().unwrap();
        let ws = *by_start
            .get(ws_s)
            .unwrap_or_else(|| panic!("{what}: row for an unexpected window: {r}"));
        assert!(
            seen.insert((id, ws), r).is_none(),
            "{what}: window emitted twice: {r}"
        );
        let want = truth
            .get(&(id, ws))
            .unwrap_or_else(|| panic!("{what}: unexpected row {r}"));
        assert_eq!(r["count"].as_i64().unwrap(), want.count, "{what}: {r}");
        let sum = r["sum_value"].as_f64().unwrap();
        assert!(
            (sum - want.sum).abs() < 1e-6 * want.sum.abs().max(1.0),
            "{what}: {r} vs {want:?}"
        );
        let avg = r["avg_value"].as_f64().unwrap();
        assert!(
            (avg - want.sum / want.count as f64).abs() < 1e-6,
            "{what}: {r} vs {want:?}"
        );
        assert_eq!(r["min_value"].as_f64().unwrap(), want.min, "{what}: {r}");
        assert_eq!(r["max_value"].as_f64().unwrap(), want.max, "{what}: {r}");
        assert_eq!(
            r["window_end"].as_str().unwrap(),
            rfc3339_ms(ws + WINDOW_MS),
            "{what}: {r}"
        );
    }
    let missing: Vec<String> = truth
        .keys()
        .filter(|k| !seen.contains_key(k))
        .map(|(id, ws)| format!("({id}, {})", rfc3339_ms(*ws)))
        .collect();
    assert!(
        missing.is_empty(),
        "{what}: {} windows missing: {missing:?}",
        missing.len()
    );
    assert_eq!(seen.len(), truth.len(), "{what}");
}

fn file_rows(dir: &Path) -> Vec<serde_json::Value> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    names.sort();
    let mut rows = Vec::new();
    for p in names {
        for l in std::fs::read_to_string(&p).unwrap().lines() {
            rows.push(serde_json::from_str(l).unwrap());
        }
    }
    rows
}

fn topic_rows(bootstrap: &str, topic: &str, partitions: i32) -> Vec<serde_json::Value> {
    let mut rows = Vec::new();
    for p in 0..partitions {
        for m in read_all(bootstrap, topic, p) {
            rows.push(serde_json::from_slice(m.payload().unwrap()).unwrap());
        }
    }
    rows
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
        &dir.path().join("broker-data"),
        &dir.path().join("broker.log"),
        "always",
    );
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "events", PARTITIONS).await;
    create_topic(&bootstrap, "stats", PARTITIONS).await;
    create_topic(&bootstrap, "late", 1).await;

    // The input: `rivulet gen` (the binary), then one closing record per partition.
    let mut gen = Command::new(env!("CARGO_BIN_EXE_rivulet"));
    gen.arg("gen")
        .arg("--brokers")
        .arg(&bootstrap)
        .arg("--topic")
        .arg("events")
        .args(gen_flags())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    run_bounded(&mut gen, Duration::from_secs(300), "rivulet gen");
    let producer: BaseProducer = idempotent_producer_config(&bootstrap).create().unwrap();
    for p in 0..PARTITIONS {
        let payload = format!(
            r#"{{"id":{p},"value":1.5,"timestamp":"{}"}}"#,
            rfc3339_ms(CLOSE_MS)
        );
        let key = p.to_string();
        producer
            .send(
                BaseRecord::to("events")
                    .partition(p)
                    .key(&key)
                    .payload(&payload),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    assert_eq!(producer.in_flight_count(), 0);
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
        pipeline_text(&bootstrap, &out, &parquet, &pg.url()),
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
                let latest = latest_commit(&checkpoint).map(|(e, _)| e);
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
            seen_epochs.push(latest_commit(&checkpoint).map(|(e, _)| e));
            continue;
        }
        // No more kills: let it consume everything. Done when the latest committed epoch's
        // input reaches the end of every partition (its output is then durable in both sinks).
        loop {
            run.assert_running();
            if let Some((_, got)) = latest_commit(&checkpoint) {
                if got == ends {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the query did not consume all input within {PROGRESS_WAIT:?}: {:?} vs {ends:?}",
                latest_commit(&checkpoint)
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

    let late = topic_rows(&bootstrap, "late", 1);
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
    let kafka = real_windows(topic_rows(&bootstrap, "stats", PARTITIONS));
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
