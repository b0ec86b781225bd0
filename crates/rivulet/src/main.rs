//! `rivulet` — the one binary: the embedded Kafka-compatible broker, admin commands and
//! benchmarks. This crate only parses flags and wires the library crates together.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use rivulet_broker::{BrokerConfig, FsyncPolicy, GroupConfig};
use tokio::net::TcpListener;

mod shell;

#[derive(Parser)]
#[command(
    name = "rivulet",
    version,
    about = "A real-time data pipeline in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Kafka-compatible broker.
    Broker(BrokerArgs),
    /// Manage topics on any Kafka-compatible broker.
    Topics {
        /// Bootstrap servers.
        #[arg(
            long,
            env = "RIVULET_BROKERS",
            default_value = "127.0.0.1:9092",
            global = true
        )]
        brokers: String,
        #[command(subcommand)]
        command: rivulet_client::admin::TopicsCommand,
    },
    /// Inspect consumer groups: members, assignments, committed offsets and lag.
    Groups {
        /// Bootstrap servers.
        #[arg(
            long,
            env = "RIVULET_BROKERS",
            default_value = "127.0.0.1:9092",
            global = true
        )]
        brokers: String,
        #[command(subcommand)]
        command: rivulet_client::admin::GroupsCommand,
    },
    /// Benchmarks: produce, consume (against our or any broker) and the whole pipeline.
    Bench {
        #[command(subcommand)]
        command: rivulet_client::bench::BenchCommand,
    },
    /// Generate random events into a topic.
    Gen(rivulet_gen::GenArgs),
    /// Run a continuous query.
    Run(Box<RunArgs>),
    /// Run the whole pipeline: embedded broker, generator and the default query.
    Up(UpArgs),
    /// Streaming SQL: without a subcommand, the interactive shell (a SELECT runs against a
    /// topic and shows rows as they arrive); `explain` shows what a `.sql` pipeline compiles to.
    #[command(args_conflicts_with_subcommands = true)]
    Sql {
        #[command(subcommand)]
        command: Option<SqlCommand>,
        #[command(flatten)]
        shell: shell::ShellArgs,
    },
}

#[derive(Subcommand)]
enum SqlCommand {
    /// The interactive shell (the same as `rivulet sql` alone).
    Shell(shell::ShellArgs),
    /// Print the streaming plan of a SQL file (source, watermark, operators, state, sinks);
    /// errors point at line:column.
    Explain {
        /// The `.sql` file (CREATE SOURCE, CREATE SINK, SET, INSERT INTO ... SELECT).
        file: PathBuf,
        /// Print the engine plan as JSON instead.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct UpArgs {
    /// Directory for the embedded broker's log and the query's checkpoints.
    #[arg(long, env = "RIVULET_DATA_DIR", default_value = "./rivulet-data")]
    data_dir: PathBuf,
    /// Where the embedded broker listens.
    #[arg(long, env = "RIVULET_LISTEN", default_value = "127.0.0.1:9092")]
    listen: String,
    /// Use this Kafka-compatible cluster instead of starting the embedded broker.
    #[arg(long, env = "RIVULET_BROKERS")]
    brokers: Option<String>,
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
    #[command(flatten)]
    dashboard: DashboardArgs,
    /// Do not serve the dashboard.
    #[arg(long)]
    no_dashboard: bool,
}

/// Where the live dashboard (web page, /api, /metrics) listens.
#[derive(Args)]
struct DashboardArgs {
    /// Address of the dashboard's web server; loopback unless you say otherwise (it has no
    /// authentication). Port 0 picks a free port; the address is printed at start.
    #[arg(
        long,
        env = "RIVULET_DASHBOARD_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    dashboard_listen: String,
}

/// The default query of `rivulet up` (also shipped as examples/pipeline.toml).
const DEFAULT_PIPELINE: &str = include_str!("../../../examples/pipeline.toml");

#[derive(Args)]
struct RunArgs {
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
    /// Checkpoint directory, overriding the pipeline's `checkpoint.dir`.
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// Append a JSON progress record per micro-batch to this file.
    #[arg(long)]
    progress_json: Option<PathBuf>,
    /// Serve the live dashboard for this query (see --dashboard-listen).
    #[arg(long)]
    dashboard: bool,
    #[command(flatten)]
    dashboard_args: DashboardArgs,
}

#[derive(Args)]
struct BrokerArgs {
    /// Address to listen on; a host name binds every address it resolves to
    /// (`localhost` covers 127.0.0.1 and ::1). Port 0 picks a free port.
    #[arg(long, env = "RIVULET_LISTEN", default_value = "127.0.0.1:9092")]
    listen: String,
    /// Directory holding the log segments, offsets and metadata.
    #[arg(long, env = "RIVULET_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// host:port clients are told to connect to [default: the listen address].
    #[arg(long, env = "RIVULET_ADVERTISED_ADDRESS")]
    advertised_address: Option<String>,
    /// Partitions of auto-created topics (Kafka's num.partitions).
    #[arg(long, env = "RIVULET_DEFAULT_PARTITIONS", default_value_t = 1)]
    default_partitions: i32,
    /// Create topics on first Metadata request for them.
    #[arg(long, env = "RIVULET_AUTO_CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    auto_create_topics: bool,
    /// `always`: acks=1/-1 are answered after fsync (group commit). `<N>ms`: fsync every N ms
    /// and answer before (faster; a power loss can lose up to N ms of acknowledged writes).
    #[arg(long, env = "RIVULET_FSYNC", default_value = "always", value_parser = parse_fsync)]
    fsync: FsyncPolicy,
    /// Largest request frame accepted (Kafka's socket.request.max.bytes).
    #[arg(long, env = "RIVULET_MAX_REQUEST_BYTES", default_value_t = 100 * 1024 * 1024)]
    max_request_bytes: usize,
    /// Most client connections served at once; more are refused.
    #[arg(long, env = "RIVULET_MAX_CONNECTIONS", default_value_t = 1000)]
    max_connections: usize,
    /// Most connections from one IP address (Kafka's max.connections.per.ip).
    #[arg(long, env = "RIVULET_MAX_CONNECTIONS_PER_IP", default_value_t = i32::MAX as usize)]
    max_connections_per_ip: usize,
    /// Close connections idle this long (Kafka's connections.max.idle.ms).
    #[arg(
        long,
        env = "RIVULET_CONNECTIONS_MAX_IDLE_MS",
        default_value_t = 600_000
    )]
    connections_max_idle_ms: u64,
    /// Close a connection whose started request is not complete after this long.
    #[arg(long, env = "RIVULET_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    request_timeout_ms: u64,
    /// Request bytes held across all connections before reads pause (Kafka's
    /// queued.max.request.bytes); at least --max-request-bytes.
    #[arg(long, env = "RIVULET_QUEUED_MAX_REQUEST_BYTES", default_value_t = 256 * 1024 * 1024)]
    queued_max_request_bytes: usize,
    /// Record bytes in one fetch response, whatever the client asks (Kafka's fetch.max.bytes).
    #[arg(long, env = "RIVULET_FETCH_MAX_BYTES", default_value_t = 55 * 1024 * 1024)]
    fetch_max_bytes: usize,
    /// Most partitions of one topic.
    #[arg(
        long,
        env = "RIVULET_MAX_PARTITIONS_PER_TOPIC",
        default_value_t = 10_000
    )]
    max_partitions_per_topic: i32,
    /// Most partitions one CreateTopics/CreatePartitions request may create.
    #[arg(
        long,
        env = "RIVULET_MAX_PARTITIONS_PER_REQUEST",
        default_value_t = 10_000
    )]
    max_partitions_per_request: usize,
    /// Most topics one admin or auto-creating Metadata request may name.
    #[arg(long, env = "RIVULET_MAX_TOPICS_PER_REQUEST", default_value_t = 1_000)]
    max_topics_per_request: usize,
    /// Most topics on the broker.
    #[arg(long, env = "RIVULET_MAX_TOPICS", default_value_t = 10_000)]
    max_topics: usize,
    /// Most partitions on the broker, all topics together.
    #[arg(long, env = "RIVULET_MAX_PARTITIONS", default_value_t = 100_000)]
    max_partitions: usize,
    /// Segment files kept open at once [default: a quarter of the soft open-file limit, at
    /// most 4096].
    #[arg(long, env = "RIVULET_MAX_OPEN_FILES")]
    max_open_files: Option<usize>,
    /// Default segment.bytes for topics.
    #[arg(long, env = "RIVULET_SEGMENT_BYTES", default_value_t = 1 << 30)]
    segment_bytes: u64,
    /// Default retention.ms for topics (-1: keep forever).
    #[arg(long, env = "RIVULET_RETENTION_MS", default_value_t = 7 * 24 * 3600 * 1000)]
    retention_ms: i64,
    /// Default retention.bytes per partition (-1: unlimited).
    #[arg(long, env = "RIVULET_RETENTION_BYTES", default_value_t = -1, allow_negative_numbers = true)]
    retention_bytes: i64,
    /// Default max.message.bytes (largest record batch).
    #[arg(long, env = "RIVULET_MAX_MESSAGE_BYTES", default_value_t = 1_048_588)]
    max_message_bytes: i32,
    /// Wait for more members before the first rebalance of a group (ms).
    #[arg(
        long,
        env = "RIVULET_GROUP_INITIAL_REBALANCE_DELAY_MS",
        default_value_t = 300
    )]
    group_initial_rebalance_delay_ms: u64,
}

fn parse_fsync(s: &str) -> Result<FsyncPolicy, String> {
    if s == "always" {
        return Ok(FsyncPolicy::Always);
    }
    let ms = s
        .strip_suffix("ms")
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("expected `always` or an interval like `100ms`, got `{s}`"))?;
    Ok(FsyncPolicy::Interval(Duration::from_millis(ms)))
}

fn main() {
    let cli = Cli::parse();
    // The shell's own messages are its interface: a query's per-micro-batch progress lines
    // would bury them, so it logs warnings only unless RUST_LOG says otherwise.
    let default_level = match &cli.command {
        Command::Sql {
            command: None | Some(SqlCommand::Shell(_)),
            ..
        } => "warn",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(cli)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Broker(args) => broker(args).await,
        Command::Topics { brokers, command } => Ok(command.run(&brokers).await?),
        Command::Groups { brokers, command } => Ok(command.run(&brokers).await?),
        Command::Bench { command } => Ok(command.run().await?),
        Command::Gen(args) => generate(args).await,
        Command::Run(args) => run_pipeline(*args).await,
        Command::Up(args) => up(args).await,
        Command::Sql { command, shell } => sql(command, shell).await,
    }
}

/// A `.sql` pipeline compiled to the engine's job (one branch per INSERT); errors read
/// `file:line:column: ...`.
fn sql_job(path: &std::path::Path) -> Result<rivulet_engine::Job> {
    Ok(rivulet_sql::compile_file(path)?.job())
}

/// The one plan of a job whose flags (query flags, `--sink`) only make sense for one query.
fn single_plan(job: rivulet_engine::Job, what: &str) -> Result<rivulet_engine::Plan> {
    let n = job.branches.len();
    match <[rivulet_engine::Plan; 1]>::try_from(job.branches) {
        Ok([plan]) => Ok(plan),
        Err(_) => anyhow::bail!(
            "{what} applies to a single query; this SQL file has {n} INSERTs (edit the file instead)"
        ),
    }
}

async fn sql(command: Option<SqlCommand>, shell_args: shell::ShellArgs) -> Result<()> {
    match command {
        None => shell::run(shell_args).await,
        Some(SqlCommand::Shell(args)) => shell::run(args).await,
        Some(SqlCommand::Explain { file, json }) => {
            let script = rivulet_sql::compile_file(&file)?;
            if json {
                // One INSERT: the plan, as always; several: the job with its branch plans.
                match script.single_plan() {
                    Some(plan) => println!("{}", serde_json::to_string_pretty(plan)?),
                    None => println!("{}", serde_json::to_string_pretty(&script.job())?),
                }
            } else {
                print!("{}", rivulet_sql::explain(&script));
            }
            Ok(())
        }
    }
}

/// The dashboard shows one query: the job's first branch, under the job's name (its
/// progress records, consumer group and checkpoint carry the job's name).
fn dashboard_plan(job: &rivulet_engine::Job) -> Option<rivulet_engine::Plan> {
    job.primary().map(|p| {
        let mut p = p.clone();
        p.name = job.name.clone();
        p
    })
}

/// `rivulet run`: the first Ctrl-C/SIGTERM finishes the current micro-batch and checkpoints;
/// a second one exits at once.
async fn run_pipeline(args: RunArgs) -> Result<()> {
    let mut job = match (&args.pipeline, &args.sql) {
        (Some(p), _) => rivulet_engine::Job::single(
            args.query
                .build(Some(rivulet_runtime::connectors::load_toml_file(p)?))?,
        ),
        (None, Some(s)) => {
            let job = sql_job(s)?;
            if job.branches.len() > 1 && args.query.is_empty() {
                job
            } else {
                // Query flags override one query's plan; several branches refuse them.
                rivulet_engine::Job::single(
                    args.query.build(Some(single_plan(job, "a query flag")?))?,
                )
            }
        }
        (None, None) => rivulet_engine::Job::single(args.query.build(None)?),
    };
    if let Some(b) = args.brokers {
        for p in &mut job.branches {
            rivulet_runtime::connectors::kafka::set_brokers(&mut p.source, &b);
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
        true => Some(bind_dashboard(&args.dashboard_args.dashboard_listen).await?),
        false => None,
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!(
            "stopping after the current micro-batch (press Ctrl-C again to exit at once)"
        );
        on_signal.cancel();
        wait_for_signal().await;
        eprintln!("second signal: exiting at once");
        std::process::exit(130);
    });
    let dashboard_cancel = tokio_util::sync::CancellationToken::new();
    let mut observer = None;
    let mut dashboard = None;
    if let Some(listener) = dashboard_listener {
        let mut config = rivulet_dashboard::DashboardConfig::new(
            job.primary()
                .and_then(|p| rivulet_runtime::connectors::kafka::SourceOptions::of(&p.source).ok())
                .map_or_else(String::new, |s| s.connection.bootstrap_servers),
        );
        config.plan = dashboard_plan(&job);
        let d = rivulet_dashboard::Dashboard::new(config);
        observer = Some(d.observer());
        dashboard = Some(tokio::spawn(d.serve(listener, dashboard_cancel.clone())));
    }
    let opts = rivulet_runtime::RunOptions {
        progress_json: args.progress_json,
        checkpoint_dir: args.checkpoint_dir,
        observer,
        ..rivulet_runtime::RunOptions::default()
    };
    let result = rivulet_runtime::run_job(job, opts, cancel).await;
    dashboard_cancel.cancel();
    stop_dashboard(dashboard).await;
    let summary = result?;
    tracing::info!(
        "query stopped after {} micro-batches ({} input rows, {} output rows)",
        summary.epochs,
        summary.input_rows,
        summary.output_rows
    );
    Ok(())
}

/// `rivulet up`: broker, generator and query in one process. Shutdown goes source first: the
/// generator stops, the query finishes its micro-batch and checkpoints, then the broker flushes
/// and marks a clean shutdown. A second Ctrl-C exits at once.
async fn up(args: UpArgs) -> Result<()> {
    let data_dir = args.data_dir.clone();
    let mut job = match (&args.pipeline, &args.sql) {
        (Some(p), _) => {
            rivulet_engine::Job::single(rivulet_runtime::connectors::load_toml_file(p)?)
        }
        (None, Some(s)) => sql_job(s)?,
        (None, None) => {
            rivulet_engine::Job::single(rivulet_runtime::connectors::load_toml(DEFAULT_PIPELINE)?)
        }
    };
    if !args.sinks.is_empty() {
        let mut plan = single_plan(job, "--sink")?;
        plan.sinks = args
            .sinks
            .iter()
            .map(|s| rivulet_runtime::connectors::sink_from_shorthand(s))
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("--sink: {e}"))?;
        rivulet_runtime::connectors::check_plan(&plan)?;
        job = rivulet_engine::Job::single(plan);
    }
    // Bound first, so a taken port fails the start before anything else runs.
    let dashboard_listener = match args.no_dashboard {
        false => Some(bind_dashboard(&args.dashboard.dashboard_listen).await?),
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
    rivulet_client::admin::ensure_topic(&brokers, &args.topic, args.partitions)
        .await
        .with_context(|| format!("creating topic {} on {brokers}", args.topic))?;

    let gen_cancel = tokio_util::sync::CancellationToken::new();
    let query_cancel = tokio_util::sync::CancellationToken::new();
    let dashboard_cancel = tokio_util::sync::CancellationToken::new();
    let gen_stats = Arc::new(rivulet_gen::GenStats::default());
    for plan in &mut job.branches {
        rivulet_runtime::connectors::kafka::set_brokers(&mut plan.source, &brokers);
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
        config.plan = (!args.no_query).then(|| dashboard_plan(&job)).flatten();
        config.broker = broker.as_ref().map(|b| b.broker().clone());
        config.generator = (!args.no_generator).then(|| gen_stats.clone());
        let d = rivulet_dashboard::Dashboard::new(config);
        observer = Some(d.observer());
        dashboard = Some(tokio::spawn(d.serve(listener, dashboard_cancel.clone())));
    }
    let mut generator = None;
    if !args.no_generator {
        let rate = args.rate.to_string();
        let keys = args.keys.to_string();
        let gen_args = rivulet_gen::GenArgs::try_parse_from([
            "gen",
            "--brokers",
            &brokers,
            "--topic",
            &args.topic,
            "--rate",
            &rate,
            "--keys",
            &keys,
            "--quiet",
        ])
        .context("generator flags")?;
        generator = Some(tokio::spawn(rivulet_gen::run_with_stats(
            gen_args,
            gen_cancel.clone(),
            gen_stats.clone(),
        )));
    }
    let mut query = None;
    if !args.no_query {
        let opts = rivulet_runtime::RunOptions {
            progress_json: args.progress_json.clone(),
            checkpoint_dir: Some(data_dir.join("checkpoints").join(&job.name)),
            observer,
            ..rivulet_runtime::RunOptions::default()
        };
        query = Some(tokio::spawn(rivulet_runtime::run_job(
            job,
            opts,
            query_cancel.clone(),
        )));
    }
    tracing::info!(brokers = %brokers, topic = %args.topic, "pipeline running; Ctrl-C to stop");

    // Run until a signal, or until a part stops on its own (an error, or a bounded generator).
    let mut gen_result = None;
    let mut query_result = None;
    tokio::select! {
        _ = wait_for_signal() => {}
        r = async { generator.as_mut().expect("guarded").await }, if generator.is_some() => {
            generator = None;
            gen_result = Some(r);
            if let Some(Ok(Err(e))) = &gen_result {
                tracing::error!("generator stopped: {e:#}");
            }
        }
        r = async { query.as_mut().expect("guarded").await }, if query.is_some() => {
            query = None;
            query_result = Some(r);
        }
    }
    tracing::info!("stopping: generator, then query, then broker (Ctrl-C again to exit at once)");
    tokio::spawn(async {
        wait_for_signal().await;
        eprintln!("second signal: exiting at once");
        std::process::exit(130);
    });
    gen_cancel.cancel();
    if let Some(g) = generator {
        gen_result = Some(g.await);
    }
    if let Some(r) = gen_result {
        match r {
            Ok(Ok(summary)) => tracing::info!("generator: {summary}"),
            Ok(Err(e)) => tracing::error!("generator: {e:#}"),
            Err(e) => tracing::error!("generator task: {e}"),
        }
    }
    query_cancel.cancel();
    if let Some(q) = query {
        query_result = Some(q.await);
    }
    let mut failed = None;
    if let Some(r) = query_result {
        match r {
            Ok(Ok(s)) => tracing::info!(
                "query stopped after {} micro-batches ({} input rows, {} output rows)",
                s.epochs,
                s.input_rows,
                s.output_rows
            ),
            Ok(Err(e)) => failed = Some(anyhow::Error::new(e).context("query")),
            Err(e) => failed = Some(anyhow::anyhow!("query task: {e}")),
        }
    }
    // The dashboard goes before the broker, so its admin calls never wait on a closed one.
    dashboard_cancel.cancel();
    stop_dashboard(dashboard).await;
    if let Some(b) = broker {
        b.shutdown().await.context("clean broker shutdown")?;
    }
    failed.map_or(Ok(()), Err)
}

/// Binds the dashboard's listener and prints its address (tests parse this line; with port 0
/// it has the real port).
async fn bind_dashboard(listen: &str) -> Result<TcpListener> {
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

/// Waits (bounded) for a cancelled dashboard to finish; it only logs, since the pipeline's
/// own result is what the command reports.
async fn stop_dashboard(
    task: Option<tokio::task::JoinHandle<Result<(), rivulet_dashboard::DashboardError>>>,
) {
    let Some(task) = task else { return };
    match tokio::time::timeout(Duration::from_secs(10), task).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::error!("dashboard: {e}"),
        Ok(Err(e)) => tracing::error!("dashboard task: {e}"),
        Err(_) => tracing::warn!("dashboard did not stop within 10 s"),
    }
}

/// `rivulet gen`: the first Ctrl-C/SIGTERM stops producing (the summary still accounts for
/// every event sent); a second one exits at once.
async fn generate(args: rivulet_gen::GenArgs) -> Result<()> {
    let cancel = tokio_util::sync::CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        on_signal.cancel();
        wait_for_signal().await;
        eprintln!("second signal: exiting without waiting for delivery reports");
        std::process::exit(130);
    });
    let summary = rivulet_gen::run(args, cancel).await?;
    println!("{summary}");
    if summary.errors > 0 {
        bail!(
            "{} of {} events were not delivered",
            summary.errors,
            summary.sent
        );
    }
    Ok(())
}

async fn broker(args: BrokerArgs) -> Result<()> {
    let listeners = bind(&args.listen).await?;
    let first = listeners[0].local_addr()?;
    let (host, port) = match &args.advertised_address {
        Some(a) => split_host_port(a).with_context(|| format!("--advertised-address {a}"))?,
        None => {
            let (h, _) = split_host_port(&args.listen)
                .with_context(|| format!("--listen {}", args.listen))?;
            (h, first.port())
        }
    };
    let mut config = BrokerConfig::new(&args.data_dir, host, port);
    config.default_partitions = args.default_partitions;
    config.auto_create_topics = args.auto_create_topics;
    config.fsync = args.fsync;
    config.max_frame_bytes = args.max_request_bytes;
    config.max_connections = args.max_connections;
    config.max_connections_per_ip = args.max_connections_per_ip;
    config.connections_max_idle = Duration::from_millis(args.connections_max_idle_ms);
    config.request_timeout = Duration::from_millis(args.request_timeout_ms);
    config.queued_max_request_bytes = args.queued_max_request_bytes;
    config.fetch_max_bytes = args.fetch_max_bytes;
    config.topic_limits = rivulet_log::TopicLimits {
        max_partitions_per_topic: args.max_partitions_per_topic,
        max_topics: args.max_topics,
        max_partitions: args.max_partitions,
    };
    config.max_partitions_per_request = args.max_partitions_per_request;
    config.max_topics_per_request = args.max_topics_per_request;
    config.max_open_files = args.max_open_files;
    config.log_defaults.segment_bytes = args.segment_bytes;
    config.log_defaults.retention_ms = args.retention_ms;
    config.log_defaults.retention_bytes = args.retention_bytes;
    config.log_defaults.max_message_bytes = args.max_message_bytes;
    config.group = GroupConfig {
        initial_rebalance_delay: Duration::from_millis(args.group_initial_rebalance_delay_ms),
        ..GroupConfig::default()
    };
    if config.default_partitions < 1 {
        bail!("--default-partitions must be at least 1");
    }
    let handle = rivulet_broker::start(config, listeners)
        .await
        .with_context(|| {
            format!(
                "starting the broker on data dir {}",
                args.data_dir.display()
            )
        })?;
    for addr in handle.local_addrs() {
        // Machine-readable readiness line on stdout (logs go to stderr); tests and the bench
        // wait for it.
        println!("rivulet broker listening on {addr}");
    }
    wait_for_signal().await;
    tracing::info!("shutting down (press Ctrl-C again to exit at once)");
    tokio::select! {
        r = handle.shutdown() => r.context("clean shutdown")?,
        _ = wait_for_signal() => {
            tracing::warn!("second signal: exiting without a clean shutdown");
            std::process::exit(130);
        }
    }
    Ok(())
}

/// Binds every address `listen` resolves to. With port 0 and several addresses, the port the
/// first one got is reused for the others so clients see one port.
async fn bind(listen: &str) -> Result<Vec<TcpListener>> {
    let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host(listen)
        .await
        .with_context(|| format!("resolving --listen {listen}"))?
        .collect();
    addrs.dedup();
    let Some(&first) = addrs.first() else {
        bail!("--listen {listen} resolves to no address");
    };
    let l = TcpListener::bind(first)
        .await
        .with_context(|| format!("binding {first}"))?;
    let port = l.local_addr()?.port();
    let mut out = vec![l];
    for mut a in addrs.into_iter().skip(1) {
        a.set_port(port);
        match TcpListener::bind(a).await {
            Ok(l) => out.push(l),
            // e.g. ::1 on a host without IPv6: serve what we can.
            Err(e) => tracing::warn!("not listening on {a}: {e}"),
        }
    }
    Ok(out)
}

fn split_host_port(s: &str) -> Result<(String, u16)> {
    let (host, port) = s
        .rsplit_once(':')
        .with_context(|| format!("expected host:port, got `{s}`"))?;
    let port: u16 = port.parse().with_context(|| format!("bad port in `{s}`"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((host.to_string(), port))
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
