//! The runtime's error type.

use std::path::PathBuf;

use rdkafka::error::KafkaError;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A file of the checkpoint directory or a file sink could not be read or written.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The checkpoint directory holds something unexpected (corrupt or foreign files).
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// librdkafka reported an error while doing `context`.
    #[error("kafka error while {context}: {source}")]
    Kafka {
        context: String,
        #[source]
        source: KafkaError,
    },
    /// The source or a sink could not make progress (timeouts, missing records).
    #[error("{0}")]
    Source(String),
    /// A sink failed.
    #[error("sink {sink}: {reason}")]
    Sink { sink: String, reason: String },
    #[error(transparent)]
    Engine(#[from] rivulet_engine::EngineError),
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Encoding or decoding a Parquet file failed.
    #[error("parquet error: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("json error: {0}")]
    Json(#[from] serde_json::Error),
    /// The plan cannot run (e.g. no topics).
    #[error("invalid plan: {0}")]
    Plan(String),
    /// The query thread panicked or could not be joined.
    #[error("query thread failed: {0}")]
    Thread(String),
    /// Another process took this query over (checkpoints in Kafka): a newer producer with one of
    /// its transactional ids fenced this one, which must stop without writing anything more.
    #[error("fenced: another process took over this query's task and fenced {0}; this one stops it without writing")]
    Fenced(String),
    /// A test fail point fired (simulated crash).
    #[error("simulated crash at {0}")]
    FailPoint(String),
}

impl RuntimeError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RuntimeError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn kafka(context: impl Into<String>, source: KafkaError) -> Self {
        RuntimeError::Kafka {
            context: context.into(),
            source,
        }
    }
}
