//! The two Kafka clients of the source (`client = "native" | "librdkafka"`) against the real
//! broker: same rows from the same input, every compression codec, a broker restart in the
//! middle of a query, and offsets committed to the consumer group.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::Offset;
use rivulet_engine::plan::Plan;
use rivulet_runtime::{run_query, RunOptions};
use rivulet_testkit::*;
use tokio_util::sync::CancellationToken;

const WINDOW_MS: i64 = 1_000;
const KEYS: u64 = 5;

fn plan(name: &str, brokers: &str, dir: &Path, client: &str) -> Plan {
    let client = format!("client = \"{client}\"");
    let sink = file_sink(&dir.join("out"));
    Plan::from_toml(&tumbling_plan(
        name, brokers, dir, WINDOW_MS, "append", &client, &sink,
    ))
    .unwrap()
}

fn truth(events: &[Ev]) -> Truth {
    truth_fixed(events, tumbling(WINDOW_MS))
}

fn sorted(mut rows: Vec<serde_json::Value>) -> Vec<String> {
    let mut out: Vec<String> = rows.drain(..).map(|r| r.to_string()).collect();
    out.sort();
    out
}

/// Committed offsets of `group` for partitions `0..n` of `topic`.
fn group_offsets(brokers: &str, group: &str, topic: &str, n: i32) -> Vec<i64> {
    (0..n)
        .zip(committed_offsets(brokers, group, topic, n))
        .map(|(p, o)| match o {
            Offset::Offset(o) => o,
            other => panic!("partition {p}: no committed offset ({other:?})"),
        })
        .collect()
}

/// In-order events (no late ones): both clients must produce exactly the same append rows,
/// equal to the ground truth, and commit the end offsets to the query's group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_clients_produce_the_same_rows() {
    let mut broker = TestBroker::with_partitions(3).await;
    let events = produce_gen(&broker.bootstrap(), "events", 5, 4000, KEYS, Mix::NONE).await;
    let want = truth(&events);
    let ends = end_offsets(&broker.bootstrap(), "events");
    assert_eq!(ends.iter().sum::<i64>(), 4000);
    let mut outputs = Vec::new();
    for client in ["native", "librdkafka"] {
        let dir = tempfile::tempdir().unwrap();
        let name = format!("same-{client}");
        let opts = RunOptions {
            stop_when_caught_up: true,
            ..RunOptions::default()
        };
        let summary = run_query(
            plan(&name, &broker.bootstrap(), dir.path(), client),
            opts,
            CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(summary.input_rows, 4000, "{client}: {summary:?}");
        assert_eq!(summary.late_rows, 0, "{client}");
        let rows = file_rows(&dir.path().join("out"));
        check_append(&rows, &want, summary.watermark.unwrap());
        assert_eq!(
            group_offsets(&broker.bootstrap(), &format!("rivulet-{name}"), "events", 3),
            ends,
            "{client}: committed group offsets"
        );
        outputs.push(sorted(rows));
    }
    assert_eq!(outputs[0], outputs[1], "native vs librdkafka rows");
    broker.shutdown().await;
}

/// Batches compressed with every codec librdkafka produces are read by the native client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_client_reads_every_codec() {
    let mut broker = TestBroker::with_partitions(1).await;
    let mut all = Vec::new();
    for (i, codec) in ["none", "gzip", "snappy", "lz4", "zstd"].iter().enumerate() {
        let p: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap())
            .set("compression.type", *codec)
            .set("linger.ms", "20")
            .create()
            .unwrap();
        let events: Vec<Ev> = (0..400)
            .map(|k| Ev {
                partition: 0,
                id: k % 7,
                ts: START_MS + (i as i64 * 400 + k) * 3,
                value: k as f64 * 0.5,
            })
            .collect();
        for e in &events {
            let payload = e.payload();
            let key = e.id.to_string();
            p.send(
                BaseRecord::to("events")
                    .key(&key)
                    .payload(&payload)
                    .partition(0),
            )
            .map_err(|(e, _)| e)
            .unwrap();
        }
        p.flush(Duration::from_secs(30)).unwrap();
        all.extend(events);
    }
    let dir = tempfile::tempdir().unwrap();
    let opts = RunOptions {
        stop_when_caught_up: true,
        ..RunOptions::default()
    };
    let summary = run_query(
        plan("codecs", &broker.bootstrap(), dir.path(), "native"),
        opts,
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(summary.input_rows, 2000, "{summary:?}");
    assert_eq!(summary.dead_letters, 0);
    check_append(
        &file_rows(&dir.path().join("out")),
        &truth(&all),
        summary.watermark.unwrap(),
    );
    broker.shutdown().await;
}

/// The broker goes away and comes back while the query runs: the native client reconnects and
/// the query ends with every record counted exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_client_survives_a_broker_restart() {
    let mut broker = TestBroker::start().await;
    let addr = broker.bootstrap();
    create_topic(&addr, "events", 2, &[]).await;
    let first = produce_gen(&addr, "events", 8, 2000, KEYS, Mix::NONE).await;
    let dir = tempfile::tempdir().unwrap();
    let progress = dir.path().join("progress.jsonl");
    let cancel = CancellationToken::new();
    let query = tokio::spawn(run_query(
        plan("restart", &addr, dir.path(), "native"),
        RunOptions {
            progress_json: Some(progress.clone()),
            ..RunOptions::default()
        },
        cancel.clone(),
    ));
    let input_rows = |path: &Path| -> u64 {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["numInputRows"].as_u64())
            .sum()
    };
    let wait_for = |n: u64| {
        let progress = progress.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while input_rows(&progress) < n {
                assert!(Instant::now() < deadline, "query stuck below {n} rows");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_for(2000).await;
    broker.restart().await;
    // Events an hour later in event time than the first ones: none are late.
    let second: Vec<Ev> = (0..2000)
        .map(|k| Ev {
            partition: -1,
            id: k % KEYS as i64,
            ts: START_MS + 3_600_000 + k * 2,
            value: (k % 97) as f64,
        })
        .collect();
    let (a, s) = (addr.clone(), second.clone());
    tokio::task::spawn_blocking(move || produce(&a, "events", &s))
        .await
        .unwrap();
    wait_for(4000).await;
    cancel.cancel();
    let summary = query.await.unwrap().unwrap();
    assert_eq!(input_rows(&progress), 4000);
    assert_eq!(summary.late_rows, 0);
    let mut events = first;
    events.extend(second);
    check_append(
        &file_rows(&dir.path().join("out")),
        &truth(&events),
        summary.watermark.unwrap(),
    );
    broker.shutdown().await;
}

/// The native client reads under read_committed (as librdkafka does by default): records of an
/// aborted transaction never reach the query, the committed ones around it do, and a bounded
/// run ends because the position moves past the transaction markers to the last stable offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_client_skips_aborted_transactions() {
    skips_aborted_transactions("native").await;
}

/// The same with librdkafka: its position used to stay one short of the end (the last commit
/// marker is never handed out), so the bounded run never ended and lag showed 1 (KAFKA-6607).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_client_skips_aborted_transactions() {
    skips_aborted_transactions("librdkafka").await;
}

async fn skips_aborted_transactions(client: &str) {
    let mut broker = TestBroker::with_partitions(2).await;
    let b = broker.bootstrap();
    let evs = |from: usize, n: usize| -> Vec<Ev> {
        (from..from + n)
            .map(|i| Ev {
                partition: (i % 2) as i32,
                id: (i % 3) as i64,
                ts: START_MS + i as i64 * 10,
                value: i as f64,
            })
            .collect()
    };
    let (first, aborted, last) = (evs(0, 40), evs(40, 30), evs(70, 40));
    let bb = b.clone();
    let (f, a, l) = (first.clone(), aborted.clone(), last.clone());
    tokio::task::spawn_blocking(move || {
        let p = rivulet_testkit::txn::transactional_producer(&bb, "src-txn");
        p.init_transactions(Duration::from_secs(30)).unwrap();
        for (evs, commit) in [(&f, true), (&a, false), (&l, true)] {
            p.begin_transaction().unwrap();
            for e in evs {
                let payload = e.payload();
                let key = e.id.to_string();
                p.send(
                    BaseRecord::to("events")
                        .partition(e.partition)
                        .key(&key)
                        .payload(&payload),
                )
                .map_err(|(e, _)| e)
                .unwrap();
            }
            p.flush(Duration::from_secs(30)).unwrap();
            if commit {
                p.commit_transaction(Duration::from_secs(30)).unwrap();
            } else {
                p.abort_transaction(Duration::from_secs(30)).unwrap();
            }
        }
    })
    .await
    .unwrap();
    let committed: Vec<Ev> = first.iter().chain(&last).cloned().collect();
    let dir = tempfile::tempdir().unwrap();
    let opts = RunOptions {
        stop_when_caught_up: true,
        ..RunOptions::default()
    };
    let run = run_query(
        plan(&format!("committed-{client}"), &b, dir.path(), client),
        opts,
        CancellationToken::new(),
    );
    let summary = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the bounded run ends")
        .unwrap();
    assert_eq!(summary.input_rows, committed.len() as u64, "{summary:?}");
    let rows = file_rows(&dir.path().join("out"));
    check_append(&rows, &truth(&committed), summary.watermark.unwrap());
    broker.shutdown().await;
}
