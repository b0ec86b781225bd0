//! A SQL file with two INSERTs over one source, end to end against an in-process broker: the
//! topic is read and decoded once, each branch's sink equals its own ground truth, and crashes
//! at any step (including between the two branches' sink writes) change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rdkafka::Offset;
use rivulet_gen::Event;
use rivulet_runtime::query::FailPoint;
use rivulet_runtime::rows::rfc3339_ms;
use rivulet_runtime::{run_job, QuerySummary, RunOptions, RuntimeError};
use rivulet_testkit::*;
use tokio_util::sync::CancellationToken;

const KEYS: u64 = 5;
const TUMBLE_MS: i64 = 200;
const HOP_SLIDE_MS: i64 = 100;
const HOP_SIZE_MS: i64 = 300;
/// Branch two keeps only rows above this value.
const MIN_VALUE: f64 = 50.0;

/// Branch one: per id, 200 ms tumbling windows with count/avg/min/max, append. Branch two:
/// rows with value > 50, per `id % 2`, hopping 300 ms windows every 100 ms, count and max,
/// in `bucket_emit` mode. 20 ms allowed lateness, late rows to topic `late`.
fn job_sql(brokers: &str, dir: &Path, bucket_emit: &str) -> String {
    format!(
        r#"
SET name = 'fanout';
SET trigger = '50ms';
SET checkpoint.dir = '{ckpt}';
CREATE SOURCE events (id BIGINT, value DOUBLE, timestamp TIMESTAMP,
  WATERMARK FOR timestamp AS timestamp - INTERVAL '20' MILLISECOND)
WITH (connector = 'kafka', topic = 'events', brokers = '{brokers}', format = 'json',
      late.topic = 'late', max.records.per.trigger = '400', idle.timeout = '10m');
CREATE SINK per_id WITH (connector = 'file', path = '{per_id}');
CREATE SINK buckets WITH (connector = 'file', path = '{buckets}');

INSERT INTO per_id
SELECT id, window_start, window_end, count(*) AS count, avg(value) AS avg_value,
       min(value) AS min_value, max(value) AS max_value
FROM TUMBLE(events, timestamp, INTERVAL '{TUMBLE_MS}' MILLISECOND)
GROUP BY id, window_start, window_end;

INSERT INTO buckets
SELECT id % 2 AS bucket, window_start, window_end, count(*) AS n, max(value) AS max_value
FROM HOP(events, timestamp, INTERVAL '{HOP_SLIDE_MS}' MILLISECOND, INTERVAL '{HOP_SIZE_MS}' MILLISECOND)
WHERE value > {MIN_VALUE}
GROUP BY id % 2, window_start, window_end
EMIT {bucket_emit};
"#,
        ckpt = dir.join("checkpoint").display(),
        per_id = dir.join("per_id").display(),
        buckets = dir.join("buckets").display(),
    )
}

fn job(brokers: &str, dir: &Path, bucket_emit: &str) -> rivulet_engine::Job {
    rivulet_sql::compile(&job_sql(brokers, dir, bucket_emit))
        .unwrap()
        .job()
}

/// Branch one's truth: the on-time events per (id, tumbling window).
fn per_id_truth(on_time: &[Ev]) -> Truth {
    truth_fixed(on_time, |t| {
        let ws = t.div_euclid(TUMBLE_MS) * TUMBLE_MS;
        vec![(ws, ws + TUMBLE_MS)]
    })
}

/// Branch two's truth: the on-time events above [`MIN_VALUE`] per (id % 2, hopping window).
fn buckets_truth(on_time: &[Ev]) -> Truth {
    let kept: Vec<Ev> = on_time
        .iter()
        .filter(|e| e.value > MIN_VALUE)
        .map(|e| Ev {
            id: e.id % 2,
            ..e.clone()
        })
        .collect();
    truth_fixed(&kept, |t| {
        let last = t.div_euclid(HOP_SLIDE_MS) * HOP_SLIDE_MS;
        (0..HOP_SIZE_MS / HOP_SLIDE_MS)
            .map(|k| last - k * HOP_SLIDE_MS)
            .map(|s| (s, s + HOP_SIZE_MS))
            .collect()
    })
}

/// A `buckets` row's (bucket, start, end) key.
fn bucket_key(r: &serde_json::Value) -> (i64, String, String) {
    (
        r["bucket"].as_i64().unwrap(),
        r["window_start"].as_str().unwrap().to_string(),
        r["window_end"].as_str().unwrap().to_string(),
    )
}

fn truth_by_text(truth: &Truth) -> BTreeMap<(i64, String, String), &Agg> {
    truth
        .iter()
        .map(|((k, s, e), a)| ((*k, rfc3339_ms(*s), rfc3339_ms(*e)), a))
        .collect()
}

/// Append mode: each closed window once, equal to the truth; none missing.
fn check_buckets_append(rows: &[serde_json::Value], truth: &Truth, watermark: i64) {
    let want = truth_by_text(truth);
    let mut seen = BTreeSet::new();
    for r in rows {
        let k = bucket_key(r);
        assert!(seen.insert(k.clone()), "window emitted twice: {r}");
        let a = want
            .get(&k)
            .unwrap_or_else(|| panic!("row for a window not in the truth: {r}"));
        assert_eq!(r["n"].as_i64().unwrap(), a.count, "{r} vs {a:?}");
        assert_eq!(r["max_value"].as_f64().unwrap(), a.max, "{r} vs {a:?}");
    }
    let missing: Vec<_> = truth
        .keys()
        .filter(|(k, s, e)| {
            *e <= watermark && !seen.contains(&(*k, rfc3339_ms(*s), rfc3339_ms(*e)))
        })
        .collect();
    assert!(missing.is_empty(), "windows missing: {missing:?}");
}

/// Update mode: the last row of every window equals the truth.
fn check_buckets_update(rows: &[serde_json::Value], truth: &Truth) {
    let want = truth_by_text(truth);
    let mut last = BTreeMap::new();
    for r in rows {
        last.insert(bucket_key(r), r);
    }
    for (k, r) in &last {
        let a = want
            .get(k)
            .unwrap_or_else(|| panic!("row for a window not in the truth: {r}"));
        assert_eq!(r["n"].as_i64().unwrap(), a.count, "{r} vs {a:?}");
        assert_eq!(r["max_value"].as_f64().unwrap(), a.max, "{r} vs {a:?}");
    }
    let never: Vec<_> = want.keys().filter(|k| !last.contains_key(*k)).collect();
    assert!(never.is_empty(), "windows never emitted: {never:?}");
}

/// The offsets the job's consumer group committed for `topic` (bounded wait).
fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    (0..partitions)
        .zip(committed_offsets(brokers, group, topic, partitions))
        .map(|(p, o)| match o {
            Offset::Offset(o) => o,
            other => panic!("partition {p}: no committed offset ({other:?})"),
        })
        .collect()
}

fn on_time_events(events: &[Event], late: &[serde_json::Value]) -> Vec<Ev> {
    on_time(&well_formed(events), late)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_inserts_read_the_topic_once_and_match_their_truths() {
    let mut broker = TestBroker::with_partitions(3).await;
    let dir = tempfile::tempdir().unwrap();
    let events = produce_gen_events(
        &broker.bootstrap(),
        "events",
        31,
        3000,
        KEYS,
        Mix::late(0.05, 1000),
    )
    .await;
    let progress_path = dir.path().join("progress.jsonl");
    let opts = RunOptions {
        stop_when_caught_up: true,
        progress_json: Some(progress_path.clone()),
        ..RunOptions::default()
    };
    let summary = run_job(
        job(&broker.bootstrap(), dir.path(), "CHANGES"),
        opts,
        CancellationToken::new(),
    )
    .await
    .unwrap();

    // Read once: every record counted once in the summary, the progress records (one per
    // micro-batch, not per branch) and the one consumer group of the job.
    assert_eq!(summary.input_rows, 3000, "{summary:?}");
    let progress: Vec<serde_json::Value> = std::fs::read_to_string(&progress_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(progress.len() as u64, summary.epochs);
    let input: u64 = progress
        .iter()
        .map(|p| p["numInputRows"].as_u64().unwrap())
        .sum();
    assert_eq!(input, 3000);
    for p in &progress {
        assert_eq!(p["name"], "fanout");
        let names: Vec<&str> = p["branches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["per_id", "buckets"]);
        let branch_rows: u64 = p["branches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["sink"]["numOutputRows"].as_u64().unwrap())
            .sum();
        assert_eq!(branch_rows, p["sink"]["numOutputRows"].as_u64().unwrap());
        let state_branches: BTreeSet<&str> = p["stateOperators"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["branch"].as_str().unwrap())
            .collect();
        assert_eq!(state_branches, BTreeSet::from(["per_id", "buckets"]));
    }
    assert_eq!(
        committed(&broker.bootstrap(), "rivulet-fanout", "events", 3),
        end_offsets(&broker.bootstrap(), "events")
    );

    // Late rows are split off once, before the fan-out.
    let late = topic_rows(&broker.bootstrap(), "late");
    assert_eq!(late.len() as u64, summary.late_rows);
    assert!(
        summary.late_rows > 0,
        "some events are behind the watermark"
    );
    let on_time = on_time_events(&events, &late);

    let per_id = file_rows(&dir.path().join("per_id"));
    let buckets = file_rows(&dir.path().join("buckets"));
    assert!(!per_id.is_empty() && !buckets.is_empty());
    check_append(&per_id, &per_id_truth(&on_time), summary.watermark.unwrap());
    check_buckets_update(&buckets, &buckets_truth(&on_time));
    let rows: BTreeMap<&str, u64> = summary
        .branch_output_rows
        .iter()
        .map(|(n, r)| (n.as_str(), *r))
        .collect();
    assert_eq!(rows["per_id"], per_id.len() as u64);
    assert_eq!(rows["buckets"], buckets.len() as u64);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_inserts_exactly_once_across_crashes() {
    let mut broker = TestBroker::with_partitions(3).await;
    let dir = tempfile::tempdir().unwrap();
    let events = produce_gen_events(
        &broker.bootstrap(),
        "events",
        37,
        3000,
        KEYS,
        Mix::late(0.05, 1000),
    )
    .await;
    let mut rng = Rng::new(41);
    let mut last: Option<u64> = None;
    let mut crashes = 0;
    let mut between_branches = 0;
    let mut summary: Option<QuerySummary> = None;
    for attempt in 0..14 {
        let base = last.map_or(0, |c| c + 1);
        let fail = (attempt < 10).then(|| {
            if attempt == 0 {
                // Certain to be reached: the first epoch, with no epoch limit.
                return FailPoint::AfterBranchSinks(0, 0);
            }
            let e = base + rng.range(0, 3);
            match rng.range(0, 4) {
                0 => FailPoint::AfterOffsets(e),
                // Branch one's sink has the epoch, branch two's has not.
                1 => FailPoint::AfterBranchSinks(e, 0),
                2 => FailPoint::AfterSinks(e),
                _ => FailPoint::AfterState(e),
            }
        });
        let opts = RunOptions {
            stop_when_caught_up: true,
            max_epochs: fail.filter(|_| attempt > 0).map(|_| 1 + rng.range(0, 4)),
            fail_point: fail,
            ..RunOptions::default()
        };
        match run_job(
            job(&broker.bootstrap(), dir.path(), "ON WINDOW CLOSE"),
            opts,
            CancellationToken::new(),
        )
        .await
        {
            Ok(s) => {
                last = s.last_committed;
                if fail.is_none() {
                    summary = Some(s);
                    break;
                }
            }
            Err(RuntimeError::FailPoint(what)) => {
                crashes += 1;
                between_branches += u32::from(what.contains("AfterBranchSinks"));
            }
            Err(e) => panic!("attempt {attempt}: {e}"),
        }
    }
    let summary = summary.expect("a final run without a fail point");
    assert!(
        crashes > 0 && between_branches > 0,
        "{crashes} crashes, {between_branches} between branches"
    );
    let late = topic_rows(&broker.bootstrap(), "late");
    let on_time = on_time_events(&events, &late);
    let wm = summary.watermark.unwrap();
    // Both branches append: every closed window exactly once in each sink, equal to its truth.
    check_append(
        &file_rows(&dir.path().join("per_id")),
        &per_id_truth(&on_time),
        wm,
    );
    check_buckets_append(
        &file_rows(&dir.path().join("buckets")),
        &buckets_truth(&on_time),
        wm,
    );
    broker.shutdown().await;
}
