//! Bounded waiting.

use std::time::{Duration, Instant};

/// Generous upper bound for any single wait (a loaded 2-core machine).
pub const WAIT: Duration = Duration::from_secs(30);

/// Polls `cond` every 50 ms until it holds or [`WAIT`] passes; returns whether it held.
pub async fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}

/// Runs a blocking closure on the blocking pool, bounded by twice [`WAIT`].
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::time::timeout(WAIT * 2, tokio::task::spawn_blocking(f))
        .await
        .expect("blocking step timed out")
        .expect("blocking step panicked")
}
