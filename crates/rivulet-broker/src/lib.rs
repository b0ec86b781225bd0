//! # rivulet-broker — the embedded Kafka-compatible broker
//!
//! Speaks the Apache Kafka wire protocol (through the `kafka-protocol` crate) so unmodified
//! clients — librdkafka/kcat, kafka-python, franz-go, the Java client — produce to and consume
//! from Rivulet. Records are stored by `rivulet-log`; consumer groups are coordinated here.
//!
//! Flow: [`server`] accepts sockets → `connection` frames bytes (`codec` decodes) → `handlers`
//! (one file per API) → `rivulet_log` / `group` → responses back in request order.

pub mod codec;
pub mod config;
mod connection;
pub mod durability;
pub mod error;
pub mod group;
mod handlers;
pub mod server;
pub mod state;

pub use config::{BrokerConfig, FsyncPolicy};
pub use error::BrokerError;
pub use group::GroupConfig;
pub use server::{start, BrokerHandle};
pub use state::Broker;
