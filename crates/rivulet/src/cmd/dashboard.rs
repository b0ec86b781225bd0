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
    /// Address of the dashboard's web server; loopback unless you say otherwise (it has no
    /// authentication). Port 0 picks a free port; the address is printed at start.
    #[arg(
        long,
        env = "RIVULET_DASHBOARD_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub dashboard_listen: String,
}

/// Binds the dashboard's listener and prints its address (tests parse this line; with port 0
/// it has the real port).
pub async fn bind(listen: &str) -> Result<TcpListener> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the dashboard to --dashboard-listen {listen}"))?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        tracing::warn!(
            "the dashboard listens on {addr}, beyond this machine; it has no authentication"
        );
    }
    println!("rivulet dashboard at http://{addr}");
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
