//! Background refreshes: the counters every second (async, cheap: atomics and one small
//! `/proc` read) and the cluster's topics and groups every two seconds (librdkafka admin
//! calls, which block, so on a blocking thread of their own).

use std::sync::Arc;
use std::time::Duration;

use rivulet_client::admin::Inspector;
use tokio_util::sync::CancellationToken;

use crate::state::Shared;

/// How often the counters are read.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// How often topics and groups are described.
pub const CLUSTER_EVERY: Duration = Duration::from_secs(2);

/// Reads the counters until `cancel`.
pub(crate) async fn run_counters(shared: Arc<Shared>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => shared.sample(),
        }
    }
}

/// Describes the cluster until `cancel`; runs on a blocking thread. A failure is shown on
/// the page (and makes the status `degraded`) and retried at the next round.
pub(crate) fn run_cluster(shared: Arc<Shared>, cancel: CancellationToken) {
    let mut inspector: Option<Inspector> = None;
    while !cancel.is_cancelled() {
        let result = (|| {
            if inspector.is_none() {
                inspector =
                    Some(Inspector::connect(&shared.connection).map_err(|e| e.to_string())?);
            }
            let Some(i) = inspector.as_mut() else {
                return Err("no admin client".to_string());
            };
            let topics = i.topics().map_err(|e| e.to_string())?;
            let groups = i.groups(&topics).map_err(|e| e.to_string())?;
            Ok((topics, groups))
        })();
        if let Err(e) = &result {
            tracing::debug!("dashboard: describing the cluster: {e}");
        }
        shared.set_cluster(result);
        // Sleep in slices so shutdown is not held up by a whole period.
        let mut slept = Duration::ZERO;
        while slept < CLUSTER_EVERY && !cancel.is_cancelled() {
            std::thread::sleep(Duration::from_millis(100));
            slept += Duration::from_millis(100);
        }
    }
}

/// The process's resident set size, from `/proc/self/status` (Linux; None elsewhere).
pub fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn reads_resident_memory() {
        let rss = super::resident_memory_bytes();
        assert!(rss.is_some_and(|b| b > 0), "{rss:?}");
    }
}
