//! Broker runtime configuration. Plain data: the binary maps its clap flags onto it.

use std::path::PathBuf;
use std::time::Duration;

use rivulet_log::{LogConfig, TopicLimits};

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
    /// Largest request frame accepted; larger ones are refused before any allocation
    /// (Kafka's `socket.request.max.bytes`).
    pub max_frame_bytes: usize,
    pub max_connections: usize,
    /// Most connections from one IP address (Kafka's `max.connections.per.ip`).
    pub max_connections_per_ip: usize,
    /// A connection with no request in flight and nothing received for this long is closed
    /// (Kafka's `connections.max.idle.ms`).
    pub connections_max_idle: Duration,
    /// Once the first bytes of a request arrive, the whole frame must arrive within this time.
    pub request_timeout: Duration,
    /// Bytes of requests being received or handled, across all connections, before the broker
    /// stops reading from sockets (Kafka's `queued.max.request.bytes`). At least
    /// `max_frame_bytes`.
    pub queued_max_request_bytes: usize,
    /// Record bytes in one Fetch response, whatever the client asks (Kafka's
    /// `fetch.max.bytes`); the first batch may exceed it, as in Kafka (KIP-74).
    pub fetch_max_bytes: usize,
    /// Admin limits: partitions per topic and in total, topics in total.
    pub topic_limits: TopicLimits,
    /// Topics one CreateTopics/DeleteTopics/Metadata (auto-create) request may name.
    pub max_topics_per_request: usize,
    /// Partitions one CreateTopics/CreatePartitions request may create (Kafka's controller
    /// refuses more than 10,000 records per operation with POLICY_VIOLATION).
    pub max_partitions_per_request: usize,
    /// Segment files kept open at once; `None`: a quarter of the soft descriptor limit, at most
    /// 4096 (see `rivulet_log::default_max_open_files`).
    pub max_open_files: Option<usize>,
    pub log_defaults: LogConfig,
    pub group: GroupConfig,
    pub txn: crate::txn::TxnConfig,
    pub retention_check_interval: Duration,
    /// Per listener (in the order `start` gets them), the host and port clients connecting
    /// there are told to use; a listener without an entry advertises `advertised_host` /
    /// `advertised_port` (Kafka's `advertised.listeners`: one address inside a container
    /// network, another from the host).
    pub listener_addresses: Vec<(String, u16)>,
    /// Per listener (same order), its security protocol; a listener without an entry is
    /// PLAINTEXT. SSL and SASL_SSL listeners need [`BrokerConfig::tls`].
    pub listener_protocols: Vec<crate::auth::SecurityProtocol>,
    /// The server certificate and key of SASL_SSL listeners, and of SSL listeners when
    /// `tls_mutual` is `None`.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// The same with a client CA: SSL listeners require a client certificate it signed, whose
    /// subject is the principal (mutual TLS). SASL_SSL listeners authenticate by SASL instead.
    pub tls_mutual: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// SASL mechanisms offered on SASL listeners (Kafka's `sasl.enabled.mechanisms`).
    pub sasl_mechanisms: Vec<crate::auth::SaslMechanism>,
    /// Principals every ACL check allows (Kafka's `super.users`), e.g. `User:admin`.
    pub super_users: Vec<String>,
    /// Authenticated principals may use resources no ACL names (Kafka's
    /// `allow.everyone.if.no.acl.found`); off: such requests are denied.
    pub allow_everyone_if_no_acl_found: bool,
    /// How often the log cleaner looks for compacted partitions that are due (Kafka's
    /// `log.cleaner.backoff.ms`).
    pub cleaner_interval: Duration,
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
            max_connections_per_ip: i32::MAX as usize,
            connections_max_idle: Duration::from_millis(600_000),
            request_timeout: Duration::from_millis(30_000),
            queued_max_request_bytes: 256 * 1024 * 1024,
            fetch_max_bytes: 55 * 1024 * 1024,
            topic_limits: TopicLimits::default(),
            max_topics_per_request: 1_000,
            max_partitions_per_request: 10_000,
            max_open_files: None,
            log_defaults: LogConfig::default(),
            group: GroupConfig::default(),
            txn: crate::txn::TxnConfig::default(),
            retention_check_interval: Duration::from_secs(30),
            listener_addresses: Vec::new(),
            listener_protocols: Vec::new(),
            tls: None,
            tls_mutual: None,
            sasl_mechanisms: crate::auth::SaslMechanism::ALL.to_vec(),
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: false,
            cleaner_interval: Duration::from_secs(15),
            checkpoint_interval: Duration::from_secs(5),
        }
    }

    /// Small request and storage limits, so that hostile requests hit them quickly and cheaply:
    /// the broker under the fuzz target (`fuzz/fuzz_targets/broker_requests.rs`) and its
    /// proptest twin (`tests/fuzz_handlers.rs`).
    pub fn with_small_limits(mut self) -> Self {
        self.max_frame_bytes = 1 << 20;
        self.queued_max_request_bytes = 4 << 20;
        self.request_timeout = Duration::from_secs(1);
        self.fetch_max_bytes = 256 << 10;
        self.topic_limits = TopicLimits {
            max_partitions_per_topic: 8,
            max_topics: 40,
            max_partitions: 200,
        };
        self.max_partitions_per_request = 16;
        self.max_topics_per_request = 4;
        self.group.max_session_timeout_ms = 3_000;
        self.log_defaults.segment_bytes = 64 << 10;
        self
    }

    /// Rejects settings that cannot work together, before anything starts.
    pub fn validate(&self) -> Result<(), String> {
        if self.queued_max_request_bytes < self.max_frame_bytes {
            return Err(format!(
                "queued max request bytes ({}) must be at least the max request size ({}): a \
                 request that large could never be read",
                self.queued_max_request_bytes, self.max_frame_bytes
            ));
        }
        if self.tls.is_none() && self.listener_protocols.iter().any(|p| p.uses_tls()) {
            return Err(
                "SSL and SASL_SSL listeners need a certificate and key (--tls-cert, --tls-key)"
                    .into(),
            );
        }
        if self.sasl_mechanisms.is_empty() && self.listener_protocols.iter().any(|p| p.uses_sasl())
        {
            return Err("SASL listeners need at least one SASL mechanism".into());
        }
        if self.fetch_max_bytes == 0 {
            return Err("fetch max bytes must be positive".into());
        }
        if self.max_connections_per_ip == 0 {
            return Err("max connections per ip must be positive".into());
        }
        if self.topic_limits.max_partitions_per_topic < 1 {
            return Err("max partitions per topic must be positive".into());
        }
        if self.default_partitions > self.topic_limits.max_partitions_per_topic {
            return Err(format!(
                "default partitions ({}) exceed max partitions per topic ({})",
                self.default_partitions, self.topic_limits.max_partitions_per_topic
            ));
        }
        Ok(())
    }
}
