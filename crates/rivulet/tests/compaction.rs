//! Log compaction with the real broker binary and librdkafka clients:
//! - many versions per key, tombstones and small segments: after cleaning, a consumer from the
//!   beginning sees each live key once, with its latest value, nothing of deleted keys, at
//!   increasing offsets; a transactionally written compacted topic loses its aborted records;
//!   `rivulet topics describe` shows the cleaner's progress;
//! - kill -9 while the cleaner works, again and again: nothing acknowledged is lost.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use rivulet_testkit::*;

const BIN: &str = env!("CARGO_BIN_EXE_rivulet");

fn start(dir: &std::path::Path, backoff_ms: &str) -> BrokerProcess {
    BrokerProcess::start_with_args(
        BIN,
        &dir.join("data"),
        &dir.join("broker.log"),
        "always",
        &["--log-cleaner-backoff-ms", backoff_ms],
    )
}

/// Writes `(key, value)` pairs (None: a tombstone) to partition 0 and waits for all acks.
fn write(p: &BaseProducer, topic: &str, records: &[(String, Option<String>)]) {
    for (k, v) in records {
        let mut rec = BaseRecord::<str, str>::to(topic).key(k).partition(0);
        if let Some(v) = v {
            rec = rec.payload(v);
        }
        p.send(rec).map_err(|(e, _)| e).expect("send");
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

/// Partition 0 of `topic` from the beginning to its end: (offset, key, value).
fn read(bootstrap: &str, topic: &str) -> Vec<(i64, String, Option<String>)> {
    let c: BaseConsumer = plain_consumer_config(bootstrap)
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let deadline = Instant::now() + WAIT;
    let mut out = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "timed out reading {topic}");
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push((
                m.offset(),
                String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                m.payload().map(|v| String::from_utf8_lossy(v).into_owned()),
            )),
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => panic!("consume error: {e}"),
            None => {}
        }
    }
    let offsets: Vec<i64> = out.iter().map(|r| r.0).collect();
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "offsets not increasing"
    );
    out
}

const COMPACTED: &[(&str, &str)] = &[
    ("cleanup.policy", "compact"),
    ("segment.bytes", "4096"),
    ("segment.ms", "100"),
    ("delete.retention.ms", "1000"),
    ("min.cleanable.dirty.ratio", "0.01"),
];

/// Waits (bounded) until `done` holds for what a consumer reads, writing one `filler` record
/// every round so the active segment rolls (it is never cleaned) and passes keep coming.
fn wait_cleaned(
    bootstrap: &str,
    topic: &str,
    p: &BaseProducer,
    done: impl Fn(&[(i64, String, Option<String>)]) -> bool,
) -> Vec<(i64, String, Option<String>)> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let records = read(bootstrap, topic);
        if done(&records) {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "not cleaned in time: {} records",
            records.len()
        );
        std::thread::sleep(Duration::from_millis(300));
        write(p, topic, &[("filler".into(), Some("f".into()))]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_topics_keep_the_latest_value_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), "200");
    let b = broker.bootstrap();
    create_topic(&b, "cmp", 1, COMPACTED).await;
    create_topic(&b, "cmp-txn", 1, COMPACTED).await;
    tokio::task::spawn_blocking(move || {
        let p: BaseProducer = idempotent_producer_config(&b).create().unwrap();
        let mut latest: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut all = Vec::new();
        for version in 0..40 {
            for key in 0..20 {
                // Keys 0..5 are deleted at version 30 and never written again.
                let value = if key < 5 && version >= 30 {
                    if version > 30 {
                        continue;
                    }
                    None
                } else {
                    Some(format!("k{key}-v{version}"))
                };
                all.push((format!("k{key}"), value.clone()));
                latest.insert(format!("k{key}"), value);
            }
        }
        write(&p, "cmp", &all);
        let written = all.len();
        let live: BTreeMap<String, String> = latest
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        let records = wait_cleaned(&b, "cmp", &p, |rs| {
            let keys: Vec<&String> = rs.iter().map(|r| &r.1).filter(|k| *k != "filler").collect();
            let distinct: BTreeSet<&&String> = keys.iter().collect();
            // Each live key once, nothing of the deleted ones (their tombstones gone too).
            keys.len() == live.len() && distinct.len() == live.len()
        });
        assert!(records.len() < written / 10);
        let seen: BTreeMap<String, String> = records
            .iter()
            .filter(|r| r.1 != "filler")
            .map(|r| (r.1.clone(), r.2.clone().unwrap()))
            .collect();
        assert_eq!(seen, live);

        // Written transactionally: aborted records go, committed ones compact.
        let t = transactional_producer(&b, "cmp-writer");
        t.init_transactions(TXN_TIMEOUT).unwrap();
        for round in 0..6 {
            t.begin_transaction().unwrap();
            let records: Vec<(String, Option<String>)> = (0..10)
                .map(|k| (format!("t{k}"), Some(format!("r{round}-{k}"))))
                .collect();
            write(&t, "cmp-txn", &records);
            if round % 2 == 0 {
                t.commit_transaction(TXN_TIMEOUT).unwrap();
            } else {
                t.abort_transaction(TXN_TIMEOUT).unwrap();
            }
        }
        let records = wait_cleaned(&b, "cmp-txn", &p, |rs| {
            rs.iter().filter(|r| r.1 != "filler").count() == 10
        });
        for r in records.iter().filter(|r| r.1 != "filler") {
            // The last committed round is 4; aborted rounds 1, 3, 5 are gone.
            assert!(r.2.as_deref().unwrap().starts_with("r4-"), "{r:?}");
        }
        assert_eq!(
            read_values(&b, &[("cmp-txn", 1)], "read_committed")
                .iter()
                .filter(|v| v.starts_with('r'))
                .count(),
            10
        );

        let out = run_cli(BIN, &["topics", "--brokers", &b, "describe", "cmp"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("log cleaner:"), "{text}");
        assert!(text.contains("delete.retention.ms"), "{text}");
        let row = text
            .lines()
            .skip_while(|l| !l.starts_with("log cleaner:"))
            .nth(2)
            .unwrap_or_default()
            .to_string();
        let cleaned_up_to: i64 = row.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(cleaned_up_to >= written as i64, "{text}");
        assert!(row.ends_with("ago"), "{text}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_cleaning_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = start(dir.path(), "20");
    let b = broker.bootstrap();
    // Bigger segments and values than above: passes that take long enough for the kills to
    // land in the middle of some.
    let configs: Vec<(&str, &str)> = COMPACTED
        .iter()
        .map(|&(k, v)| {
            if k == "segment.bytes" {
                (k, "1048576")
            } else {
                (k, v)
            }
        })
        .collect();
    create_topic(&b, "kc", 1, &configs).await;
    let log_path = dir.path().join("broker.log");
    tokio::task::spawn_blocking(move || {
        // The writer rides out the kills (idempotent, retrying); every record must be
        // acknowledged in the end, so each key's last record sent is its latest value.
        let writer_brokers = b.clone();
        let writer = std::thread::spawn(move || {
            let mut rng = Rng::new(7);
            let mut latest: BTreeMap<String, String> = BTreeMap::new();
            let p: BaseProducer = idempotent_producer_config(&writer_brokers)
                .create()
                .unwrap();
            for phase in 0..8 {
                let records: Vec<(String, Option<String>)> = (0..2_000)
                    .map(|i| {
                        let k = format!("key-{}", rng.range(0, 500));
                        (k, Some(format!("p{phase}-{i}-{}", "x".repeat(2_000))))
                    })
                    .collect();
                write(&p, "kc", &records);
                for (k, v) in records {
                    latest.insert(k, v.unwrap());
                }
            }
            latest
        });
        let mut rng = Rng::new(11);
        for _ in 0..6 {
            std::thread::sleep(Duration::from_millis(rng.range(200, 900)));
            broker.kill9();
            broker.restart();
        }
        let latest = writer.join().expect("the writer failed");
        let p: BaseProducer = idempotent_producer_config(&b).create().unwrap();
        let records = wait_cleaned(&b, "kc", &p, |rs| {
            rs.iter().filter(|r| r.1 != "filler").count() == latest.len()
        });
        let seen: BTreeMap<String, String> = records
            .into_iter()
            .filter(|r| r.1 != "filler")
            .map(|r| (r.1, r.2.unwrap()))
            .collect();
        assert_eq!(seen, latest);
        let log = std::fs::read_to_string(&log_path).unwrap();
        let passes = log.matches(" cleaned ").count();
        let finished = log.matches("finishing an interrupted cleaner swap").count();
        let discarded = log
            .matches("discarding an interrupted cleaner pass")
            .count();
        println!(
            "{passes} cleaner passes; interrupted by kill -9: {finished} finished, {discarded} \
             discarded at start"
        );
        assert!(passes >= 6, "the cleaner ran {passes} passes");
    })
    .await
    .unwrap();
}
