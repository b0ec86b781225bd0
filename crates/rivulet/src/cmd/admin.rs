//! `rivulet topics`, `rivulet groups`, `rivulet transactions`: admin commands on any
//! Kafka-compatible broker. The commands themselves live in `rivulet-client`; each takes the
//! same `--brokers` and client property flags.

use clap::{Args, Subcommand};

#[derive(Args)]
pub struct AdminArgs<C: Subcommand> {
    /// Bootstrap servers.
    #[arg(
        long,
        env = "RIVULET_BROKERS",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub brokers: String,
    #[command(flatten)]
    pub client: super::connection::ClientConfigArgs,
    #[command(subcommand)]
    pub command: C,
}
