//! The few Kafka calls the benches make besides the ones they measure: their librdkafka
//! configuration (from [`KafkaConnection`], like every connection Rivulet makes), creating the
//! bench topic and reading its offsets.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use rivulet_client::KafkaConnection;

use crate::BenchError;

/// How long one metadata / offsets request may take before the bench gives up.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The base librdkafka configuration of a bench client: `bootstrap.servers` only.
pub(crate) fn client_config(brokers: &KafkaConnection) -> ClientConfig {
    brokers.client_config()
}

/// Runs a blocking call (librdkafka polling, a child process's start) off the async
/// runtime's worker threads.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, BenchError>
where
    F: FnOnce() -> Result<T, BenchError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BenchError::Worker(e.to_string()))?
}

/// Creates `topic` with `partitions` partitions unless it exists; returns its partition count.
pub(crate) async fn ensure_topic(
    brokers: &KafkaConnection,
    topic: &str,
    partitions: i32,
) -> Result<usize, BenchError> {
    rivulet_client::admin::ensure_topic(brokers, topic, partitions, &[]).await?;
    let (n, _) = topic_offsets(brokers, topic).await?;
    Ok(n)
}

/// Partition count and (partition, low, high) of every partition of `topic`, waiting
/// (bounded) for the metadata to show the topic right after it was created.
pub(crate) async fn topic_offsets(
    brokers: &KafkaConnection,
    topic: &str,
) -> Result<(usize, Vec<(i32, i64, i64)>), BenchError> {
    let consumer: BaseConsumer =
        client_config(brokers)
            .create()
            .map_err(BenchError::kafka(format!(
                "creating a consumer for {brokers}"
            )))?;
    let topic = topic.to_string();
    blocking(move || {
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        loop {
            let md = consumer
                .fetch_metadata(Some(&topic), REQUEST_TIMEOUT)
                .map_err(BenchError::kafka(format!(
                    "fetching metadata of topic {topic}"
                )))?;
            let parts: Vec<i32> = md
                .topics()
                .iter()
                .filter(|t| t.name() == topic && t.error().is_none())
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            if !parts.is_empty() {
                let mut out = Vec::with_capacity(parts.len());
                for p in parts {
                    let (low, high) = consumer
                        .fetch_watermarks(&topic, p, REQUEST_TIMEOUT)
                        .map_err(BenchError::kafka(format!(
                            "fetching offsets of {topic}/{p}"
                        )))?;
                    out.push((p, low, high));
                }
                out.sort_unstable();
                return Ok((out.len(), out));
            }
            if Instant::now() >= deadline {
                return Err(BenchError::Timeout(format!(
                    "topic {topic} did not appear in metadata"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
}
