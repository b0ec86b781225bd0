//! All topics and partitions under one data directory: creation, deletion, configs, the
//! recovery checkpoint and the clean-shutdown marker, producer id allocation.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use uuid::Uuid;

use crate::config::LogConfig;
use crate::error::Result;
use crate::partition::PartitionLog;

/// Kafka's topic name rules: 1..=249 chars of `[a-zA-Z0-9._-]`, not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<()> {
    todo!("{name}")
}

#[derive(Debug)]
pub struct Partition {
    pub topic: String,
    pub index: i32,
    pub log: Mutex<PartitionLog>,
}

#[derive(Debug)]
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    pub partitions: RwLock<Vec<Arc<Partition>>>,
    /// Overrides set on this topic (key -> value); the rest come from the broker defaults.
    pub overrides: RwLock<BTreeMap<String, String>>,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        todo!("{index}")
    }
    pub fn partition_count(&self) -> i32 {
        todo!()
    }
}

#[derive(Debug)]
pub struct LogManager {
    _private: (),
}

impl LogManager {
    /// Opens the data directory (creating it), recovering every partition: fast if the previous
    /// run left the clean-shutdown marker, otherwise from the recovery checkpoint. Removes the
    /// marker so a crash from now on is detected.
    pub fn open(data_dir: &Path, defaults: LogConfig) -> Result<LogManager> {
        todo!("{data_dir:?} {defaults:?}")
    }
    pub fn data_dir(&self) -> &Path {
        todo!()
    }
    /// Persistent cluster id from meta.properties (generated on first start).
    pub fn cluster_id(&self) -> &str {
        todo!()
    }
    pub fn defaults(&self) -> &LogConfig {
        todo!()
    }
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        todo!("{name}")
    }
    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        todo!("{id}")
    }
    /// All topics sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        todo!()
    }
    /// Effective config of a topic (defaults + overrides).
    pub fn topic_config(&self, name: &str) -> Result<LogConfig> {
        todo!("{name}")
    }
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>> {
        todo!("{name} {partitions} {overrides:?} {validate_only}")
    }
    pub fn delete_topic(&self, name: &str) -> Result<Uuid> {
        todo!("{name}")
    }
    /// Grows a topic to `total` partitions (never shrinks: InvalidPartitions).
    pub fn create_partitions(&self, name: &str, total: i32, validate_only: bool) -> Result<()> {
        todo!("{name} {total} {validate_only}")
    }
    /// Replaces the topic's overrides (validated first) and applies them to open partitions.
    pub fn set_topic_overrides(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<()> {
        todo!("{name} {overrides:?} {validate_only}")
    }
    /// Every partition of every topic.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        todo!()
    }
    /// Allocates a new producer id, never reused across restarts.
    pub fn allocate_producer_id(&self) -> Result<i64> {
        todo!()
    }
    /// Atomically rewrites recovery-point-offset-checkpoint from each partition's flushed offset.
    pub fn write_recovery_checkpoint(&self) -> Result<()> {
        todo!()
    }
    /// Applies retention to every partition; returns segments deleted.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize> {
        todo!("{now_ms}")
    }
    /// Clean shutdown: close every partition, write the checkpoint, then the marker.
    pub fn shutdown(&self) -> Result<()> {
        todo!()
    }
}
