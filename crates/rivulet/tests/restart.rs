//! Restart behaviour of the real binary: recovery of a torn segment tail after SIGKILL, and
//! clean SIGTERM/SIGINT restarts keeping data and committed group offsets.
#![allow(clippy::unwrap_used)]

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Offset;
use rivulet_testkit::*;

const BIN: &str = env!("CARGO_BIN_EXE_rivulet");

/// Sends `values` to `topic`/`partition`, pipelined (so they share batches), awaiting all.
/// Returns the offsets.
async fn send_values(
    p: &FutureProducer,
    topic: &str,
    partition: i32,
    values: &[String],
) -> Vec<i64> {
    let mut futs = vec![];
    for v in values {
        let f = p
            .send_result(
                FutureRecord::<str, str>::to(topic)
                    .key(v)
                    .payload(v)
                    .partition(partition),
            )
            .map_err(|(e, _)| e)
            .expect("enqueue");
        futs.push(f);
    }
    let mut offs = vec![];
    for f in futs {
        let d = tokio::time::timeout(WAIT, f)
            .await
            .expect("delivery timed out")
            .expect("canceled")
            .map_err(|(e, _)| e)
            .expect("delivery failed");
        assert_eq!(d.partition, partition);
        offs.push(d.offset);
    }
    offs
}

fn values(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i}")).collect()
}

async fn payloads(bootstrap: &str, topic: &str, partition: i32) -> Vec<(i64, String)> {
    let (b, t) = (bootstrap.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        read_all_blocking(&b, &t, partition)
            .iter()
            .map(|m| {
                (
                    m.offset(),
                    String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                )
            })
            .collect()
    })
    .await
    .expect("reader")
}

async fn hwm(bootstrap: &str, topic: &str, partition: i32) -> (i64, i64) {
    let (b, t) = (bootstrap.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || watermarks(&b, &t, partition))
        .await
        .expect("watermarks")
}

fn truncate_to(path: &Path, len: u64) {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open segment");
    f.set_len(len).expect("truncate");
    f.sync_all().expect("sync");
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open segment");
    f.write_all(bytes).expect("append");
    f.sync_all().expect("sync");
}

fn expected(all: &[String], upto: usize) -> Vec<(i64, String)> {
    all[..upto]
        .iter()
        .enumerate()
        .map(|(i, v)| (i as i64, v.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn torn_tail_is_truncated_to_last_valid_batch() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mut broker = BrokerProcess::start(BIN, &data, &tmp.path().join("broker.log"), "always");
    let bootstrap = broker.bootstrap();
    let topic = "torn";
    create_topic(&bootstrap, topic, 1, &[]).await;
    let segment = data
        .join(format!("{topic}-0"))
        .join("00000000000000000000.log");

    // Several batches of several records each.
    let mut all: Vec<String> = vec![];
    {
        let p: FutureProducer = idempotent_producer_config(&bootstrap)
            .set("linger.ms", "50")
            .create()
            .expect("producer");
        for b in 0..6 {
            let vals = values(&format!("b{b}"), 0..5);
            let offs = send_values(&p, topic, 0, &vals).await;
            assert_eq!(
                offs,
                ((all.len() as i64)..(all.len() + 5) as i64).collect::<Vec<_>>()
            );
            all.extend(vals);
        }
    }
    broker.kill9();

    // Round 1: cut the last batch in half and append garbage.
    let batches = segment_batches(&segment);
    assert!(
        batches.len() >= 2,
        "need at least two batches on disk, found {batches:?}"
    );
    let file_len = std::fs::metadata(&segment).expect("segment").len();
    let last = *batches.last().unwrap();
    assert_eq!(
        last.position + last.size,
        file_len,
        "segment has bytes after the last batch: {batches:?}"
    );
    assert_eq!(last.base_offset + i64::from(last.records), all.len() as i64);
    truncate_to(&segment, last.position + last.size / 2);
    let garbage: Vec<u8> = (0..97u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    append(&segment, &garbage);
    broker.restart();
    let recovered = last.base_offset as usize;
    assert_eq!(
        hwm(&bootstrap, topic, 0).await,
        (0, recovered as i64),
        "round 1: recovered end"
    );
    assert_eq!(
        payloads(&bootstrap, topic, 0).await,
        expected(&all, recovered),
        "round 1: recovered records"
    );
    // The lost tail is gone for good; new records continue densely after the recovered end.
    all.truncate(recovered);
    let p: FutureProducer = idempotent_producer_config(&bootstrap)
        .create()
        .expect("producer");
    let vals = values("after1", 0..10);
    let offs = send_values(&p, topic, 0, &vals).await;
    assert_eq!(
        offs,
        ((recovered as i64)..(recovered as i64 + 10)).collect::<Vec<_>>(),
        "round 1: new offsets"
    );
    all.extend(vals);
    assert_eq!(
        payloads(&bootstrap, topic, 0).await,
        expected(&all, all.len())
    );
    drop(p);
    broker.kill9();

    // Round 2: cut inside the header of the last batch (no garbage).
    let batches = segment_batches(&segment);
    let last = *batches.last().unwrap();
    assert_eq!(
        last.base_offset + i64::from(last.records),
        all.len() as i64,
        "{batches:?}"
    );
    truncate_to(&segment, last.position + 30);
    broker.restart();
    let recovered = last.base_offset as usize;
    assert_eq!(
        hwm(&bootstrap, topic, 0).await,
        (0, recovered as i64),
        "round 2: recovered end"
    );
    assert_eq!(
        payloads(&bootstrap, topic, 0).await,
        expected(&all, recovered),
        "round 2"
    );
    all.truncate(recovered);
    let p: FutureProducer = idempotent_producer_config(&bootstrap)
        .create()
        .expect("producer");
    let vals = values("after2", 0..3);
    let offs = send_values(&p, topic, 0, &vals).await;
    assert_eq!(
        offs,
        ((recovered as i64)..(recovered as i64 + 3)).collect::<Vec<_>>(),
        "round 2: new offsets"
    );
    all.extend(vals);
    drop(p);
    broker.kill9();

    // Round 3: a complete, intact log followed by a fake batch header that claims ~2 GB.
    let mut fake = Vec::new();
    fake.extend_from_slice(&(all.len() as i64).to_be_bytes());
    fake.extend_from_slice(&0x7fff_0000i32.to_be_bytes());
    fake.extend_from_slice(&[0u8; 4]); // leader epoch
    fake.push(2); // magic
    fake.extend_from_slice(&[0xAB; 60]);
    append(&segment, &fake);
    broker.restart();
    assert_eq!(
        hwm(&bootstrap, topic, 0).await,
        (0, all.len() as i64),
        "round 3: intact records kept"
    );
    assert_eq!(
        payloads(&bootstrap, topic, 0).await,
        expected(&all, all.len()),
        "round 3"
    );
    let p: FutureProducer = idempotent_producer_config(&bootstrap)
        .create()
        .expect("producer");
    let offs = send_values(&p, topic, 0, &values("after3", 0..2)).await;
    assert_eq!(
        offs,
        vec![all.len() as i64, all.len() as i64 + 1],
        "round 3: new offsets"
    );
    drop(p);
    // A clean stop after recovery works too.
    assert!(broker.stop_with("TERM").success());
}

/// Consumes `n` messages through group `group` (subscribe), commits, and returns the values.
fn consume_in_group(
    bootstrap: &str,
    group: &str,
    topic: &str,
    n: usize,
) -> Vec<(i32, i64, String)> {
    let c: BaseConsumer = group_consumer_config(bootstrap, group)
        .create()
        .expect("consumer");
    c.subscribe(&[topic]).expect("subscribe");
    let mut out = vec![];
    let deadline = Instant::now() + WAIT * 2;
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "group {group}: got {} of {n} messages",
            out.len()
        );
        match c.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(m)) => out.push((
                m.partition(),
                m.offset(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            )),
            Some(Err(e)) => panic!("group consumer error: {e}"),
        }
    }
    // Anything beyond n within a short, bounded window would be a re-delivery.
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            out.push((
                m.partition(),
                m.offset(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            ));
        }
    }
    c.commit_consumer_state(CommitMode::Sync).expect("commit");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clean_restart_keeps_data_and_committed_offsets() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mut broker = BrokerProcess::start(BIN, &data, &tmp.path().join("broker.log"), "always");
    let bootstrap = broker.bootstrap();
    let topic = "clean";
    create_topic(&bootstrap, topic, 2, &[]).await;
    let p: FutureProducer = idempotent_producer_config(&bootstrap)
        .create()
        .expect("producer");
    let first: Vec<String> = values("first", 0..100);
    let mut sent: Vec<Vec<String>> = vec![vec![], vec![]];
    for (i, v) in first.iter().enumerate() {
        sent[i % 2].push(v.clone());
    }
    for part in 0..2 {
        send_values(&p, topic, part, &sent[part as usize]).await;
    }

    // A group consumes and commits everything so far.
    let b = bootstrap.clone();
    let got = tokio::task::spawn_blocking(move || consume_in_group(&b, "g-clean", "clean", 100))
        .await
        .expect("consumer");
    assert_eq!(got.len(), 100, "first group run saw duplicates: {got:?}");
    let b = bootstrap.clone();
    let c = tokio::task::spawn_blocking(move || committed_offsets(&b, "g-clean", "clean", 2))
        .await
        .expect("committed");
    assert_eq!(c, vec![Offset::Offset(50), Offset::Offset(50)]);

    // More data after the commit point.
    for part in 0..2 {
        let vals = values(&format!("second-p{part}"), 0..25);
        let offs = send_values(&p, topic, part, &vals).await;
        assert_eq!(offs, (50..75).collect::<Vec<_>>());
        sent[part as usize].extend(vals);
    }
    drop(p);

    // SIGTERM: clean exit, marker written.
    let status = broker.stop_with("TERM");
    assert!(status.success(), "SIGTERM exit status {status}");
    assert!(
        data.join(".clean-shutdown").exists(),
        "no .clean-shutdown marker after SIGTERM"
    );
    broker.restart();

    // Data intact.
    for part in 0..2 {
        let want: Vec<(i64, String)> = sent[part as usize]
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64, v.clone()))
            .collect();
        assert_eq!(
            payloads(&bootstrap, topic, part).await,
            want,
            "partition {part} after clean restart"
        );
    }
    // Committed offsets intact; the group resumes after them.
    let b = bootstrap.clone();
    let c = tokio::task::spawn_blocking(move || committed_offsets(&b, "g-clean", "clean", 2))
        .await
        .expect("committed");
    assert_eq!(
        c,
        vec![Offset::Offset(50), Offset::Offset(50)],
        "committed offsets after restart"
    );
    let b = bootstrap.clone();
    let mut got = tokio::task::spawn_blocking(move || consume_in_group(&b, "g-clean", "clean", 50))
        .await
        .expect("consumer");
    got.sort();
    let mut want: Vec<(i32, i64, String)> = vec![];
    for part in 0..2 {
        for (i, v) in sent[part as usize][50..].iter().enumerate() {
            want.push((part, 50 + i as i64, v.clone()));
        }
    }
    want.sort();
    assert_eq!(
        got, want,
        "group must resume exactly at the committed offsets"
    );
    // The marker is consumed by the start (it is only valid until the next start).
    let gone = {
        let deadline = Instant::now() + WAIT;
        while data.join(".clean-shutdown").exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        !data.join(".clean-shutdown").exists()
    };
    assert!(
        gone,
        ".clean-shutdown marker still present while the broker runs"
    );

    // SIGINT works the same way; an unclean start after it still has everything.
    let p: FutureProducer = idempotent_producer_config(&bootstrap)
        .create()
        .expect("producer");
    let offs = send_values(&p, topic, 0, &values("third", 0..5)).await;
    assert_eq!(offs, (75..80).collect::<Vec<_>>());
    sent[0].extend(values("third", 0..5));
    drop(p);
    let status = broker.stop_with("INT");
    assert!(status.success(), "SIGINT exit status {status}");
    broker.restart();
    let b = bootstrap.clone();
    let c = tokio::task::spawn_blocking(move || committed_offsets(&b, "g-clean", "clean", 2))
        .await
        .expect("committed");
    assert_eq!(
        c,
        vec![Offset::Offset(75), Offset::Offset(75)],
        "committed offsets after SIGINT restart"
    );
    for part in 0..2 {
        let want: Vec<(i64, String)> = sent[part as usize]
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64, v.clone()))
            .collect();
        assert_eq!(
            payloads(&bootstrap, topic, part).await,
            want,
            "partition {part} after SIGINT restart"
        );
    }
    // Then a crash right after a clean start: still everything (slow recovery path).
    broker.kill9();
    broker.restart();
    for part in 0..2 {
        assert_eq!(
            payloads(&bootstrap, topic, part).await.len(),
            sent[part as usize].len(),
            "partition {part} after kill"
        );
    }
    assert!(broker.stop_with("TERM").success());
}

/// Offsets acknowledged by OffsetCommit survive a SIGKILL (the process dies, the page cache does
/// not), and a group resumes after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn committed_offsets_survive_kill_9() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mut broker = BrokerProcess::start(BIN, &data, &tmp.path().join("broker.log"), "always");
    let bootstrap = broker.bootstrap();
    let topic = "commits";
    create_topic(&bootstrap, topic, 3, &[]).await;
    let p: FutureProducer = idempotent_producer_config(&bootstrap)
        .create()
        .expect("producer");
    let mut sent: Vec<Vec<String>> = vec![vec![], vec![], vec![]];
    for part in 0..3 {
        let vals = values(&format!("p{part}"), 0..40);
        send_values(&p, topic, part, &vals).await;
        sent[part as usize] = vals;
    }
    let b = bootstrap.clone();
    let got = tokio::task::spawn_blocking(move || consume_in_group(&b, "g-kill", "commits", 120))
        .await
        .expect("consumer");
    assert_eq!(got.len(), 120, "duplicates in the first run");
    for round in 0..3 {
        broker.kill9();
        broker.restart();
        let b = bootstrap.clone();
        let c = tokio::task::spawn_blocking(move || committed_offsets(&b, "g-kill", "commits", 3))
            .await
            .expect("committed");
        let expect = Offset::Offset(40 + 5 * round);
        assert_eq!(
            c,
            vec![expect; 3],
            "round {round}: committed offsets after kill -9"
        );
        // 5 more per partition, consumed and committed by the group before the next kill.
        for part in 0..3 {
            let vals = values(&format!("r{round}p{part}"), 0..5);
            let offs = send_values(&p, topic, part, &vals).await;
            assert_eq!(
                offs,
                ((40 + 5 * round)..(45 + 5 * round)).collect::<Vec<_>>()
            );
            sent[part as usize].extend(vals);
        }
        let b = bootstrap.clone();
        let mut got =
            tokio::task::spawn_blocking(move || consume_in_group(&b, "g-kill", "commits", 15))
                .await
                .expect("consumer");
        got.sort();
        let mut want = vec![];
        for part in 0..3 {
            for (i, v) in sent[part as usize][(40 + 5 * round) as usize..]
                .iter()
                .enumerate()
            {
                want.push((part, 40 + 5 * round + i as i64, v.clone()));
            }
        }
        want.sort();
        assert_eq!(got, want, "round {round}: group resumed at the wrong place");
    }
    drop(p);
    assert!(broker.stop_with("TERM").success());
}
