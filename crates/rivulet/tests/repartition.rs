//! A query spread over processes whose GROUP BY is not the input's key (issue 16): records
//! keyed (so partitioned) by `id`, grouped by `bucket = id % 4`, so every bucket's records
//! are spread over several partitions. Each process runs both stages: the shuffle sends every
//! record through `r-repartition`, keyed by its bucket, with its task's watermark into every
//! partition; the aggregating tasks take the minimum over the upstream tasks' watermarks.
//! Three processes over a 6-partition topic, one killed with -9 midway and a fourth joining:
//! the Kafka sink must hold exactly the ground-truth windows of the whole topic (as one
//! process reading every partition computes them), each once, and records older than every
//! partition's progress must land in the late-records topic, each once, as in one process.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use rdkafka::message::Message;
use rivulet_testkit::*;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rivulet");
const PARTITIONS: i32 = 6;
const EVENTS: usize = 6000;
const IDS: i64 = 24;
const BUCKETS: i64 = 4;
const LATE: usize = 12;
const WAIT: Duration = Duration::from_secs(150);

fn pipeline(brokers: &str) -> String {
    format!(
        r#"name = "r"
columns = [{{ name = "bucket", expr = "id % {BUCKETS}" }}]
group_by = ["bucket"]

[source]
brokers = "{brokers}"
topics = ["ev"]
starting_offsets = "earliest"
max_records_per_trigger = 60
late_topic = "late"
key_fields = ["id"]

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
allowed_lateness = "0s"

[window]
type = "tumbling"
size = "1s"

[[aggregates]]
function = "count"

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
trigger = "200ms"

[[sinks]]
type = "kafka"
topic = "out"

[checkpoint]
store = "kafka"
"#
    )
}

/// Input records the shuffle group holds as done.
fn shuffled(brokers: &str) -> i64 {
    committed_total(brokers, "rivulet-r-shuffle", "ev", PARTITIONS)
}

fn alive(procs: &mut [(Child, PathBuf)]) {
    for (child, dir) in procs.iter_mut() {
        if let Some(st) = child.try_wait().unwrap() {
            panic!(
                "a member exited ({st}):\n{}",
                log_tail(&dir.join("run.log"))
            );
        }
    }
}

fn wait_until(procs: &mut [(Child, PathBuf)], what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        alive(procs);
        assert!(
            Instant::now() < deadline,
            "{what} not in time:\n{}",
            log_tail(&procs[0].1.join("run.log"))
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Per aggregating task, the largest watermark its progress records (in every member's
/// progress file, the killed one's too) report.
fn task_watermarks(dirs: &[PathBuf]) -> BTreeMap<i64, String> {
    let mut m: BTreeMap<i64, String> = BTreeMap::new();
    for d in dirs {
        let Ok(text) = std::fs::read_to_string(d.join("progress.jsonl")) else {
            continue;
        };
        for l in text.lines() {
            let Ok(v) = serde_json::from_str::<Value>(l) else {
                continue;
            };
            // The shuffle's records (`r-shuffle:<p>`) share the file.
            if !v["name"].as_str().is_some_and(|n| n.starts_with("r:")) {
                continue;
            }
            let (Some(t), Some(wm)) = (
                v["task"]["id"].as_i64(),
                v["eventTime"]["watermark"].as_str(),
            ) else {
                continue;
            };
            let e = m.entry(t).or_default();
            if wm > e.as_str() {
                *e = wm.to_string();
            }
        }
    }
    m
}

/// Events in time order, each id in partition `id % 6` (keyed by id, as the generator does).
fn events() -> Vec<Ev> {
    keyed_events(21, EVENTS, IDS, PARTITIONS, START_MS)
}

#[test]
fn a_group_by_on_another_key_goes_through_a_repartition_topic_across_a_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = broker_with_topic(BIN, tmp.path(), "ev", PARTITIONS);
    let b = broker.bootstrap();
    let good = events();
    produce(&b, "ev", &good);
    let total = good.len() as i64;
    let toml = tmp.path().join("r.toml");
    std::fs::write(&toml, pipeline(&b)).unwrap();
    let flags: Vec<String> = [
        "run",
        "--pipeline",
        toml.to_str().unwrap(),
        "--progress-json",
        "progress.jsonl",
    ]
    .map(String::from)
    .to_vec();
    let spawn = |name: &str| {
        let dir = tmp.path().join(name);
        (spawn_in(BIN, &dir, &flags), dir)
    };
    let mut procs: Vec<(Child, PathBuf)> = ["a", "b", "c"].iter().map(|n| spawn(n)).collect();
    wait_until(&mut procs, "a fifth of the input shuffled", || {
        shuffled(&b) >= total / 5
    });
    let (mut killed, killed_dir) = procs.remove(1);
    killed.kill().unwrap();
    killed.wait().unwrap();
    assert!(
        shuffled(&b) < total,
        "everything was shuffled before the kill: the test proves nothing"
    );
    procs.push(spawn("d"));
    wait_until(&mut procs, "the whole input shuffled", || {
        shuffled(&b) >= total
    });
    // Once every aggregating task has a watermark past the start, records from before it are
    // late wherever they are read, as they are for one process reading every partition.
    let mut dirs: Vec<PathBuf> = procs.iter().map(|(_, d)| d.clone()).collect();
    dirs.push(killed_dir.clone());
    let start = rfc3339_ms(START_MS);
    wait_until(&mut procs, "every task's watermark past the start", || {
        let w = task_watermarks(&dirs);
        w.len() == PARTITIONS as usize && w.values().all(|wm| *wm >= start)
    });
    let late: Vec<Ev> = (0..LATE)
        .map(|i| {
            let id = i as i64 % IDS;
            Ev {
                partition: (id % i64::from(PARTITIONS)) as i32,
                id,
                ts: START_MS - 60_000 + i as i64,
                value: 1.0,
            }
        })
        .collect();
    produce(&b, "ev", &late);
    // The windows every partition's progress has closed (lateness 0).
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for e in &good {
        let m = last.entry(e.partition).or_insert(e.ts);
        *m = (*m).max(e.ts);
    }
    let watermark = *last.values().min().unwrap();
    let by_bucket: Vec<Ev> = good
        .iter()
        .map(|e| Ev {
            id: e.id % BUCKETS,
            ..e.clone()
        })
        .collect();
    let truth = truth_fixed(&by_bucket, tumbling(1000));
    let expected = truth.keys().filter(|k| k.2 <= watermark).count();
    wait_until(
        &mut procs,
        "every closed window and late record out",
        || read_messages(&b, "out").len() >= expected && read_messages(&b, "late").len() >= LATE,
    );
    // Time for a doubled write to show.
    std::thread::sleep(Duration::from_secs(2));
    for (child, dir) in procs.iter_mut() {
        let st = stop_child(child, "INT", WAIT).expect("a member stops on SIGINT");
        assert!(st.success(), "{}", log_tail(&dir.join("run.log")));
    }
    let rows: Vec<Value> = read_messages(&b, "out")
        .iter()
        .map(|m| {
            let mut r: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            r["id"] = r["bucket"].clone();
            r
        })
        .collect();
    check_append(&rows, &truth, watermark);
    let mut late_out: Vec<i64> = read_messages(&b, "late")
        .iter()
        .map(|m| {
            let r: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            r["id"].as_i64().unwrap()
        })
        .collect();
    late_out.sort_unstable();
    let late_want: Vec<i64> = late.iter().map(|e| e.id).collect();
    assert_eq!(late_out, late_want, "late records, each once");
    // Both stages ran in every member: each member's progress file holds records of shuffle
    // tasks and of aggregating tasks, and together they cover all six of each.
    let mut shuffle_tasks = std::collections::BTreeSet::new();
    for d in ["a", "c", "d"] {
        let text = std::fs::read_to_string(tmp.path().join(d).join("progress.jsonl")).unwrap();
        let names: Vec<String> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v["name"].as_str().map(String::from))
            .collect();
        assert!(
            names.iter().any(|n| n.starts_with("r-shuffle:"))
                && names.iter().any(|n| n.starts_with("r:")),
            "{d} did not run both stages: {names:?}"
        );
        shuffle_tasks.extend(
            names
                .iter()
                .filter_map(|n| n.strip_prefix("r-shuffle:").map(String::from)),
        );
    }
    assert_eq!(
        shuffle_tasks.len(),
        PARTITIONS as usize,
        "{shuffle_tasks:?}"
    );
    assert_eq!(
        partition_count(&b, "r-repartition"),
        Some(PARTITIONS as usize)
    );
    assert_eq!(
        partition_count(&b, "r-shuffle-changelog"),
        Some(PARTITIONS as usize)
    );
    drop(broker);
}
