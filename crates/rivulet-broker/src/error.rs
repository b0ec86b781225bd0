//! The broker's error type, and the one place where errors become Kafka error codes.

use kafka_protocol::error::ResponseError;
use rivulet_log::LogError;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("{0}")]
    Other(String),
}

/// Kafka error code for a storage error.
pub fn log_error_code(e: &LogError) -> i16 {
    let err = match e {
        LogError::Io { .. } | LogError::Offline(_) => ResponseError::KafkaStorageError,
        LogError::CorruptBatch { .. } => ResponseError::CorruptMessage,
        LogError::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
        LogError::InvalidRecord(_) => ResponseError::InvalidRecord,
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        LogError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        LogError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        LogError::UnknownTopicOrPartition(_) => ResponseError::UnknownTopicOrPartition,
        LogError::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
        LogError::InvalidTopic { .. } => ResponseError::InvalidTopicException,
        LogError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        LogError::InvalidConfig { .. } => ResponseError::InvalidConfig,
    };
    err.code()
}

impl BrokerError {
    pub fn code(&self) -> i16 {
        match self {
            BrokerError::Log(e) => log_error_code(e),
            BrokerError::Io(_) => ResponseError::KafkaStorageError.code(),
            BrokerError::Malformed(_) => ResponseError::InvalidRequest.code(),
            BrokerError::Other(_) => ResponseError::UnknownServerError.code(),
        }
    }
}
