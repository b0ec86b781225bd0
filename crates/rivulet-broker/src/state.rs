//! Shared broker state handed to every connection and handler.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use rivulet_log::LogManager;
use tokio_util::sync::CancellationToken;

use crate::config::BrokerConfig;
use crate::durability::Durability;
use crate::group::GroupCoordinator;

/// Counters of what the broker refused or saw, for logs and (later) /metrics.
#[derive(Debug, Default)]
pub struct BrokerStats {
    pub connections_accepted: AtomicU64,
    pub connections_rejected: AtomicU64,
    pub malformed_requests: AtomicU64,
    pub oversize_frames: AtomicU64,
    pub produce_errors: AtomicU64,
    pub records_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

pub struct Broker {
    pub config: BrokerConfig,
    pub logs: Arc<LogManager>,
    pub groups: Arc<GroupCoordinator>,
    pub durability: Arc<Durability>,
    pub stats: BrokerStats,
    pub shutdown: CancellationToken,
}
