//! Accept loop and lifecycle: open storage, start background tasks, serve listeners, shut down.
//!
//! Connections are refused past `--max-connections` and, per client address, past
//! `--max-connections-per-ip`.
//!
//! Shutdown order: stop accepting and reading (one `CancellationToken`) and interrupt admin
//! work in progress (`LogManager::begin_shutdown`), let in-flight work end within a grace
//! period, run a last fsync round, then close every log (indexes, producer snapshots), write
//! the recovery checkpoint and the clean-shutdown marker.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::auth::{SecurityProtocol, Session, ANONYMOUS};
use crate::config::BrokerConfig;
use crate::durability::Durability;
use crate::error::BrokerError;
use crate::group::GroupCoordinator;
use crate::logging::{Kind, OncePerCause, RateLimited};
use crate::state::{Broker, BrokerStats};

/// How long connections get to finish in-flight requests on shutdown.
const GRACE: Duration = Duration::from_secs(5);

/// A running broker.
pub struct BrokerHandle {
    broker: Arc<Broker>,
    addrs: Vec<SocketAddr>,
    tasks: JoinSet<()>,
}

/// Opens storage (recovering after a crash), starts the background tasks and serves the given,
/// already-bound listeners (tests bind 127.0.0.1:0) until [`BrokerHandle::shutdown`].
pub async fn start(
    config: BrokerConfig,
    listeners: Vec<TcpListener>,
) -> Result<BrokerHandle, BrokerError> {
    config.validate().map_err(BrokerError::Config)?;
    let data_dir = config.data_dir.clone();
    let defaults = config.log_defaults.clone();
    let options = rivulet_log::StorageOptions {
        max_open_files: config
            .max_open_files
            .unwrap_or_else(rivulet_log::default_max_open_files),
        limits: config.topic_limits,
    };
    let started = std::time::Instant::now();
    let logs = tokio::task::spawn_blocking(move || {
        rivulet_log::LogManager::open_with(&data_dir, defaults, options)
    })
    .await
    .map_err(|e| BrokerError::Other(format!("storage open task failed: {e}")))??;
    let groups = GroupCoordinator::open(&config.data_dir, config.group.clone())?;
    let stats = Arc::new(BrokerStats::default());
    let txns = Arc::new(crate::txn::TxnCoordinator::open(
        &config.data_dir,
        config.txn.clone(),
        matches!(config.fsync, crate::config::FsyncPolicy::Always),
        stats.clone(),
    )?);
    tracing::info!(
        data_dir = %config.data_dir.display(),
        topics = logs.topics().len(),
        max_open_files = logs.file_stats().capacity,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "storage opened"
    );
    let credentials = rivulet_auth::CredentialStore::open(&config.data_dir)
        .map_err(|e| BrokerError::Config(e.to_string()))?;
    if credentials.is_empty() && config.listener_protocols.iter().any(|p| p.uses_sasl()) {
        tracing::warn!(
            "SASL listeners but no users yet: add one with `rivulet users add NAME --data-dir {}`",
            config.data_dir.display()
        );
    }
    let authorizer = Arc::new(
        crate::acl::Authorizer::open(
            &config.data_dir,
            config.super_users.clone(),
            config.allow_everyone_if_no_acl_found,
        )
        .map_err(BrokerError::Config)?,
    );
    let broker = Arc::new(Broker {
        durability: Durability::new(config.fsync),
        queued_bytes: Arc::new(Semaphore::new(config.queued_max_request_bytes)),
        config,
        logs: Arc::new(logs),
        groups,
        txns,
        stats,
        shutdown: CancellationToken::new(),
        connections_per_ip: parking_lot::Mutex::new(HashMap::new()),
        warnings: RateLimited::default(),
        storage_errors_logged: OncePerCause::default(),
        credentials: parking_lot::Mutex::new(credentials),
        auth_failures: crate::auth::FailureThrottle::default(),
        authorizer,
    });
    let mut tasks = JoinSet::new();
    tasks.spawn(broker.durability.clone().run(broker.shutdown.clone()));
    tasks.spawn(housekeeping(broker.clone()));
    // Transactions left in flight by the last run are ended before any client is served.
    recover_transactions(&broker).await?;
    tasks.spawn(crate::txn::abort_timed_out(broker.clone()));
    tasks.spawn(log_cleaner(broker.clone()));
    let mut addrs = Vec::new();
    let slots = Arc::new(Semaphore::new(broker.config.max_connections));
    for (i, listener) in listeners.into_iter().enumerate() {
        addrs.push(listener.local_addr()?);
        let advertised = Arc::new(
            broker
                .config
                .listener_addresses
                .get(i)
                .cloned()
                .unwrap_or_else(|| {
                    (
                        broker.config.advertised_host.clone(),
                        broker.config.advertised_port,
                    )
                }),
        );
        let protocol = broker
            .config
            .listener_protocols
            .get(i)
            .copied()
            .unwrap_or_default();
        let tls = match protocol {
            SecurityProtocol::Ssl => broker
                .config
                .tls_mutual
                .as_ref()
                .or(broker.config.tls.as_ref()),
            SecurityProtocol::SaslSsl => broker.config.tls.as_ref(),
            _ => None,
        }
        .map(|c| TlsAcceptor::from(c.clone()));
        tasks.spawn(accept_loop(
            broker.clone(),
            listener,
            slots.clone(),
            Listener {
                advertised,
                protocol,
                tls,
            },
        ));
    }
    Ok(BrokerHandle {
        broker,
        addrs,
        tasks,
    })
}

/// What one listener does with its connections.
#[derive(Clone)]
struct Listener {
    /// The host and port this listener's clients are told to connect to.
    advertised: Arc<(String, u16)>,
    protocol: SecurityProtocol,
    /// For SSL and SASL_SSL listeners.
    tls: Option<TlsAcceptor>,
}

async fn accept_loop(
    broker: Arc<Broker>,
    listener: TcpListener,
    slots: Arc<Semaphore>,
    spec: Listener,
) {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = broker.shutdown.cancelled() => break,
            a = listener.accept() => a,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            refuse(
                &broker,
                peer,
                "too many connections",
                broker.config.max_connections,
                false,
            );
            drop(stream);
            continue;
        };
        let Some(ip_slot) = IpSlot::take(&broker, peer.ip()) else {
            refuse(
                &broker,
                peer,
                "too many connections from this address",
                broker.config.max_connections_per_ip,
                true,
            );
            drop(stream);
            continue;
        };
        broker
            .stats
            .connections_accepted
            .fetch_add(1, Ordering::Relaxed);
        let b = broker.clone();
        let spec = spec.clone();
        conns.spawn(async move {
            serve(b, stream, peer, spec).await;
            drop(ip_slot);
            drop(permit);
        });
    }
    // Connections saw the same cancellation; give them the grace period to finish.
    let _ = tokio::time::timeout(GRACE, async { while conns.join_next().await.is_some() {} }).await;
    conns.abort_all();
}

/// Serves one accepted connection, after the TLS handshake on TLS listeners.
async fn serve(
    broker: Arc<Broker>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    spec: Listener,
) {
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = spec.tls else {
        let session = Arc::new(Session::new(spec.protocol, ANONYMOUS.to_string()));
        crate::connection::serve(
            broker,
            stream,
            peer,
            spec.advertised,
            spec.protocol,
            session,
        )
        .await;
        return;
    };
    let timeout = broker.config.request_timeout;
    let shutdown = broker.shutdown.clone();
    let handshake = tokio::select! {
        _ = shutdown.cancelled() => return,
        r = tokio::time::timeout(timeout, acceptor.accept(stream)) => r,
    };
    let stream = match handshake {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return tls_failed(&broker, peer, &e.to_string()),
        Err(_) => return tls_failed(&broker, peer, "not completed in time"),
    };
    // Mutual TLS: the client certificate's subject is the principal (Kafka's default).
    let principal = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| rivulet_auth::tls::subject_name(c))
        .map_or_else(|| ANONYMOUS.to_string(), |s| format!("User:{s}"));
    let session = Arc::new(Session::new(spec.protocol, principal));
    crate::connection::serve(
        broker,
        stream,
        peer,
        spec.advertised,
        spec.protocol,
        session,
    )
    .await;
}

fn tls_failed(broker: &Broker, peer: SocketAddr, why: &str) {
    broker
        .stats
        .tls_handshake_failures
        .fetch_add(1, Ordering::Relaxed);
    match broker.warnings.allow(Kind::FailedAuthentication) {
        // rustls' error texts describe the handshake, not the peer's bytes.
        Some(suppressed) => tracing::warn!(%peer, suppressed, "TLS handshake failed: {why}"),
        None => {
            broker
                .stats
                .log_lines_suppressed
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn refuse(broker: &Broker, peer: SocketAddr, why: &str, max: usize, per_ip: bool) {
    let stats = &broker.stats;
    stats.connections_rejected.fetch_add(1, Ordering::Relaxed);
    if per_ip {
        stats
            .connections_rejected_per_ip
            .fetch_add(1, Ordering::Relaxed);
    }
    match broker.warnings.allow(Kind::RefusedConnection) {
        Some(suppressed) => tracing::warn!(%peer, max, suppressed, "connection refused: {why}"),
        None => {
            stats.log_lines_suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One connection counted against its address's `--max-connections-per-ip`.
struct IpSlot {
    broker: Arc<Broker>,
    ip: IpAddr,
}

impl IpSlot {
    fn take(broker: &Arc<Broker>, ip: IpAddr) -> Option<IpSlot> {
        let mut counts = broker.connections_per_ip.lock();
        let n = counts.entry(ip).or_insert(0);
        if *n >= broker.config.max_connections_per_ip {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            broker: broker.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.broker.connections_per_ip.lock();
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Storage errors of periodic work recur every round: logged once per cause.
fn housekeeping_error(broker: &Broker, what: &str, e: &rivulet_log::LogError) {
    if matches!(
        e,
        rivulet_log::LogError::Io { .. } | rivulet_log::LogError::Offline(_)
    ) {
        broker.note_storage_error(what, e);
    } else {
        tracing::error!("{what} failed: {e}");
    }
}

/// Periodic work: the recovery checkpoint and retention.
/// Completes what the last run left: Prepare → Complete, Ongoing → aborted, and markers of
/// completed transactions written where a crash lost them.
async fn recover_transactions(broker: &Arc<Broker>) -> Result<(), BrokerError> {
    let txns = broker.txns.clone();
    let now = rivulet_time::now_ms();
    let endings = tokio::task::spawn_blocking(move || txns.recover(now))
        .await
        .map_err(|e| BrokerError::Other(format!("transaction recovery task failed: {e}")))?
        .map_err(|(_, msg)| BrokerError::Other(msg))?;
    for ending in endings {
        crate::txn::finish(broker, ending)
            .await
            .map_err(|(_, msg)| BrokerError::Other(format!("transaction recovery: {msg}")))?;
    }
    Ok(())
}

/// The log cleaner: every `cleaner_interval`, one round over the compacted partitions that are
/// due (`LogManager::clean`), on the blocking pool; a round stops at shutdown.
async fn log_cleaner(broker: Arc<Broker>) {
    let mut tick = tokio::time::interval(broker.config.cleaner_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = broker.shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let logs = broker.logs.clone();
        let now = rivulet_time::now_ms();
        match tokio::task::spawn_blocking(move || logs.clean(now)).await {
            Ok(Ok(_)) => broker.storage_recovered(|| "log cleaner".to_string()),
            Ok(Err(e)) => housekeeping_error(&broker, "log cleaner", &e),
            Err(e) => tracing::error!("log cleaner task failed: {e}"),
        }
    }
}

async fn housekeeping(broker: Arc<Broker>) {
    let mut checkpoint = tokio::time::interval(broker.config.checkpoint_interval);
    let mut retention = tokio::time::interval(broker.config.retention_check_interval);
    checkpoint.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    retention.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = broker.shutdown.cancelled() => break,
            _ = checkpoint.tick() => {
                let logs = broker.logs.clone();
                match tokio::task::spawn_blocking(move || logs.write_recovery_checkpoint()).await {
                    Ok(Ok(())) => broker.storage_recovered(|| "recovery checkpoint".to_string()),
                    Ok(Err(e)) => housekeeping_error(&broker, "recovery checkpoint", &e),
                    Err(e) => tracing::error!("checkpoint task failed: {e}"),
                }
            }
            _ = retention.tick() => {
                let logs = broker.logs.clone();
                let now = rivulet_time::now_ms();
                match tokio::task::spawn_blocking(move || logs.enforce_retention(now)).await {
                    Ok(Ok(0)) => broker.storage_recovered(|| "retention".to_string()),
                    Ok(Ok(n)) => {
                        broker.storage_recovered(|| "retention".to_string());
                        tracing::info!(segments = n, "retention deleted segments");
                    }
                    Ok(Err(e)) => housekeeping_error(&broker, "retention", &e),
                    Err(e) => tracing::error!("retention task failed: {e}"),
                }
            }
        }
    }
}

impl BrokerHandle {
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }
    /// The broker's counters: a cheap cloneable handle that keeps nothing else alive.
    pub fn stats(&self) -> Arc<BrokerStats> {
        self.broker.stats.clone()
    }
    /// Graceful stop: stop accepting, close connections, flush every log, write the recovery
    /// checkpoint and the clean-shutdown marker.
    pub async fn shutdown(mut self) -> Result<(), BrokerError> {
        self.broker.shutdown.cancel();
        self.broker.logs.begin_shutdown();
        while self.tasks.join_next().await.is_some() {}
        // Last fsync round for anything written since the syncer's final pass.
        self.broker.durability.sync_round().await;
        self.broker.groups.shutdown()?;
        let logs = self.broker.logs.clone();
        tokio::task::spawn_blocking(move || logs.shutdown())
            .await
            .map_err(|e| BrokerError::Other(format!("shutdown task failed: {e}")))??;
        tracing::info!("broker stopped cleanly");
        Ok(())
    }
}
