//! The exactly-once writer behind the Kafka sink, the dead letters and the repartition topic
//! (`sinks::kafka::EpochProducer`) against the real broker: a transactional writer that tags
//! only the last record of each partition (the repartition topic's) still replays an epoch
//! without doubling or losing a record, after a restart, and only those records carry the
//! headers.
//!
//! And one Kafka transaction per task epoch (Kafka Streams' exactly_once_v2, `producer.rs`):
//! with the checkpoint in Kafka, a task's changelog writes (offsets, state, commit marker) and
//! the output of its Kafka writers on the same cluster commit together, so an epoch that
//! crashed before its commit marker left nothing anywhere and is not re-run with recorded
//! offsets. Real broker on 127.0.0.1:0, real librdkafka clients.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rivulet_client::transactions::describe_transaction;
use rivulet_client::KafkaConnection;
use rivulet_engine::plan::{CheckpointStoreKind, Plan};
use rivulet_gen::EventKind;
use rivulet_runtime::checkpoint::kafka::Changelog;
use rivulet_runtime::checkpoint::{Checkpoint, EpochOffsets, EpochState, KafkaStore};
use rivulet_runtime::query::FailPoint;
use rivulet_runtime::sinks::kafka::{
    partition_for_key, EpochProducer, OutRecord, Writer, WriterScope, EPOCH_HEADER, WRITER_HEADER,
};
use rivulet_runtime::{run_query, RunOptions, RuntimeError};
use rivulet_testkit::*;
use tokio_util::sync::CancellationToken;

fn records(n: usize) -> Vec<OutRecord> {
    (0..n)
        .map(|i| OutRecord {
            key: Some(format!("{{\"k\":{}}}", i % 7).into_bytes()),
            value: Some(format!("{{\"v\":{i}}}").into_bytes()),
            ..OutRecord::default()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_tagging_the_last_records_replays_an_epoch_exactly_once() {
    let mut broker = TestBroker::with_partitions(3).await;
    let b = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let bb = b.clone();
    let path = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let connection = KafkaConnection {
            bootstrap_servers: bb.clone(),
            ..KafkaConnection::default()
        };
        let writer = || {
            Writer::new(&path, "q", "c1", "repartition/t")
                .fresh(false)
                .transactional("q:0", "repartition/t")
                .tagging_last_only()
        };
        let recs = records(30);
        let mut p = EpochProducer::connect(&connection, "t", writer()).unwrap();
        assert_eq!(p.send_epoch(0, &recs).unwrap(), 30);
        drop(p);
        // A restart replays epoch 0 (already committed: nothing is sent), then runs epoch 1.
        let mut p = EpochProducer::connect(&connection, "t", writer()).unwrap();
        assert_eq!(p.send_epoch(0, &recs).unwrap(), 0, "epoch 0 doubled");
        assert_eq!(p.send_epoch(1, &recs).unwrap(), 30);
        drop(p);
        // Without its recovery file (another machine): whole partitions are read back.
        std::fs::remove_dir_all(path.join("sinks")).unwrap();
        let mut p = EpochProducer::connect(&connection, "t", writer()).unwrap();
        assert_eq!(p.send_epoch(1, &recs).unwrap(), 0, "epoch 1 doubled");
    })
    .await
    .unwrap();
    let got = read_messages(&b, "t");
    assert_eq!(got.len(), 60);
    // Per epoch, one tagged record per partition that received records of it.
    let tagged = got
        .iter()
        .filter(|m| headers_of(m).iter().any(|(k, _)| k == WRITER_HEADER))
        .count();
    assert_eq!(tagged, 2 * 3, "tagged records");
    broker.shutdown().await;
}

fn offsets(epoch: u64) -> EpochOffsets {
    EpochOffsets {
        epoch,
        batch_timestamp_ms: 1,
        watermark_ms: None,
        ranges: Vec::new(),
    }
}

fn state(epoch: u64) -> EpochState {
    EpochState {
        epoch,
        watermark_tracker: serde_json::Value::Null,
        operators: vec![("op".into(), vec![epoch as u8; 10])],
    }
}

fn open(connection: &KafkaConnection) -> Checkpoint {
    let store = KafkaStore::open(connection, &Changelog::task("q", 0, 1)).unwrap();
    Checkpoint::with_store(Box::new(store), "q").unwrap()
}

/// The changelog and a sink writer on the same cluster write in one transaction: while it is
/// open the coordinator lists both topics in it and read_committed sees nothing; its commit
/// shows both; an epoch whose process dies before the commit marker leaves neither, and the
/// next owner finds no epoch to re-run. A writer that connects as another client keeps a
/// transaction of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_changelog_and_the_writers_share_the_epoch_transaction() {
    let mut broker = TestBroker::with_partitions(3).await;
    let b = broker.bootstrap();
    let connection = KafkaConnection::new(b.clone());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let c = connection.clone();
    let (cp, mut out) = tokio::task::spawn_blocking(move || {
        let cp = open(&c);
        let scope = WriterScope {
            dir: path,
            query_name: "q:0".into(),
            checkpoint_id: cp.metadata().id.clone(),
            fresh: true,
            transactional: true,
            joint: cp.producer(),
        };
        let out = EpochProducer::connect(&c, "out", scope.writer("sink/out")).unwrap();
        assert!(
            out.is_joint(),
            "the sink did not join the task's transaction"
        );
        let other = EpochProducer::connect(
            &c.clone().with_property("client.id", "another-client"),
            "other",
            scope.writer("sink/other"),
        )
        .unwrap();
        assert!(!other.is_joint(), "another client identity joined");
        assert!(cp.begin_epoch().unwrap());
        cp.write_offsets(&offsets(0)).unwrap();
        let mut out = out;
        assert_eq!(out.send_epoch(0, &records(12)).unwrap(), 12);
        (cp, out)
    })
    .await
    .unwrap();
    let t = describe_transaction(&connection, "rivulet-q:0")
        .await
        .unwrap();
    assert_eq!(t.state, "Ongoing", "{t:?}");
    let topics: Vec<&str> = t
        .partitions
        .iter()
        .map(|(topic, _)| topic.as_str())
        .collect();
    assert!(
        topics.contains(&"q-changelog") && topics.contains(&"out"),
        "one transaction should hold the changelog and the sink: {t:?}"
    );
    assert!(
        read_messages(&b, "out").is_empty(),
        "visible before the commit"
    );
    let (cp, out) = tokio::task::spawn_blocking(move || {
        cp.write_state(&state(0)).unwrap();
        cp.write_commit(0).unwrap();
        cp.commit_epoch().unwrap();
        out.commit().unwrap();
        (cp, out)
    })
    .await
    .unwrap();
    assert_eq!(read_messages(&b, "out").len(), 12);
    // Epoch 1 dies after its state, before its commit marker (the process is gone: its
    // producer is dropped with the transaction open).
    let mut out = out;
    tokio::task::spawn_blocking(move || {
        assert!(cp.begin_epoch().unwrap());
        cp.write_offsets(&offsets(1)).unwrap();
        assert_eq!(out.send_epoch(1, &records(12)).unwrap(), 12);
        cp.write_state(&state(1)).unwrap();
        drop(out);
        drop(cp);
    })
    .await
    .unwrap();
    let c = connection.clone();
    tokio::task::spawn_blocking(move || {
        // The next owner's open fences the old producer and aborts its epoch.
        let cp = open(&c);
        assert_eq!(cp.latest_committed().unwrap(), Some(0));
        assert_eq!(
            cp.pending().unwrap(),
            None,
            "the aborted offsets/1 is visible"
        );
        assert_eq!(cp.read_state(0).unwrap(), state(0));
    })
    .await
    .unwrap();
    let got = read_records(&b, "out");
    assert_eq!(got.len(), 12, "epoch 1's records are visible");
    assert!(got
        .iter()
        .all(|(_, h)| h.iter().any(|(k, v)| k == EPOCH_HEADER && v == "0")));
    broker.shutdown().await;
}

fn epochs_of(b: &str, topic: &str) -> Vec<u64> {
    read_records(b, topic)
        .iter()
        .filter_map(|(_, h)| {
            h.iter()
                .find(|(k, _)| k == EPOCH_HEADER)
                .and_then(|(_, v)| v.parse().ok())
        })
        .collect()
}

/// A query checkpointed in Kafka with a Kafka sink and dead letters, one task per partition:
/// every task that reaches epoch 2 dies after writing its output, dead letters and state,
/// before its commit marker. Nothing of epoch 2 is visible under read_committed (with a
/// transaction per writer the sink's and the dead letters' would be); the next run re-runs
/// the epoch from scratch and the sink holds exactly the ground truth, the dead-letter topic
/// exactly the malformed records, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_the_commit_marker_leaves_no_output() {
    let mut broker = TestBroker::with_partitions(3).await;
    let b = broker.bootstrap();
    let events = produce_gen_events(&b, "events", 41, 3000, 12, Mix::bad(0.05)).await;
    let dir = tempfile::tempdir().unwrap();
    let text = tumbling_plan(
        "tx",
        &b,
        dir.path(),
        200,
        "append",
        "key_fields = [\"id\"]",
        "[[sinks]]\ntype = \"kafka\"\ntopic = \"out\"",
    );
    let opts = |fail: Option<FailPoint>| RunOptions {
        stop_when_caught_up: true,
        checkpoint_store: Some(CheckpointStoreKind::Kafka),
        fail_point: fail,
        ..RunOptions::default()
    };
    let r = run_query(
        Plan::from_toml(&text).unwrap(),
        opts(Some(FailPoint::AfterState(2))),
        CancellationToken::new(),
    )
    .await;
    assert!(matches!(r, Err(RuntimeError::FailPoint(_))), "{r:?}");
    for topic in ["out", "events.dlq"] {
        let e = epochs_of(&b, topic);
        assert!(
            e.iter().all(|&e| e < 2),
            "{topic}: output of the uncommitted epoch 2 is visible: {e:?}"
        );
    }
    run_query(
        Plan::from_toml(&text).unwrap(),
        opts(None),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    // The crash did have output to leave behind: the re-run wrote epoch 2 again.
    let mut after: Vec<u64> = epochs_of(&b, "out");
    after.extend(epochs_of(&b, "events.dlq"));
    assert!(after.contains(&2), "no epoch 2 output at all: {after:?}");
    let good: Vec<Ev> = well_formed(&events)
        .into_iter()
        .map(|mut e| {
            e.partition = partition_for_key(e.id.to_string().as_bytes(), 3);
            e
        })
        .collect();
    check_append_per_partition(&topic_rows(&b, "out"), &good, tumbling(200));
    let mut dead: Vec<String> = read_records(&b, "events.dlq")
        .into_iter()
        .map(|(v, _)| String::from_utf8_lossy(&v).into_owned())
        .collect();
    dead.sort();
    let mut bad: Vec<String> = events
        .iter()
        .filter(|e| e.kind == EventKind::Bad)
        .map(|e| String::from_utf8_lossy(&e.payload).into_owned())
        .collect();
    bad.sort();
    assert!(!bad.is_empty());
    assert_eq!(dead, bad, "dead letters lost or doubled");
    broker.shutdown().await;
}
