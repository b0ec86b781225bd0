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
    /// The broker answered a request sent through [`crate::wire`] with an error code.
    #[error("{context}: {name} (error {code})")]
    BrokerCode {
        context: String,
        code: i16,
        /// Kafka's name of the error.
        name: String,
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
    /// The broker broke the Kafka protocol, or a request could not be encoded (`wire`).
    #[error("protocol: {0}")]
    Protocol(String),
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
