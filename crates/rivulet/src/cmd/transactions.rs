//! `rivulet transactions`: transactional ids and their transactions on any Kafka-compatible
//! broker (through `rivulet-client`).

use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct TransactionsArgs {
    /// Bootstrap servers.
    #[arg(
        long,
        env = "RIVULET_BROKERS",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    brokers: String,
    #[command(subcommand)]
    command: rivulet_client::transactions::TransactionsCommand,
}

pub async fn run(args: TransactionsArgs) -> Result<()> {
    Ok(args.command.run(&args.brokers).await?)
}
