//! One error enum for the storage layer. The broker maps each variant to a Kafka error code in
//! one place (`rivulet-broker/src/error.rs`).

use std::path::PathBuf;

use crate::quoted::Quoted;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A batch failed validation (bad length, magic, or CRC-32C). Nothing was stored.
    #[error("corrupt record batch at byte {position}: {reason}")]
    CorruptBatch { position: usize, reason: String },
    /// A batch is larger than the topic's max.message.bytes.
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: usize },
    /// Structurally valid but not acceptable (e.g. magic < 2, empty batch, transactional batch).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// A timestamp the topic does not accept (e.g. LogAppendTime set by the producer).
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(String),
    #[error("offset {offset} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    #[error("out of order sequence for producer {producer_id}: expected {expected}, got {got}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    #[error("producer {producer_id} epoch {got} is older than current epoch {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        current: i16,
        got: i16,
    },
    // Names and config text below come from clients: shown through `Quoted`.
    #[error("unknown topic or partition: {}", Quoted(.0))]
    UnknownTopicOrPartition(String),
    #[error("topic {} already exists", Quoted(.0))]
    TopicAlreadyExists(String),
    #[error("invalid topic name {}: {reason}", Quoted(.name))]
    InvalidTopic { name: String, reason: String },
    #[error("invalid partition count: {0}")]
    InvalidPartitions(String),
    #[error("invalid config {}={}: {reason}", Quoted(.key), Quoted(.value))]
    InvalidConfig {
        key: String,
        value: String,
        reason: String,
    },
    /// A broker policy refuses the change (e.g. its topic or partition totals).
    #[error("policy violation: {0}")]
    PolicyViolation(String),
    /// The manager is shutting down: admin work stopped and was undone.
    #[error("the broker is shutting down")]
    ShuttingDown,
    /// A previous fsync failed: the log can no longer promise durability and refuses writes.
    #[error("log directory is offline after an earlier i/o failure: {0}")]
    Offline(String),
    /// Rivulet could not encode a batch of its own (see `encode.rs`).
    #[error("cannot encode a record batch: {0}")]
    Encode(String),
}

impl LogError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LogError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = LogError> = std::result::Result<T, E>;
