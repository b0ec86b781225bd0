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
//!   transactions.json                    the broker's transaction coordinator state
//!   topics/<topic>.json                  topic id, partition count, config overrides
//!   <topic>-<partition>/
//!     00000000000000000000.log           record batches exactly as producers sent them
//!     00000000000000000000.index         sparse offset index   (relative offset u32, position u32)
//!     00000000000000000000.timeindex     sparse time index     (timestamp i64, relative offset u32)
//!     producer.snapshot                  producer state (sequences, open and aborted
//!                                        transactions) as of an offset
//!     cleaner.json                       the log cleaner's passes (compacted topics)
//!     .cleaner/                          a cleaner pass in progress (see `cleaner.rs`)
//! ```
//!
//! The broker crate turns Kafka requests into calls on [`LogManager`] and [`PartitionLog`]; this
//! crate knows nothing about sockets or the wire protocol beyond the record batch format.
//!
//! What a client sends is validated here before anything is written ([`check_records`]: batch
//! structure and CRC in [`batch`], every record in [`records`], compressed batches decompressed
//! as a stream with a size cap), and admin changes are bounded ([`TopicLimits`]) and all or
//! nothing on disk (see [`manager`]). Segment files are opened through a bounded pool
//! ([`FilePool`]), so the number of partitions is not limited by the descriptor limit. Reads
//! can return a [`LogSlice`] (where the bytes are) instead of the bytes, for callers that send
//! them in pieces. [`encode_batch`] writes the batches Rivulet makes itself. [`Quoted`] shows client-supplied text safely in errors and logs.

pub mod batch;
pub mod cleaner;
pub mod config;
pub mod encode;
pub mod error;
mod filepool;
mod fsutil;
mod index;
pub mod manager;
pub mod partition;
pub mod producer;
pub mod quoted;
pub mod records;
mod segment;
#[cfg(test)]
mod store;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

pub use batch::{control_marker, validate_batches, BatchHeader};
pub use config::LogConfig;
pub use encode::{encode_batch, encode_batch_into, encode_marker, BatchSpec, NewRecord};
pub use error::LogError;
pub use filepool::{default_max_open_files, FilePool, FilePoolStats};
pub use fsutil::{replace_file, write_atomic};
pub use manager::{validate_topic_name, LogManager, Partition, StorageOptions, Topic, TopicLimits};
pub use partition::{
    check_records, AppendResult, CheckedRecords, CleanerStatus, PartitionLog, Recovery,
};
pub use producer::AbortedTxn;
pub use quoted::{quoted, Quoted};
pub use records::RecordRules;
pub use segment::LogSlice;
