//! `rivulet topics …` and `rivulet groups …`: admin commands through librdkafka.
//!
//! Everything goes through the Kafka protocol (Metadata, ListOffsets, CreateTopics,
//! DescribeConfigs, ListGroups/DescribeGroups, OffsetFetch), so these commands work against
//! any Kafka-compatible broker and double as a check of what Rivulet's broker answers.

use std::collections::BTreeMap;
use std::sync::Arc;

use rdkafka::admin::{
    AdminClient, AdminOptions, ConfigSource, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::util::{base_config, blocking, REQUEST_TIMEOUT};
use crate::{ClientError, KafkaConnection};

/// Topics whose names start with this are the broker's own (e.g. `__consumer_offsets`).
const INTERNAL_PREFIX: &str = "__";

/// `rivulet topics …`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum TopicsCommand {
    /// List topics with their partition counts.
    List,
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions.
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        /// Topic config override, `key=value` (repeatable), e.g. `retention.ms=3600000`.
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        config: Vec<(String, String)>,
    },
    /// Show a topic's partitions (log start offset, high watermark) and its configs.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Delete a topic and its data.
    Delete {
        /// Topic name.
        name: String,
    },
}

/// `rivulet groups …`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum GroupsCommand {
    /// List consumer groups.
    List,
    /// Show a group's state, members, assignments, committed offsets and lag.
    Describe {
        /// Group id.
        group: String,
    },
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected key=value, got `{s}`")),
    }
}

fn admin_client(
    brokers: &KafkaConnection,
) -> Result<Arc<AdminClient<DefaultClientContext>>, ClientError> {
    base_config(brokers)
        .create::<AdminClient<DefaultClientContext>>()
        .map(Arc::new)
        .map_err(ClientError::kafka(format!(
            "creating an admin client for {brokers}"
        )))
}

fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(REQUEST_TIMEOUT))
        .operation_timeout(Some(REQUEST_TIMEOUT))
}

/// A consumer that never subscribes: used for metadata, watermarks and, with a `group.id`,
/// for reading a group's committed offsets without joining the group.
fn plain_consumer(
    brokers: &KafkaConnection,
    group: Option<&str>,
) -> Result<BaseConsumer, ClientError> {
    let mut c = base_config(brokers);
    c.set("enable.auto.commit", "false");
    c.set("enable.auto.offset.store", "false");
    if let Some(g) = group {
        c.set("group.id", g);
    }
    c.create::<BaseConsumer>()
        .map_err(ClientError::kafka(format!(
            "creating a consumer for {brokers}"
        )))
}

/// One partition as `describe` shows it.
struct PartitionInfo {
    id: i32,
    leader: i32,
    low: i64,
    high: i64,
}

/// Metadata and watermarks of every partition of `topic`, in partition order.
fn topic_partitions(
    consumer: &BaseConsumer,
    topic: &str,
) -> Result<Vec<PartitionInfo>, ClientError> {
    let md = consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .map_err(ClientError::kafka(format!(
            "fetching metadata of topic {topic}"
        )))?;
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Err(ClientError::NotFound(format!(
            "topic {topic} does not exist"
        )));
    };
    if let Some(err) = t.error() {
        let code = rdkafka::types::RDKafkaErrorCode::from(err);
        if code == rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition {
            return Err(ClientError::NotFound(format!(
                "topic {topic} does not exist"
            )));
        }
        return Err(ClientError::Broker {
            context: format!("metadata of topic {topic}"),
            code,
        });
    }
    let mut out = Vec::with_capacity(t.partitions().len());
    for p in t.partitions() {
        let (low, high) = consumer
            .fetch_watermarks(topic, p.id(), REQUEST_TIMEOUT)
            .map_err(ClientError::kafka(format!(
                "fetching offsets of {topic}/{}",
                p.id()
            )))?;
        out.push(PartitionInfo {
            id: p.id(),
            leader: p.leader(),
            low,
            high,
        });
    }
    out.sort_by_key(|p| p.id);
    Ok(out)
}

impl TopicsCommand {
    /// Runs the command against `brokers` (librdkafka's `bootstrap.servers`), printing to
    /// stdout.
    pub async fn run(self, brokers: &KafkaConnection) -> Result<(), ClientError> {
        match self {
            TopicsCommand::List => list_topics(brokers).await,
            TopicsCommand::Create {
                name,
                partitions,
                config,
            } => create_topic(brokers, &name, partitions, &config).await,
            TopicsCommand::Describe { name } => describe_topic(brokers, &name).await,
            TopicsCommand::Delete { name } => delete_topic(brokers, &name).await,
        }
    }
}

async fn list_topics(brokers: &KafkaConnection) -> Result<(), ClientError> {
    let consumer = plain_consumer(brokers, None)?;
    let ctx = format!("fetching metadata from {brokers}");
    let topics = blocking(move || {
        let md = consumer
            .fetch_metadata(None, REQUEST_TIMEOUT)
            .map_err(ClientError::kafka(ctx))?;
        let mut v: Vec<(String, usize)> = md
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| (t.name().to_string(), t.partitions().len()))
            .collect();
        v.sort();
        Ok(v)
    })
    .await?;
    let width = topics
        .iter()
        .map(|(n, _)| n.len())
        .max()
        .unwrap_or(0)
        .max("TOPIC".len());
    println!("{:<width$}  PARTITIONS", "TOPIC");
    for (name, partitions) in topics {
        println!("{name:<width$}  {partitions}");
    }
    Ok(())
}

/// Creates `name` with `partitions` partitions and the given config overrides. Also used by
/// the benchmarks.
pub async fn create_topic_inner(
    brokers: &KafkaConnection,
    name: &str,
    partitions: i32,
    config: &[(String, String)],
) -> Result<(), ClientError> {
    if partitions < 1 {
        return Err(ClientError::InvalidArgument(format!(
            "--partitions must be at least 1, got {partitions}"
        )));
    }
    let admin = admin_client(brokers)?;
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in config {
        topic = topic.set(k, v);
    }
    let ctx = format!("creating topic {name}");
    let results = admin
        .create_topics([&topic], &admin_options())
        .await
        .map_err(ClientError::kafka(ctx.clone()))?;
    first_refusal(results, ctx)
}

/// The first per-resource refusal of an admin call, as an error.
fn first_refusal<T>(
    results: Vec<Result<T, (String, rdkafka::types::RDKafkaErrorCode)>>,
    context: String,
) -> Result<(), ClientError> {
    match results.into_iter().find_map(|r| r.err()) {
        Some((_, code)) => Err(ClientError::Broker { context, code }),
        None => Ok(()),
    }
}

/// Replaces the config overrides of topic `name` with `config` (AlterConfigs: overrides not
/// named go back to their defaults). Used by the compaction benchmark.
pub async fn set_topic_configs(
    brokers: &KafkaConnection,
    name: &str,
    config: &[(String, String)],
) -> Result<(), ClientError> {
    let admin = admin_client(brokers)?;
    let mut alter = rdkafka::admin::AlterConfig::new(ResourceSpecifier::Topic(name));
    for (k, v) in config {
        alter = alter.set(k, v);
    }
    let ctx = format!("setting the configs of topic {name}");
    let results = admin
        .alter_configs([&alter], &admin_options())
        .await
        .map_err(ClientError::kafka(ctx.clone()))?;
    let results = results
        .into_iter()
        .map(|r| r.map_err(|(spec, code)| (format!("{spec:?}"), code)))
        .collect();
    first_refusal(results, ctx)
}

/// Creates `name` with the given config overrides unless it exists already; true when it was
/// created. Used by `rivulet up` and the query's checkpoint topic.
pub async fn ensure_topic(
    brokers: &KafkaConnection,
    name: &str,
    partitions: i32,
    config: &[(String, String)],
) -> Result<bool, ClientError> {
    match create_topic_inner(brokers, name, partitions, config).await {
        Ok(()) => Ok(true),
        Err(ClientError::Broker {
            code: rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists,
            ..
        }) => Ok(false),
        Err(e) => Err(e),
    }
}

async fn create_topic(
    brokers: &KafkaConnection,
    name: &str,
    partitions: i32,
    config: &[(String, String)],
) -> Result<(), ClientError> {
    create_topic_inner(brokers, name, partitions, config).await?;
    println!("created topic {name} with {partitions} partition(s)");
    Ok(())
}

async fn delete_topic(brokers: &KafkaConnection, name: &str) -> Result<(), ClientError> {
    let admin = admin_client(brokers)?;
    let ctx = format!("deleting topic {name}");
    let results = admin
        .delete_topics(&[name], &admin_options())
        .await
        .map_err(ClientError::kafka(ctx.clone()))?;
    first_refusal(results, ctx)?;
    println!("deleted topic {name}");
    Ok(())
}

async fn describe_topic(brokers: &KafkaConnection, name: &str) -> Result<(), ClientError> {
    let consumer = plain_consumer(brokers, None)?;
    let topic = name.to_string();
    let partitions = blocking(move || topic_partitions(&consumer, &topic)).await?;

    let admin = admin_client(brokers)?;
    let ctx = format!("describing configs of topic {name}");
    let results = admin
        .describe_configs([&ResourceSpecifier::Topic(name)], &admin_options())
        .await
        .map_err(ClientError::kafka(ctx.clone()))?;
    let mut configs = Vec::new();
    for r in results {
        let resource = r.map_err(|code| ClientError::Broker {
            context: ctx.clone(),
            code,
        })?;
        for e in resource.entries {
            // DynamicTopic is a per-topic override; brokers that do not report sources
            // (Unknown) still say whether the value is the default.
            let overridden = e.source == ConfigSource::DynamicTopic
                || (e.source == ConfigSource::Unknown && !e.is_default);
            let value = if e.is_sensitive {
                "(sensitive)".to_string()
            } else {
                e.value.unwrap_or_else(|| "(null)".to_string())
            };
            configs.push((e.name, value, overridden));
        }
    }
    configs.sort();

    let total: i64 = partitions.iter().map(|p| p.high - p.low).sum();
    println!("topic: {name}");
    println!("partitions: {}", partitions.len());
    println!("records: {total}");
    println!();
    println!(
        "{:>9}  {:>6}  {:>16}  {:>16}  {:>12}",
        "PARTITION", "LEADER", "LOG-START", "HIGH-WATERMARK", "RECORDS"
    );
    for p in &partitions {
        println!(
            "{:>9}  {:>6}  {:>16}  {:>16}  {:>12}",
            p.id,
            p.leader,
            p.low,
            p.high,
            p.high - p.low
        );
    }
    println!();
    let compacted = configs
        .iter()
        .any(|(n, v, _)| n == "cleanup.policy" && v.split(',').any(|p| p.trim() == "compact"));
    println!("configs (* = topic override):");
    let width = configs.iter().map(|(n, _, _)| n.len()).max().unwrap_or(0);
    for (n, v, overridden) in configs {
        let mark = if overridden { '*' } else { ' ' };
        println!("{mark} {n:<width$} = {v}");
    }
    if compacted {
        let rows = cleaner_status(brokers, name).await?;
        if !rows.is_empty() {
            println!();
            println!("log cleaner:");
            println!(
                "{:>9}  {:>16}  {:>11}  LAST-PASS",
                "PARTITION", "CLEANED-UP-TO", "DIRTY-RATIO"
            );
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            for (p, up_to, ratio, last) in rows {
                let last = if last < 0 {
                    "never".to_string()
                } else {
                    format!("{}s ago", (now - last).max(0) / 1000)
                };
                println!("{p:>9}  {up_to:>16}  {ratio:>11.3}  {last}");
            }
        }
    }
    Ok(())
}

/// The log cleaner's progress per partition: (partition, cleaned up to, dirty ratio, last
/// pass in ms or -1). Rivulet's broker reports it as read-only configs it adds when they are
/// asked for by name (`rivulet-broker/src/handlers/describe_configs.rs`); other brokers
/// answer nothing for these names, and the result is empty.
pub async fn cleaner_status(
    brokers: &KafkaConnection,
    topic: &str,
) -> Result<Vec<(i32, i64, f64, i64)>, ClientError> {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::{ApiKey, DescribeConfigsRequest, DescribeConfigsResponse};
    use kafka_protocol::protocol::StrBytes;
    const KEYS: [&str; 3] = [
        "rivulet.cleaner.cleaned.up.to",
        "rivulet.cleaner.dirty.ratio",
        "rivulet.cleaner.last.clean.ms",
    ];
    let security = rivulet_auth::client::ClientSecurity::from_properties(&brokers.properties)
        .map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
    let servers = brokers.bootstrap_servers.as_str();
    let addr = servers.split(',').next().unwrap_or(servers).trim();
    let mut c = crate::wire::WireClient::connect_with(addr, REQUEST_TIMEOUT, &security).await?;
    let mut resource = DescribeConfigsResource::default();
    resource.resource_type = 2;
    resource.resource_name = StrBytes::from_string(topic.to_string());
    resource.configuration_keys = Some(KEYS.iter().map(|k| StrBytes::from_static_str(k)).collect());
    let mut req = DescribeConfigsRequest::default();
    req.resources = vec![resource];
    let resp: DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, 1, &req).await?;
    // partition -> (cleaned up to, ratio, last)
    let mut rows: BTreeMap<i32, (i64, f64, i64)> = BTreeMap::new();
    for r in resp.results {
        for e in r.configs {
            let Some(value) = e.value else { continue };
            for item in value.split(',') {
                let Some((p, v)) = item.split_once(':') else {
                    continue;
                };
                let Ok(p) = p.parse::<i32>() else { continue };
                let row = rows.entry(p).or_insert((-1, 0.0, -1));
                match e.name.as_str() {
                    "rivulet.cleaner.cleaned.up.to" => row.0 = v.parse().unwrap_or(-1),
                    "rivulet.cleaner.dirty.ratio" => row.1 = v.parse().unwrap_or(0.0),
                    "rivulet.cleaner.last.clean.ms" => row.2 = v.parse().unwrap_or(-1),
                    _ => {}
                }
            }
        }
    }
    Ok(rows
        .into_iter()
        .map(|(p, (up_to, ratio, last))| (p, up_to, ratio, last))
        .collect())
}

impl GroupsCommand {
    /// Runs the command against `brokers` (librdkafka's `bootstrap.servers`), printing to
    /// stdout.
    pub async fn run(self, brokers: &KafkaConnection) -> Result<(), ClientError> {
        match self {
            GroupsCommand::List => list_groups(brokers).await,
            GroupsCommand::Describe { group } => describe_group(brokers, &group).await,
        }
    }
}

async fn list_groups(brokers: &KafkaConnection) -> Result<(), ClientError> {
    let consumer = plain_consumer(brokers, None)?;
    let ctx = format!("listing groups on {brokers}");
    let groups = blocking(move || {
        let list = consumer
            .fetch_group_list(None, REQUEST_TIMEOUT)
            .map_err(ClientError::kafka(ctx))?;
        let mut v: Vec<(String, String, String, usize)> = list
            .groups()
            .iter()
            .map(|g| {
                (
                    g.name().to_string(),
                    g.state().to_string(),
                    g.protocol_type().to_string(),
                    g.members().len(),
                )
            })
            .collect();
        v.sort();
        Ok(v)
    })
    .await?;
    let width = groups
        .iter()
        .map(|g| g.0.len())
        .max()
        .unwrap_or(0)
        .max("GROUP".len());
    println!(
        "{:<width$}  {:<20}  {:<14}  MEMBERS",
        "GROUP", "STATE", "PROTOCOL-TYPE"
    );
    for (name, state, ptype, members) in groups {
        // librdkafka follows ListGroups with DescribeGroups; a broker that answers only the
        // former leaves the state empty.
        let state = if state.is_empty() { "-" } else { &state };
        println!("{name:<width$}  {state:<20}  {ptype:<14}  {members}");
    }
    Ok(())
}

/// A consumer group: state, members with their assignments, committed offsets and lag.
/// What `rivulet groups describe` prints and the dashboard's `/api/groups` returns.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GroupOverview {
    pub group: String,
    /// `Stable`, `Empty`, ... as the broker reports it (empty when it does not say).
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<GroupMember>,
    /// Partitions the group committed offsets for or has assigned, in (topic, partition) order.
    pub offsets: Vec<GroupOffset>,
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GroupMember {
    pub member_id: String,
    pub client_id: String,
    pub host: String,
    pub assignment: Vec<TopicAssignment>,
    /// Why the assignment could not be decoded (it is then empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignment_error: Option<String>,
}

/// The partitions of one topic assigned to a member.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TopicAssignment {
    pub topic: String,
    pub partitions: Vec<i32>,
}

/// One partition's committed offset and lag in a group.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GroupOffset {
    pub topic: String,
    pub partition: i32,
    /// None: nothing committed yet.
    pub committed: Option<i64>,
    /// The partition's high watermark.
    pub log_end: i64,
    /// `log_end - committed` (never negative); None without a committed offset.
    pub lag: Option<i64>,
    /// The member the partition is assigned to, if any.
    pub member: Option<String>,
}

/// A topic with its partitions' offsets, as the dashboard's `/api/topics` returns it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TopicOverview {
    pub name: String,
    /// The broker's own topics (`__consumer_offsets`).
    pub internal: bool,
    pub partitions: Vec<PartitionOffsets>,
    /// Records currently held (sum of `high_watermark - log_start_offset`).
    pub records: i64,
}

/// One partition of a topic.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PartitionOffsets {
    pub partition: i32,
    pub leader: i32,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub records: i64,
}

async fn describe_group(brokers: &KafkaConnection, group: &str) -> Result<(), ClientError> {
    let consumer = plain_consumer(brokers, Some(group))?;
    let g = group.to_string();
    let view = blocking(move || group_overview(&consumer, &g, None)).await?;
    println!("group: {group}");
    println!("state: {}", view.state);
    println!("protocol-type: {}", view.protocol_type);
    println!("protocol: {}", view.protocol);
    println!("members: {}", view.members.len());
    for m in &view.members {
        println!("  member: {}", m.member_id);
        println!("    client-id: {}", m.client_id);
        println!("    host: {}", m.host);
        match (&m.assignment_error, &m.assignment) {
            (Some(e), _) => println!("    assignment: ({e})"),
            (None, a) if a.is_empty() => println!("    assignment: (none)"),
            (None, a) => {
                let parts: Vec<String> = a
                    .iter()
                    .map(|t| {
                        let ps: Vec<String> = t.partitions.iter().map(i32::to_string).collect();
                        format!("{}[{}]", t.topic, ps.join(","))
                    })
                    .collect();
                println!("    assignment: {}", parts.join(" "));
            }
        }
    }
    println!();
    if view.offsets.is_empty() {
        println!("no committed offsets");
        return Ok(());
    }
    let tw = view
        .offsets
        .iter()
        .map(|r| r.topic.len())
        .max()
        .unwrap_or(0)
        .max("TOPIC".len());
    println!(
        "{:<tw$}  {:>9}  {:>16}  {:>16}  {:>10}  MEMBER",
        "TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG"
    );
    for r in &view.offsets {
        let (committed, lag) = match (r.committed, r.lag) {
            (Some(c), Some(l)) => (c.to_string(), l.to_string()),
            _ => ("-".to_string(), "-".to_string()),
        };
        println!(
            "{:<tw$}  {:>9}  {:>16}  {:>16}  {:>10}  {}",
            r.topic,
            r.partition,
            committed,
            r.log_end,
            lag,
            r.member.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

/// Describes `group` through `consumer` (created with that `group.id`, never subscribed:
/// OffsetFetch without joining). With `topics`, their partitions and high watermarks are used
/// instead of asking the broker again (the dashboard describes every group each refresh).
fn group_overview(
    consumer: &BaseConsumer,
    group: &str,
    topics: Option<&[TopicOverview]>,
) -> Result<GroupOverview, ClientError> {
    let list = consumer
        .fetch_group_list(Some(group), REQUEST_TIMEOUT)
        .map_err(ClientError::kafka(format!("describing group {group}")))?;
    let Some(info) = list.groups().iter().find(|g| g.name() == group) else {
        return Err(ClientError::NotFound(format!(
            "group {group} does not exist"
        )));
    };
    let members: Vec<GroupMember> = info.members().iter().map(member_of).collect();

    // Which member owns which partition, for the offsets table.
    let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    for m in &members {
        for a in &m.assignment {
            for p in &a.partitions {
                owner.insert((a.topic.clone(), *p), m.member_id.clone());
            }
        }
    }

    // OffsetFetch for every partition of every topic: librdkafka only asks for the partitions
    // it is given, and an empty group has no assignment to say which topics it consumed.
    let mut ends: BTreeMap<(String, i32), Option<i64>> = BTreeMap::new();
    match topics {
        Some(ts) => {
            for t in ts.iter().filter(|t| !t.internal) {
                for p in &t.partitions {
                    ends.insert((t.name.clone(), p.partition), Some(p.high_watermark));
                }
            }
        }
        None => {
            let md = consumer
                .fetch_metadata(None, REQUEST_TIMEOUT)
                .map_err(ClientError::kafka("fetching metadata"))?;
            for t in md.topics() {
                if t.name().starts_with(INTERNAL_PREFIX) || t.error().is_some() {
                    continue;
                }
                for p in t.partitions() {
                    ends.insert((t.name().to_string(), p.id()), None);
                }
            }
        }
    }
    for k in owner.keys() {
        ends.entry(k.clone()).or_insert(None);
    }
    let mut tpl = TopicPartitionList::new();
    for (t, p) in ends.keys() {
        tpl.add_partition(t, *p);
    }
    let mut offsets = Vec::new();
    if tpl.count() > 0 {
        let committed =
            consumer
                .committed_offsets(tpl, REQUEST_TIMEOUT)
                .map_err(ClientError::kafka(format!(
                    "fetching committed offsets of group {group}"
                )))?;
        for e in committed.elements() {
            let c = match e.offset() {
                Offset::Offset(o) if o >= 0 => Some(o),
                _ => None,
            };
            let key = (e.topic().to_string(), e.partition());
            let member = owner.get(&key).cloned();
            if c.is_none() && member.is_none() {
                continue; // neither consumed by this group nor assigned in it
            }
            let high = match ends.get(&key).copied().flatten() {
                Some(h) => h,
                None => {
                    consumer
                        .fetch_watermarks(e.topic(), e.partition(), REQUEST_TIMEOUT)
                        .map_err(ClientError::kafka(format!(
                            "fetching offsets of {}/{}",
                            e.topic(),
                            e.partition()
                        )))?
                        .1
                }
            };
            offsets.push(GroupOffset {
                topic: key.0,
                partition: key.1,
                committed: c,
                log_end: high,
                lag: c.map(|c| (high - c).max(0)),
                member,
            });
        }
    }
    offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(GroupOverview {
        group: group.to_string(),
        state: info.state().to_string(),
        protocol_type: info.protocol_type().to_string(),
        protocol: info.protocol().to_string(),
        members,
        offsets,
    })
}

fn member_of(m: &rdkafka::groups::GroupMemberInfo) -> GroupMember {
    let decoded = match m.assignment() {
        None | Some([]) => Ok(Vec::new()),
        Some(b) => decode_assignment(b),
    };
    let (assignment, assignment_error) = match decoded {
        Ok(a) => (
            a.into_iter()
                .map(|(topic, partitions)| TopicAssignment { topic, partitions })
                .collect(),
            None,
        ),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    GroupMember {
        member_id: m.id().to_string(),
        client_id: m.client_id().to_string(),
        host: m.client_host().to_string(),
        assignment,
        assignment_error,
    }
}

/// Most groups whose offsets [`Inspector::groups`] reads; more are listed without offsets
/// (each needs a client of its own, kept between calls).
pub const MAX_INSPECTED_GROUPS: usize = 64;

/// A long-lived, blocking view of a cluster's topics and groups for periodic refreshes (the
/// dashboard): the librdkafka clients are made once, not per refresh. Every call blocks for
/// at most a few request timeouts; call it off the async runtime's workers.
pub struct Inspector {
    brokers: KafkaConnection,
    consumer: BaseConsumer,
    /// One never-subscribed consumer per group id (OffsetFetch needs the `group.id`).
    group_consumers: BTreeMap<String, BaseConsumer>,
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector")
            .field("brokers", &self.brokers)
            .finish_non_exhaustive()
    }
}

impl Inspector {
    pub fn connect(brokers: &KafkaConnection) -> Result<Inspector, ClientError> {
        Ok(Inspector {
            brokers: brokers.clone(),
            consumer: plain_consumer(brokers, None)?,
            group_consumers: BTreeMap::new(),
        })
    }

    /// Every topic (internal ones flagged) with its partitions' offsets, by name.
    pub fn topics(&self) -> Result<Vec<TopicOverview>, ClientError> {
        let md = self
            .consumer
            .fetch_metadata(None, REQUEST_TIMEOUT)
            .map_err(ClientError::kafka(format!(
                "fetching metadata from {}",
                self.brokers
            )))?;
        let mut out = Vec::new();
        for t in md.topics() {
            if t.error().is_some() {
                continue;
            }
            let mut partitions = Vec::with_capacity(t.partitions().len());
            for p in t.partitions() {
                let (low, high) = self
                    .consumer
                    .fetch_watermarks(t.name(), p.id(), REQUEST_TIMEOUT)
                    .map_err(ClientError::kafka(format!(
                        "fetching offsets of {}/{}",
                        t.name(),
                        p.id()
                    )))?;
                partitions.push(PartitionOffsets {
                    partition: p.id(),
                    leader: p.leader(),
                    log_start_offset: low,
                    high_watermark: high,
                    records: (high - low).max(0),
                });
            }
            partitions.sort_by_key(|p| p.partition);
            out.push(TopicOverview {
                name: t.name().to_string(),
                internal: t.name().starts_with(INTERNAL_PREFIX),
                records: partitions.iter().map(|p| p.records).sum(),
                partitions,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Every group, described (members, committed offsets, lag against `topics`), by id.
    /// Past [`MAX_INSPECTED_GROUPS`] groups are listed with members but without offsets.
    pub fn groups(&mut self, topics: &[TopicOverview]) -> Result<Vec<GroupOverview>, ClientError> {
        let list = self
            .consumer
            .fetch_group_list(None, REQUEST_TIMEOUT)
            .map_err(ClientError::kafka(format!(
                "listing groups on {}",
                self.brokers
            )))?;
        let mut names: Vec<String> = list.groups().iter().map(|g| g.name().to_string()).collect();
        names.sort();
        // Forget clients of groups that are gone, so the map stays bounded by live groups.
        self.group_consumers.retain(|g, _| names.contains(g));
        let mut out = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let listed = list.groups().iter().find(|g| g.name() == name.as_str());
            if i >= MAX_INSPECTED_GROUPS {
                if let Some(g) = listed {
                    out.push(GroupOverview {
                        group: name.clone(),
                        state: g.state().to_string(),
                        protocol_type: g.protocol_type().to_string(),
                        protocol: g.protocol().to_string(),
                        members: g.members().iter().map(member_of).collect(),
                        offsets: Vec::new(),
                    });
                }
                continue;
            }
            if !self.group_consumers.contains_key(name) {
                let c = plain_consumer(&self.brokers, Some(name))?;
                self.group_consumers.insert(name.clone(), c);
            }
            let Some(c) = self.group_consumers.get(name) else {
                continue;
            };
            match group_overview(c, name, Some(topics)) {
                Ok(g) => out.push(g),
                // Deleted between the list and the describe: skip it this round.
                Err(ClientError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// Decodes a classic consumer-protocol `Assignment` (versions 0-3 share one layout):
/// `i16 version, [string topic, [i32 partition]], bytes user_data`. Returns the topics with
/// their partitions; trailing data (user data, later fields) is ignored.
pub fn decode_assignment(bytes: &[u8]) -> Result<Vec<(String, Vec<i32>)>, ClientError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let version = r.i16()?;
    if version < 0 {
        return Err(r.err(format!("negative version {version}")));
    }
    let topics = r.i32()?;
    if topics < 0 {
        return Ok(Vec::new()); // null array
    }
    let mut out = Vec::new();
    for _ in 0..topics {
        let len = r.i16()?;
        if len < 0 {
            return Err(r.err("null topic name".to_string()));
        }
        let name = r.take(len as usize)?;
        let name =
            String::from_utf8(name.to_vec()).map_err(|e| r.err(format!("topic name: {e}")))?;
        let n = r.i32()?;
        let mut parts = Vec::new();
        for _ in 0..n.max(0) {
            parts.push(r.i32()?);
        }
        out.push((name, parts));
    }
    Ok(out)
}

/// A bounds-checked big-endian reader: the bytes come from the broker, so every length is
/// checked against what is there before anything is allocated or read.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, reason: String) -> ClientError {
        ClientError::Decode {
            what: "consumer group assignment".to_string(),
            reason,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ClientError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| {
                self.err(format!(
                    "truncated: need {n} bytes at offset {}, have {}",
                    self.pos,
                    self.buf.len()
                ))
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn i16(&mut self) -> Result<i16, ClientError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, ClientError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(version: i16, topics: &[(&str, &[i32])], user_data: Option<&[u8]>) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&version.to_be_bytes());
        b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for (t, ps) in topics {
            b.extend_from_slice(&(t.len() as i16).to_be_bytes());
            b.extend_from_slice(t.as_bytes());
            b.extend_from_slice(&(ps.len() as i32).to_be_bytes());
            for p in *ps {
                b.extend_from_slice(&p.to_be_bytes());
            }
        }
        match user_data {
            None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(u) => {
                b.extend_from_slice(&(u.len() as i32).to_be_bytes());
                b.extend_from_slice(u);
            }
        }
        b
    }

    #[test]
    fn decodes_assignment_all_versions() {
        for v in 0..=3 {
            let b = encode(v, &[("orders", &[0, 2]), ("t", &[1])], Some(b"ud"));
            let a = decode_assignment(&b).expect("decodes");
            assert_eq!(
                a,
                vec![
                    ("orders".to_string(), vec![0, 2]),
                    ("t".to_string(), vec![1])
                ]
            );
        }
        let b = encode(0, &[], None);
        assert_eq!(decode_assignment(&b).expect("decodes"), vec![]);
    }

    #[test]
    fn rejects_truncated_and_hostile_assignment() {
        let b = encode(1, &[("orders", &[0, 2])], None);
        for cut in 0..b.len() - 4 {
            assert!(decode_assignment(&b[..cut]).is_err(), "cut at {cut}");
        }
        // A huge partition count with no data must fail, not allocate or panic.
        let mut h = Vec::new();
        h.extend_from_slice(&0i16.to_be_bytes());
        h.extend_from_slice(&1i32.to_be_bytes());
        h.extend_from_slice(&1i16.to_be_bytes());
        h.push(b'x');
        h.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_assignment(&h).is_err());
    }

    #[test]
    fn parses_key_value() {
        assert_eq!(parse_key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=x").is_err());
    }
}
