//! `rivulet run`: one continuous query (a pipeline file, a `.sql` file or flags), optionally
//! with the dashboard.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::dashboard::{self, DashboardArgs};
use crate::shutdown::Shutdown;

#[derive(Args)]
pub struct RunArgs {
    /// The pipeline file (TOML) describing the query; the query flags below override its
    /// values. Without it, the flags describe the whole query (--topic, --schema and
    /// --event-time are then required).
    #[arg(long, conflicts_with = "sql")]
    pipeline: Option<PathBuf>,
    /// The query in streaming SQL (CREATE SOURCE/SINK + INSERT INTO ... SELECT); the query
    /// flags below override its values like a pipeline file's.
    #[arg(long)]
    sql: Option<PathBuf>,
    #[command(flatten)]
    query: rivulet_runtime::PlanArgs,
    /// Print the resulting plan as JSON and exit without running it.
    #[arg(long)]
    print_plan: bool,
    /// Bootstrap servers, overriding the pipeline's `source.brokers`.
    #[arg(long, env = "RIVULET_BROKERS")]
    brokers: Option<String>,
    /// Client properties for the source and the Kafka sinks, dead-letter and late topics that
    /// share its cluster (`-X security.protocol=SASL_SSL`, …; see `rivulet topics --help`).
    #[command(flatten)]
    client: super::connection::ClientConfigArgs,
    /// Checkpoint directory, overriding the pipeline's `checkpoint.dir`.
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// Where offsets, state and epoch markers live, overriding the pipeline's
    /// `checkpoint.store`: `dir` (the checkpoint directory) or `kafka` (topic
    /// `<name>-changelog` in the source's cluster, written through Kafka transactions; all
    /// processes started with the same --name, on any machines, share its tasks — one per
    /// input partition — as the consumer group `rivulet-<name>`; see README).
    #[arg(long, value_name = "dir|kafka")]
    checkpoint_store: Option<rivulet_engine::plan::CheckpointStoreKind>,
    /// Append a JSON progress record per micro-batch to this file.
    #[arg(long)]
    progress_json: Option<PathBuf>,
    /// Serve the live dashboard for this query (see --dashboard-listen).
    #[arg(long)]
    dashboard: bool,
    #[command(flatten)]
    dashboard_args: DashboardArgs,
}

/// Runs the query until it stops or the first Ctrl-C/SIGTERM, which finishes the current
/// micro-batch and checkpoints; a second one exits at once.
pub async fn run(args: RunArgs) -> Result<()> {
    let mut job = match (&args.pipeline, &args.sql) {
        (Some(p), _) => rivulet_engine::Job::single(
            args.query
                .build(Some(rivulet_runtime::connectors::load_toml_file(p)?))?,
        ),
        (None, Some(s)) => {
            let job = super::sql_job(s)?;
            if job.branches.len() > 1 && args.query.is_empty() {
                job
            } else {
                // Query flags override one query's plan; several branches refuse them.
                rivulet_engine::Job::single(
                    args.query
                        .build(Some(super::single_plan(job, "a query flag")?))?,
                )
            }
        }
        (None, None) => rivulet_engine::Job::single(args.query.build(None)?),
    };
    if let Some(b) = &args.brokers {
        for p in &mut job.branches {
            rivulet_runtime::connectors::kafka::set_brokers(&mut p.source, b);
        }
    }
    if !args.client.is_empty() {
        // The servers are the plan's; only the properties come from the flags.
        let props = args.client.connection("unused")?.properties;
        for p in &mut job.branches {
            rivulet_runtime::connectors::kafka::set_properties(&mut p.source, &props);
        }
    }
    if args.print_plan {
        // Secrets (a PostgreSQL password, client properties) never leave the process.
        job.branches = job
            .branches
            .iter()
            .map(rivulet_runtime::connectors::redacted)
            .collect();
        match job.as_single() {
            Some(plan) => println!("{}", serde_json::to_string_pretty(plan)?),
            None => println!("{}", serde_json::to_string_pretty(&job)?),
        }
        return Ok(());
    }
    let dashboard_listener = match args.dashboard {
        true => Some(dashboard::bind(&args.dashboard_args).await?),
        false => None,
    };
    let mut shutdown = Shutdown::new(
        Some("stopping after the current micro-batch (press Ctrl-C again to exit at once)"),
        "second signal: exiting at once",
    )?;
    let mut observer = None;
    let mut dashboard = None;
    if let Some(listener) = dashboard_listener {
        let mut config = rivulet_dashboard::DashboardConfig::new(
            job.primary()
                .and_then(|p| rivulet_runtime::connectors::kafka::SourceOptions::of(&p.source).ok())
                .map_or_else(String::new, |s| s.connection.bootstrap_servers),
        );
        if let Some(s) = job
            .primary()
            .and_then(|p| rivulet_runtime::connectors::kafka::SourceOptions::of(&p.source).ok())
        {
            config.connection = s.connection;
        }
        config.plan = dashboard::plan(&job);
        config.access = args.dashboard_args.access()?;
        config.tls = args.dashboard_args.tls()?;
        let d = rivulet_dashboard::Dashboard::new(config);
        observer = Some(d.observer());
        dashboard = Some((d, listener));
    }
    let opts = rivulet_runtime::RunOptions {
        progress_json: args.progress_json,
        checkpoint_dir: args.checkpoint_dir,
        checkpoint_store: args.checkpoint_store,
        observer,
        ..rivulet_runtime::RunOptions::default()
    };
    shutdown.start("query", |stop| async move {
        let summary = rivulet_runtime::run_job(job, opts, stop).await?;
        super::log_query_summary(&summary);
        Ok(())
    });
    if let Some((d, listener)) = dashboard {
        dashboard::start(&mut shutdown, d, listener);
    }
    shutdown.run().await
}
