//! Shared broker state handed to every connection and handler.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use parking_lot::Mutex;
use rivulet_log::{LogError, LogManager};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::BrokerConfig;
use crate::durability::Durability;
use crate::group::GroupCoordinator;
use crate::logging::{OncePerCause, RateLimited};

/// Counters of what the broker refused or saw, for logs, /metrics and the dashboard. The broker keeps
/// them behind an `Arc` so a watcher holds the counters only ([`crate::BrokerHandle::stats`]),
/// never the broker.
#[derive(Debug, Default)]
pub struct BrokerStats {
    pub connections_accepted: AtomicU64,
    /// Refused at `--max-connections` or `--max-connections-per-ip`.
    pub connections_rejected: AtomicU64,
    /// Of those, refused at `--max-connections-per-ip`.
    pub connections_rejected_per_ip: AtomicU64,
    /// Closed after `--connections-max-idle-ms` without a request.
    pub connections_idle_closed: AtomicU64,
    /// Closed because a started request did not arrive within `--request-timeout-ms`.
    pub request_timeouts: AtomicU64,
    pub malformed_requests: AtomicU64,
    pub oversize_frames: AtomicU64,
    pub produce_errors: AtomicU64,
    /// Produce payloads refused for their content (CORRUPT_MESSAGE, INVALID_RECORD,
    /// INVALID_TIMESTAMP, MESSAGE_TOO_LARGE); nothing of them was stored.
    pub records_rejected: AtomicU64,
    /// Storage I/O errors answered with KAFKA_STORAGE_ERROR.
    pub storage_errors: AtomicU64,
    /// Warnings not logged by the rate limit.
    pub log_lines_suppressed: AtomicU64,
    /// Transactions ended by a COMMIT, by an ABORT (requested, fenced or timed out), and of
    /// those aborted because they ran past their timeout.
    pub transactions_committed: AtomicU64,
    pub transactions_aborted: AtomicU64,
    pub transactions_timed_out: AtomicU64,
    /// Transactional ids with a transaction open now (a gauge), at most the coordinator's
    /// limit of transactional ids.
    pub transactions_open: AtomicU64,
    /// SASL authentications that succeeded and failed (wrong password, unknown user, bad
    /// message, unsupported mechanism).
    pub authentications: AtomicU64,
    pub authentication_failures: AtomicU64,
    /// TLS handshakes that failed (a plaintext client on a TLS port, an unknown client
    /// certificate, a handshake not done within `--request-timeout-ms`).
    pub tls_handshake_failures: AtomicU64,
    /// Connections closed for a request other than ApiVersions/SASL before authenticating.
    pub unauthenticated_requests: AtomicU64,
    pub records_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

pub struct Broker {
    pub config: BrokerConfig,
    pub logs: Arc<LogManager>,
    pub groups: Arc<GroupCoordinator>,
    pub txns: Arc<crate::txn::TxnCoordinator>,
    pub durability: Arc<Durability>,
    pub stats: Arc<BrokerStats>,
    pub shutdown: CancellationToken,
    /// Bytes of requests being received or handled (`--queued-max-request-bytes`): a frame
    /// takes its size in permits once its length is known, until it is answered.
    pub queued_bytes: Arc<Semaphore>,
    /// Open connections per client address (`--max-connections-per-ip`).
    pub connections_per_ip: Mutex<HashMap<IpAddr, usize>>,
    pub warnings: RateLimited,
    pub storage_errors_logged: OncePerCause,
    /// SCRAM credentials (`<data-dir>/users.json`), re-read when another process changed it.
    pub credentials: Mutex<rivulet_auth::CredentialStore>,
    pub auth_failures: crate::auth::FailureThrottle,
    /// ACLs (`<data-dir>/acls.json`) and who they apply to.
    pub authorizer: Arc<crate::acl::Authorizer>,
}

impl Broker {
    /// `user`'s SCRAM credential for `mechanism`, from the store as it is on disk now.
    pub fn scram_credential(
        &self,
        user: &str,
        mechanism: rivulet_auth::Mechanism,
    ) -> Option<rivulet_auth::ScramCredential> {
        let mut store = self.credentials.lock();
        self.refresh_credentials(&mut store);
        store.get(user, mechanism).cloned()
    }

    /// Checks a SASL/PLAIN password against `user`'s SCRAM credential.
    pub fn verify_plain(&self, user: &str, password: &str) -> bool {
        let mut store = self.credentials.lock();
        self.refresh_credentials(&mut store);
        store.verify_plain(user, password)
    }

    fn refresh_credentials(&self, store: &mut rivulet_auth::CredentialStore) {
        if let Err(e) = store.refresh() {
            // The last good credentials stay in use.
            let cause = format!("credential store: {e}");
            if self.storage_errors_logged.first(&cause) {
                tracing::error!(
                    "cannot read the credential store, keeping the users read before: {e}"
                );
            }
        }
    }

    /// Counts and logs (rate-limited, with the peer address) a failed authentication; returns
    /// how long to wait before answering it.
    pub fn auth_failed(&self, peer: std::net::SocketAddr, reason: &str) -> std::time::Duration {
        self.stats
            .authentication_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self
            .warnings
            .allow(crate::logging::Kind::FailedAuthentication)
        {
            Some(suppressed) => {
                tracing::warn!(%peer, suppressed, "authentication failed: {reason}")
            }
            None => {
                self.stats
                    .log_lines_suppressed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        self.auth_failures.failed(peer.ip())
    }

    pub fn auth_succeeded(&self, peer: std::net::SocketAddr, principal: &str) {
        self.stats
            .authentications
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.auth_failures.succeeded(peer.ip());
        tracing::debug!(%peer, principal = %rivulet_log::Quoted(principal), "authenticated");
    }

    /// Logs a storage I/O error once per cause (file and error), counting every occurrence;
    /// other errors are the client's and are not logged here.
    pub fn note_storage_error(&self, what: &str, e: &LogError) {
        if !matches!(e, LogError::Io { .. } | LogError::Offline(_)) {
            return;
        }
        self.stats
            .storage_errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cause = format!("{what}: {e}");
        if self.storage_errors_logged.first(&cause) {
            tracing::error!(
                "storage error on {what}: {e}; answering KAFKA_STORAGE_ERROR until it clears \
                 (logged once per cause)"
            );
        }
    }

    /// A storage operation on `what` succeeded: if it had failed, say it works again, and
    /// log its causes anew next time. Cheap when nothing failed (called on every append).
    pub fn storage_recovered(&self, what: impl FnOnce() -> String) {
        if !self.storage_errors_logged.any() {
            return;
        }
        let what = what();
        if self.storage_errors_logged.clear(&format!("{what}: ")) {
            tracing::info!("storage on {what} works again");
        }
    }
}
