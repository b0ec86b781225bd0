//! # rivulet-runtime — runs a continuous query as checkpointed micro-batches
//!
//! Place in the pipeline: generator → broker topic → **runtime** (Kafka source → decode →
//! operators of `rivulet-engine` → sinks). The runtime is the "driver" Spark Structured
//! Streaming provides around its operators: it turns an endless topic into numbered
//! micro-batches (*epochs*), runs each through the engine's operators, hands the result to the
//! sinks and records every step in a checkpoint (a directory, or a Kafka topic) so that a
//! restart — clean or after a crash — produces every result exactly once.
//!
//! - [`checkpoint`]: the write-ahead log (`offsets/`, `state/`, `commits/`) in a directory or a
//!   compacted Kafka topic.
//! - [`source`]: the Kafka source (native kafka-protocol fetcher or librdkafka; manual
//!   assignment, own offsets), and `decode_pool`: JSON decoding on every core.
//! - [`sinks`]: console, JSON-lines files and Kafka, each exactly-once for replayed epochs.
//! - [`dlq`]: dead letters and late rows to their topics.
//! - [`progress`]: Spark-style `StreamingQueryProgress` records.
//! - [`observer`]: [`QueryObserver`], the hook the live dashboard watches a query through.
//! - [`query`]: the driver, [`run_query`].
//! - [`group`]: a query checkpointed in Kafka spread over processes, a task per partition.
//! - [`repartition`]: its two stages and the repartition topic when the GROUP BY is not the
//!   input's key.
//! - [`args`]: the `rivulet run` flags equivalent to a pipeline file ([`PlanArgs`]).

pub mod args;
pub mod checkpoint;
pub mod connectors;
mod decode_pool;
pub mod dlq;
pub mod error;
pub mod group;
pub mod observer;
pub mod producer;
pub mod progress;
pub mod query;
pub mod repartition;
pub mod rows;
pub mod sinks;
pub mod source;

pub use args::PlanArgs;
pub use error::RuntimeError;
pub use observer::QueryObserver;
pub use query::{run_job, run_query, QuerySummary, RunOptions};

/// `Result` with [`RuntimeError`].
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
