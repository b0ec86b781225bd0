//! What every admin handler shares: request-level limits, checked before any work, and the
//! blocking pool the work runs on.
//!
//! Creating or deleting partitions makes and removes directories and files and holds the
//! storage's admin lock; done on a runtime thread, one large request (or two, one waiting on
//! the other's lock) stalled every connection and even shutdown. So admin handlers check their
//! limits on the runtime thread (cheap), then run the storage calls with
//! `tokio::task::spawn_blocking`; shutdown interrupts them (`LogManager::begin_shutdown`).

use crate::config::BrokerConfig;
use crate::error::codes;

/// Config entries one resource (a topic) may carry in a request: Rivulet knows eight topic
/// configs, so more than this is no real request.
pub(crate) const MAX_CONFIG_ENTRIES: usize = 100;

/// Runs admin work on the blocking pool; `Err` if the task panicked or was cancelled.
pub(crate) async fn blocking<R: Send + 'static>(
    work: impl FnOnce() -> R + Send + 'static,
) -> Result<R, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| format!("admin task failed: {e}"))
}

/// POLICY_VIOLATION when one request names more topics than `--max-topics-per-request`.
pub(crate) fn check_topic_count(count: usize, cfg: &BrokerConfig) -> Result<(), (i16, String)> {
    if count > cfg.max_topics_per_request {
        return Err((
            codes::policy_violation(),
            format!(
                "Unable to perform excessively large batch operation: {count} topics in one \
                 request, at most {} (--max-topics-per-request)",
                cfg.max_topics_per_request
            ),
        ));
    }
    Ok(())
}

/// POLICY_VIOLATION when one request would create more partitions than
/// `--max-partitions-per-request` (Kafka's controller refuses such requests with this code).
pub(crate) fn check_partition_total(new: i64, cfg: &BrokerConfig) -> Result<(), (i16, String)> {
    let max = i64::try_from(cfg.max_partitions_per_request).unwrap_or(i64::MAX);
    if new > max {
        return Err((
            codes::policy_violation(),
            format!(
                "Unable to perform excessively large batch operation: {new} partitions in one \
                 request, at most {max} (--max-partitions-per-request)"
            ),
        ));
    }
    Ok(())
}

/// INVALID_REQUEST when one resource carries more config entries than any real request.
pub(crate) fn check_config_entries(count: usize) -> Result<(), (i16, String)> {
    if count > MAX_CONFIG_ENTRIES {
        return Err((
            codes::invalid_request(),
            format!("{count} config entries for one resource, at most {MAX_CONFIG_ENTRIES}"),
        ));
    }
    Ok(())
}
