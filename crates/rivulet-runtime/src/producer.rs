//! A task's Kafka producer: idempotent, and with the checkpoint in Kafka transactional under
//! the task's id, so that one Kafka transaction per epoch carries the task's changelog writes
//! (input offsets, state, commit marker) *and* the output of its Kafka writers (sinks, dead
//! letters, late rows, the repartition topic) — Kafka Streams' exactly_once_v2.
//!
//! [`crate::checkpoint::KafkaStore`] opens it (initialising the transactional id fences an
//! earlier process of the task), [`crate::sinks::kafka::EpochProducer`]s on the same cluster
//! join it, and the query driver holds the epoch's transaction open from its first write to
//! its commit marker ([`TaskProducer::hold`], [`crate::checkpoint::Checkpoint::commit_epoch`]).
//! A writer on another cluster, or any writer with the checkpoint in a directory, has a
//! producer of its own (one transaction per epoch or none).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::{Client, ClientContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Message, ToBytes};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use crate::connectors::kafka::KafkaConnection;

/// How long a send waits for room in the queue, a flush for deliveries, and a transaction
/// call for the coordinator.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// What the deliveries of a producer reported.
#[derive(Default)]
struct Delivery {
    failed: AtomicU64,
    /// A delivery failed because a newer producer of the same transactional id fenced this one.
    fenced: AtomicBool,
    first_error: Mutex<Option<String>>,
    /// Highest offset delivered per topic and partition (for the writers' recovery floors).
    delivered: Mutex<HashMap<String, HashMap<i32, i64>>>,
}

pub struct DeliveryContext(Arc<Delivery>);

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                if let Ok(mut d) = self.0.delivered.lock() {
                    let topic = match d.get_mut(m.topic()) {
                        Some(t) => t,
                        None => d.entry(m.topic().to_string()).or_default(),
                    };
                    let o = topic.entry(m.partition()).or_insert(m.offset());
                    *o = (*o).max(m.offset());
                }
            }
            Err((e, _)) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
                if is_fenced(e) {
                    self.0.fenced.store(true, Ordering::Relaxed);
                }
                if let Ok(mut g) = self.0.first_error.lock() {
                    g.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}

/// Whether `e` says a newer producer with the same transactional id fenced this one.
pub fn is_fenced(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::Fenced
                | RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
        )
    )
}

/// Why records did not all arrive.
#[derive(Debug)]
pub enum DeliveryFailure {
    /// A newer producer of the transactional id fenced this one.
    Fenced,
    /// `count` records failed; the first error.
    Failed { count: u64, first: String },
    /// The flush itself failed.
    Flush(KafkaError),
}

/// See the module docs.
pub struct TaskProducer {
    producer: ThreadedProducer<DeliveryContext>,
    delivery: Arc<Delivery>,
    connection: KafkaConnection,
    transactional_id: Option<String>,
    /// A transaction is open.
    open: AtomicBool,
    /// The epoch's transaction is held open by the checkpoint: writes go into it and only
    /// the checkpoint's commit ends it.
    held: AtomicBool,
}

impl std::fmt::Debug for TaskProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskProducer")
            .field("servers", &self.connection.bootstrap_servers)
            .field("transactional_id", &self.transactional_id)
            .finish_non_exhaustive()
    }
}

/// Client properties that only a consumer reads: two connections that differ in these alone
/// write as the same client to the same cluster.
const CONSUMER_ONLY: [&str; 6] = [
    "isolation.level",
    "group.id",
    "auto.offset.reset",
    "fetch.wait.max.ms",
    "fetch.min.bytes",
    "max.poll.interval.ms",
];

impl TaskProducer {
    /// An idempotent producer (acks=all) through `connection`; with `transactional_id` its
    /// transactions are initialised, which aborts what an earlier producer of that id left
    /// open and fences it.
    pub fn connect(
        connection: &KafkaConnection,
        transactional_id: Option<&str>,
    ) -> Result<Arc<TaskProducer>, KafkaError> {
        let delivery = Arc::new(Delivery::default());
        let mut config = connection.client_config();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000");
        if let Some(id) = transactional_id {
            config
                .set("transactional.id", id)
                .set("transaction.timeout.ms", "60000");
        }
        let producer: ThreadedProducer<DeliveryContext> =
            config.create_with_context(DeliveryContext(delivery.clone()))?;
        if transactional_id.is_some() {
            producer.init_transactions(TIMEOUT)?;
        }
        Ok(Arc::new(TaskProducer {
            producer,
            delivery,
            connection: connection.clone(),
            transactional_id: transactional_id.map(str::to_string),
            open: AtomicBool::new(false),
            held: AtomicBool::new(false),
        }))
    }

    pub fn client(&self) -> &Client<DeliveryContext> {
        self.producer.client()
    }

    pub fn transactional_id(&self) -> Option<&str> {
        self.transactional_id.as_deref()
    }

    /// Whether a writer through `connection` can write in this producer's transactions: the
    /// same servers and the same client properties (credentials included), consumer-only
    /// ones aside, and this producer is transactional.
    pub fn joins(&self, connection: &KafkaConnection) -> bool {
        self.transactional_id.is_some() && same_writer(connection, &self.connection)
    }

    /// Begins a transaction unless one is open.
    pub fn begin(&self) -> Result<(), KafkaError> {
        if !self.open.load(Ordering::Acquire) {
            self.producer.begin_transaction()?;
            self.open.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Holds the epoch's transaction open (begun now) until [`TaskProducer::commit_held`].
    pub fn hold(&self) -> Result<(), KafkaError> {
        self.begin()?;
        self.held.store(true, Ordering::Release);
        Ok(())
    }

    /// Whether the epoch's transaction is held open.
    pub fn is_held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }

    /// Commits the held transaction (nothing when none is held).
    pub fn commit_held(&self) -> Result<(), KafkaError> {
        if !self.held.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        self.commit()
    }

    /// Queues `record`, waiting (bounded) while the queue is full.
    pub fn send<K, P>(&self, record: BaseRecord<'_, K, P, ()>) -> Result<(), KafkaError>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let deadline = Instant::now() + TIMEOUT;
        let mut record = record;
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if Instant::now() < deadline =>
                {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Waits (bounded) until everything queued is delivered, in short sleeps: the producer's
    /// thread serves the deliveries, while the client library's own flush (also inside
    /// `commit_transaction`) returned only on a 100 ms poll, which cost every epoch 100 ms
    /// (docs/BENCHMARKS.md).
    fn wait_in_flight(&self) {
        let deadline = Instant::now() + TIMEOUT;
        while self.producer.in_flight_count() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Failed deliveries so far (to compare before and after a batch of sends).
    pub fn failures(&self) -> u64 {
        self.delivery.failed.load(Ordering::Relaxed)
    }

    /// Waits until everything queued is acknowledged; an error when a delivery failed since
    /// `failures_before` ([`TaskProducer::failures`]).
    pub fn flush(&self, failures_before: u64) -> Result<(), DeliveryFailure> {
        self.wait_in_flight();
        // Now immediate.
        self.producer
            .flush(TIMEOUT)
            .map_err(DeliveryFailure::Flush)?;
        let count = self.failures() - failures_before;
        if count == 0 {
            return Ok(());
        }
        if self.delivery.fenced.load(Ordering::Relaxed) {
            return Err(DeliveryFailure::Fenced);
        }
        let first = self
            .delivery
            .first_error
            .lock()
            .ok()
            .and_then(|g| g.clone())
            .unwrap_or_default();
        Err(DeliveryFailure::Failed { count, first })
    }

    /// Commits the open transaction (nothing when none is open); on failure aborts it, best
    /// effort (a fenced producer cannot abort, and nothing of it becomes visible either way).
    pub fn commit(&self) -> Result<(), KafkaError> {
        if !self.open.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        self.wait_in_flight();
        let done = self.producer.commit_transaction(TIMEOUT);
        if done.is_err() {
            let _ = self.producer.abort_transaction(TIMEOUT);
        }
        done
    }

    /// Aborts the open transaction, best effort.
    pub fn abort(&self) {
        self.held.store(false, Ordering::Release);
        if self.open.swap(false, Ordering::AcqRel) {
            let _ = self.producer.abort_transaction(TIMEOUT);
        }
    }

    /// The highest offset delivered per partition of `topic` so far.
    pub fn delivered(&self, topic: &str) -> HashMap<i32, i64> {
        self.delivery
            .delivered
            .lock()
            .ok()
            .and_then(|d| d.get(topic).cloned())
            .unwrap_or_default()
    }
}

/// Whether a producer through `a` and one through `b` write as the same client to the same
/// cluster: the same servers and the same properties, consumer-only ones aside.
fn same_writer(a: &KafkaConnection, b: &KafkaConnection) -> bool {
    let producer_side = |c: &KafkaConnection| {
        c.properties
            .iter()
            .filter(|(k, _)| !CONSUMER_ONLY.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    a.bootstrap_servers == b.bootstrap_servers && producer_side(a) == producer_side(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_join_only_as_the_same_client_of_the_same_cluster() {
        let source = KafkaConnection::new("127.0.0.1:9092")
            .with_property("isolation.level", "read_committed")
            .with_property("sasl.username", "app");
        let sink = KafkaConnection::new("127.0.0.1:9092").with_property("sasl.username", "app");
        assert!(
            same_writer(&source, &sink),
            "consumer-only properties count"
        );
        let other_user = KafkaConnection::new("127.0.0.1:9092").with_property("sasl.username", "b");
        assert!(
            !same_writer(&source, &other_user),
            "another principal joined"
        );
        let other_cluster =
            KafkaConnection::new("127.0.0.1:9093").with_property("sasl.username", "app");
        assert!(
            !same_writer(&source, &other_cluster),
            "another cluster joined"
        );
    }
}
