//! # rivulet-testkit — what Rivulet's tests share
//!
//! A dev-dependency of the other crates (never published, never in the binary). Every helper
//! talks to the real thing: a broker in this process or a `rivulet broker` child process, on
//! 127.0.0.1 with a port the system picked (`127.0.0.1:0`, the listener bound before the
//! server starts), through librdkafka clients. Every wait is bounded.
//!
//! - [`broker`]: [`TestBroker`], the in-process broker (restartable on its port and data).
//! - [`process`]: [`BrokerProcess`] and the helpers for any `rivulet` child process (signals,
//!   bounded exits, stdout lines, log tails).
//! - [`kafka`]: librdkafka client settings for quick tests, topic creation, watermarks, topic
//!   and partition readers, committed group offsets.
//! - [`disk`]: record batch headers read from segment files, independently of the broker.
//! - [`generator`]: the generator, each use in one function (its arguments, its event stream, a run).
//! - [`truth`]: hand-made events, ground truths of windowed aggregates computed with plain
//!   loops, and the checks of a query's rows against them.
//! - [`txn`]: transactional producers, and what read_committed / read_uncommitted consumers see.
//! - [`plan`]: the standard test plan as TOML text.
//! - [`checkpoint`]: what a query's checkpoint directory says was committed.
//! - [`storage`]: Parquet datasets read back with pyarrow, a throwaway PostgreSQL server.
//! - [`rng`]: a tiny seeded RNG.
//!
//! Everything is also exported at the root, so a test says `use rivulet_testkit::*;`.
#![allow(clippy::unwrap_used)]

pub mod broker;
pub mod checkpoint;
pub mod disk;
pub mod generator;
pub mod hostile;
pub mod http;
pub mod kafka;
pub mod plan;
pub mod process;
pub mod rng;
pub mod security;
pub mod storage;
pub mod truth;
pub mod txn;
pub mod wait;

pub use broker::*;
pub use checkpoint::*;
pub use disk::*;
pub use generator::*;
pub use hostile::*;
pub use http::*;
pub use kafka::*;
pub use plan::*;
pub use process::*;
pub use rng::*;
pub use security::*;
pub use truth::*;
pub use txn::*;
pub use wait::*;

/// RFC 3339 text of epoch milliseconds (`2026-11-24T10:00:00.000Z`), as the sinks write it.
pub use rivulet_time::rfc3339_ms;
