//! Regression tests for issue 11: several queries (or several runs of one query from fresh
//! checkpoints) writing into one Kafka topic. Each writer's records must be exactly its own
//! output — nothing lost because another writer's records looked like its own, nothing doubled
//! — also when every query crashes at random fail points and resumes, and when the queries run
//! at the same time. Real broker on 127.0.0.1:0, real librdkafka clients.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use rivulet_engine::decode::{Decoder, RawRecord};
use rivulet_engine::plan::Plan;
use rivulet_gen::{Event, EventKind};
use rivulet_runtime::query::FailPoint;
use rivulet_runtime::{run_query, QuerySummary, RunOptions};
use rivulet_testkit::*;
use tokio_util::sync::CancellationToken;

const WINDOW_MS: i64 = 200;
const KEYS: u64 = 5;

/// The standard test plan (count/avg/min/max of `value` per id over 200 ms tumbling windows,
/// append mode) named `name`, checkpointed under `dir`, with `sinks` and `source_extra`.
fn plan(name: &str, brokers: &str, dir: &Path, sinks: &str, source_extra: &str) -> String {
    tumbling_plan(name, brokers, dir, WINDOW_MS, "append", source_extra, sinks)
}

fn kafka_sink(topic: &str) -> String {
    format!("[[sinks]]\ntype = \"kafka\"\ntopic = \"{topic}\"")
}

/// Runs the plan `text` to completion through `crashes` short runs (see [`run_partly`]), then
/// one clean run; returns the clean run's summary and how many runs crashed.
async fn run_crashing(text: &str, seed: u64, crashes: usize) -> (QuerySummary, usize) {
    let crashed = run_partly(text, seed, crashes).await;
    let opts = RunOptions {
        stop_when_caught_up: true,
        ..RunOptions::default()
    };
    let s = run_query(
        Plan::from_toml(text).unwrap(),
        opts,
        CancellationToken::new(),
    )
    .await
    .unwrap();
    (s, crashed)
}

/// `runs` runs of the plan `text` of one to four epochs each, most stopping at a random fail
/// point (`seed` picks them); returns how many crashed. Every fail point of the epoch protocol
/// is used, including the one between the dead letters and the sinks of an epoch.
async fn run_partly(text: &str, seed: u64, runs: usize) -> usize {
    let mut rng = Rng::new(seed);
    let mut crashed = 0;
    for _ in 0..runs {
        let last = checkpoint_last_commit(text);
        let e = last.map_or(0, |c| c + 1) + rng.range(0, 3);
        let fail = match rng.range(0, 5) {
            0 => FailPoint::AfterOffsets(e),
            1 => FailPoint::AfterDeadLetters(e),
            2 => FailPoint::AfterBranchSinks(e, 0),
            3 => FailPoint::AfterSinks(e),
            _ => FailPoint::AfterState(e),
        };
        let opts = RunOptions {
            stop_when_caught_up: true,
            max_epochs: Some(1 + rng.range(0, 4)),
            fail_point: Some(fail),
            ..RunOptions::default()
        };
        match run_query(
            Plan::from_toml(text).unwrap(),
            opts,
            CancellationToken::new(),
        )
        .await
        {
            Ok(_) => {}
            Err(rivulet_runtime::RuntimeError::FailPoint(_)) => crashed += 1,
            Err(e) => panic!("{e}"),
        }
    }
    crashed
}

/// The last committed epoch in the plan's checkpoint directory (`commits/<epoch>` files).
fn checkpoint_last_commit(text: &str) -> Option<u64> {
    let plan = Plan::from_toml(text).unwrap();
    latest_epoch(&plan.checkpoint.dir.unwrap().join("commits"))
}

fn header<'a>(r: &'a Record, name: &str) -> Option<&'a str> {
    r.1.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The records of `topic` per query name (the first part of `rivulet.writer`); every record
/// must carry the writer, epoch and seq headers.
fn by_query(brokers: &str, topic: &str) -> BTreeMap<String, Vec<Record>> {
    let mut out: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    for r in read_records(brokers, topic) {
        let w = header(&r, "rivulet.writer")
            .unwrap_or_else(|| panic!("{topic}: record without rivulet.writer: {:?}", r.1))
            .to_string();
        assert!(header(&r, "rivulet.epoch").is_some() && header(&r, "rivulet.seq").is_some());
        let query = w.split('/').next().unwrap().to_string();
        out.entry(query).or_default().push(r);
    }
    out
}

fn json_rows(records: &[Record]) -> Vec<serde_json::Value> {
    records
        .iter()
        .map(|(v, _)| serde_json::from_slice(v).unwrap())
        .collect()
}

/// The record values as text, sorted (readable in a failed assertion).
fn sorted_values(records: &[Record]) -> Vec<String> {
    let mut v: Vec<String> = records
        .iter()
        .map(|(v, _)| String::from_utf8_lossy(v).into_owned())
        .collect();
    v.sort();
    v
}

/// The payloads of `events` as text, sorted.
fn payloads<'a>(events: impl Iterator<Item = &'a Event>) -> Vec<String> {
    let mut v: Vec<String> = events
        .map(|e| String::from_utf8_lossy(&e.payload).into_owned())
        .collect();
    v.sort();
    v
}

/// The payloads, sorted, of the events the plan `text` cannot decode: its dead letters.
fn undecodable(text: &str, events: &[Event]) -> Vec<String> {
    let mut d = Decoder::new(&Plan::from_toml(text).unwrap()).unwrap();
    payloads(events.iter().filter(|e| {
        let rec = RawRecord {
            key: Some(e.key.as_bytes()),
            value: Some(&e.payload),
            partition: 0,
            offset: 0,
            timestamp_ms: 0,
        };
        !d.decode(&[rec]).dead_letters.is_empty()
    }))
}

/// Checks one query's results in a shared sink topic against the ground truth, given the late
/// rows it reported into the shared late topic (each late row once).
fn check_query_output(
    name: &str,
    rows: &[serde_json::Value],
    late: &[Record],
    events: &[Event],
    watermark: Option<i64>,
) {
    let late_rows = json_rows(late);
    let mut distinct: Vec<String> = late_rows.iter().map(|v| v.to_string()).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), late_rows.len(), "{name}: a late row twice");
    let truth = truth_fixed(
        &on_time(&well_formed(events), &late_rows),
        tumbling(WINDOW_MS),
    );
    // Every window the final watermark closed is there, once, and equals the truth.
    check_append(rows, &truth, watermark.expect("a watermark"));
}

/// Two queries with identical output into one sink topic and one late topic, running at the
/// same time, each crashing at random fail points: both sets of results arrive, once each.
/// (Before the fix, the second query's results were skipped as "already written", because the
/// first query's records carried the same epochs and seqs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_queries_share_a_sink_topic() {
    let mut broker = TestBroker::with_partitions(3).await;
    let events = produce_gen_events(
        &broker.bootstrap(),
        "events",
        31,
        3000,
        KEYS,
        Mix::late(0.05, 1000),
    )
    .await;
    let da = tempfile::tempdir().unwrap();
    let db = tempfile::tempdir().unwrap();
    let extra = "late_topic = \"late\"";
    let a = plan(
        "a",
        &broker.bootstrap(),
        da.path(),
        &kafka_sink("shared"),
        extra,
    );
    let b = plan(
        "b",
        &broker.bootstrap(),
        db.path(),
        &kafka_sink("shared"),
        extra,
    );
    let ((sa, ca), (sb, cb)) = tokio::join!(run_crashing(&a, 1, 6), run_crashing(&b, 2, 6));
    assert!(ca > 0 && cb > 0, "no crash: {ca} {cb}");
    let shared = by_query(&broker.bootstrap(), "shared");
    let late = by_query(&broker.bootstrap(), "late");
    assert_eq!(shared.keys().collect::<Vec<_>>(), ["a", "b"]);
    for (q, s) in [("a", &sa), ("b", &sb)] {
        let rows = json_rows(&shared[q]);
        let no_late = Vec::new();
        let late = late.get(q).unwrap_or(&no_late);
        check_query_output(q, &rows, late, &events, s.watermark);
    }
    // Same input, same plan: the same rows.
    let mut ra: Vec<String> = json_rows(&shared["a"])
        .iter()
        .map(|v| v.to_string())
        .collect();
    let mut rb: Vec<String> = json_rows(&shared["b"])
        .iter()
        .map(|v| v.to_string())
        .collect();
    ra.sort();
    rb.sort();
    assert_eq!(ra, rb);
    broker.shutdown().await;
}

/// Three queries over one source write their dead letters to the default `<topic>.dlq`, one
/// after another with crashes in between (each resumes after the others wrote more dead
/// letters): each query's dead letters are exactly the records it cannot decode, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_queries_share_the_default_dlq() {
    let mut broker = TestBroker::with_partitions(3).await;
    let events =
        produce_gen_events(&broker.bootstrap(), "events", 5, 2000, KEYS, Mix::bad(0.05)).await;
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = plan(
        "a",
        &broker.bootstrap(),
        dirs[0].path(),
        &kafka_sink("out"),
        "",
    );
    let b = plan(
        "b",
        &broker.bootstrap(),
        dirs[1].path(),
        &kafka_sink("out"),
        "",
    );
    // Query c reads `value` as a string: most records are dead letters to it.
    let c = plan("c", &broker.bootstrap(), dirs[2].path(), "", "")
        .replace(
            "name = \"value\"\ntype = \"double\"",
            "name = \"value\"\ntype = \"string\"",
        )
        .replace(
            "[[aggregates]]\nfunction = \"avg\"\ncolumn = \"value\"\n\
             [[aggregates]]\nfunction = \"min\"\ncolumn = \"value\"\n\
             [[aggregates]]\nfunction = \"max\"\ncolumn = \"value\"\n",
            "",
        );
    assert!(c.contains("type = \"string\"") && !c.contains("function = \"avg\""));
    // Interleaved: a runs a few epochs and crashes, then b, then c, then a resumes (its
    // unfinished epoch now lies behind the others' dead letters), and so on; then each runs
    // to the end, crashing on the way.
    let mut crashed = 0;
    for round in 0..3 {
        for (i, text) in [&a, &b, &c].into_iter().enumerate() {
            crashed += run_partly(text, 100 + round * 10 + i as u64, 1).await;
        }
    }
    let mut last = Vec::new();
    for (i, text) in [&a, &b, &c].into_iter().enumerate() {
        let (s, n) = run_crashing(text, 200 + i as u64, 2).await;
        crashed += n;
        last.push(s);
    }
    assert!(crashed > 0);
    let dlq = by_query(&broker.bootstrap(), "events.dlq");
    let bad = payloads(events.iter().filter(|e| e.kind == EventKind::Bad));
    assert!(!bad.is_empty());
    assert_eq!(undecodable(&a, &events), bad);
    let c_dead = undecodable(&c, &events);
    assert!(c_dead.len() > events.len() / 2, "{}", c_dead.len());
    assert_eq!(sorted_values(&dlq["a"]), bad, "query a's dead letters");
    assert_eq!(sorted_values(&dlq["b"]), bad, "query b's dead letters");
    assert_eq!(sorted_values(&dlq["c"]), c_dead, "query c's dead letters");
    // Both a and b's results are in the shared output topic too.
    let out = by_query(&broker.bootstrap(), "out");
    assert_eq!(json_rows(&out["a"]).len(), json_rows(&out["b"]).len());
    for (q, s) in [("a", &last[0]), ("b", &last[1])] {
        check_query_output(q, &json_rows(&out[q]), &[], &events, s.watermark);
    }
    broker.shutdown().await;
}

/// A query runs to the end, its checkpoint directory is deleted and it runs again (crashing on
/// the way) into the same topics: the second run is a new writer and all its output arrives,
/// once. (Before the fix, the second run's first epochs were skipped as already written.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_from_a_fresh_checkpoint() {
    let mut broker = TestBroker::with_partitions(3).await;
    let events =
        produce_gen_events(&broker.bootstrap(), "events", 7, 2000, KEYS, Mix::bad(0.03)).await;
    let dir = tempfile::tempdir().unwrap();
    let text = plan("q", &broker.bootstrap(), dir.path(), &kafka_sink("out"), "");
    let (first, _) = run_crashing(&text, 3, 0).await;
    assert!(first.last_committed.is_some());
    let writer = |recs: &[Record]| {
        let mut w: Vec<String> = recs
            .iter()
            .map(|r| header(r, "rivulet.writer").unwrap().to_string())
            .collect();
        w.sort();
        w.dedup();
        w
    };
    let out1 = by_query(&broker.bootstrap(), "out");
    let first_writer = writer(&out1["q"]);
    assert_eq!(first_writer.len(), 1);
    std::fs::remove_dir_all(dir.path().join("checkpoint")).unwrap();
    let (second, crashed) = run_crashing(&text, 4, 5).await;
    // Same input, same plan: both runs end at the same watermark.
    assert_eq!(first.watermark, second.watermark);
    assert!(crashed > 0);
    let out = by_query(&broker.bootstrap(), "out");
    let dlq = by_query(&broker.bootstrap(), "events.dlq");
    let writers = writer(&out["q"]);
    assert_eq!(writers.len(), 2, "{writers:?}");
    let bad = payloads(events.iter().filter(|e| e.kind == EventKind::Bad));
    for w in &writers {
        let mine = |recs: &[Record]| -> Vec<Record> {
            recs.iter()
                .filter(|r| header(r, "rivulet.writer") == Some(w.as_str()))
                .cloned()
                .collect()
        };
        check_query_output(
            w,
            &json_rows(&mine(&out["q"])),
            &[],
            &events,
            first.watermark,
        );
        let dead_writer = w.replace("/sink/q/out", "/dlq/events.dlq");
        let dead: Vec<Record> = dlq["q"]
            .iter()
            .filter(|r| header(r, "rivulet.writer") == Some(dead_writer.as_str()))
            .cloned()
            .collect();
        assert_eq!(sorted_values(&dead), bad, "{dead_writer}");
    }
    broker.shutdown().await;
}

/// An epoch's replay crashes again, twice, with another query writing the same topics in
/// between: the writer's recovery floors must still lie below the first attempt's records,
/// so the third attempt neither doubles nor drops any of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_crashes_again() {
    let mut broker = TestBroker::with_partitions(3).await;
    let events =
        produce_gen_events(&broker.bootstrap(), "events", 9, 2000, KEYS, Mix::bad(0.05)).await;
    let da = tempfile::tempdir().unwrap();
    let db = tempfile::tempdir().unwrap();
    let a = plan("a", &broker.bootstrap(), da.path(), &kafka_sink("out"), "");
    let b = plan("b", &broker.bootstrap(), db.path(), &kafka_sink("out"), "");
    async fn crash(text: &str, fp: FailPoint) {
        let opts = RunOptions {
            stop_when_caught_up: true,
            fail_point: Some(fp),
            ..RunOptions::default()
        };
        let r = run_query(
            Plan::from_toml(text).unwrap(),
            opts,
            CancellationToken::new(),
        )
        .await;
        assert!(
            matches!(r, Err(rivulet_runtime::RuntimeError::FailPoint(_))),
            "{fp:?}: {r:?}"
        );
    }
    crash(&a, FailPoint::AfterSinks(1)).await;
    run_crashing(&b, 5, 0).await;
    crash(&a, FailPoint::AfterSinks(1)).await;
    crash(&a, FailPoint::AfterDeadLetters(1)).await;
    crash(&a, FailPoint::AfterState(1)).await;
    let (sa, _) = run_crashing(&a, 6, 0).await;
    let out = by_query(&broker.bootstrap(), "out");
    check_query_output("a", &json_rows(&out["a"]), &[], &events, sa.watermark);
    let bad = payloads(events.iter().filter(|e| e.kind == EventKind::Bad));
    let dlq = by_query(&broker.bootstrap(), "events.dlq");
    assert_eq!(sorted_values(&dlq["a"]), bad);
    assert_eq!(sorted_values(&dlq["b"]), bad);
    broker.shutdown().await;
}
