//! # rivulet-broker — the embedded Kafka-compatible broker
//!
//! Speaks the Apache Kafka wire protocol (through the `kafka-protocol` crate) so unmodified
//! clients — librdkafka/kcat, kafka-python, franz-go, the Java client — produce to and consume
//! from Rivulet. Records are stored by `rivulet-log`; consumer groups are coordinated here.
//!
//! Flow: [`server`] accepts sockets → `connection` frames bytes (`codec` decodes) → `handlers`
//! (one file per API) → `rivulet_log` / `group` → responses back in request order (Fetch
//! responses stream their records from the log, see [`response`]).
//!
//! Hostile clients are bounded everywhere: frames by size and by time to arrive, connections
//! by count (in total and per address) and idle time, request bytes held across connections,
//! fetch responses by `--fetch-max-bytes`, admin requests by partition and topic limits before
//! any work (which runs on the blocking pool), produce payloads by full record validation;
//! client-supplied text is escaped in logs and repeated warnings are rate-limited
//! ([`logging`]). See [`BrokerConfig`] for every limit.

pub mod acl;
pub mod auth;
pub mod codec;
pub mod config;
mod connection;
pub mod durability;
pub mod error;
pub mod group;
mod handlers;
pub mod logging;
pub mod response;
pub mod server;
pub mod state;
pub mod txn;

pub use config::{BrokerConfig, FsyncPolicy};
pub use error::BrokerError;
pub use group::GroupConfig;
pub use server::{start, BrokerHandle};
pub use state::Broker;
pub use txn::TxnConfig;
