//! `rivulet-client`: the client side of Rivulet, built on librdkafka (the `rdkafka` crate).
//!
//! The broker crates implement the Kafka wire protocol; this crate talks to any
//! Kafka-compatible broker (Rivulet's own or another) as an ordinary Kafka client would, so
//! that what it shows is what real clients see. The `rivulet` binary exposes it as:
//!
//! - `rivulet topics …` — [`admin::TopicsCommand`]: list, create, describe, delete topics;
//! - `rivulet groups …` — [`admin::GroupsCommand`]: list and describe consumer groups with
//!   their members, assignments, committed offsets and lag;
//! - `rivulet bench …` — [`bench::BenchCommand`]: produce and consume throughput/latency
//!   benchmarks, against a given broker or one the bench starts itself; `--client raw` runs
//!   them with a minimal `kafka-protocol` client instead, to measure the broker rather than
//!   librdkafka.

pub mod admin;
pub mod bench;
pub mod connection;
mod error;
mod util;

pub use connection::KafkaConnection;
pub use error::ClientError;
