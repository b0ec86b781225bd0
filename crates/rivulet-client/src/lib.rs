//! `rivulet-client`: the client side of Rivulet, built on librdkafka (the `rdkafka` crate).
//!
//! The broker crates implement the Kafka wire protocol; this crate talks to any
//! Kafka-compatible broker (Rivulet's own or another) as an ordinary Kafka client would, so
//! that what it shows is what real clients see. It depends on no engine crate: the dashboard,
//! the generator and the benchmarks use it without pulling in the query engine.
//!
//! - [`KafkaConnection`]: bootstrap servers and client properties, the one type every
//!   librdkafka configuration in Rivulet is made from;
//! - `rivulet topics …` — [`admin::TopicsCommand`]: list, create, describe, delete topics;
//! - `rivulet groups …` — [`admin::GroupsCommand`]: list and describe consumer groups with
//!   their members, assignments, committed offsets and lag;
//! - [`admin::Inspector`]: the same views as data, for the dashboard;
//! - `rivulet transactions …` — [`transactions::TransactionsCommand`]: list and describe
//!   transactions (KIP-664), through [`wire`], the Kafka protocol spoken directly for what
//!   librdkafka's admin API does not offer.
//!
//! The benchmarks (`rivulet bench`) are the `rivulet-bench` crate.

pub mod acls;
pub mod admin;
pub mod connection;
mod error;
pub mod transactions;
pub mod users;
mod util;
pub mod wire;

pub use connection::{
    expand_env, is_secret_property, parse_property, read_properties_file, KafkaConnection, REDACTED,
};
pub use error::ClientError;
