//! The flags every command that connects to a Kafka cluster takes: `--brokers`, `-X
//! name=value` (repeatable) and `--client-config-file FILE`, under the names Kafka users know
//! (librdkafka's and the Java client's). They make one [`KafkaConnection`].

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use rivulet_client::KafkaConnection;

#[derive(Args, Clone, Debug, Default)]
pub struct ClientConfigArgs {
    /// A Kafka client property, e.g. `-X security.protocol=SASL_SSL -X
    /// sasl.mechanism=SCRAM-SHA-512`; values may use `${ENV_VAR}` so secrets stay out of the
    /// command line. Repeatable; wins over --client-config-file.
    #[arg(
        short = 'X',
        long = "client-config",
        value_name = "NAME=VALUE",
        global = true
    )]
    pub client_config: Vec<String>,
    /// A properties file of client properties (`name=value` lines), like the Kafka tools'
    /// --command-config.
    #[arg(
        long,
        value_name = "FILE",
        env = "RIVULET_CLIENT_CONFIG_FILE",
        global = true
    )]
    pub client_config_file: Option<PathBuf>,
}

impl ClientConfigArgs {
    /// The connection to `brokers` with these properties.
    pub fn connection(&self, brokers: &str) -> Result<KafkaConnection> {
        KafkaConnection::from_cli(
            brokers,
            self.client_config_file.as_deref(),
            &self.client_config,
        )
        .map_err(anyhow::Error::msg)
    }

    pub fn is_empty(&self) -> bool {
        self.client_config.is_empty() && self.client_config_file.is_none()
    }
}
