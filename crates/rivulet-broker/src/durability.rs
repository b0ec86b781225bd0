//! Group commit: one task fsyncs every partition written since its last round, then wakes
//! everybody waiting for durability (acks=1/-1 producers) or for new visible data (fetchers).
//!
//! With `FsyncPolicy::Always`, a produce is answered only once its data is fsynced and consumers
//! only see fsynced data (the high watermark is the flushed offset), so an offset a consumer has
//! read can never vanish in a crash. Producers that arrive while an fsync runs are covered by the
//! next one: concurrent producers share fsyncs instead of queueing one each.

use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;

use parking_lot::Mutex;
use rivulet_log::Partition;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::config::FsyncPolicy;

type PartitionKey = (String, i32);

pub struct Durability {
    policy: FsyncPolicy,
    dirty: Mutex<HashMap<PartitionKey, Arc<Partition>>>,
    wake: Notify,
    /// Bumped after every fsync round (Always) or every append (Interval): the signal that the
    /// visible end of some partition moved.
    version: watch::Sender<u64>,
    /// Set when an fsync failed: the broker can no longer promise durability.
    failed: Mutex<Option<String>>,
}

impl Durability {
    pub fn new(policy: FsyncPolicy) -> Arc<Durability> {
        Arc::new(Durability {
            policy,
            dirty: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            version: watch::channel(0).0,
            failed: Mutex::new(None),
        })
    }

    pub fn policy(&self) -> FsyncPolicy {
        self.policy
    }

    /// Offset up to which consumers may read: the flushed offset when every write is fsynced
    /// before it is acknowledged, the log end otherwise.
    pub fn high_watermark(&self, partition: &Partition) -> i64 {
        let log = partition.log.lock();
        match self.policy {
            FsyncPolicy::Always => log.flushed_offset(),
            FsyncPolicy::Interval(_) => log.log_end_offset(),
        }
    }

    /// Records that `partition` has unflushed data.
    pub fn mark_dirty(&self, partition: &Arc<Partition>) {
        self.dirty
            .lock()
            .entry((partition.topic.clone(), partition.index))
            .or_insert_with(|| partition.clone());
        match self.policy {
            FsyncPolicy::Always => self.wake.notify_one(),
            FsyncPolicy::Interval(_) => self.bump(),
        }
    }

    pub fn failure(&self) -> Option<String> {
        self.failed.lock().clone()
    }

    /// A receiver that changes whenever visible data may have grown.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Waits until everything below `offset` in `partition` is durable (or fsync failed).
    pub async fn wait_flushed(&self, partition: &Partition, offset: i64) -> Result<(), String> {
        let mut rx = self.subscribe();
        loop {
            if let Some(e) = self.failure() {
                return Err(e);
            }
            if partition.log.lock().flushed_offset() >= offset {
                return Ok(());
            }
            if rx.changed().await.is_err() {
                return Err("broker shutting down".into());
            }
        }
    }

    /// The fsync loop. Runs until `shutdown`, then does a last round.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let stop = match self.policy {
                FsyncPolicy::Always => tokio::select! {
                    _ = self.wake.notified() => false,
                    _ = shutdown.cancelled() => true,
                },
                FsyncPolicy::Interval(every) => tokio::select! {
                    _ = tokio::time::sleep(every) => false,
                    _ = shutdown.cancelled() => true,
                },
            };
            self.sync_round().await;
            if stop {
                break;
            }
        }
    }

    /// Fsyncs every dirty partition once and publishes the new flushed offsets.
    pub async fn sync_round(&self) {
        let dirty: Vec<Arc<Partition>> = self.dirty.lock().drain().map(|(_, p)| p).collect();
        if dirty.is_empty() {
            return;
        }
        let mut targets: Vec<(Arc<Partition>, Arc<File>, i64)> = Vec::with_capacity(dirty.len());
        let mut retry = false;
        for p in dirty {
            let target = p.log.lock().sync_target();
            match target {
                Ok(Some((file, end))) => targets.push((p, file, end)),
                Ok(None) => {}
                Err(e) => {
                    // The file could not be opened (out of descriptors): nothing is lost and
                    // nothing acknowledged; retry with the next round.
                    tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "cannot open segment to fsync; retrying");
                    self.dirty
                        .lock()
                        .entry((p.topic.clone(), p.index))
                        .or_insert_with(|| p.clone());
                    retry = true;
                }
            }
        }
        let synced = tokio::task::spawn_blocking(move || {
            let mut done = Vec::with_capacity(targets.len());
            for (p, file, end) in targets {
                if let Err(e) = file.sync_data() {
                    let reason = format!("fsync of {}-{} failed: {e}", p.topic, p.index);
                    // The page cache may have dropped the data: never acknowledge it, never
                    // append after it (Kafka takes the log directory offline too).
                    p.log.lock().mark_offline(&reason);
                    return Err(reason);
                }
                done.push((p, end));
            }
            Ok(done)
        })
        .await;
        match synced {
            Ok(Ok(done)) => {
                for (p, end) in done {
                    p.log.lock().mark_flushed(end);
                }
            }
            Ok(Err(e)) => {
                tracing::error!("{e}; refusing further acknowledged writes");
                *self.failed.lock() = Some(e);
            }
            Err(e) => {
                tracing::error!("fsync task failed: {e}");
                *self.failed.lock() = Some(e.to_string());
            }
        }
        self.bump();
        if retry {
            // Back off instead of spinning while descriptors are short.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            self.wake.notify_one();
        }
    }
}
