//! # rivulet-engine — continuous queries over event streams
//!
//! The engine takes the place of Spark Structured Streaming in the pipeline
//! (generator → broker topic → **engine** → sinks): records arrive from a Kafka source, are
//! decoded into Arrow record batches against a declared schema, flow through operators
//! (filter, projection, event-time windowed aggregation) and leave as result batches.
//!
//! Control signals travel in-band with the data ([`operator::Message`]: batches, watermarks,
//! trigger ends, checkpoint barriers) through a branch's [`chain::Chain`], which the one
//! planner ([`chain`]) builds from a plan; every operator implements one trait
//! ([`operator::Operator`]) with defaulted hooks for watermarks, triggers and checkpoints.
//!
//! The [`plan::Plan`] is a plain data structure: the TOML pipeline file, `rivulet run`'s flags
//! and the SQL front end (`rivulet-sql`) all build it. Its source and sinks are generic
//! [`plan::ConnectorSpec`]s; the runtime's connector modules own their options.

pub mod chain;
pub mod decode;
pub mod error;
pub mod expr;
pub mod job;
pub mod operator;
pub mod operators;
pub mod plan;
pub mod watermark;
pub mod window;

pub use chain::Chain;
pub use error::EngineError;
pub use job::Job;
pub use operator::{Message, Operator};
pub use plan::Plan;
