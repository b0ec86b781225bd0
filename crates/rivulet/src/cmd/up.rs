//! `rivulet up`: the whole pipeline in one process — embedded broker (unless `--brokers`),
//! generator, the query and the dashboard.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use rivulet_broker::BrokerConfig;
use rivulet_gen::GenConfig;

use super::broker::{bind, split_host_port};
use super::dashboard::{self, DashboardArgs};
use crate::shutdown::Shutdown;

/// The default query of `rivulet up` (also shipped as examples/pipeline.toml).
const DEFAULT_PIPELINE: &str = include_str!("../../../../examples/pipeline.toml");

#[derive(Args)]
pub struct UpArgs {
    /// Directory for the embedded broker's log and the query's checkpoints.
    #[arg(long, env = "RIVULET_DATA_DIR", default_value = "./rivulet-data")]
    data_dir: PathBuf,
    /// Where the embedded broker listens.
    #[arg(long, env = "RIVULET_LISTEN", default_value = "127.0.0.1:9092")]
    listen: String,
    /// Use this Kafka-compatible cluster instead of starting the embedded broker.
    #[arg(long, env = "RIVULET_BROKERS")]
    brokers: Option<String>,
    /// Client properties for --brokers (TLS, SASL; see `rivulet run --help`).
    #[command(flatten)]
    client: super::connection::ClientConfigArgs,
    /// Topic the generator writes and the query reads.
    #[arg(long, default_value = "events")]
    topic: String,
    /// Partitions of the topic when `up` creates it.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Generator rate in events/s.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Number of distinct ids the generator uses.
    #[arg(long, default_value_t = 10)]
    keys: u64,
    /// Do not start the generator (events come from elsewhere).
    #[arg(long)]
    no_generator: bool,
    /// Do not run a query (broker and generator only).
    #[arg(long)]
    no_query: bool,
    /// Query definition; default: 10-second tumbling windows per id with count, avg, min and
    /// max of `value`, 5 s allowed lateness, update mode, console output.
    #[arg(long, conflicts_with = "sql")]
    pipeline: Option<PathBuf>,
    /// Where the query's results go (repeatable; replaces the pipeline's sinks): `console`,
    /// `file:DIR`, `kafka:TOPIC`, `parquet:DIR`, `postgres://USER:PASSWORD@HOST:PORT/DB[?table=NAME]`
    /// [default: console]. Add `--sink console` to keep the table on stdout too.
    #[arg(long = "sink", value_name = "SINK")]
    sinks: Vec<String>,
    /// Query definition in streaming SQL (see `rivulet sql explain`).
    #[arg(long)]
    sql: Option<PathBuf>,
    /// Append a JSON progress record per micro-batch to this file.
    #[arg(long)]
    progress_json: Option<PathBuf>,
    /// Where the query's offsets, state and epoch markers live: `dir` (under --data-dir) or
    /// `kafka` (see `rivulet run --help`).
    #[arg(long, value_name = "dir|kafka")]
    checkpoint_store: Option<rivulet_engine::plan::CheckpointStoreKind>,
    #[command(flatten)]
    dashboard: DashboardArgs,
    /// Do not serve the dashboard.
    #[arg(long)]
    no_dashboard: bool,
}

/// Broker, generator and query in one process. The stop goes source first: the generator
/// stops, the query finishes its micro-batch and checkpoints, the dashboard goes (before the
/// broker, so its admin calls never wait on a closed one), then the broker flushes and marks
/// a clean shutdown. A second Ctrl-C exits at once.
pub async fn run(args: UpArgs) -> Result<()> {
    let data_dir = args.data_dir.clone();
    let mut job = match (&args.pipeline, &args.sql) {
        (Some(p), _) => {
            rivulet_engine::Job::single(rivulet_runtime::connectors::load_toml_file(p)?)
        }
        (None, Some(s)) => super::sql_job(s)?,
        (None, None) => {
            rivulet_engine::Job::single(rivulet_runtime::connectors::load_toml(DEFAULT_PIPELINE)?)
        }
    };
    if !args.sinks.is_empty() {
        let mut plan = super::single_plan(job, "--sink")?;
        plan.sinks = args
            .sinks
            .iter()
            .map(|s| rivulet_runtime::connectors::sink_from_shorthand(s))
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("--sink: {e}"))?;
        rivulet_runtime::connectors::check_plan(&plan)?;
        job = rivulet_engine::Job::single(plan);
    }
    let mut shutdown = Shutdown::new(
        Some("stopping: generator, then query, then broker (Ctrl-C again to exit at once)"),
        "second signal: exiting at once",
    )?;
    // Bound first, so a taken port fails the start before anything else runs.
    let dashboard_listener = match args.no_dashboard {
        false => Some(dashboard::bind(&args.dashboard).await?),
        true => None,
    };
    // The embedded broker, unless pointed at a cluster.
    let (broker, brokers) = match &args.brokers {
        Some(b) => (None, b.clone()),
        None => {
            let listeners = bind(&args.listen).await?;
            let addr = listeners[0].local_addr()?;
            let (host, _) = split_host_port(&args.listen)?;
            let config = BrokerConfig::new(data_dir.join("broker"), host.clone(), addr.port());
            let handle = rivulet_broker::start(config, listeners)
                .await
                .with_context(|| {
                    format!("starting the embedded broker in {}", data_dir.display())
                })?;
            println!("rivulet broker listening on {addr}");
            (Some(handle), format!("{host}:{}", addr.port()))
        }
    };
    if args.brokers.is_none() && !args.client.is_empty() {
        anyhow::bail!("client properties (-X, --client-config-file) are for a cluster given with --brokers; the embedded broker is plaintext on loopback");
    }
    let connection = args.client.connection(&brokers)?;
    rivulet_client::admin::ensure_topic(&connection, &args.topic, args.partitions, &[])
        .await
        .with_context(|| format!("creating topic {} on {brokers}", args.topic))?;

    let gen_stats = Arc::new(rivulet_gen::GenStats::default());
    for plan in &mut job.branches {
        rivulet_runtime::connectors::kafka::set_brokers(&mut plan.source, &brokers);
        rivulet_runtime::connectors::kafka::set_properties(
            &mut plan.source,
            &connection.properties,
        );
        if args.pipeline.is_none() && args.sql.is_none() {
            rivulet_runtime::connectors::kafka::set_topics(
                &mut plan.source,
                std::slice::from_ref(&args.topic),
            );
        }
    }
    let mut observer = None;
    let mut dashboard = None;
    if let Some(listener) = dashboard_listener {
        let mut config = rivulet_dashboard::DashboardConfig::new(brokers.clone());
        config.connection = connection.clone();
        config.access = args.dashboard.access()?;
        config.tls = args.dashboard.tls()?;
        config.plan = (!args.no_query).then(|| dashboard::plan(&job)).flatten();
        config.broker = broker.as_ref().map(|b| b.stats());
        config.generator = (!args.no_generator).then(|| gen_stats.clone());
        let d = rivulet_dashboard::Dashboard::new(config);
        observer = Some(d.observer());
        dashboard = Some((d, listener));
    }
    // Parts start in the order they stop.
    if !args.no_generator {
        let config = GenConfig {
            rate: args.rate,
            keys: args.keys,
            quiet: true,
            connection: connection.clone(),
            ..GenConfig::new(brokers.as_str(), args.topic.as_str())
        };
        shutdown.start("generator", |stop| async move {
            // The generator's end is logged, never the command's failure: the query may still
            // have results to write.
            match rivulet_gen::run_with_stats(config, stop, gen_stats).await {
                Ok(summary) => tracing::info!("generator: {summary}"),
                Err(e) => tracing::error!("generator: {e:#}"),
            }
            Ok(())
        });
    }
    if !args.no_query {
        let opts = rivulet_runtime::RunOptions {
            progress_json: args.progress_json.clone(),
            checkpoint_dir: Some(data_dir.join("checkpoints").join(&job.name)),
            checkpoint_store: args.checkpoint_store,
            observer,
            ..rivulet_runtime::RunOptions::default()
        };
        shutdown.start("query", |stop| async move {
            let summary = rivulet_runtime::run_job(job, opts, stop)
                .await
                .context("query")?;
            super::log_query_summary(&summary);
            Ok(())
        });
    }
    if let Some((d, listener)) = dashboard {
        dashboard::start(&mut shutdown, d, listener);
    }
    if let Some(b) = broker {
        shutdown.start("broker", |stop| async move {
            stop.cancelled().await;
            b.shutdown().await.context("clean broker shutdown")
        });
    }
    tracing::info!(brokers = %brokers, topic = %args.topic, "pipeline running; Ctrl-C to stop");
    shutdown.run().await
}
