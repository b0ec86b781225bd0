//! `rivulet bench compaction`: the log cleaner's throughput and the broker's memory while it
//! cleans. A compacted topic is filled with `--mb` megabytes of keyed records (every key
//! written many times) while `min.compaction.lag.ms` holds the cleaner back; then the lag is
//! lifted and the bench times the first full pass (the broker's `rivulet.cleaner.*` status,
//! polled every 50 ms) and samples the broker's RSS meanwhile.

use rivulet_client::KafkaConnection;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use crate::broker::BenchBroker;
use crate::kafka::{blocking, client_config, topic_offsets};
use crate::payload::PayloadGen;
use crate::report::{round2, Report};
use crate::{BenchError, Launcher};

const TOPIC: &str = "bench-compaction";

/// `rivulet bench compaction` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct CompactionArgs {
    /// Megabytes of records written before the cleaner runs.
    #[arg(long, default_value_t = 1024)]
    pub mb: u64,
    /// Distinct keys (each written about `mb * 10^6 / size / keys` times).
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// Record value size in bytes.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// segment.bytes of the topic, in MiB (the cleaner groups segments up to this size).
    #[arg(long, default_value_t = 128)]
    pub segment_mib: u64,
    /// --fsync of the bench's broker (`always` or an interval like `100ms`).
    #[arg(long, default_value = "100ms")]
    pub fsync: String,
    /// Bound on the whole run.
    #[arg(long, default_value_t = 1800)]
    pub timeout_secs: u64,
}

fn configs(segment_bytes: u64, min_lag_ms: &str) -> Vec<(String, String)> {
    [
        ("cleanup.policy", "compact".to_string()),
        ("segment.bytes", segment_bytes.to_string()),
        ("min.cleanable.dirty.ratio", "0.01".to_string()),
        ("min.compaction.lag.ms", min_lag_ms.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

pub(crate) async fn run(
    args: CompactionArgs,
    launcher: Arc<dyn Launcher>,
) -> Result<(), BenchError> {
    if args.mb == 0 || args.keys == 0 || args.segment_mib == 0 {
        return Err(BenchError::InvalidArgument(
            "--mb, --keys and --segment-mib must be at least 1".into(),
        ));
    }
    let segment_bytes = args.segment_mib * 1024 * 1024;
    if segment_bytes > i32::MAX as u64 {
        return Err(BenchError::InvalidArgument(
            "--segment-mib is at most 2047".into(),
        ));
    }
    let count = args.mb * 1_000_000 / args.size.max(1) as u64;
    PayloadGen::new(args.size, count)?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let fsync = args.fsync.clone();
    let broker = blocking(move || {
        BenchBroker::start_with(|dir| {
            let mut command = launcher.broker(dir, &fsync);
            command.args(["--log-cleaner-backoff-ms", "50"]);
            command
        })
    })
    .await?;
    let brokers = broker.addr().to_string();
    rivulet_client::admin::create_topic_inner(
        &KafkaConnection::new(brokers.as_str()),
        TOPIC,
        1,
        &configs(segment_bytes, "86400000"),
    )
    .await?;
    topic_offsets(&KafkaConnection::new(brokers.as_str()), TOPIC).await?;

    // Fill (not measured as cleaning): keyed records, acks=1.
    let fill_started = Instant::now();
    let producer: BaseProducer = client_config(&KafkaConnection::new(brokers.as_str()))
        .set("acks", "1")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "2000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create()
        .map_err(BenchError::kafka("creating the fill producer"))?;
    let (size, keys) = (args.size, args.keys);
    blocking(move || {
        let mut gen = PayloadGen::new(size, count)?;
        for id in 0..count {
            let key = format!("key-{}", id % keys);
            let mut record = BaseRecord::<str, [u8]>::to(TOPIC)
                .key(&key)
                .payload(gen.record(id));
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                        r,
                    )) => {
                        record = r;
                        producer.poll(Duration::from_millis(5));
                        if Instant::now() >= deadline {
                            return Err(BenchError::Timeout("filling the topic".into()));
                        }
                    }
                    Err((e, _)) => {
                        return Err(BenchError::Kafka {
                            context: format!("producing to {TOPIC}"),
                            source: e,
                        })
                    }
                }
            }
            if id.is_multiple_of(1024) {
                producer.poll(Duration::ZERO);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        producer
            .flush(left)
            .map_err(BenchError::kafka("flushing the fill producer"))
    })
    .await?;
    let fill_secs = fill_started.elapsed().as_secs_f64();
    let (_, offsets) = topic_offsets(&KafkaConnection::new(brokers.as_str()), TOPIC).await?;
    let end = offsets.first().map_or(0, |(_, _, high)| *high);
    let before = broker.rss();

    // Lift the lag: the next cleaner round cleans everything but the active segment.
    rivulet_client::admin::set_topic_configs(
        &KafkaConnection::new(brokers.as_str()),
        TOPIC,
        &configs(segment_bytes, "0"),
    )
    .await?;
    let started = Instant::now();
    let mut peak_kib = before.current_kib;
    let cleaned_up_to = loop {
        if Instant::now() >= deadline {
            return Err(BenchError::Timeout("waiting for the cleaner".into()));
        }
        peak_kib = peak_kib.max(broker.rss().current_kib);
        let status =
            rivulet_client::admin::cleaner_status(&KafkaConnection::new(brokers.as_str()), TOPIC)
                .await?;
        if let Some((_, up_to, _, last)) = status.first() {
            if *last >= 0 && *up_to > 0 {
                break *up_to;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let clean_secs = started.elapsed().as_secs_f64().max(1e-9);
    // What the pass read: every record below where it cleaned up to (payload + ~70 bytes of
    // key, record and batch overhead each, measured on this format).
    let cleaned_records = cleaned_up_to.min(end) as f64;
    let cleaned_mb = cleaned_records * (args.size as f64 + 20.0) / 1e6;
    let records_after = count_records(&brokers, deadline).await?;
    let mut report = Report::new("compaction");
    report.add("broker", brokers.clone());
    report.add("broker_fsync", args.fsync.clone());
    report.add("records", count);
    report.add("keys", args.keys);
    report.add("record_bytes", args.size);
    report.add("segment_mib", args.segment_mib);
    report.add("fill_secs", round2(fill_secs));
    report.add("cleaned_up_to", cleaned_up_to);
    report.add("records_after_clean", records_after);
    report.add("clean_secs", round2(clean_secs));
    report.add(
        "clean_records_per_sec",
        (cleaned_records / clean_secs).round() as u64,
    );
    report.add("clean_mb_per_sec", round2(cleaned_mb / clean_secs));
    report.add(
        "broker_rss_before_clean_mib",
        round2(before.current_kib as f64 / 1024.0),
    );
    report.add(
        "broker_peak_rss_cleaning_mib",
        round2(peak_kib as f64 / 1024.0),
    );
    let rss = broker.stop();
    report.add("broker_peak_rss_mib", round2(rss.peak_kib as f64 / 1024.0));
    report.print();
    Ok(())
}

/// Records left in the topic (read from the beginning to its end).
async fn count_records(brokers: &str, deadline: Instant) -> Result<u64, BenchError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = client_config(&KafkaConnection::new(brokers))
        .set("group.id", "rivulet-bench")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.max.bytes", "67108864")
        .set("max.partition.fetch.bytes", "16777216")
        .create()
        .map_err(BenchError::kafka("creating a consumer"))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .map_err(BenchError::kafka("building the assignment"))?;
    consumer
        .assign(&tpl)
        .map_err(BenchError::kafka("assigning the partition"))?;
    blocking(move || {
        let mut n = 0u64;
        loop {
            if Instant::now() >= deadline {
                return Err(BenchError::Timeout("counting the records left".into()));
            }
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(_)) => n += 1,
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return Ok(n),
                Some(Err(e)) => {
                    return Err(BenchError::Kafka {
                        context: format!("reading {TOPIC}"),
                        source: e,
                    })
                }
                None => {}
            }
        }
    })
    .await
}
