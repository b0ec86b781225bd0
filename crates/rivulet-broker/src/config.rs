//! Broker runtime configuration. Plain data: the binary maps its clap flags onto it.

use std::path::PathBuf;
use std::time::Duration;

use rivulet_log::LogConfig;

use crate::group::GroupConfig;

/// When produce data is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// acks=1/-1 produce responses wait until their data is fsynced; concurrent produces share one
    /// fsync (group commit). Consumers only see fsynced data. The default: a single node has no
    /// replica to recover lost writes from.
    Always,
    /// Fsync on a timer; produce is answered once written to the page cache. Faster, but a power
    /// loss can drop up to one interval of acknowledged records.
    Interval(Duration),
}

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    /// Host and port clients are told to connect to (Metadata, FindCoordinator).
    pub advertised_host: String,
    pub advertised_port: u16,
    pub data_dir: PathBuf,
    pub default_partitions: i32,
    pub auto_create_topics: bool,
    pub fsync: FsyncPolicy,
    /// Largest request frame accepted; larger ones are refused before any allocation.
    pub max_frame_bytes: usize,
    pub max_connections: usize,
    pub log_defaults: LogConfig,
    pub group: GroupConfig,
    pub retention_check_interval: Duration,
    pub checkpoint_interval: Duration,
}

impl BrokerConfig {
    /// Defaults for a broker whose data lives in `data_dir`, advertised as `host:port`.
    pub fn new(
        data_dir: impl Into<PathBuf>,
        advertised_host: impl Into<String>,
        advertised_port: u16,
    ) -> Self {
        BrokerConfig {
            node_id: 0,
            advertised_host: advertised_host.into(),
            advertised_port,
            data_dir: data_dir.into(),
            default_partitions: 1,
            auto_create_topics: true,
            fsync: FsyncPolicy::Always,
            max_frame_bytes: 100 * 1024 * 1024,
            max_connections: 1000,
            log_defaults: LogConfig::default(),
            group: GroupConfig::default(),
            retention_check_interval: Duration::from_secs(30),
            checkpoint_interval: Duration::from_secs(5),
        }
    }
}
