//! `rivulet` — the one binary: the embedded Kafka-compatible broker, the generator, continuous
//! queries, the SQL shell, admin commands and benchmarks. This crate only parses flags and
//! wires the library crates together: one module per subcommand in `cmd/`, the stop sequence
//! they share in `shutdown.rs`, the SQL shell in `shell/`.

use std::io::IsTerminal;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod cmd;
mod shell;
mod shutdown;
mod signals;

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
    Broker(cmd::broker::BrokerArgs),
    /// Manage topics on any Kafka-compatible broker.
    Topics(cmd::admin::AdminArgs<rivulet_client::admin::TopicsCommand>),
    /// Inspect consumer groups: members, assignments, committed offsets and lag.
    Groups(cmd::admin::AdminArgs<rivulet_client::admin::GroupsCommand>),
    /// ACLs on any Kafka-compatible cluster: add, list, remove (as Kafka's kafka-acls).
    Acls(cmd::admin::AdminArgs<rivulet_client::acls::AclsCommand>),
    /// Inspect transactions: transactional ids, their state, producer and partitions.
    Transactions(cmd::admin::AdminArgs<rivulet_client::transactions::TransactionsCommand>),
    /// SASL/SCRAM users of a broker's data directory, or of a cluster online: add, list, remove.
    Users(cmd::users::UsersArgs),
    /// Benchmarks: produce, consume (against our or any broker) and the whole pipeline.
    Bench {
        #[command(subcommand)]
        command: rivulet_bench::BenchCommand,
    },
    /// Generate random events into a topic.
    Gen(cmd::gen::GenArgs),
    /// Run a continuous query.
    Run(Box<cmd::run::RunArgs>),
    /// Run the whole pipeline: embedded broker, generator and the default query.
    Up(cmd::up::UpArgs),
    /// Streaming SQL: without a subcommand, the interactive shell (a SELECT runs against a
    /// topic and shows rows as they arrive); `explain` shows what a `.sql` pipeline compiles to.
    Sql(cmd::sql::SqlArgs),
}

fn main() {
    let cli = Cli::parse();
    // The shell's own messages are its interface: a query's per-micro-batch progress lines
    // would bury them, so it logs warnings only unless RUST_LOG says otherwise.
    let default_level = match &cli.command {
        Command::Sql(args) if args.is_shell() => "warn",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal: a log file or pipe gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
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
        Command::Broker(args) => cmd::broker::run(args).await,
        Command::Topics(a) => Ok(a.command.run(&a.client.connection(&a.brokers)?).await?),
        Command::Groups(a) => Ok(a.command.run(&a.client.connection(&a.brokers)?).await?),
        Command::Acls(a) => Ok(a.command.run(&a.client.connection(&a.brokers)?).await?),
        Command::Transactions(a) => Ok(a.command.run(&a.client.connection(&a.brokers)?).await?),
        Command::Users(args) => cmd::users::run(args).await,
        Command::Bench { command } => cmd::bench::run(command).await,
        Command::Gen(args) => cmd::gen::run(args).await,
        Command::Run(args) => cmd::run::run(*args).await,
        Command::Up(args) => cmd::up::run(args).await,
        Command::Sql(args) => cmd::sql::run(args).await,
    }
}
