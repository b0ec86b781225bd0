//! `rivulet transactions list|describe` (KIP-664, like `kafka-transactions.sh`): the
//! transactional ids a cluster's coordinators know and their transactions, on any
//! Kafka-compatible broker. librdkafka has no admin call for these, so they go through
//! [`crate::wire`]: ListTransactions to every broker (each coordinator lists its own ids),
//! DescribeTransactions to the coordinator that FindCoordinator names for each id.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, DescribeTransactionsRequest, DescribeTransactionsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, ListTransactionsRequest, ListTransactionsResponse, MetadataRequest,
    MetadataResponse, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use rivulet_auth::client::ClientSecurity;

use crate::wire::WireClient;
use crate::ClientError;
use crate::KafkaConnection;

const TIMEOUT: Duration = Duration::from_secs(10);

/// `rivulet transactions …`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum TransactionsCommand {
    /// List transactional ids with their producer id and state.
    List {
        /// Only these states (Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit,
        /// CompleteAbort); repeatable.
        #[arg(long = "state")]
        states: Vec<String>,
        /// Only this producer id; repeatable.
        #[arg(long = "producer-id")]
        producer_ids: Vec<i64>,
    },
    /// Show a transactional id's state, producer, timeout, start time and partitions.
    Describe {
        /// Transactional ids.
        #[arg(required = true)]
        transactional_ids: Vec<String>,
    },
}

/// One row of `list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTransaction {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: String,
    /// The broker (`host:port`) that coordinates it.
    pub coordinator: String,
}

/// What `describe` shows for one transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedTransaction {
    pub transactional_id: String,
    pub coordinator: String,
    pub state: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    /// -1 when no transaction has started.
    pub start_time_ms: i64,
    pub partitions: Vec<(String, Vec<i32>)>,
}

fn broker_error(context: String, code: i16) -> ClientError {
    let name = ResponseError::try_from_code(code)
        .map_or_else(|| format!("error code {code}"), |e| format!("{e:?}"));
    ClientError::BrokerCode {
        context,
        code,
        name,
    }
}

/// TLS and SASL as the connection's client properties say.
fn security(brokers: &KafkaConnection) -> Result<ClientSecurity, ClientError> {
    ClientSecurity::from_properties(&brokers.properties)
        .map_err(|e| ClientError::InvalidArgument(e.to_string()))
}

/// A connection to the first reachable broker of `brokers`.
async fn bootstrap(
    brokers: &KafkaConnection,
    _security: &ClientSecurity,
) -> Result<WireClient, ClientError> {
    crate::wire::connect_any(brokers, TIMEOUT).await
}

/// Every broker of the cluster as `host:port`.
async fn cluster(client: &mut WireClient) -> Result<Vec<String>, ClientError> {
    let mut req = MetadataRequest::default();
    req.topics = Some(Vec::new());
    let md: MetadataResponse = client.call(ApiKey::Metadata, 1, &req).await?;
    let mut brokers: Vec<String> = md
        .brokers
        .iter()
        .map(|b| format!("{}:{}", b.host.as_str(), b.port))
        .collect();
    brokers.sort();
    brokers.dedup();
    Ok(brokers)
}

/// ListTransactions on every broker of the cluster, by transactional id.
pub async fn list_transactions(
    brokers: &KafkaConnection,
    states: &[String],
    producer_ids: &[i64],
) -> Result<Vec<ListedTransaction>, ClientError> {
    let security = security(brokers)?;
    let mut boot = bootstrap(brokers, &security).await?;
    let mut out = Vec::new();
    for addr in cluster(&mut boot).await? {
        let mut c = WireClient::connect_with(&addr, TIMEOUT, &security).await?;
        let mut req = ListTransactionsRequest::default();
        req.state_filters = states
            .iter()
            .map(|s| StrBytes::from_string(s.clone()))
            .collect();
        req.producer_id_filters = producer_ids.iter().map(|p| ProducerId(*p)).collect();
        let resp: ListTransactionsResponse = c.call(ApiKey::ListTransactions, 0, &req).await?;
        if resp.error_code != 0 {
            return Err(broker_error(
                format!("listing transactions on {addr}"),
                resp.error_code,
            ));
        }
        if let Some(unknown) = resp.unknown_state_filters.first() {
            return Err(ClientError::InvalidArgument(format!(
                "unknown transaction state {:?}",
                unknown.as_str()
            )));
        }
        out.extend(
            resp.transaction_states
                .into_iter()
                .map(|t| ListedTransaction {
                    transactional_id: t.transactional_id.to_string(),
                    producer_id: t.producer_id.0,
                    state: t.transaction_state.to_string(),
                    coordinator: addr.clone(),
                }),
        );
    }
    out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
    Ok(out)
}

/// DescribeTransactions of `transactional_id` at its coordinator.
pub async fn describe_transaction(
    brokers: &KafkaConnection,
    transactional_id: &str,
) -> Result<DescribedTransaction, ClientError> {
    let security = security(brokers)?;
    let mut boot = bootstrap(brokers, &security).await?;
    let mut find = FindCoordinatorRequest::default();
    find.key = StrBytes::from_string(transactional_id.to_string());
    find.key_type = 1;
    let found: FindCoordinatorResponse = boot.call(ApiKey::FindCoordinator, 1, &find).await?;
    if found.error_code != 0 {
        return Err(broker_error(
            format!("finding the coordinator of transactional id {transactional_id:?}"),
            found.error_code,
        ));
    }
    let coordinator = format!("{}:{}", found.host.as_str(), found.port);
    let mut c = WireClient::connect_with(&coordinator, TIMEOUT, &security).await?;
    let mut req = DescribeTransactionsRequest::default();
    req.transactional_ids = vec![TransactionalId(StrBytes::from_string(
        transactional_id.to_string(),
    ))];
    let resp: DescribeTransactionsResponse = c.call(ApiKey::DescribeTransactions, 0, &req).await?;
    let Some(t) = resp.transaction_states.into_iter().next() else {
        return Err(ClientError::Protocol(
            "DescribeTransactions answered without the transactional id".into(),
        ));
    };
    if t.error_code == ResponseError::TransactionalIdNotFound.code() {
        return Err(ClientError::NotFound(format!(
            "transactional id {transactional_id:?} not found"
        )));
    }
    if t.error_code != 0 {
        return Err(broker_error(
            format!("describing transactional id {transactional_id:?}"),
            t.error_code,
        ));
    }
    Ok(DescribedTransaction {
        transactional_id: transactional_id.to_string(),
        coordinator,
        state: t.transaction_state.to_string(),
        producer_id: t.producer_id.0,
        producer_epoch: t.producer_epoch,
        timeout_ms: t.transaction_timeout_ms,
        start_time_ms: t.transaction_start_time_ms,
        partitions: t
            .topics
            .into_iter()
            .map(|d| (d.topic.0.to_string(), d.partitions))
            .collect(),
    })
}

impl TransactionsCommand {
    /// Runs the command against `brokers`, printing to stdout.
    pub async fn run(self, connection: &crate::KafkaConnection) -> Result<(), ClientError> {
        let brokers = connection;
        match self {
            TransactionsCommand::List {
                states,
                producer_ids,
            } => {
                let rows = list_transactions(brokers, &states, &producer_ids).await?;
                let width = rows
                    .iter()
                    .map(|r| r.transactional_id.len())
                    .max()
                    .unwrap_or(0)
                    .max("TRANSACTIONAL-ID".len());
                println!(
                    "{:<width$}  {:>12}  {:<15}  COORDINATOR",
                    "TRANSACTIONAL-ID", "PRODUCER-ID", "STATE"
                );
                for r in rows {
                    println!(
                        "{:<width$}  {:>12}  {:<15}  {}",
                        r.transactional_id, r.producer_id, r.state, r.coordinator
                    );
                }
                Ok(())
            }
            TransactionsCommand::Describe { transactional_ids } => {
                for (i, id) in transactional_ids.iter().enumerate() {
                    let t = describe_transaction(brokers, id).await?;
                    if i > 0 {
                        println!();
                    }
                    println!("transactional id: {}", t.transactional_id);
                    println!("coordinator:      {}", t.coordinator);
                    println!("state:            {}", t.state);
                    println!(
                        "producer:         id {} epoch {}",
                        t.producer_id, t.producer_epoch
                    );
                    println!("timeout:          {} ms", t.timeout_ms);
                    if t.start_time_ms >= 0 {
                        println!("started:          {} ms since the epoch", t.start_time_ms);
                    }
                    let parts: Vec<String> = t
                        .partitions
                        .iter()
                        .flat_map(|(topic, ps)| ps.iter().map(move |p| format!("{topic}-{p}")))
                        .collect();
                    println!(
                        "partitions:       {}",
                        if parts.is_empty() {
                            "-".to_string()
                        } else {
                            parts.join(", ")
                        }
                    );
                }
                Ok(())
            }
        }
    }
}
