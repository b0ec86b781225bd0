//! Transactions through librdkafka: transactional producers, sending values to chosen
//! partitions, and reading what a read_committed or read_uncommitted consumer sees.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::kafka::{client_config, plain_consumer_config};
use crate::wait::WAIT;

/// Bound on each transactional call (init, commit, abort, flush).
pub const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of a librdkafka transactional producer with `transactional.id = id`.
pub fn transactional_producer_config(bootstrap: &str, id: &str) -> rdkafka::ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("transactional.id", id)
        .set("transaction.timeout.ms", "60000")
        .set("message.timeout.ms", "30000")
        .set("linger.ms", "5")
        .set("retry.backoff.ms", "50");
    c
}

/// A [`transactional_producer_config`] producer.
pub fn transactional_producer(bootstrap: &str, id: &str) -> BaseProducer {
    transactional_producer_config(bootstrap, id)
        .create()
        .expect("transactional producer")
}

/// Sends `values` round-robin over `targets` (topic, partition) and waits for delivery.
pub fn send_values(p: &BaseProducer, targets: &[(&str, i32)], values: &[String]) {
    for (i, v) in values.iter().enumerate() {
        let (topic, partition) = targets[i % targets.len()];
        let rec = BaseRecord::<str, str>::to(topic)
            .payload(v)
            .key(v)
            .partition(partition);
        p.send(rec).map_err(|(e, _)| e).expect("send");
        p.poll(Duration::ZERO);
    }
    p.flush(TXN_TIMEOUT).expect("flush");
}

/// `prefix-0`, `prefix-1`, …
pub fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Every value in `topics` (all partitions, from the beginning to the end a consumer with
/// `isolation` can see), sorted.
pub fn read_values(bootstrap: &str, topics: &[(&str, i32)], isolation: &str) -> Vec<String> {
    let mut out: Vec<String> = topics
        .iter()
        .flat_map(|(topic, partitions)| read_topic_values(bootstrap, topic, *partitions, isolation))
        .collect();
    out.sort();
    out
}

/// One topic's values, read until each partition reports its end. Bounded by [`WAIT`].
pub fn read_topic_values(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    isolation: &str,
) -> Vec<String> {
    let c: BaseConsumer = plain_consumer_config(bootstrap)
        .set("isolation.level", isolation)
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    c.assign(&tpl).expect("assign");
    let mut at_end = BTreeSet::new();
    let mut out = Vec::new();
    let deadline = Instant::now() + WAIT;
    while at_end.len() < partitions as usize {
        assert!(Instant::now() < deadline, "timed out reading {topic}");
        match c.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("consume error: {e}"),
        }
    }
    out
}

/// `v`, sorted.
pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}
