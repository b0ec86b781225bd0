//! The exactly-once writer behind the Kafka sink, the dead letters and the repartition topic
//! (`sinks::kafka::EpochProducer`) against the real broker: a transactional writer that tags
//! only the last record of each partition (the repartition topic's) still replays an epoch
//! without doubling or losing a record, after a restart, and only those records carry the
//! headers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rivulet_client::KafkaConnection;
use rivulet_runtime::sinks::kafka::{EpochProducer, OutRecord, Writer, WRITER_HEADER};
use rivulet_testkit::*;

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
