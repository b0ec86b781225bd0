//! Logging that clients can neither flood nor forge.
//!
//! - Client-supplied text (client ids, topic names from requests, group and member ids) goes
//!   through [`rivulet_log::Quoted`]: quoted, escaped, bounded. A client id holding `\n` and an
//!   ANSI escape forged a whole `ERROR … FAKE LINE` log line before.
//! - Warnings a client can trigger at will (malformed requests, refused records, slow or idle
//!   connections) go through [`RateLimited`]: a few lines per kind and window, and the next line
//!   of that kind says how many were suppressed (one fuzz pass logged 14,478 WARN lines).
//! - Storage errors are logged once per cause ([`OncePerCause`]): a full disk answers every
//!   produce with KAFKA_STORAGE_ERROR, and used to log nothing at all.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Kinds of rate-limited warnings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A frame that is not a request we can decode (the connection is closed).
    MalformedRequest,
    /// A produce payload refused for its content (CORRUPT_MESSAGE, INVALID_RECORD, …).
    RefusedRecords,
    /// A connection closed because a request did not arrive in time.
    SlowRequest,
    /// A connection refused (connection caps).
    RefusedConnection,
    /// A transactional producer refused by the coordinator (timeout out of range, fenced…).
    RefusedProducer,
    /// A failed SASL authentication, TLS handshake or request before authentication.
    FailedAuthentication,
}

#[derive(Debug)]
struct Window {
    start: Instant,
    logged: u32,
    suppressed: u64,
}

/// See the module docs: at most `per_window` lines per kind every `window`.
#[derive(Debug)]
pub struct RateLimited {
    per_window: u32,
    window: Duration,
    kinds: Mutex<HashMap<Kind, Window>>,
}

impl Default for RateLimited {
    fn default() -> Self {
        RateLimited::new(10, Duration::from_secs(10))
    }
}

impl RateLimited {
    pub fn new(per_window: u32, window: Duration) -> Self {
        RateLimited {
            per_window,
            window,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(n)`: log this occurrence, mentioning the `n` suppressed since the last line of this
    /// kind; `None`: suppress it (it is counted).
    pub fn allow(&self, kind: Kind) -> Option<u64> {
        let now = Instant::now();
        let mut kinds = self.kinds.lock();
        let w = kinds.entry(kind).or_insert(Window {
            start: now,
            logged: 0,
            suppressed: 0,
        });
        if now.duration_since(w.start) >= self.window {
            w.start = now;
            w.logged = 0;
        }
        if w.logged < self.per_window {
            w.logged += 1;
            Some(std::mem::take(&mut w.suppressed))
        } else {
            w.suppressed += 1;
            None
        }
    }
}

/// Causes already logged. A cause is logged again once it cleared ([`Self::clear`]); past
/// [`Self::MAX_CAUSES`] distinct causes (a failing disk under thousands of partitions) the
/// rest are not logged individually, only counted by the caller's stats.
#[derive(Debug, Default)]
pub struct OncePerCause {
    seen: Mutex<HashSet<String>>,
    /// `seen` is not empty: [`Self::clear`] runs after every successful append, so its common
    /// case must not take the lock.
    any: AtomicBool,
}

impl OncePerCause {
    pub const MAX_CAUSES: usize = 1024;

    /// Whether `cause` is new (log it now).
    pub fn first(&self, cause: &str) -> bool {
        let mut seen = self.seen.lock();
        if seen.contains(cause) || seen.len() >= Self::MAX_CAUSES {
            return false;
        }
        seen.insert(cause.to_string());
        self.any.store(true, Ordering::Release);
        true
    }

    /// Whether any cause is remembered (cheap).
    pub fn any(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    /// Forgets causes starting with `prefix` (the problem went away); `true` if any was set.
    pub fn clear(&self, prefix: &str) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        let mut seen = self.seen.lock();
        let before = seen.len();
        seen.retain(|c| !c.starts_with(prefix));
        self.any.store(!seen.is_empty(), Ordering::Release);
        seen.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_counts_what_it_suppresses() {
        let r = RateLimited::new(2, Duration::from_millis(200));
        assert_eq!(r.allow(Kind::MalformedRequest), Some(0));
        assert_eq!(r.allow(Kind::MalformedRequest), Some(0));
        for _ in 0..5 {
            assert_eq!(r.allow(Kind::MalformedRequest), None);
        }
        // Other kinds have their own budget.
        assert_eq!(r.allow(Kind::SlowRequest), Some(0));
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(r.allow(Kind::MalformedRequest), Some(5));
        assert_eq!(r.allow(Kind::MalformedRequest), Some(0));
    }

    #[test]
    fn causes_are_logged_once_until_cleared() {
        let o = OncePerCause::default();
        assert!(o.first("t-0: disk full"));
        assert!(!o.first("t-0: disk full"));
        assert!(o.first("t-1: disk full"));
        assert!(o.clear("t-0:"));
        assert!(!o.clear("t-0:"));
        assert!(o.first("t-0: disk full"));
        assert!(!o.first("t-1: disk full"));
    }
}
