//! `rivulet topics`: topics on any Kafka-compatible broker (through `rivulet-client`).

use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct TopicsArgs {
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
}

pub async fn run(args: TopicsArgs) -> Result<()> {
    Ok(args.command.run(&args.brokers).await?)
}
