//! Accept loop and lifecycle: open storage, start background tasks, serve listeners, shut down.
//!
//! Shutdown order: stop accepting and reading (one `CancellationToken`), let in-flight work end
//! within a grace period, run a last fsync round, then close every log (indexes, producer
//! snapshots), write the recovery checkpoint and the clean-shutdown marker.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::BrokerConfig;
use crate::durability::Durability;
use crate::error::BrokerError;
use crate::group::GroupCoordinator;
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
    let data_dir = config.data_dir.clone();
    let defaults = config.log_defaults.clone();
    let started = std::time::Instant::now();
    let logs =
        tokio::task::spawn_blocking(move || rivulet_log::LogManager::open(&data_dir, defaults))
            .await
            .map_err(|e| BrokerError::Other(format!("storage open task failed: {e}")))??;
    let groups = GroupCoordinator::open(&config.data_dir, config.group.clone())?;
    tracing::info!(
        data_dir = %config.data_dir.display(),
        topics = logs.topics().len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "storage opened"
    );
    let broker = Arc::new(Broker {
        durability: Durability::new(config.fsync),
        config,
        logs: Arc::new(logs),
        groups,
        stats: BrokerStats::default(),
        shutdown: CancellationToken::new(),
    });
    let mut tasks = JoinSet::new();
    tasks.spawn(broker.durability.clone().run(broker.shutdown.clone()));
    tasks.spawn(housekeeping(broker.clone()));
    let mut addrs = Vec::new();
    let slots = Arc::new(Semaphore::new(broker.config.max_connections));
    for listener in listeners {
        addrs.push(listener.local_addr()?);
        tasks.spawn(accept_loop(broker.clone(), listener, slots.clone()));
    }
    Ok(BrokerHandle {
        broker,
        addrs,
        tasks,
    })
}

async fn accept_loop(broker: Arc<Broker>, listener: TcpListener, slots: Arc<Semaphore>) {
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
            broker
                .stats
                .connections_rejected
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, max = broker.config.max_connections, "connection refused: too many connections");
            drop(stream);
            continue;
        };
        broker
            .stats
            .connections_accepted
            .fetch_add(1, Ordering::Relaxed);
        let b = broker.clone();
        conns.spawn(async move {
            crate::connection::serve(b, stream, peer).await;
            drop(permit);
        });
    }
    // Connections saw the same cancellation; give them the grace period to finish.
    let _ = tokio::time::timeout(GRACE, async { while conns.join_next().await.is_some() {} }).await;
    conns.abort_all();
}

/// Periodic work: the recovery checkpoint and retention.
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
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!("writing recovery checkpoint failed: {e}"),
                    Err(e) => tracing::error!("checkpoint task failed: {e}"),
                }
            }
            _ = retention.tick() => {
                let logs = broker.logs.clone();
                let now = crate::handlers::produce::now_ms();
                match tokio::task::spawn_blocking(move || logs.enforce_retention(now)).await {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => tracing::info!(segments = n, "retention deleted segments"),
                    Ok(Err(e)) => tracing::error!("retention failed: {e}"),
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
    /// Graceful stop: stop accepting, close connections, flush every log, write the recovery
    /// checkpoint and the clean-shutdown marker.
    pub async fn shutdown(mut self) -> Result<(), BrokerError> {
        self.broker.shutdown.cancel();
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
