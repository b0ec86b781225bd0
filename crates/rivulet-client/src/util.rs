//! Small helpers of the admin commands.

use std::time::Duration;

use rdkafka::ClientConfig;

use crate::ClientError;

/// How long one metadata / offsets / admin request may take before the command gives up.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The base librdkafka configuration: only `bootstrap.servers`, librdkafka's defaults
/// otherwise (no `broker.address.family`: users may well say `localhost`).
pub(crate) fn base_config(brokers: &crate::KafkaConnection) -> ClientConfig {
    brokers.client_config()
}

/// Runs a blocking librdkafka call (metadata, watermarks, committed offsets, polling) off the
/// async runtime's worker threads.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, ClientError>
where
    F: FnOnce() -> Result<T, ClientError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ClientError::Worker(e.to_string()))?
}
