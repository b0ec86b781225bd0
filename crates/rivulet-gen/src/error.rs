//! The generator's error type.

use std::time::Duration;

use rdkafka::error::KafkaError;

/// Why a generator run could not start or had to stop early. Delivery errors of individual
/// events are not errors of the run: they are counted in [`crate::GenSummary::errors`].
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// A flag value out of range or inconsistent with another.
    #[error("invalid arguments: {0}")]
    InvalidArgs(String),
    /// A librdkafka call failed (creating the producer, reaching the brokers, a send that
    /// failed for a reason other than a full queue).
    #[error("{context}: {source}")]
    Kafka {
        context: String,
        #[source]
        source: KafkaError,
    },
    /// The topic does not exist and the broker does not create topics automatically.
    #[error("topic `{0}` does not exist (create it first, or enable topic auto-creation)")]
    UnknownTopic(String),
    /// librdkafka's local queue stayed full this long: the brokers are not taking events.
    #[error("the producer queue stayed full for {0:?}: the brokers are not accepting events")]
    Backpressure(Duration),
    /// A helper thread panicked or was cancelled.
    #[error("internal error: {0}")]
    Internal(String),
}

impl GenError {
    pub(crate) fn kafka(context: impl Into<String>) -> impl FnOnce(KafkaError) -> GenError {
        let context = context.into();
        move |source| GenError::Kafka { context, source }
    }
}
