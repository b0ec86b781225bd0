//! librdkafka clients set up for quick tests against a broker on 127.0.0.1, and what the
//! tests read back with them. Blocking readers say so in their name or docs; the async ones
//! run on the blocking pool.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::producer::{BaseProducer, BaseRecord, FutureProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::wait::WAIT;

/// librdkafka settings shared by all clients: fail fast, reconnect fast.
pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "10000")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "1000")
        .set("topic.metadata.refresh.interval.ms", "5000")
        .set("broker.address.family", "v4");
    c
}

/// Producer config: acks=all, not idempotent unless the caller sets it.
pub fn producer_config(bootstrap: &str) -> ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("message.timeout.ms", "30000")
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("linger.ms", "5")
        .set("retry.backoff.ms", "50");
    c
}

/// A [`producer_config`] producer.
pub fn producer(bootstrap: &str) -> FutureProducer {
    producer_config(bootstrap)
        .create()
        .expect("create producer")
}

/// Idempotent acks=all producer config that rides out broker restarts.
pub fn idempotent_producer_config(bootstrap: &str) -> ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "60000")
        .set("request.timeout.ms", "10000")
        .set("retry.backoff.ms", "50")
        .set("retry.backoff.max.ms", "500")
        .set("linger.ms", "5");
    c
}

/// Produces `records` (partition, or `None` for the key's; key; value) in order with an
/// [`idempotent_producer_config`] producer and waits until all are acknowledged. Blocking,
/// bounded.
pub fn produce_records<'a>(
    bootstrap: &str,
    topic: &str,
    records: impl IntoIterator<Item = (Option<i32>, Option<&'a str>, &'a str)>,
) {
    let p: BaseProducer = idempotent_producer_config(bootstrap).create().unwrap();
    for (partition, key, value) in records {
        let mut rec = BaseRecord::<str, str>::to(topic).payload(value);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        if let Some(part) = partition {
            rec = rec.partition(part);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut rec = Some(rec);
        while let Some(r) = rec.take() {
            if let Err((err, r)) = p.send(r) {
                assert!(Instant::now() < deadline, "produce: {err}");
                p.poll(Duration::from_millis(50));
                rec = Some(r);
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(60)).unwrap();
    assert_eq!(p.in_flight_count(), 0);
}

/// Config for a consumer without a group (manual assign), reading from the beginning.
pub fn plain_consumer_config(bootstrap: &str) -> ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("group.id", "unused-plain-consumer")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .set("enable.partition.eof", "false");
    c
}

/// Config for a consumer in `group` (subscribe, manual commits, from the beginning).
pub fn group_consumer_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "500")
        .set("fetch.wait.max.ms", "100");
    c
}

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    client_config(bootstrap)
        .create()
        .expect("create admin client")
}

pub fn admin_opts() -> AdminOptions {
    AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(20)))
        .request_timeout(Some(Duration::from_secs(20)))
}

/// Creates a topic with topic configs `configs` and asserts success.
pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin = admin(bootstrap);
    let mut t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let res = tokio::time::timeout(WAIT, admin.create_topics([&t], &admin_opts()))
        .await
        .expect("create_topics timed out")
        .expect("create_topics request failed");
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("creating topic {t} failed: {e:?}"));
    }
}

/// How many partitions `topic` has (metadata; `None` when the broker reports an error for
/// it). Blocking.
pub fn partition_count(bootstrap: &str, topic: &str) -> Option<usize> {
    let c: BaseConsumer = plain_consumer_config(bootstrap).create().expect("consumer");
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(20))
        .expect("metadata");
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    if t.error().is_some() {
        return None;
    }
    Some(t.partitions().len())
}

/// Low/high watermarks of one partition (ListOffsets earliest/latest). Blocking, bounded.
pub fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> (i64, i64) {
    let c: BaseConsumer = plain_consumer_config(bootstrap).create().expect("consumer");
    c.fetch_watermarks(topic, partition, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("fetch_watermarks {topic}/{partition}: {e}"))
}

/// End offsets (high watermarks) of every partition of `topic`. Blocking.
pub fn end_offsets(bootstrap: &str, topic: &str) -> Vec<i64> {
    let n = partition_count(bootstrap, topic).expect("topic metadata");
    (0..n as i32)
        .map(|p| watermarks(bootstrap, topic, p).1)
        .collect()
}

/// Reads partition `partition` of `topic` from offset `from` until `count` messages were read
/// (or [`WAIT`] passes, which panics). Blocking: see [`read_partition`] for the async one.
pub fn read_partition_blocking(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    from: i64,
    count: usize,
) -> Vec<OwnedMessage> {
    let mut out = Vec::with_capacity(count);
    if count == 0 {
        return out;
    }
    let c: BaseConsumer = plain_consumer_config(bootstrap).create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(from))
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let deadline = Instant::now() + WAIT;
    while out.len() < count {
        assert!(
            Instant::now() < deadline,
            "timed out reading {topic}/{partition} from {from}: got {} of {count} messages",
            out.len()
        );
        match c.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(e)) => panic!("consume error on {topic}/{partition}: {e}"),
        }
    }
    out
}

/// Reads `count` messages of one partition from `from` (on the blocking pool).
pub async fn read_partition(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    from: i64,
    count: usize,
) -> Vec<OwnedMessage> {
    let (b, t) = (bootstrap.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || read_partition_blocking(&b, &t, partition, from, count))
        .await
        .expect("reader thread panicked")
}

/// A whole partition (low watermark .. high watermark as of now). Blocking.
pub fn read_all_blocking(bootstrap: &str, topic: &str, partition: i32) -> Vec<OwnedMessage> {
    let (lo, hi) = watermarks(bootstrap, topic, partition);
    let n = usize::try_from(hi - lo).expect("watermarks");
    read_partition_blocking(bootstrap, topic, partition, lo, n)
}

/// A whole partition (low watermark .. high watermark as of now), on the blocking pool.
pub async fn read_all(bootstrap: &str, topic: &str, partition: i32) -> Vec<OwnedMessage> {
    let (b, t) = (bootstrap.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || read_all_blocking(&b, &t, partition))
        .await
        .expect("reader thread panicked")
}

/// Every message of every partition of `topic`, from the beginning up to the current end
/// (partitions interleaved as they arrive), as a read_committed consumer sees them: records of
/// aborted transactions and transaction markers are skipped, so the end is the partition-EOF
/// event rather than a count. Blocking, bounded.
pub fn read_messages(bootstrap: &str, topic: &str) -> Vec<OwnedMessage> {
    let c: BaseConsumer = plain_consumer_config(bootstrap)
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let n = partition_count(bootstrap, topic).expect("topic metadata");
    let mut tpl = TopicPartitionList::new();
    let mut want = HashMap::new();
    for p in 0..n as i32 {
        let (lo, hi) = c
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .unwrap();
        if hi > lo {
            tpl.add_partition_offset(topic, p, Offset::Offset(lo))
                .unwrap();
            want.insert(p, hi);
        }
    }
    let mut out = Vec::new();
    if want.is_empty() {
        return out;
    }
    c.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !want.is_empty() {
        assert!(Instant::now() < deadline, "timed out reading {topic}");
        match c.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                want.remove(&p);
            }
            Some(Err(e)) => panic!("consume error on {topic}: {e}"),
            Some(Ok(m)) => {
                if want
                    .get(&m.partition())
                    .is_some_and(|hi| m.offset() + 1 >= *hi)
                {
                    want.remove(&m.partition());
                }
                out.push(m.detach());
            }
        }
    }
    out
}

/// A record's value and headers (values as lossy UTF-8).
pub type Record = (Vec<u8>, Vec<(String, String)>);

/// Every record of every partition of `topic` ([`read_messages`]) as value and headers.
pub fn read_records(bootstrap: &str, topic: &str) -> Vec<Record> {
    read_messages(bootstrap, topic)
        .into_iter()
        .map(|m| {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|x| {
                            (
                                x.key.to_string(),
                                String::from_utf8_lossy(x.value.unwrap_or_default()).to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            (m.payload().unwrap_or_default().to_vec(), headers)
        })
        .collect()
}

/// Every record value of `topic`, from the beginning up to the current end. Blocking.
pub fn read_topic(bootstrap: &str, topic: &str) -> Vec<Vec<u8>> {
    read_records(bootstrap, topic)
        .into_iter()
        .map(|(v, _)| v)
        .collect()
}

/// Every record value of `topic` as JSON (the rows of a sink, late or dead-letter topic).
/// Blocking.
pub fn topic_rows(bootstrap: &str, topic: &str) -> Vec<serde_json::Value> {
    read_topic(bootstrap, topic)
        .into_iter()
        .map(|v| serde_json::from_slice(&v).unwrap())
        .collect()
}

/// The offsets `group` committed for partitions `0..partitions` of `topic` (OffsetFetch;
/// `Offset::Invalid` where none). Blocking.
pub fn committed_offsets(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Vec<Offset> {
    let c: BaseConsumer = client_config(bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let r = c
        .committed_offsets(tpl, Duration::from_secs(20))
        .expect("committed_offsets");
    (0..partitions)
        .map(|p| {
            r.find_partition(topic, p)
                .map_or(Offset::Invalid, |e| e.offset())
        })
        .collect()
}

/// The records `group` holds as done in `topic`: its committed offsets summed over partitions
/// `0..partitions` (none counts 0). Blocking.
pub fn committed_total(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> i64 {
    committed_offsets(bootstrap, group, topic, partitions)
        .into_iter()
        .map(|o| match o {
            Offset::Offset(n) => n,
            _ => 0,
        })
        .sum()
}

/// Headers of a message as (key, value) pairs.
pub fn headers_of(m: &OwnedMessage) -> Vec<(String, Option<Vec<u8>>)> {
    match m.headers() {
        None => vec![],
        Some(h) => h
            .iter()
            .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
            .collect(),
    }
}

pub fn payload_str(m: &OwnedMessage) -> Option<String> {
    m.payload().map(|p| String::from_utf8_lossy(p).into_owned())
}

pub fn key_str(m: &OwnedMessage) -> Option<String> {
    m.key().map(|p| String::from_utf8_lossy(p).into_owned())
}

/// Asserts that messages carry the dense offsets `first, first+1, ...`.
pub fn assert_dense(msgs: &[OwnedMessage], first: i64, what: &str) {
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(
            m.offset(),
            first + i as i64,
            "{what}: offsets not dense at index {i}"
        );
    }
}
