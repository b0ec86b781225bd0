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
    /// Broker settings that cannot work together (refused at start).
    #[error("invalid broker configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Other(String),
}

/// Kafka error code for a storage error.
pub fn log_error_code(e: &LogError) -> i16 {
    let err = match e {
        LogError::Io { .. } | LogError::Offline(_) => ResponseError::KafkaStorageError,
        LogError::Encode(_) => ResponseError::UnknownServerError,
        LogError::CorruptBatch { .. } => ResponseError::CorruptMessage,
        LogError::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
        LogError::InvalidRecord(_) => ResponseError::InvalidRecord,
        LogError::InvalidTimestamp(_) => ResponseError::InvalidTimestamp,
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        LogError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        LogError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        LogError::UnknownTopicOrPartition(_) => ResponseError::UnknownTopicOrPartition,
        LogError::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
        LogError::InvalidTopic { .. } => ResponseError::InvalidTopicException,
        LogError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        LogError::InvalidConfig { .. } => ResponseError::InvalidConfig,
        LogError::PolicyViolation(_) => ResponseError::PolicyViolation,
        // The request may be retried against the broker once it is back.
        LogError::ShuttingDown => ResponseError::BrokerNotAvailable,
    };
    err.code()
}

impl BrokerError {
    pub fn code(&self) -> i16 {
        match self {
            BrokerError::Log(e) => log_error_code(e),
            BrokerError::Io(_) => ResponseError::KafkaStorageError.code(),
            BrokerError::Malformed(_) => ResponseError::InvalidRequest.code(),
            BrokerError::Config(_) => ResponseError::InvalidConfig.code(),
            BrokerError::Other(_) => ResponseError::UnknownServerError.code(),
        }
    }
}

/// Kafka error codes for the broker's own refusals (request-level limits), kept here so every
/// code the broker answers is chosen in this file.
pub mod codes {
    use kafka_protocol::error::ResponseError;

    /// A request over a per-request limit (partitions to create): Kafka's controller answers
    /// "Unable to perform excessively large batch operation." with this code.
    pub fn policy_violation() -> i16 {
        ResponseError::PolicyViolation.code()
    }
    /// A request that is malformed for the broker (too many topics or config entries, the
    /// same topic twice).
    pub fn invalid_request() -> i16 {
        ResponseError::InvalidRequest.code()
    }
    pub fn unknown_server_error() -> i16 {
        ResponseError::UnknownServerError.code()
    }
    /// The authorisation failure of a resource type (ACLs, `acl.rs`).
    pub fn authorization_failed(rtype: crate::acl::ResourceType) -> i16 {
        use crate::acl::ResourceType;
        match rtype {
            ResourceType::Topic => ResponseError::TopicAuthorizationFailed.code(),
            ResourceType::Group => ResponseError::GroupAuthorizationFailed.code(),
            ResourceType::Cluster => ResponseError::ClusterAuthorizationFailed.code(),
            ResourceType::TransactionalId => {
                ResponseError::TransactionalIdAuthorizationFailed.code()
            }
        }
    }
}
