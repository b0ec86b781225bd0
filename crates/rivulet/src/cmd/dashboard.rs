//! The live dashboard beside `run --dashboard` and `up`: its flag, its listener, and starting
//! it as a part of the command that stops after the query and before the broker.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use rivulet_dashboard::Dashboard;
use tokio::net::TcpListener;

use crate::shutdown::Shutdown;

/// How long a stopping dashboard may take (it holds nothing that must be saved).
const GRACE: Duration = Duration::from_secs(10);

/// Where the live dashboard (web page, /api, /metrics) listens.
#[derive(Args)]
pub struct DashboardArgs {
    /// Address of the dashboard's web server; loopback unless you say otherwise (beyond
    /// loopback it needs --dashboard-token). Port 0 picks a free port; the address is printed
    /// at start.
    #[arg(
        long,
        env = "RIVULET_DASHBOARD_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub dashboard_listen: String,
    /// Access token: every page and API request then needs `Authorization: Bearer TOKEN` or
    /// the cookie the page's token prompt sets. Required beyond loopback. Prefer the
    /// environment variable: a command line is visible to every user of the machine.
    #[arg(long, env = "RIVULET_DASHBOARD_TOKEN", hide_env_values = true)]
    pub dashboard_token: Option<String>,
    /// Serve the dashboard over HTTPS with this PEM certificate chain (and --dashboard-tls-key).
    #[arg(
        long,
        env = "RIVULET_DASHBOARD_TLS_CERT",
        requires = "dashboard_tls_key"
    )]
    pub dashboard_tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --dashboard-tls-cert.
    #[arg(
        long,
        env = "RIVULET_DASHBOARD_TLS_KEY",
        requires = "dashboard_tls_cert"
    )]
    pub dashboard_tls_key: Option<std::path::PathBuf>,
}

/// Shortest token accepted: a guessable token is no protection.
const MIN_TOKEN_LEN: usize = 12;

impl DashboardArgs {
    /// The access rule for the dashboard (checked: long enough).
    pub fn access(&self) -> Result<rivulet_dashboard::access::Access> {
        if let Some(t) = &self.dashboard_token {
            if t.chars().count() < MIN_TOKEN_LEN {
                anyhow::bail!(
                    "--dashboard-token must have at least {MIN_TOKEN_LEN} characters (e.g. \
                     `openssl rand -hex 16`)"
                );
            }
        }
        Ok(rivulet_dashboard::access::Access::new(
            self.dashboard_token.clone(),
        ))
    }

    /// The HTTPS configuration, if asked for.
    pub fn tls(&self) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>> {
        match (&self.dashboard_tls_cert, &self.dashboard_tls_key) {
            (Some(c), Some(k)) => Ok(Some(rivulet_auth::tls::server_config(c, k, None)?)),
            _ => Ok(None),
        }
    }
}

/// Binds the dashboard's listener and prints its address (tests parse this line; with port 0
/// it has the real port).
/// Refuses an address beyond loopback without a token, before binding it.
pub async fn bind(args: &DashboardArgs) -> Result<TcpListener> {
    args.access()?;
    let scheme = if args.tls()?.is_some() {
        "https"
    } else {
        "http"
    };
    let listen = args.dashboard_listen.as_str();
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host(listen)
        .await
        .with_context(|| format!("resolving --dashboard-listen {listen}"))?
        .collect();
    if args.dashboard_token.is_none() && addrs.iter().any(|a| !a.ip().is_loopback()) {
        anyhow::bail!(
            "the dashboard would listen on {listen}, beyond this machine, without \
             authentication: give it a token (--dashboard-token or RIVULET_DASHBOARD_TOKEN) or \
             listen on 127.0.0.1"
        );
    }
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the dashboard to --dashboard-listen {listen}"))?;
    let addr = listener.local_addr()?;
    println!("rivulet dashboard at {scheme}://{addr}");
    Ok(listener)
}

/// The dashboard shows one query: the job's first branch, under the job's name (its
/// progress records, consumer group and checkpoint carry the job's name).
pub fn plan(job: &rivulet_engine::Job) -> Option<rivulet_engine::Plan> {
    job.primary().map(|p| {
        let mut p = p.clone();
        p.name = job.name.clone();
        p
    })
}

/// Serves `dashboard` on `listener` as a part of the command; its failures are logged only,
/// since the pipeline's own result is what the command reports.
pub fn start(shutdown: &mut Shutdown, dashboard: Dashboard, listener: TcpListener) {
    shutdown.start_aside("dashboard", GRACE, |stop| async move {
        if let Err(e) = dashboard.serve(listener, stop).await {
            tracing::error!("dashboard: {e}");
        }
        Ok(())
    });
}
