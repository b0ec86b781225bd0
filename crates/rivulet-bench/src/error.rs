//! The one error type of this crate: every failure says what was being done.

use rdkafka::error::KafkaError;
use rivulet_client::ClientError;

/// An error from a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// librdkafka reported an error while doing `context`.
    #[error("{context}: {source}")]
    Kafka {
        /// What was being done, e.g. "creating a producer for 127.0.0.1:9092".
        context: String,
        /// The error librdkafka gave.
        #[source]
        source: KafkaError,
    },
    /// An admin call (creating the bench's topic) failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A command-line argument that cannot be used.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Data that could not be decoded.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// What was being decoded.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// The broker broke the Kafka protocol, or a request could not be encoded (`--client raw`).
    #[error("protocol: {0}")]
    Protocol(String),
    /// Starting or talking to the broker that the bench runs itself failed.
    #[error("bench broker: {0}")]
    BrokerProcess(String),
    /// A bounded wait ran out.
    #[error("timed out: {0}")]
    Timeout(String),
    /// An I/O error while doing `context`.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A benchmark ran but not every record made it.
    #[error("benchmark incomplete: {0}")]
    Incomplete(String),
    /// A worker thread of a benchmark panicked or was cancelled.
    #[error("benchmark worker failed: {0}")]
    Worker(String),
}

impl BenchError {
    /// Wraps a librdkafka error with what was being done.
    pub(crate) fn kafka(context: impl Into<String>) -> impl FnOnce(KafkaError) -> BenchError {
        let context = context.into();
        move |source| BenchError::Kafka { context, source }
    }

    /// Wraps an I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
        let context = context.into();
        move |source| BenchError::Io { context, source }
    }
}
