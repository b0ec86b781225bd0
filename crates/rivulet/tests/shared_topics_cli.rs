//! Issue 11, as a user met it: three `rivulet run` queries over one topic, each in its own
//! working directory, one after the other, all with `--sink kafka:shared` and the default
//! dead-letter topic `r.dlq`. Each query is killed with -9 once after its first commit and
//! started again, then stopped with Ctrl-C (SIGINT) once it has read the whole topic.
//! Afterwards `shared` holds both windowed queries' results and `r.dlq` every query's dead
//! letters, each exactly once — before the fix, query b's results and dead letters and most of
//! query c's dead letters were silently skipped.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use rdkafka::message::{Headers, Message};
use rivulet_engine::decode::{Decoder, RawRecord};
use rivulet_gen::EventKind;
use rivulet_testkit::*;

const BIN: &str = env!("CARGO_BIN_EXE_rivulet");
const COUNT: i64 = 2000;
/// Bound on one query's wait for its input to be read (loaded 2-core machine).
const READ_WAIT: Duration = Duration::from_secs(120);

fn common_flags(brokers: &str) -> Vec<String> {
    [
        "run",
        "--brokers",
        brokers,
        "--topic",
        "r",
        "--event-time",
        "timestamp",
        "--window",
        "tumbling:1s",
        "--group-by",
        "id",
        "--mode",
        "append",
        "--trigger",
        "200ms",
        "--max-records-per-trigger",
        "1000",
        "--sink",
        "kafka:shared",
        "--starting-offsets",
        "earliest",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn spawn(dir: &Path, args: &[String]) -> Child {
    spawn_in(BIN, dir, args)
}

/// The end offset of partition 0 of `r` in the latest committed epoch of `dir`'s checkpoint.
fn committed_end(dir: &Path, name: &str) -> Option<i64> {
    let (_, ranges) = latest_commit(&dir.join("checkpoints").join(name))?;
    Some(ranges.first()?.end)
}

fn wait_for_commit(dir: &Path, name: &str, child: &mut Child, done: impl Fn(i64) -> bool) {
    let deadline = Instant::now() + READ_WAIT;
    loop {
        if committed_end(dir, name).is_some_and(&done) {
            return;
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!(
                "{name} exited on its own ({st}):\n{}",
                std::fs::read_to_string(dir.join("run.log")).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "{name}: input not read in time");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the run log's latest run says the query is idle (caught up, serving).
fn wait_for_idle(dir: &Path, name: &str, child: &mut Child) {
    let deadline = Instant::now() + READ_WAIT;
    loop {
        let log = std::fs::read_to_string(dir.join("run.log")).unwrap_or_default();
        let latest = log
            .rsplit("===== rivulet run =====")
            .next()
            .unwrap_or_default();
        if latest.contains("idle, waiting for data") {
            return;
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("{name} exited on its own ({st}):\n{log}");
        }
        assert!(Instant::now() < deadline, "{name}: never idle:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs one query: started, killed with -9 after its first commit, started again, stopped
/// with SIGINT once the whole topic is committed.
fn run_query(dir: &Path, args: &[String], name: &str) {
    let mut c = spawn(dir, args);
    wait_for_commit(dir, name, &mut c, |_| true);
    c.kill().unwrap();
    c.wait().unwrap();
    let mut c = spawn(dir, args);
    wait_for_commit(dir, name, &mut c, |end| end >= COUNT);
    // The first run may have read everything before its kill: then the checkpoint says done
    // before this run has even set up its signal handling. Stop it once it says it is idle.
    wait_for_idle(dir, name, &mut c);
    let st = stop_child(&mut c, "INT", READ_WAIT)
        .unwrap_or_else(|| panic!("{name} did not stop on SIGINT"));
    assert!(st.success(), "{name}: {st}");
}

/// Values of `topic` per query (the first part of the `rivulet.writer` header).
fn per_query(brokers: &str, topic: &str) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut out: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for m in read_all_blocking(brokers, topic, 0) {
        let writer = m
            .headers()
            .and_then(|h| h.iter().find(|x| x.key == "rivulet.writer"))
            .and_then(|x| x.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .expect("a rivulet.writer header");
        let query = writer.split('/').next().unwrap().to_string();
        out.entry(query)
            .or_default()
            .push(m.payload().unwrap_or_default().to_vec());
    }
    out
}

#[test]
fn three_queries_share_a_sink_topic_and_the_dlq() {
    let tmp = tempfile::tempdir().unwrap();
    let mut broker = broker_with_report_events(BIN, tmp.path());
    let b = broker.bootstrap();
    let queries = [
        ("a", "id:bigint,value:double,timestamp:timestamp", "count"),
        (
            "b",
            "id:bigint,value:double,timestamp:timestamp",
            "max:value",
        ),
        ("c", "id:bigint,value:string,timestamp:timestamp", "count"),
    ];
    for (name, schema, agg) in queries {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut args = common_flags(&b);
        args.extend(
            ["--name", name, "--schema", schema, "--agg", agg]
                .iter()
                .map(|s| s.to_string()),
        );
        run_query(&dir, &args, name);
    }

    // The truth: the generator's events and what each query's schema cannot decode.
    // Seed 5 from 2026-11-24T10:00:00Z, as the flags say.
    // What the reported `gen` flags above produce.
    let events = expected_events(&quick_config(&b, "r", 5, COUNT as u64, 5, Mix::bad(0.05)));
    let dead_for = |schema: &str| {
        let plan = rivulet_runtime::PlanArgs {
            topics: vec!["r".into()],
            schema: Some(schema.into()),
            event_time: Some("timestamp".into()),
            ..Default::default()
        }
        .build(None)
        .unwrap();
        let mut d = Decoder::new(&plan).unwrap();
        let mut dead: Vec<Vec<u8>> = events
            .iter()
            .filter(|e| {
                let rec = RawRecord {
                    key: Some(e.key.as_bytes()),
                    value: Some(&e.payload),
                    partition: 0,
                    offset: 0,
                    timestamp_ms: 0,
                };
                !d.decode(&[rec]).dead_letters.is_empty()
            })
            .map(|e| e.payload.clone())
            .collect();
        dead.sort();
        dead
    };
    let bad = dead_for(queries[0].1);
    assert_eq!(
        bad.len(),
        events.iter().filter(|e| e.kind == EventKind::Bad).count()
    );
    let c_dead = dead_for(queries[2].1);
    assert!(c_dead.len() > 1900, "{}", c_dead.len());

    let dlq = per_query(&b, "r.dlq");
    for (q, want) in [("a", &bad), ("b", &bad), ("c", &c_dead)] {
        let mut got = dlq.get(q).cloned().unwrap_or_default();
        got.sort();
        assert_eq!(got.len(), want.len(), "query {q}'s dead letters");
        assert!(&got == want, "query {q}'s dead letters differ");
    }
    // a and b close the same windows: one result row per id and window each, once. (c
    // decodes only the few records whose value is a string; its rows, if any, are its own.)
    let shared = per_query(&b, "shared");
    let keys = |q: &str| {
        let mut k: Vec<(i64, String)> = shared[q]
            .iter()
            .map(|v| {
                let r: serde_json::Value = serde_json::from_slice(v).unwrap();
                (
                    r["id"].as_i64().unwrap(),
                    r["window_start"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        k.sort();
        k
    };
    let (ka, kb) = (keys("a"), keys("b"));
    assert!(!ka.is_empty());
    assert_eq!(ka, kb);
    let mut dedup = ka.clone();
    dedup.dedup();
    assert_eq!(dedup, ka, "a window twice");
    broker.stop_with("TERM");
}
