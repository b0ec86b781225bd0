//! # rivulet-dashboard — the live view of a running pipeline
//!
//! Place in the pipeline: beside it, watching. `rivulet up` (and `rivulet run --dashboard`)
//! start a [`Dashboard`]: the runtime hands it every committed epoch's result rows and
//! progress record through [`rivulet_runtime::QueryObserver`], the generator and the embedded
//! broker share their counters, and the cluster's topics and groups are read through the
//! admin client (`rivulet-client`), so that part works against any Kafka-compatible cluster.
//!
//! It serves, on a listener the caller bound (loopback by default):
//!
//! - `/` — one page (HTML, CSS, JavaScript and an SVG chart drawn by hand, all embedded in
//!   the binary with `include_str!`: no CDN, no Node.js build) with a live chart per
//!   aggregate, the latest windows, a key selector and the pipeline's health;
//! - `/api/...` — the JSON behind it (see [`server`] and the README);
//! - `/api/events` — Server-Sent Events, one snapshot per second;
//! - `/metrics` — Prometheus text format ([`metrics`]).
//!
//! With a token ([`access`]) every page and API needs it, as a bearer token or the cookie the
//! page's prompt sets.
//!
//! Files: [`access`], [`state`] (what is kept and the JSON views), [`results`] (result rows per key and
//! window), [`sampler`] (background refreshes), [`metrics`], [`server`] (routes).

pub mod access;
pub mod error;
pub mod metrics;
pub mod results;
pub mod sampler;
pub mod server;
pub mod state;
pub mod tls;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use error::DashboardError;
pub use state::{DashboardConfig, DashboardObserver};

/// A dashboard: cheap to clone, all clones share the same buffers.
#[derive(Debug, Clone)]
pub struct Dashboard {
    shared: Arc<state::Shared>,
}

impl Dashboard {
    pub fn new(config: DashboardConfig) -> Dashboard {
        Dashboard {
            shared: Arc::new(state::Shared::new(config)),
        }
    }

    /// The observer to put in [`rivulet_runtime::RunOptions::observer`].
    pub fn observer(&self) -> Arc<dyn rivulet_runtime::QueryObserver> {
        Arc::new(DashboardObserver(self.shared.clone()))
    }

    /// Serves the page and API on `listener` (already bound: tests use port 0) and runs the
    /// background refreshes, until `cancel`. Open event streams end on `cancel` too, so the
    /// server stops promptly.
    pub async fn serve(
        self,
        listener: TcpListener,
        cancel: CancellationToken,
    ) -> Result<(), DashboardError> {
        let counters = tokio::spawn(sampler::run_counters(self.shared.clone(), cancel.clone()));
        let (s, c) = (self.shared.clone(), cancel.clone());
        let cluster = tokio::task::spawn_blocking(move || sampler::run_cluster(s, c));
        let app = server::router(self.shared.clone(), cancel.clone());
        let served = match self.shared.tls.clone() {
            None => {
                axum::serve(listener, app)
                    .with_graceful_shutdown(cancel.clone().cancelled_owned())
                    .await
            }
            Some(config) => {
                let listener = tls::TlsListener::new(listener, config, cancel.clone())?;
                axum::serve(listener, app)
                    .with_graceful_shutdown(cancel.clone().cancelled_owned())
                    .await
            }
        };
        // The server also returns when it fails: stop the refreshes in either case.
        cancel.cancel();
        let joined = (counters.await, cluster.await);
        served?;
        match joined {
            (Ok(()), Ok(())) => Ok(()),
            (Err(e), _) | (_, Err(e)) => Err(DashboardError::Task(e.to_string())),
        }
    }
}
