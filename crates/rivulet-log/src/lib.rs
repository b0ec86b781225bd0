//! # rivulet-log — the durable partition log
//!
//! Every record that enters Rivulet's embedded broker ends up here, and every durability claim of
//! the pipeline rests on this crate. Layout on disk follows Kafka so operators recognise it:
//!
//! ```text
//! <data-dir>/
//!   meta.properties                      cluster.id / node.id
//!   .clean-shutdown                      present only between a clean shutdown and the next start
//!   recovery-point-offset-checkpoint     per partition: offset below which data is known fsynced
//!   producer-id-block                    next producer id block (idempotent producers)
//!   topics/<topic>.json                  topic id, partition count, config overrides
//!   <topic>-<partition>/
//!     00000000000000000000.log           record batches exactly as producers sent them
//!     00000000000000000000.index         sparse offset index   (relative offset u32, position u32)
//!     00000000000000000000.timeindex     sparse time index     (timestamp i64, relative offset u32)
//!     producer.snapshot                  idempotent producer state as of an offset
//! ```
//!
//! The broker crate turns Kafka requests into calls on [`LogManager`] and [`PartitionLog`]; this
//! crate knows nothing about sockets or the wire protocol beyond the record batch format.

pub mod batch;
pub mod config;
pub mod error;
mod fsutil;
mod index;
pub mod manager;
pub mod partition;
pub mod producer;
mod segment;
pub mod store;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

pub use batch::{validate_batches, BatchHeader};
pub use config::LogConfig;
pub use error::LogError;
pub use manager::{validate_topic_name, LogManager, Partition, Topic};
pub use partition::{AppendResult, PartitionLog, Recovery};
pub use store::PartitionStore;
