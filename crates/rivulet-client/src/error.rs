//! The one error type of this crate: every failure says what was being done.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// An error from an admin command.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// librdkafka reported an error while doing `context`.
    #[error("{context}: {source}")]
    Kafka {
        /// What was being done, e.g. "fetching metadata from 127.0.0.1:9092".
        context: String,
        /// The error librdkafka gave.
        #[source]
        source: KafkaError,
    },
    /// The broker answered an operation on one resource with an error code.
    #[error("{context}: {code}")]
    Broker {
        /// What was being done, e.g. "creating topic orders".
        context: String,
        /// The broker's error code.
        code: RDKafkaErrorCode,
    },
    /// A topic or group that the command needs does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A command-line argument that cannot be used.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Data from the broker that could not be decoded.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// What was being decoded.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// The thread running a blocking librdkafka call panicked or was cancelled.
    #[error("worker thread failed: {0}")]
    Worker(String),
}

impl ClientError {
    /// Wraps a librdkafka error with what was being done.
    pub(crate) fn kafka(context: impl Into<String>) -> impl FnOnce(KafkaError) -> ClientError {
        let context = context.into();
        move |source| ClientError::Kafka { context, source }
    }
}
