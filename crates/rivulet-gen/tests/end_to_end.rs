//! End to end: the generator produces into Rivulet's real broker (in this process, on
//! 127.0.0.1:0) through librdkafka, and an rdkafka consumer reads everything back. The
//! records must be exactly what `EventStream` computes for the same seed. No mocks, no timing
//! assertions; every wait is bounded.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rivulet_gen::{
    time, Compression, Event, EventKind, GenConfig, GenError, GenSummary, Malformation, ValueDist,
};
use rivulet_testkit::{
    assert_dense, create_topic, partition_count, plain_consumer_config, read_partition, run_gen,
    run_gen_with_stats, stream_events, watermarks, TestBroker, START, START_MS,
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Upper bound for any single wait (loaded 2-core CI machine).
const WAIT: Duration = Duration::from_secs(60);
const PARTITIONS: usize = 3;

/// A broker whose auto-created topics have [`PARTITIONS`] partitions (if it creates them).
async fn start_broker(auto_create: bool) -> TestBroker {
    TestBroker::start_with(move |c| {
        c.default_partitions = PARTITIONS as i32;
        c.auto_create_topics = auto_create;
    })
    .await
}

/// The generator's defaults for `topic` on `bootstrap`, starting at [`START`], quiet.
fn gen_config(bootstrap: &str, topic: &str) -> GenConfig {
    GenConfig {
        start_ms: Some(START_MS),
        quiet: true,
        ..GenConfig::new(bootstrap, topic)
    }
}

/// The stream `run` produces for this config (seed and start time given explicitly).
fn expected(args: &GenConfig, n: u64) -> Vec<Event> {
    stream_events(args, args.seed.unwrap(), args.start_ms.unwrap(), n)
}

async fn run_to_end(args: GenConfig) -> GenSummary {
    run_gen(args, CancellationToken::new())
        .await
        .expect("generator failed")
}

/// A record read back: partition, key, payload (in offset order within its partition).
#[derive(Debug, Clone)]
struct Record {
    partition: i32,
    key: String,
    payload: Vec<u8>,
}

/// Every record of every partition of `topic` up to its current high watermark.
async fn read_topic(bootstrap: &str, topic: &str) -> Vec<Record> {
    let (b, t) = (bootstrap.to_string(), topic.to_string());
    let (partitions, marks) = tokio::task::spawn_blocking(move || {
        let marks: Vec<(i64, i64)> = (0..PARTITIONS as i32)
            .map(|p| watermarks(&b, &t, p))
            .collect();
        (partition_count(&b, &t), marks)
    })
    .await
    .unwrap();
    assert_eq!(
        partitions,
        Some(PARTITIONS),
        "the topic should be multi-partition"
    );
    let mut out = Vec::new();
    for (p, (lo, hi)) in (0..).zip(marks) {
        let msgs = read_partition(bootstrap, topic, p, lo, (hi - lo).max(0) as usize).await;
        assert_dense(&msgs, lo, "offsets are contiguous");
        out.extend(msgs.iter().map(|m| {
            assert_eq!(m.partition(), p);
            Record {
                partition: p,
                key: String::from_utf8(m.key().unwrap().to_vec()).unwrap(),
                payload: m.payload().unwrap_or_default().to_vec(),
            }
        }));
    }
    out
}

/// Checks `records` are exactly `events`: each key in one partition, and per partition the
/// same (key, payload) sequence as the stream restricted to that partition's keys.
fn assert_same_sequence(records: &[Record], events: &[Event]) {
    assert_eq!(records.len(), events.len(), "record count");
    let mut partition_of: BTreeMap<&str, i32> = BTreeMap::new();
    for r in records {
        let p = *partition_of.entry(r.key.as_str()).or_insert(r.partition);
        assert_eq!(p, r.partition, "key {} found in two partitions", r.key);
    }
    for p in 0..PARTITIONS as i32 {
        let actual: Vec<(&str, &[u8])> = records
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| (r.key.as_str(), r.payload.as_slice()))
            .collect();
        let wanted: Vec<(&str, &[u8])> = events
            .iter()
            .filter(|e| partition_of.get(e.key.as_str()) == Some(&p))
            .map(|e| (e.key.as_str(), e.payload.as_slice()))
            .collect();
        assert_eq!(actual, wanted, "partition {p} differs from EventStream");
    }
    for e in events {
        assert!(
            partition_of.contains_key(e.key.as_str()),
            "key {} never arrived",
            e.key
        );
    }
}

/// A strict consumer's check: an object with exactly `id` (unsigned), `value` (number) and
/// `timestamp` (RFC 3339 string). Returns (id, value, timestamp ms) when well-formed.
fn parse_strict(payload: &[u8]) -> Option<(u64, f64, i64)> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    let obj = v.as_object()?;
    if obj.len() != 3 {
        return None;
    }
    let id = obj.get("id")?.as_u64()?;
    let value = obj.get("value")?.as_f64()?;
    let ts = time::parse_rfc3339(obj.get("timestamp")?.as_str()?).ok()?;
    Some((id, value, ts))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_run_produces_exactly_the_event_stream() {
    let mut broker = start_broker(true).await;
    let n = 3000u64;
    let keys = 17u64;
    let args = GenConfig {
        seed: Some(7),
        count: Some(3000),
        keys: 17,
        rate: 0,
        dist: ValueDist::Normal {
            mean: 20.0,
            stddev: 5.0,
        },
        late_fraction: 0.1,
        late_by: Duration::from_secs(2),
        bad_fraction: 0.05,
        ..gen_config(&broker.bootstrap(), "events")
    };
    let events = expected(&args, n);
    let summary = run_to_end(args.clone()).await;

    // The summary accounts for every event, and its bad/late counts are the stream's.
    assert_eq!(summary.sent, n);
    assert_eq!(summary.acknowledged, n, "{summary}");
    assert_eq!(summary.errors, 0, "{summary}");
    assert!(!summary.cancelled);
    assert_eq!(summary.seed, 7);
    let count = |k| events.iter().filter(|e| e.kind == k).count() as u64;
    assert_eq!(summary.bad, count(EventKind::Bad));
    assert_eq!(summary.late, count(EventKind::Late));
    assert!(summary.bad > 0 && summary.late > 0, "{summary}");

    let records = read_topic(&broker.bootstrap(), "events").await;
    assert_same_sequence(&records, &events);

    let keys_seen: BTreeSet<u64> = records.iter().map(|r| r.key.parse().unwrap()).collect();
    assert!(keys_seen.iter().all(|k| *k < keys), "{keys_seen:?}");
    let partitions_used: BTreeSet<i32> = records.iter().map(|r| r.partition).collect();
    assert!(
        partitions_used.len() > 1,
        "17 keys should spread over partitions"
    );

    // What a strict consumer sees on the wire, checked independently of EventStream's own
    // bookkeeping: bad ones fail, good ones parse with the key as id and the scheduled
    // timestamp, late ones are up to 2 s before their schedule.
    let start_ms = time::parse_rfc3339(START).unwrap();
    let by_key_order = |recs: &[Record]| {
        let mut m: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        for r in recs {
            m.entry(r.key.clone()).or_default().push(r.payload.clone());
        }
        m
    };
    let mut wire = by_key_order(&records);
    let (mut bad, mut late) = (0u64, 0u64);
    for e in &events {
        let payload = wire.get_mut(&e.key).unwrap().remove(0);
        let parsed = parse_strict(&payload);
        match e.kind {
            EventKind::Bad => {
                assert!(parsed.is_none(), "malformed record parsed: {e:?}");
                bad += 1;
                let text = String::from_utf8_lossy(&payload).to_string();
                match e.malformation.unwrap() {
                    Malformation::InvalidJson => {
                        assert!(serde_json::from_slice::<Value>(&payload).is_err(), "{text}")
                    }
                    Malformation::MissingField(f) => {
                        let v: Value = serde_json::from_slice(&payload).unwrap();
                        assert!(v.get(f.name()).is_none(), "{text}");
                    }
                    Malformation::WrongType(f) => {
                        let v: Value = serde_json::from_slice(&payload).unwrap();
                        let member = &v[f.name()];
                        let right_type = match f {
                            rivulet_gen::Field::Id => member.is_u64(),
                            rivulet_gen::Field::Value => member.is_number(),
                            rivulet_gen::Field::Timestamp => member.is_string(),
                        };
                        assert!(!member.is_null() && !right_type, "{text}");
                    }
                }
            }
            EventKind::Good | EventKind::Late => {
                let (id, value, ts) = parsed.unwrap_or_else(|| panic!("bad payload {e:?}"));
                assert_eq!(id.to_string(), e.key);
                assert_eq!(value, e.value);
                // --rate 0: scheduled event times are 1 ms apart.
                let scheduled = start_ms + i64::try_from(e.index).unwrap();
                if e.kind == EventKind::Late {
                    late += 1;
                    assert!(ts < scheduled && scheduled - ts <= 2000, "{e:?}");
                } else {
                    assert_eq!(ts, scheduled);
                }
            }
        }
    }
    assert_eq!((bad, late), (summary.bad, summary.late));
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_reproduces_the_same_records_whatever_the_producer_settings() {
    let mut broker = start_broker(true).await;
    let a = GenConfig {
        seed: Some(12345),
        count: Some(800),
        keys: 5,
        rate: 0,
        bad_fraction: 0.1,
        late_fraction: 0.2,
        ..gen_config(&broker.bootstrap(), "repro-a")
    };
    let b = GenConfig {
        topic: "repro-b".into(),
        compression: Compression::Zstd,
        idempotence: false,
        ..a.clone()
    };
    let sa = run_to_end(a.clone()).await;
    let sb = run_to_end(b).await;
    assert_eq!((sa.sent, sa.acknowledged, sa.errors), (800, 800, 0));
    assert_eq!((sb.sent, sb.acknowledged, sb.errors), (800, 800, 0));
    assert_eq!((sa.bad, sa.late), (sb.bad, sb.late));

    let ra = read_topic(&broker.bootstrap(), "repro-a").await;
    let rb = read_topic(&broker.bootstrap(), "repro-b").await;
    let events = expected(&a, 800);
    assert_same_sequence(&ra, &events);
    assert_same_sequence(&rb, &events);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_run_stops_on_cancel_and_accounts_for_every_event() {
    let mut broker = start_broker(true).await;
    // No --count: runs until cancelled. Cancel once 40 records are readable (event-driven,
    // not a timed sleep), then everything sent must be acknowledged and readable.
    let args = GenConfig {
        seed: Some(99),
        rate: 400,
        keys: 8,
        ..gen_config(&broker.bootstrap(), "paced")
    };
    let cancel = CancellationToken::new();
    let gen = tokio::spawn(run_gen(args.clone(), cancel.clone()));

    let bootstrap = broker.bootstrap();
    let watcher = tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = plain_consumer_config(&bootstrap).create().unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(
                Instant::now() < deadline,
                "generator produced nothing readable"
            );
            let total: i64 = (0..PARTITIONS as i32)
                .map(|p| {
                    c.fetch_watermarks("paced", p, Duration::from_secs(5))
                        .map(|(lo, hi)| hi - lo)
                        .unwrap_or(0)
                })
                .sum();
            if total >= 40 {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    watcher.await.unwrap();
    cancel.cancel();
    let summary = tokio::time::timeout(WAIT, gen)
        .await
        .expect("generator did not stop after cancellation")
        .unwrap()
        .unwrap();
    assert!(summary.cancelled);
    assert!(summary.sent >= 40, "{summary}");
    assert_eq!(summary.acknowledged, summary.sent, "{summary}");
    assert_eq!(summary.errors, 0);

    let records = read_topic(&broker.bootstrap(), "paced").await;
    let events = expected(&args, summary.sent);
    assert_same_sequence(&records, &events);
    // --rate 400: event i is stamped start + floor(i × 1000 / 400) ms = start + 2.5·i ms.
    let start_ms = time::parse_rfc3339(START).unwrap();
    for e in &events {
        assert_eq!(
            e.timestamp_ms,
            start_ms + i64::try_from(e.index * 5 / 2).unwrap()
        );
    }
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_topic_without_auto_create_fails_fast() {
    let mut broker = start_broker(false).await;
    let args = GenConfig {
        count: Some(10),
        seed: Some(1),
        ..gen_config(&broker.bootstrap(), "nope")
    };
    let r = run_gen(args, CancellationToken::new()).await;
    assert!(
        matches!(r, Err(GenError::UnknownTopic(ref t)) if t == "nope"),
        "{r:?}"
    );
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_flags_are_refused_before_connecting() {
    // Port 9 on loopback: nothing listens, and nothing is contacted either.
    let base = gen_config("127.0.0.1:9", "events");
    for args in [
        GenConfig {
            keys: 0,
            ..base.clone()
        },
        GenConfig {
            bad_fraction: 0.7,
            late_fraction: 0.7,
            ..base.clone()
        },
        GenConfig {
            dist: ValueDist::Uniform { min: 5.0, max: 1.0 },
            ..base.clone()
        },
        GenConfig {
            late_fraction: 0.1,
            late_by: Duration::ZERO,
            ..base.clone()
        },
    ] {
        let what = format!("{args:?}");
        let r = run_gen(args, CancellationToken::new()).await;
        assert!(matches!(r, Err(GenError::InvalidArgs(_))), "{what}: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_errors_are_counted_not_dropped() {
    let mut broker = start_broker(true).await;
    // A topic whose max.message.bytes is below any record batch: the broker refuses every
    // produce with MESSAGE_TOO_LARGE, a permanent error librdkafka reports per event.
    create_topic(
        &broker.bootstrap(),
        "tiny",
        3,
        &[("max.message.bytes", "50")],
    )
    .await;

    let args = GenConfig {
        count: Some(50),
        seed: Some(3),
        rate: 0,
        idempotence: false,
        ..gen_config(&broker.bootstrap(), "tiny")
    };
    let summary = run_to_end(args).await;
    assert_eq!(summary.sent, 50);
    assert_eq!(summary.acknowledged, 0, "{summary}");
    assert_eq!(summary.errors, 50, "{summary}");
    let first = summary.first_error.clone().unwrap();
    assert!(first.to_lowercase().contains("too large"), "{first}");
    assert!(
        summary.to_string().contains("50 delivery errors"),
        "{summary}"
    );
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_stats_agree_with_the_summary() {
    let mut broker = start_broker(true).await;
    let args = GenConfig {
        seed: Some(11),
        count: Some(2000),
        rate: 0,
        late_fraction: 0.1,
        bad_fraction: 0.05,
        ..gen_config(&broker.bootstrap(), "stats")
    };
    let stats = std::sync::Arc::new(rivulet_gen::GenStats::default());
    let summary = run_gen_with_stats(args.clone(), CancellationToken::new(), stats.clone())
        .await
        .expect("generator failed");
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(summary.sent, 2000);
    assert_eq!(load(&stats.sent), summary.sent);
    assert_eq!(load(&stats.acknowledged), summary.acknowledged);
    assert_eq!(load(&stats.errors), summary.errors);
    assert_eq!(load(&stats.bad), summary.bad);
    assert_eq!(load(&stats.late), summary.late);
    // The stream's own counts for the seed: the live counters classify events the same way.
    let events = expected(&args, 2000);
    let bad = events.iter().filter(|e| e.kind == EventKind::Bad).count() as u64;
    assert!(bad > 0, "the seed produces malformed events");
    assert_eq!(load(&stats.bad), bad);
    broker.shutdown().await;
}
