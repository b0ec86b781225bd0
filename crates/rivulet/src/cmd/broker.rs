//! `rivulet broker`: the Kafka-compatible broker, and the listener binding `up` shares.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use rivulet_broker::auth::SecurityProtocol;
use rivulet_broker::{BrokerConfig, FsyncPolicy, GroupConfig};
use tokio::net::TcpListener;

use crate::shutdown::Shutdown;

#[derive(Args)]
pub struct BrokerArgs {
    /// Address to listen on; a host name binds every address it resolves to
    /// (`localhost` covers 127.0.0.1 and ::1). Port 0 picks a free port.
    #[arg(long, env = "RIVULET_LISTEN", default_value = "127.0.0.1:9092")]
    listen: String,
    /// Directory holding the log segments, offsets and metadata.
    #[arg(long, env = "RIVULET_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// host:port clients are told to connect to [default: the listen address].
    #[arg(long, env = "RIVULET_ADVERTISED_ADDRESS")]
    advertised_address: Option<String>,
    /// Several listeners, as Kafka names them: `NAME://host:port,…` (instead of --listen),
    /// e.g. `PLAINTEXT://127.0.0.1:9092,SASL_SSL://0.0.0.0:9093`. PLAINTEXT, SSL,
    /// SASL_PLAINTEXT and SASL_SSL are security protocols; other names are PLAINTEXT unless
    /// --listener-security-protocol-map says otherwise.
    #[arg(long, env = "RIVULET_LISTENERS", conflicts_with = "listen")]
    listeners: Option<String>,
    /// What each listener tells its clients: `NAME://host:port,…` (Kafka's
    /// advertised.listeners), e.g. `INTERNAL://broker:9092,EXTERNAL://localhost:19092`; a
    /// listener not named advertises its own address.
    #[arg(long, env = "RIVULET_ADVERTISED_LISTENERS", requires = "listeners")]
    advertised_listeners: Option<String>,
    /// Security protocol of listeners with names of your own: `NAME:PROTOCOL,…` (Kafka's
    /// listener.security.protocol.map), e.g. `INTERNAL:PLAINTEXT,EXTERNAL:SASL_SSL`.
    #[arg(
        long,
        env = "RIVULET_LISTENER_SECURITY_PROTOCOL_MAP",
        requires = "listeners"
    )]
    listener_security_protocol_map: Option<String>,
    /// PEM certificate chain of SSL and SASL_SSL listeners.
    #[arg(long, env = "RIVULET_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "RIVULET_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PEM CA certificates: clients of SSL listeners must present a certificate they signed
    /// (mutual TLS); its subject is the client's principal (`User:CN=…`). SASL_SSL listeners
    /// authenticate by SASL and ask for no certificate.
    #[arg(long, env = "RIVULET_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// SASL mechanisms offered on SASL listeners (Kafka's sasl.enabled.mechanisms). Users are
    /// added with `rivulet users add … --data-dir`.
    #[arg(
        long,
        env = "RIVULET_SASL_ENABLED_MECHANISMS",
        default_value = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        value_delimiter = ','
    )]
    sasl_enabled_mechanisms: Vec<String>,
    /// Principals every ACL allows (Kafka's super.users), comma-separated, e.g. `User:admin`.
    #[arg(long, env = "RIVULET_SUPER_USERS", value_delimiter = ',')]
    super_users: Vec<String>,
    /// Authenticated principals may use resources no ACL names (Kafka's
    /// allow.everyone.if.no.acl.found). Off by default: on SASL and mutual-TLS listeners a
    /// request needs an ACL (`rivulet acls add`); PLAINTEXT listeners are not checked.
    #[arg(long, env = "RIVULET_ALLOW_EVERYONE_IF_NO_ACL_FOUND")]
    allow_everyone_if_no_acl_found: bool,
    /// Serve the dashboard beside the broker: its counters (connections, refused requests,
    /// authentications, transactions) on the page, `/api/health` and `/metrics`, and its
    /// topics and groups (see --dashboard-listen).
    #[arg(long)]
    dashboard: bool,
    #[command(flatten)]
    dashboard_args: super::dashboard::DashboardArgs,
    /// Partitions of auto-created topics (Kafka's num.partitions).
    #[arg(long, env = "RIVULET_DEFAULT_PARTITIONS", default_value_t = 1)]
    default_partitions: i32,
    /// Create topics on first Metadata request for them.
    #[arg(long, env = "RIVULET_AUTO_CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    auto_create_topics: bool,
    /// `always`: acks=1/-1 are answered after fsync (group commit). `<N>ms`: fsync every N ms
    /// and answer before (faster; a power loss can lose up to N ms of acknowledged writes).
    #[arg(long, env = "RIVULET_FSYNC", default_value = "always", value_parser = parse_fsync)]
    fsync: FsyncPolicy,
    /// Largest request frame accepted (Kafka's socket.request.max.bytes).
    #[arg(long, env = "RIVULET_MAX_REQUEST_BYTES", default_value_t = 100 * 1024 * 1024)]
    max_request_bytes: usize,
    /// Most client connections served at once; more are refused.
    #[arg(long, env = "RIVULET_MAX_CONNECTIONS", default_value_t = 1000)]
    max_connections: usize,
    /// Most connections from one IP address (Kafka's max.connections.per.ip).
    #[arg(long, env = "RIVULET_MAX_CONNECTIONS_PER_IP", default_value_t = i32::MAX as usize)]
    max_connections_per_ip: usize,
    /// Close connections idle this long (Kafka's connections.max.idle.ms).
    #[arg(
        long,
        env = "RIVULET_CONNECTIONS_MAX_IDLE_MS",
        default_value_t = 600_000
    )]
    connections_max_idle_ms: u64,
    /// Close a connection whose started request is not complete after this long.
    #[arg(long, env = "RIVULET_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    request_timeout_ms: u64,
    /// Request bytes held across all connections before reads pause (Kafka's
    /// queued.max.request.bytes); at least --max-request-bytes.
    #[arg(long, env = "RIVULET_QUEUED_MAX_REQUEST_BYTES", default_value_t = 256 * 1024 * 1024)]
    queued_max_request_bytes: usize,
    /// Record bytes in one fetch response, whatever the client asks (Kafka's fetch.max.bytes).
    #[arg(long, env = "RIVULET_FETCH_MAX_BYTES", default_value_t = 55 * 1024 * 1024)]
    fetch_max_bytes: usize,
    /// Most partitions of one topic.
    #[arg(
        long,
        env = "RIVULET_MAX_PARTITIONS_PER_TOPIC",
        default_value_t = 10_000
    )]
    max_partitions_per_topic: i32,
    /// Most partitions one CreateTopics/CreatePartitions request may create.
    #[arg(
        long,
        env = "RIVULET_MAX_PARTITIONS_PER_REQUEST",
        default_value_t = 10_000
    )]
    max_partitions_per_request: usize,
    /// Most topics one admin or auto-creating Metadata request may name.
    #[arg(long, env = "RIVULET_MAX_TOPICS_PER_REQUEST", default_value_t = 1_000)]
    max_topics_per_request: usize,
    /// Most topics on the broker.
    #[arg(long, env = "RIVULET_MAX_TOPICS", default_value_t = 10_000)]
    max_topics: usize,
    /// Most partitions on the broker, all topics together.
    #[arg(long, env = "RIVULET_MAX_PARTITIONS", default_value_t = 100_000)]
    max_partitions: usize,
    /// Segment files kept open at once [default: a quarter of the soft open-file limit, at
    /// most 4096].
    #[arg(long, env = "RIVULET_MAX_OPEN_FILES")]
    max_open_files: Option<usize>,
    /// Default segment.bytes for topics.
    #[arg(long, env = "RIVULET_SEGMENT_BYTES", default_value_t = 1 << 30)]
    segment_bytes: u64,
    /// Default retention.ms for topics (-1: keep forever).
    #[arg(long, env = "RIVULET_RETENTION_MS", default_value_t = 7 * 24 * 3600 * 1000)]
    retention_ms: i64,
    /// Default retention.bytes per partition (-1: unlimited).
    #[arg(long, env = "RIVULET_RETENTION_BYTES", default_value_t = -1, allow_negative_numbers = true)]
    retention_bytes: i64,
    /// Default max.message.bytes (largest record batch).
    #[arg(long, env = "RIVULET_MAX_MESSAGE_BYTES", default_value_t = 1_048_588)]
    max_message_bytes: i32,
    /// How often the log cleaner looks for compacted topics to clean (ms; Kafka's
    /// log.cleaner.backoff.ms).
    #[arg(long, env = "RIVULET_LOG_CLEANER_BACKOFF_MS", default_value_t = 15_000)]
    log_cleaner_backoff_ms: u64,
    /// Wait for more members before the first rebalance of a group (ms).
    #[arg(
        long,
        env = "RIVULET_GROUP_INITIAL_REBALANCE_DELAY_MS",
        default_value_t = 300
    )]
    group_initial_rebalance_delay_ms: u64,
}

fn parse_fsync(s: &str) -> Result<FsyncPolicy, String> {
    if s == "always" {
        return Ok(FsyncPolicy::Always);
    }
    let ms = s
        .strip_suffix("ms")
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("expected `always` or an interval like `100ms`, got `{s}`"))?;
    Ok(FsyncPolicy::Interval(Duration::from_millis(ms)))
}

/// Runs the broker until Ctrl-C/SIGTERM, then shuts it down cleanly (a second signal exits
/// without).
pub async fn run(args: BrokerArgs) -> Result<()> {
    let mut shutdown = Shutdown::new(
        Some("shutting down (press Ctrl-C again to exit at once)"),
        "second signal: exiting without a clean shutdown",
    )?;
    // Bound first, so a taken port fails the start before the broker opens its storage.
    let dashboard_listener = match args.dashboard {
        true => Some(super::dashboard::bind(&args.dashboard_args).await?),
        false => None,
    };
    let (listeners, listener_addresses, listener_protocols) = match &args.listeners {
        Some(spec) => {
            bind_listeners(
                spec,
                args.advertised_listeners.as_deref(),
                args.listener_security_protocol_map.as_deref(),
            )
            .await?
        }
        None => (bind(&args.listen).await?, Vec::new(), Vec::new()),
    };
    let first = listeners[0].local_addr()?;
    let (host, port) = match &args.advertised_address {
        Some(a) => split_host_port(a).with_context(|| format!("--advertised-address {a}"))?,
        None => {
            let (h, _) = split_host_port(&args.listen)
                .with_context(|| format!("--listen {}", args.listen))?;
            (h, first.port())
        }
    };
    let mut config = BrokerConfig::new(&args.data_dir, host, port);
    config.listener_addresses = listener_addresses;
    let listener_kinds = listener_protocols.clone();
    config.listener_protocols = listener_protocols;
    config.super_users = args
        .super_users
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(bad) = config.super_users.iter().find(|s| !s.contains(':')) {
        bail!(
            "--super-users: `{}` is not Type:name, e.g. User:admin",
            bad.escape_debug()
        );
    }
    config.allow_everyone_if_no_acl_found = args.allow_everyone_if_no_acl_found;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.tls = Some(rivulet_auth::tls::server_config(cert, key, None)?);
        if let Some(ca) = &args.tls_client_ca {
            config.tls_mutual = Some(rivulet_auth::tls::server_config(cert, key, Some(ca))?);
        }
    }
    config.sasl_mechanisms = args
        .sasl_enabled_mechanisms
        .iter()
        .map(|m| {
            rivulet_broker::auth::SaslMechanism::from_name(m.trim()).with_context(|| {
                format!(
                    "--sasl-enabled-mechanisms: unknown mechanism `{}` (PLAIN, SCRAM-SHA-256, \
                     SCRAM-SHA-512)",
                    m.escape_debug()
                )
            })
        })
        .collect::<Result<_>>()?;
    config.default_partitions = args.default_partitions;
    config.auto_create_topics = args.auto_create_topics;
    config.fsync = args.fsync;
    config.max_frame_bytes = args.max_request_bytes;
    config.max_connections = args.max_connections;
    config.max_connections_per_ip = args.max_connections_per_ip;
    config.connections_max_idle = Duration::from_millis(args.connections_max_idle_ms);
    config.request_timeout = Duration::from_millis(args.request_timeout_ms);
    config.queued_max_request_bytes = args.queued_max_request_bytes;
    config.fetch_max_bytes = args.fetch_max_bytes;
    config.topic_limits = rivulet_log::TopicLimits {
        max_partitions_per_topic: args.max_partitions_per_topic,
        max_topics: args.max_topics,
        max_partitions: args.max_partitions,
    };
    config.max_partitions_per_request = args.max_partitions_per_request;
    config.max_topics_per_request = args.max_topics_per_request;
    config.max_open_files = args.max_open_files;
    config.log_defaults.segment_bytes = args.segment_bytes;
    config.log_defaults.retention_ms = args.retention_ms;
    config.log_defaults.retention_bytes = args.retention_bytes;
    config.log_defaults.max_message_bytes = args.max_message_bytes;
    if args.log_cleaner_backoff_ms == 0 {
        bail!("--log-cleaner-backoff-ms must be positive");
    }
    config.cleaner_interval = Duration::from_millis(args.log_cleaner_backoff_ms);
    config.group = GroupConfig {
        initial_rebalance_delay: Duration::from_millis(args.group_initial_rebalance_delay_ms),
        ..GroupConfig::default()
    };
    if config.default_partitions < 1 {
        bail!("--default-partitions must be at least 1");
    }
    let handle = rivulet_broker::start(config, listeners)
        .await
        .with_context(|| {
            format!(
                "starting the broker on data dir {}",
                args.data_dir.display()
            )
        })?;
    for addr in handle.local_addrs() {
        // Machine-readable readiness line on stdout (logs go to stderr); tests and the bench
        // wait for it.
        println!("rivulet broker listening on {addr}");
    }
    if let Some(listener) = dashboard_listener {
        // Topics and groups are read through the first plaintext listener (the dashboard's
        // admin client has no credentials of its own).
        let plain = handle
            .local_addrs()
            .iter()
            .zip(
                listener_kinds
                    .iter()
                    .chain(std::iter::repeat(&SecurityProtocol::Plaintext)),
            )
            .find(|(_, p)| **p == SecurityProtocol::Plaintext)
            .map(|(a, _)| a.to_string())
            .unwrap_or_default();
        let mut config = rivulet_dashboard::DashboardConfig::new(plain);
        config.broker = Some(handle.stats());
        config.access = args.dashboard_args.access()?;
        config.tls = args.dashboard_args.tls()?;
        super::dashboard::start(
            &mut shutdown,
            rivulet_dashboard::Dashboard::new(config),
            listener,
        );
    }
    shutdown.start("broker", |stop| async move {
        stop.cancelled().await;
        handle.shutdown().await.context("clean shutdown")
    });
    shutdown.run().await
}

/// Binds every address `listen` resolves to. With port 0 and several addresses, the port the
/// first one got is reused for the others so clients see one port.
pub async fn bind(listen: &str) -> Result<Vec<TcpListener>> {
    let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host(listen)
        .await
        .with_context(|| format!("resolving --listen {listen}"))?
        .collect();
    addrs.dedup();
    let Some(&first) = addrs.first() else {
        bail!("--listen {listen} resolves to no address");
    };
    let l = TcpListener::bind(first)
        .await
        .with_context(|| format!("binding {first}"))?;
    let port = l.local_addr()?.port();
    let mut out = vec![l];
    for mut a in addrs.into_iter().skip(1) {
        a.set_port(port);
        match TcpListener::bind(a).await {
            Ok(l) => out.push(l),
            // e.g. ::1 on a host without IPv6: serve what we can.
            Err(e) => tracing::warn!("not listening on {a}: {e}"),
        }
    }
    Ok(out)
}

/// One `NAME://host:port` of `--listeners` / `--advertised-listeners`.
fn parse_listeners(spec: &str, flag: &str) -> Result<Vec<(String, String, u16)>> {
    let mut out: Vec<(String, String, u16)> = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, addr) = item
            .split_once("://")
            .with_context(|| format!("{flag}: expected NAME://host:port, got `{item}`"))?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            bail!("{flag}: listener names are upper-case letters, digits and _, got `{name}`");
        }
        if out.iter().any(|(n, _, _)| n == name) {
            bail!("{flag}: listener {name} is named twice");
        }
        let (host, port) = split_host_port(addr).with_context(|| format!("{flag} {item}"))?;
        out.push((name.to_string(), host, port));
    }
    if out.is_empty() {
        bail!("{flag} names no listener");
    }
    Ok(out)
}

/// `--listener-security-protocol-map`: `NAME:PROTOCOL,…`.
fn parse_protocol_map(spec: &str) -> Result<Vec<(String, SecurityProtocol)>> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (name, proto) = item.split_once(':').with_context(|| {
                format!("--listener-security-protocol-map: expected NAME:PROTOCOL, got `{item}`")
            })?;
            let p = SecurityProtocol::from_name(proto).with_context(|| {
                format!(
                    "--listener-security-protocol-map: unknown security protocol `{proto}` \
                     (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)"
                )
            })?;
            Ok((name.to_string(), p))
        })
        .collect()
}

/// A listener's security protocol: from the map, else its name when that is a protocol's,
/// else PLAINTEXT.
fn protocol_of(name: &str, map: &[(String, SecurityProtocol)]) -> SecurityProtocol {
    map.iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| *p)
        .or_else(|| SecurityProtocol::from_name(name))
        .unwrap_or_default()
}

/// Bound listeners, and for each the address it advertises and its security protocol.
type BoundListeners = (Vec<TcpListener>, Vec<(String, u16)>, Vec<SecurityProtocol>);

/// Binds each `--listeners` entry; returns the listeners and, for each, the address it
/// advertises (its `--advertised-listeners` entry, or its own address) and its protocol.
async fn bind_listeners(
    spec: &str,
    advertised: Option<&str>,
    protocol_map: Option<&str>,
) -> Result<BoundListeners> {
    let listeners = parse_listeners(spec, "--listeners")?;
    let map = protocol_map
        .map(parse_protocol_map)
        .transpose()?
        .unwrap_or_default();
    if let Some((name, _)) = map
        .iter()
        .find(|(n, _)| !listeners.iter().any(|(l, _, _)| l == n))
    {
        bail!("--listener-security-protocol-map names {name}, which --listeners does not have");
    }
    let advertised = match advertised {
        Some(a) => parse_listeners(a, "--advertised-listeners")?,
        None => Vec::new(),
    };
    if let Some((name, _, _)) = advertised
        .iter()
        .find(|(n, _, _)| !listeners.iter().any(|(l, _, _)| l == n))
    {
        bail!("--advertised-listeners names {name}, which --listeners does not have");
    }
    let mut bound = Vec::new();
    let mut addresses = Vec::new();
    let mut protocols = Vec::new();
    for (name, host, port) in &listeners {
        let ls = bind(&format!("{host}:{port}")).await?;
        let actual = ls[0].local_addr()?.port();
        let address = match advertised.iter().find(|(n, _, _)| n == name) {
            Some((_, h, p)) => (h.clone(), *p),
            None if host == "0.0.0.0" || host == "::" => bail!(
                "listener {name} binds {host}, which clients cannot connect to: give it an \
                 --advertised-listeners entry"
            ),
            None => (host.clone(), actual),
        };
        for l in ls {
            bound.push(l);
            addresses.push(address.clone());
            protocols.push(protocol_of(name, &map));
        }
    }
    Ok((bound, addresses, protocols))
}

/// `host:port` (brackets around an IPv6 host dropped).
pub fn split_host_port(s: &str) -> Result<(String, u16)> {
    let (host, port) = s
        .rsplit_once(':')
        .with_context(|| format!("expected host:port, got `{s}`"))?;
    let port: u16 = port.parse().with_context(|| format!("bad port in `{s}`"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((host.to_string(), port))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn listeners_are_parsed_as_kafka_writes_them() {
        let l = parse_listeners(
            "INTERNAL://0.0.0.0:9092, EXTERNAL://[::1]:19092",
            "--listeners",
        )
        .unwrap();
        assert_eq!(
            l,
            vec![
                ("INTERNAL".to_string(), "0.0.0.0".to_string(), 9092),
                ("EXTERNAL".to_string(), "::1".to_string(), 19092)
            ]
        );
        for (bad, why) in [
            ("internal://h:1", "upper-case"),
            ("A://h:1,A://h:2", "twice"),
            ("A:/h:1", "NAME://host:port"),
            ("A://h", "host:port"),
            ("", "no listener"),
        ] {
            let e = format!("{:#}", parse_listeners(bad, "--listeners").unwrap_err());
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[tokio::test]
    async fn each_listener_advertises_its_own_address() {
        let (ls, addresses, protocols) = bind_listeners(
            "A://127.0.0.1:0,B://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
            Some("B://broker.example:9092"),
            Some("B:SASL_PLAINTEXT"),
        )
        .await
        .unwrap();
        assert_eq!(ls.len(), 3);
        assert_eq!(
            protocols,
            [
                SecurityProtocol::Plaintext,
                SecurityProtocol::SaslPlaintext,
                SecurityProtocol::SaslSsl
            ]
        );
        assert_eq!(
            addresses[0],
            ("127.0.0.1".to_string(), ls[0].local_addr().unwrap().port())
        );
        assert_eq!(addresses[1], ("broker.example".to_string(), 9092));
        let e = bind_listeners("A://0.0.0.0:0", None, None)
            .await
            .unwrap_err();
        assert!(format!("{e:#}").contains("advertised-listeners"));
        let e = bind_listeners("A://127.0.0.1:0", Some("C://x:1"), None)
            .await
            .unwrap_err();
        assert!(format!("{e:#}").contains("does not have"));
        let e = bind_listeners("A://127.0.0.1:0", None, Some("A:TLS"))
            .await
            .unwrap_err();
        assert!(format!("{e:#}").contains("unknown security protocol"));
        let e = bind_listeners("A://127.0.0.1:0", None, Some("Z:SSL"))
            .await
            .unwrap_err();
        assert!(format!("{e:#}").contains("does not have"));
    }
}
