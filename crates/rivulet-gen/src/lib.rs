//! `rivulet-gen`: the event generator, the first stage of the pipeline
//! (**generator → broker topic → engine**).
//!
//! It produces JSON events such as
//! `{"id":42,"value":17.30,"timestamp":"2026-11-24T10:00:00.123Z"}` into a topic of any
//! Kafka-compatible broker (Rivulet's own or a real Kafka) through librdkafka, keyed by the id
//! in decimal so each id stays in one partition (Java-compatible murmur2 partitioner). The
//! stream engine reads that topic; its tests compute the expected results from the very same
//! sequence with [`EventStream`], which is pure and deterministic for a seed.
//!
//! - [`EventStream`] / [`StreamConfig`]: what is generated, including late (out-of-order)
//!   and malformed events; the exact rule is in [`stream`].
//! - [`run`]: paces the stream into the topic ([`pacing`]: absolute schedule, bursts per
//!   tick), with acks=all, the idempotent producer, bounded backpressure, a progress line
//!   per second on stderr and a [`GenSummary`] at the end; [`run_with_stats`] also keeps
//!   live [`GenStats`] counters (the dashboard's generator rate).
//! - [`GenConfig`]: a run as plain data (the `rivulet gen` flags are parsed into one by the
//!   binary); the producer's connection is a [`rivulet_client::KafkaConnection`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), rivulet_gen::GenError> {
//! let config = rivulet_gen::GenConfig {
//!     count: Some(1000),
//!     seed: Some(7),
//!     ..rivulet_gen::GenConfig::new("127.0.0.1:9092", "events")
//! };
//! let summary = rivulet_gen::run(config, tokio_util::sync::CancellationToken::new()).await?;
//! println!("{summary}");
//! # Ok(()) }
//! ```

mod config;
mod error;
pub mod pacing;
mod run;
pub mod stream;
pub mod time;

pub use config::{parse_duration, parse_start_time, Compression, GenConfig};
pub use error::GenError;
pub use run::{run, run_with_stats, GenStats, GenSummary};
pub use stream::{Event, EventKind, EventStream, Field, Malformation, StreamConfig, ValueDist};
