//! Hopping and session windows, an idle partition and a 6-partition topic, end to end against
//! an in-process broker, each compared with a naive ground truth computed with plain loops.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use rivulet_engine::plan::Plan;
use rivulet_runtime::rows::rfc3339_ms;
use rivulet_runtime::{run_query, QuerySummary, RunOptions};
use rivulet_testkit::*;
use tokio_util::sync::CancellationToken;

async fn run_to_end(text: &str, dir: &Path) -> QuerySummary {
    let plan = Plan::from_toml(text).unwrap();
    let opts = RunOptions {
        stop_when_caught_up: true,
        progress_json: Some(dir.join("progress.jsonl")),
        ..RunOptions::default()
    };
    tokio::time::timeout(
        Duration::from_secs(300),
        run_query(plan, opts, CancellationToken::new()),
    )
    .await
    .expect("query did not finish within 300 s")
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hopping_windows_append_mode() {
    const SIZE: i64 = 2_000;
    const SLIDE: i64 = 500;
    let mut broker = TestBroker::with_partitions(3).await;
    let dir = tempfile::tempdir().unwrap();
    let events = produce_gen(
        &broker.bootstrap(),
        "events",
        31,
        6_000,
        5,
        Mix::late(0.05, 1000),
    )
    .await;
    let text = plan_text(
        "hop",
        &broker.bootstrap(),
        dir.path(),
        "type = \"hopping\"\nsize = \"2s\"\nslide = \"500ms\"",
        "allowed_lateness = \"200ms\"\nidle_timeout = \"10m\"",
        "append",
        "50ms",
    );
    let summary = run_to_end(&text, dir.path()).await;
    assert_eq!(summary.input_rows, 6_000);
    let late = topic_rows(&broker.bootstrap(), "late");
    assert_eq!(late.len() as u64, summary.late_rows);
    assert!(!late.is_empty());
    // Naive hopping assignment: every start s = k·slide with s <= t < s + size.
    let truth = truth_fixed(&on_time(&events, &late), |t| {
        let mut v = Vec::new();
        let mut s = t.div_euclid(SLIDE) * SLIDE;
        while s + SIZE > t {
            v.push((s, s + SIZE));
            s -= SLIDE;
        }
        v
    });
    let rows = file_rows(&dir.path().join("out"));
    let wm = summary.watermark.unwrap();
    assert!(rows.len() > 20, "{} rows", rows.len());
    check_append(&rows, &truth, wm);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_windows_append_mode() {
    const GAP: i64 = 300;
    let mut broker = TestBroker::with_partitions(3).await;
    let dir = tempfile::tempdir().unwrap();
    // Ids 0..6, id i on partition i % 3. Per partition, time mostly advances in small steps
    // with an occasional pause longer than the gap, plus up to 50 ms of disorder (below the
    // allowed lateness, so nothing is late).
    let mut rng = Rng::new(77);
    let mut events = Vec::new();
    for p in 0..3i32 {
        let mut cursor = START_MS;
        for _ in 0..400 {
            cursor += if rng.range(0, 10) < 8 {
                rng.range(0, 120) as i64
            } else {
                rng.range(250, 900) as i64
            };
            let id = i64::from(p) + 3 * rng.range(0, 2) as i64;
            events.push(Ev {
                partition: p,
                id,
                ts: cursor - rng.range(0, 50) as i64,
                value: rng.value(),
            });
        }
    }
    produce(&broker.bootstrap(), "events", &events);
    let text = plan_text(
        "session",
        &broker.bootstrap(),
        dir.path(),
        "type = \"session\"\ngap = \"300ms\"",
        "allowed_lateness = \"100ms\"\nidle_timeout = \"10m\"",
        "append",
        "50ms",
    );
    let summary = run_to_end(&text, dir.path()).await;
    assert_eq!(summary.input_rows, events.len() as u64);
    let late = topic_rows(&broker.bootstrap(), "late");
    assert_eq!(late.len() as u64, summary.late_rows);
    // Naive sessions: per id, on-time events sorted by time; an event less than the gap after
    // the previous one joins its session; a session spans [first, last + gap).
    let mut truth = Truth::new();
    let good = on_time(&events, &late);
    for id in 0..6 {
        let mut evs: Vec<&Ev> = good.iter().filter(|e| e.id == id).collect();
        evs.sort_by_key(|e| e.ts);
        let mut i = 0;
        while i < evs.len() {
            let start = evs[i].ts;
            let mut agg = Agg::new();
            agg.add(evs[i].value);
            let mut last = evs[i].ts;
            i += 1;
            while i < evs.len() && evs[i].ts - last < GAP {
                agg.add(evs[i].value);
                last = evs[i].ts;
                i += 1;
            }
            truth.insert((id, start, last + GAP), agg);
        }
    }
    let sessions_per_id = truth.len() / 6;
    assert!(sessions_per_id > 10, "{} sessions", truth.len());
    let rows = file_rows(&dir.path().join("out"));
    check_append(&rows, &truth, summary.watermark.unwrap());
    assert!(
        rows.len() * 10 > truth.len() * 8,
        "most sessions are closed"
    );
    broker.shutdown().await;
}

/// The latest committed epoch's input end offsets per partition (checkpoint `offsets/<epoch>`).
fn committed_ends(checkpoint: &Path) -> Option<Vec<(i64, i64)>> {
    let (_, ranges) = latest_commit(checkpoint)?;
    let mut ends: Vec<(i64, i64)> = ranges
        .iter()
        .map(|r| (i64::from(r.partition), r.end))
        .collect();
    ends.sort();
    Some(ends)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_partition_does_not_hold_the_watermark_forever() {
    const WINDOW: i64 = 500;
    let mut broker = TestBroker::with_partitions(3).await;
    create_topic(&broker.bootstrap(), "events", 3, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(5);
    // Partition 2 (ids 2 and 5) has data only at the start; partitions 0 and 1 start at the
    // same event times and keep going.
    let mut events: Vec<Ev> = Vec::new();
    for p in 0..3i32 {
        for k in 0..10 {
            events.push(Ev {
                partition: p,
                id: i64::from(p) + 3 * (k % 2),
                ts: START_MS + k * 10,
                value: rng.value(),
            });
        }
    }
    let silent_last = START_MS + 90;
    produce(&broker.bootstrap(), "events", &events);
    let text = plan_text(
        "idle",
        &broker.bootstrap(),
        dir.path(),
        "type = \"tumbling\"\nsize = \"500ms\"",
        "allowed_lateness = \"100ms\"\nidle_timeout = \"1s\"",
        "append",
        "100ms",
    );
    let plan = Plan::from_toml(&text).unwrap();
    let cancel = CancellationToken::new();
    let query = tokio::spawn(run_query(
        plan,
        RunOptions {
            progress_json: Some(dir.path().join("progress.jsonl")),
            ..RunOptions::default()
        },
        cancel.clone(),
    ));
    // Wait until the initial data of every partition is committed: partition 2's rows are then
    // aggregated, before any idle timeout could have made them late.
    let checkpoint = dir.path().join("checkpoint");
    let deadline = Instant::now() + Duration::from_secs(120);
    while committed_ends(&checkpoint) != Some(vec![(0, 10), (1, 10), (2, 10)]) {
        assert!(!query.is_finished(), "query stopped");
        assert!(Instant::now() < deadline, "initial data not consumed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Feed partitions 0 and 1 (event time advancing 100 ms per 100 ms) until a window ending
    // 3 s after partition 2's last event is emitted: only possible once partition 2 is idle.
    let target = rfc3339_ms(silent_last + 3_000);
    let out = dir.path().join("out");
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut t = START_MS + 100;
    let mut reached = false;
    for _ in 0..1_500 {
        let mut chunk = Vec::new();
        for p in 0..2i32 {
            for k in 0..5 {
                chunk.push(Ev {
                    partition: p,
                    id: i64::from(p) + 3 * (k % 2),
                    ts: t + k * 20,
                    value: rng.value(),
                });
            }
        }
        t += 100;
        let brokers = broker.bootstrap().clone();
        let c = chunk.clone();
        tokio::task::spawn_blocking(move || produce(&brokers, "events", &c))
            .await
            .unwrap();
        events.extend(chunk);
        if file_rows(&out)
            .iter()
            .any(|r| r["window_end"].as_str().unwrap() >= target.as_str())
        {
            reached = true;
            break;
        }
        assert!(!query.is_finished(), "query stopped");
        assert!(
            Instant::now() < deadline,
            "no window ending at {target} within 180 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reached);
    cancel.cancel();
    let summary = tokio::time::timeout(Duration::from_secs(60), query)
        .await
        .expect("query did not stop")
        .unwrap()
        .unwrap();
    let late = topic_rows(&broker.bootstrap(), "late");
    assert_eq!(late.len() as u64, summary.late_rows);
    // Nothing of the silent partition was dropped as late.
    assert!(
        late.iter()
            .all(|l| !matches!(l["id"].as_i64(), Some(2) | Some(5))),
        "late rows of the silent partition: {late:?}"
    );
    let truth = truth_fixed(&on_time(&events, &late), |t| {
        let s = t.div_euclid(WINDOW) * WINDOW;
        vec![(s, s + WINDOW)]
    });
    let wm = summary.watermark.unwrap();
    assert!(wm >= silent_last + 3_000, "watermark {}", rfc3339_ms(wm));
    let rows = file_rows(&out);
    check_append(&rows, &truth, wm);
    // The silent partition's windows were emitted, complete.
    for id in [2, 5] {
        let ws = START_MS.div_euclid(WINDOW) * WINDOW;
        let want = &truth[&(id, ws, ws + WINDOW)];
        assert_eq!(want.count, 5);
        assert!(rows.iter().any(|r| r["id"].as_i64() == Some(id)
            && r["window_start"].as_str() == Some(rfc3339_ms(ws).as_str())
            && r["count"].as_i64() == Some(5)));
    }
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_partitions_update_mode() {
    const WINDOW: i64 = 500;
    let mut broker = TestBroker::with_partitions(6).await;
    create_topic(&broker.bootstrap(), "events", 6, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let events = produce_gen(
        &broker.bootstrap(),
        "events",
        47,
        6_000,
        12,
        Mix::late(0.05, 1000),
    )
    .await;
    let ends = end_offsets(&broker.bootstrap(), "events");
    assert_eq!(ends.len(), 6);
    assert!(
        ends.iter().all(|e| *e > 0),
        "keys spread over all partitions: {ends:?}"
    );
    // Idleness is processing time: a long idle timeout keeps a loaded machine from turning a
    // slow partition idle, which would change which rows are late (seen once under load).
    let text = plan_text(
        "six",
        &broker.bootstrap(),
        dir.path(),
        "type = \"tumbling\"\nsize = \"500ms\"",
        "allowed_lateness = \"200ms\"\nidle_timeout = \"10m\"",
        "update",
        "50ms",
    );
    let summary = run_to_end(&text, dir.path()).await;
    assert_eq!(summary.input_rows, 6_000);
    let late = topic_rows(&broker.bootstrap(), "late");
    assert_eq!(late.len() as u64, summary.late_rows);
    let truth = truth_fixed(&on_time(&events, &late), |t| {
        let s = t.div_euclid(WINDOW) * WINDOW;
        vec![(s, s + WINDOW)]
    });
    assert!(truth.len() >= 12 * 12, "{} windows", truth.len());
    let rows = file_rows(&dir.path().join("out"));
    check_update(&rows, &truth);
    broker.shutdown().await;
}

/// HAVING and a SELECT list (DataFusion expressions over the aggregates, in their own column
/// order) on tumbling windows: each emitted row is a ground-truth window that passes the HAVING
/// condition, with the computed columns right, and every such window is emitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn having_and_select_over_tumbling_windows() {
    const SIZE: i64 = 100;
    let mut broker = TestBroker::with_partitions(2).await;
    let dir = tempfile::tempdir().unwrap();
    let events = produce_gen(
        &broker.bootstrap(),
        "events",
        57,
        4_000,
        8,
        Mix::late(0.02, 1000),
    )
    .await;
    let text = plan_text(
        "shaped",
        &broker.bootstrap(),
        dir.path(),
        "type = \"tumbling\"\nsize = \"100ms\"",
        "allowed_lateness = \"100ms\"\nidle_timeout = \"10m\"",
        "append",
        "50ms",
    )
    .replacen(
        "group_by = [\"id\"]",
        "group_by = [\"id\"]\nhaving = \"count >= 3 AND max_value < 90\"",
        1,
    ) + r#"
[[select]]
name = "window_start"
expr = "window_start"
[[select]]
name = "id"
expr = "id"
[[select]]
name = "mean"
expr = "round(avg_value, 3)"
[[select]]
name = "spread"
expr = "max_value - min_value"
[[select]]
name = "size"
expr = "CASE WHEN count >= 10 THEN 'many' ELSE 'few' END"
[[select]]
name = "window_end"
expr = "window_end"
"#;
    let summary = run_to_end(&text, dir.path()).await;
    assert_eq!(summary.input_rows, 4_000);
    let late = topic_rows(&broker.bootstrap(), "late");
    let truth = truth_fixed(&on_time(&events, &late), |t| {
        let s = t.div_euclid(SIZE) * SIZE;
        vec![(s, s + SIZE)]
    });
    let wm = summary.watermark.unwrap();
    let expected: Vec<_> = truth
        .iter()
        .filter(|((_, _, end), a)| *end <= wm && a.count >= 3 && a.max < 90.0)
        .collect();
    assert!(
        expected.len() > 20 && expected.len() < truth.len() / 2,
        "the HAVING condition should keep some windows and drop many: {} of {}",
        expected.len(),
        truth.len()
    );
    let rows = file_rows(&dir.path().join("out"));
    assert_eq!(
        rows.len(),
        expected.len(),
        "one row per window passing HAVING"
    );
    for ((id, start, end), a) in expected {
        let r = rows
            .iter()
            .find(|r| {
                r["id"].as_i64() == Some(*id)
                    && r["window_start"].as_str() == Some(rfc3339_ms(*start).as_str())
            })
            .unwrap_or_else(|| panic!("window ({id}, {start}) missing"));
        let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            ["id", "mean", "size", "spread", "window_end", "window_start"],
            "only the SELECT list's columns: {r}"
        );
        assert_eq!(r["window_end"].as_str(), Some(rfc3339_ms(*end).as_str()));
        let mean = (a.sum / a.count as f64 * 1000.0).round() / 1000.0;
        assert!(
            (r["mean"].as_f64().unwrap() - mean).abs() < 1e-9,
            "{r} vs {a:?}"
        );
        assert!(
            (r["spread"].as_f64().unwrap() - (a.max - a.min)).abs() < 1e-9,
            "{r} vs {a:?}"
        );
        let size = if a.count >= 10 { "many" } else { "few" };
        assert_eq!(r["size"].as_str(), Some(size), "{r} vs {a:?}");
    }
    // The file keeps the SELECT order.
    let first = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap();
    let line = std::fs::read_to_string(first).unwrap();
    let line = line.lines().next().unwrap();
    let at = |k: &str| line.find(&format!("\"{k}\"")).unwrap();
    assert!(
        at("window_start") < at("id") && at("id") < at("mean") && at("size") < at("window_end")
    );
    broker.shutdown().await;
}
