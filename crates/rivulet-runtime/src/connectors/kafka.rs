//! The Kafka connector: the query's source (read by [`crate::source`]), the Kafka sink
//! ([`crate::sinks::kafka`]) and the connection settings both share with the dead-letter and
//! late-row writers. Every option name of either lives here.
//!
//! Source options (`[source]`; SQL `CREATE SOURCE ... WITH`, whose Flink-style names are
//! accepted as aliases):
//!
//! | option | alias | meaning |
//! |---|---|---|
//! | `brokers` | `bootstrap.servers`, `properties.bootstrap.servers` | bootstrap servers (default: 127.0.0.1:9092) |
//! | `properties.<name>` | | a Kafka client property (`properties.security.protocol`, ...) |
//! | `topics` | `topic` | topics to read: a list, or comma-separated text |
//! | `group_id` | `group.id`, `properties.group.id` | consumer group for committed offsets (default: `rivulet-<query>`) |
//! | `starting_offsets` | `scan.startup.mode` + `scan.startup.timestamp-millis` | `earliest`, `latest` or epoch ms: where a first start reads from |
//! | `max_records_per_trigger` | `max.records.per.trigger` | at most this many records per micro-batch |
//! | `dlq_topic` | `dlq.topic` | dead letters (default: `<topic>.dlq`) |
//! | `late_topic` | `late.topic` | rows behind the watermark (default: counted and dropped) |
//! | `client` | | `native` (Rivulet's fetcher) or `librdkafka` |
//! | `format` | `value.format` | `json` (the only one) |
//!
//! Sink options (`[[sinks]] type = "kafka"`, `--sink kafka:TOPIC`, SQL `connector = 'kafka'`):
//! `topic`, `brokers` and `properties.<name>` (default: the source's connection), `format`.

use std::collections::BTreeMap;

use rivulet_engine::plan::{ConnectorSpec, OptionValue, Plan};

use super::options::OptionReader;
use super::{SinkConnector, SourceConnector};
use crate::error::RuntimeError;
use crate::sinks::{KafkaSink, Sink, SinkContext};
use crate::source::Source;
use crate::Result;

/// The connector's name.
pub const NAME: &str = "kafka";
/// Records per micro-batch when the source sets no limit.
pub const DEFAULT_MAX_RECORDS: u64 = 100_000;
/// Bootstrap servers when none are given.
pub const DEFAULT_BROKERS: &str = "127.0.0.1:9092";

const BROKERS: &[&str] = &[
    "brokers",
    "bootstrap.servers",
    "properties.bootstrap.servers",
];
const PROPERTIES: &str = "properties.";
const TOPICS: &[&str] = &["topics", "topic"];
const SINK_TOPIC: &[&str] = &["topic"];
const GROUP_ID: &[&str] = &["group_id", "group.id", "properties.group.id"];
const STARTING_OFFSETS: &[&str] = &["starting_offsets"];
const STARTUP_MODE: &[&str] = &["scan.startup.mode"];
const STARTUP_TIMESTAMP: &[&str] = &["scan.startup.timestamp-millis"];
const MAX_RECORDS: &[&str] = &["max_records_per_trigger", "max.records.per.trigger"];
const DLQ_TOPIC: &[&str] = &["dlq_topic", "dlq.topic"];
const LATE_TOPIC: &[&str] = &["late_topic", "late.topic"];
const CLIENT: &[&str] = &["client"];
/// Flink's name for the fields a topic's records are keyed (so partitioned) by.
const KEY_FIELDS: &[&str] = &["key_fields", "key.fields"];
const FORMAT: &[&str] = &["format", "value.format"];

/// Where a first start reads from; later starts resume from the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartingOffsets {
    #[default]
    Earliest,
    Latest,
    /// First offset whose Kafka timestamp is at or after this time (ms since the epoch).
    Timestamp(i64),
}

/// The Kafka client of the source. Both read the same partitions from the same offsets and
/// commit to the same group; they differ in speed and in what they can connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceClient {
    /// Rivulet's own fetcher (the `kafka-protocol` codecs): parses record batches without a
    /// per-message hand-off, several times librdkafka's consume rate on two cores. TLS and
    /// SASL PLAIN/SCRAM through `rivulet-auth`.
    #[default]
    Native,
    /// librdkafka (the `rdkafka` crate): for what the native fetcher does not speak (SASL
    /// GSSAPI/OAUTHBEARER, `ssl.endpoint.identification.algorithm=none`, other librdkafka
    /// properties).
    Librdkafka,
}

/// The one type for Kafka connection settings (bootstrap servers and client properties):
/// the source, the Kafka sink, the dead-letter and late writers, the generator and the admin
/// client all use it.
pub use rivulet_client::KafkaConnection;
use rivulet_client::{is_secret_property as is_secret, REDACTED};

fn connection(r: &mut OptionReader<'_>) -> Option<KafkaConnection> {
    let servers = r.text(BROKERS);
    // After the two `properties.` aliases above, so they are not taken for client properties.
    let mut properties = r.prefixed(PROPERTIES);
    // `${ENV_VAR}` in values, so secrets stay out of pipeline and SQL files.
    for (k, v) in properties.iter_mut() {
        match rivulet_client::expand_env(v, k) {
            Ok(x) => *v = x,
            Err(e) => r.problem(PROPERTIES, e),
        }
    }
    if servers.is_none() && properties.is_empty() {
        return None;
    }
    Some(KafkaConnection {
        bootstrap_servers: servers.unwrap_or_else(|| DEFAULT_BROKERS.to_string()),
        properties,
    })
}

fn check_format(r: &mut OptionReader<'_>) {
    r.choice(FORMAT, &[("json", ())]);
}

/// The source's options.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceOptions {
    pub connection: KafkaConnection,
    pub topics: Vec<String>,
    group_id: Option<String>,
    pub starting_offsets: StartingOffsets,
    max_records_per_trigger: Option<u64>,
    dlq_topic: Option<String>,
    pub late_topic: Option<String>,
    pub client: SourceClient,
    /// The schema fields the producer keys the records by (`key_fields`): a GROUP BY that
    /// includes them all finds each group in one partition, so a query spread over processes
    /// needs no repartition topic ([`crate::repartition`]). Empty: unknown.
    pub key_fields: Vec<String>,
}

impl SourceOptions {
    /// Reads the options of `spec` (a `kafka` source); every problem at once.
    pub fn parse(spec: &ConnectorSpec) -> std::result::Result<SourceOptions, Vec<String>> {
        let mut r = OptionReader::new(spec);
        // Before the connection, which takes the other `properties.` options.
        let group_id = r.text(GROUP_ID);
        let connection = connection(&mut r).unwrap_or_else(|| KafkaConnection {
            bootstrap_servers: DEFAULT_BROKERS.to_string(),
            properties: BTreeMap::new(),
        });
        let topics = r.list(TOPICS).unwrap_or_default();
        if topics.is_empty() {
            r.problem(TOPICS[0], "at least one topic is required");
        }
        for (i, t) in topics.iter().enumerate() {
            if t.trim().is_empty() {
                r.problem(&format!("{}[{i}]", TOPICS[0]), "empty topic name");
            }
        }
        let starting_offsets = starting_offsets(&mut r);
        let max_records_per_trigger = r.number::<u64>(MAX_RECORDS, 1);
        let dlq_topic = r.text(DLQ_TOPIC);
        let late_topic = r.text(LATE_TOPIC);
        let key_fields = r.list(KEY_FIELDS).unwrap_or_default();
        let client = r
            .choice(
                CLIENT,
                &[
                    ("native", SourceClient::Native),
                    ("librdkafka", SourceClient::Librdkafka),
                ],
            )
            .unwrap_or_default();
        if client == SourceClient::Native {
            // What the native client cannot do is said now, not at the first connection.
            if let Err(e) =
                rivulet_auth::client::ClientSecurity::from_properties(&connection.properties)
            {
                r.problem(PROPERTIES, e.to_string());
            }
        }
        check_format(&mut r);
        let problems = r.finish();
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(SourceOptions {
            connection,
            topics,
            group_id,
            starting_offsets,
            max_records_per_trigger,
            dlq_topic,
            late_topic,
            client,
            key_fields,
        })
    }

    /// [`SourceOptions::parse`] as a runtime error.
    pub fn of(spec: &ConnectorSpec) -> Result<SourceOptions> {
        SourceOptions::parse(spec).map_err(|p| RuntimeError::Plan(prefixed("source.", &p)))
    }

    /// The consumer group of query `query_name`: the option's, or `rivulet-<query name>`.
    pub fn group_id(&self, query_name: &str) -> String {
        self.group_id
            .clone()
            .unwrap_or_else(|| format!("rivulet-{query_name}"))
    }

    /// The dead-letter topic for records of `topic`.
    pub fn dlq_topic_for(&self, topic: &str) -> String {
        self.dlq_topic
            .clone()
            .unwrap_or_else(|| format!("{topic}.dlq"))
    }

    /// At most this many records per micro-batch.
    pub fn max_records(&self) -> u64 {
        self.max_records_per_trigger
            .unwrap_or(DEFAULT_MAX_RECORDS)
            .max(1)
    }

    /// The dead-letter topic override, if set.
    pub fn dlq_topic(&self) -> Option<&str> {
        self.dlq_topic.as_deref()
    }

    /// The options as a spec under their canonical names: brokers, topics and start always,
    /// the rest when set.
    pub fn to_spec(&self) -> ConnectorSpec {
        let mut s = source_spec(&self.connection.bootstrap_servers, &self.topics);
        for (k, v) in &self.connection.properties {
            s.set(format!("{PROPERTIES}{k}"), v.as_str());
        }
        set_starting_offsets(&mut s, self.starting_offsets);
        if let Some(g) = &self.group_id {
            set_group_id(&mut s, g);
        }
        set_max_records_per_trigger(&mut s, self.max_records_per_trigger);
        if let Some(t) = &self.dlq_topic {
            s.set(DLQ_TOPIC[0].to_string(), t.as_str());
        }
        if let Some(t) = &self.late_topic {
            s.set(LATE_TOPIC[0].to_string(), t.as_str());
        }
        if self.client == SourceClient::Librdkafka {
            s.set(CLIENT[0].to_string(), "librdkafka");
        }
        if !self.key_fields.is_empty() {
            s.set(
                KEY_FIELDS[0].to_string(),
                OptionValue::List(self.key_fields.clone()),
            );
        }
        s
    }
}

fn prefixed(prefix: &str, problems: &[String]) -> String {
    problems
        .iter()
        .map(|p| format!("{prefix}{p}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `starting_offsets`, or SQL's `scan.startup.mode` (+ `scan.startup.timestamp-millis`).
fn starting_offsets(r: &mut OptionReader<'_>) -> StartingOffsets {
    let parse_ms = |s: &str| {
        s.trim()
            .parse::<i64>()
            .map_err(|_| format!("`{s}` is not valid; expected milliseconds since the epoch"))
    };
    if let Some(s) = r.parsed(STARTING_OFFSETS, |s| match s {
        "earliest" => Ok(StartingOffsets::Earliest),
        "latest" => Ok(StartingOffsets::Latest),
        other => parse_ms(other)
            .map(StartingOffsets::Timestamp)
            .map_err(|_| format!("`{other}`: expected earliest, latest or epoch milliseconds")),
    }) {
        if r.has(STARTUP_MODE) || r.has(STARTUP_TIMESTAMP) {
            r.problem(
                STARTING_OFFSETS[0],
                format!("give it or {}, not both", STARTUP_MODE[0]),
            );
        }
        return s;
    }
    let mode = r.choice(
        STARTUP_MODE,
        &[
            ("earliest-offset", "earliest"),
            ("earliest", "earliest"),
            ("latest-offset", "latest"),
            ("latest", "latest"),
            ("timestamp", "timestamp"),
        ],
    );
    let ts = r.parsed(STARTUP_TIMESTAMP, parse_ms);
    match (mode, ts) {
        (None | Some("earliest"), None) => StartingOffsets::Earliest,
        (Some("latest"), None) => StartingOffsets::Latest,
        (None | Some("timestamp"), Some(t)) => StartingOffsets::Timestamp(t),
        (Some("timestamp"), None) => {
            if !r.has(STARTUP_TIMESTAMP) {
                r.problem(
                    STARTUP_MODE[0],
                    format!("'timestamp' needs {}", STARTUP_TIMESTAMP[0]),
                );
            }
            StartingOffsets::Earliest
        }
        (Some(_), Some(_)) => {
            r.problem(
                STARTUP_TIMESTAMP[0],
                format!("needs {} = 'timestamp'", STARTUP_MODE[0]),
            );
            StartingOffsets::Earliest
        }
        (Some(_), None) => StartingOffsets::Earliest,
    }
}

/// What `explain` shows of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDescription {
    /// `kafka topics [events] at 127.0.0.1:9092, json, start earliest, client native`.
    pub summary: String,
    /// Settings worth a line of their own (`group id: g`).
    pub details: Vec<String>,
    /// Where dead letters go.
    pub dead_letters: String,
    /// Where late rows go.
    pub late_rows: String,
}

/// The Kafka source connector.
#[derive(Debug)]
pub struct KafkaSource;

impl SourceConnector for KafkaSource {
    fn name(&self) -> &'static str {
        NAME
    }

    fn check(&self, spec: &ConnectorSpec) -> Vec<String> {
        SourceOptions::parse(spec).err().unwrap_or_default()
    }

    fn describe(&self, spec: &ConnectorSpec) -> Result<SourceDescription> {
        let s = SourceOptions::of(spec)?;
        let start = match s.starting_offsets {
            StartingOffsets::Earliest => "earliest".to_string(),
            StartingOffsets::Latest => "latest".to_string(),
            StartingOffsets::Timestamp(t) => format!("timestamp {t}"),
        };
        let client = match s.client {
            SourceClient::Native => "native",
            SourceClient::Librdkafka => "librdkafka",
        };
        let mut details = Vec::new();
        if let Some(g) = &s.group_id {
            details.push(format!("group id: {g}"));
        }
        if let Some(n) = s.max_records_per_trigger {
            details.push(format!("max records per trigger: {n}"));
        }
        Ok(SourceDescription {
            summary: format!(
                "kafka topics [{}] at {}, json, start {start}, client {client}",
                s.topics.join(", "),
                s.connection.describe()
            ),
            details,
            dead_letters: s.dlq_topic_for(s.topics.first().map_or("", String::as_str)),
            late_rows: s
                .late_topic
                .clone()
                .unwrap_or_else(|| "counted and dropped".to_string()),
        })
    }

    fn redact(&self, spec: &ConnectorSpec) -> ConnectorSpec {
        redact_properties(spec)
    }

    fn normalize(&self, spec: &ConnectorSpec) -> ConnectorSpec {
        match SourceOptions::parse(spec) {
            Ok(o) => o.to_spec(),
            Err(_) => spec.clone(),
        }
    }

    fn open(&self, spec: &ConnectorSpec, query_name: &str) -> Result<Box<dyn Source>> {
        crate::source::connect(&SourceOptions::of(spec)?, query_name)
    }
}

fn redact_properties(spec: &ConnectorSpec) -> ConnectorSpec {
    let mut s = spec.clone();
    for (k, v) in s.options.iter_mut() {
        if k.starts_with(PROPERTIES) && is_secret(k) {
            *v = OptionValue::Text(REDACTED.into());
        }
    }
    s
}

// Setters for `rivulet run`'s source flags and the other front ends: each replaces the option
// and its aliases and returns the option's name (so problems with it can name the flag).

fn replace(source: &mut ConnectorSpec, names: &[&'static str], value: OptionValue) -> &'static str {
    for n in names {
        source.options.remove(*n);
    }
    source.set(names[0], value);
    names[0]
}

/// Sets the source's bootstrap servers (`rivulet run --brokers`).
pub fn set_brokers(source: &mut ConnectorSpec, servers: &str) -> &'static str {
    replace(source, BROKERS, servers.into())
}

/// Adds client properties to the source (`properties.<name>`); Kafka sinks without brokers
/// of their own share the source's connection.
pub fn set_properties(source: &mut ConnectorSpec, properties: &BTreeMap<String, String>) {
    for (k, v) in properties {
        source
            .options
            .insert(format!("{PROPERTIES}{k}"), OptionValue::from(v.as_str()));
    }
}

/// Sets the source's topics.
pub fn set_topics(source: &mut ConnectorSpec, topics: &[String]) -> &'static str {
    replace(source, TOPICS, OptionValue::List(topics.to_vec()))
}

/// `earliest`, `latest` or epoch milliseconds.
pub fn parse_starting_offsets(text: &str) -> std::result::Result<StartingOffsets, String> {
    match text {
        "earliest" => Ok(StartingOffsets::Earliest),
        "latest" => Ok(StartingOffsets::Latest),
        ms => ms
            .parse::<i64>()
            .map(StartingOffsets::Timestamp)
            .map_err(|_| format!("expected earliest, latest or epoch milliseconds, got `{ms}`")),
    }
}

/// Sets where a first start reads from (the SQL shell reads from the latest offsets).
pub fn set_starting_offsets(source: &mut ConnectorSpec, start: StartingOffsets) -> &'static str {
    for n in STARTUP_MODE.iter().chain(STARTUP_TIMESTAMP) {
        source.options.remove(*n);
    }
    let v = match start {
        StartingOffsets::Earliest => OptionValue::from("earliest"),
        StartingOffsets::Latest => OptionValue::from("latest"),
        StartingOffsets::Timestamp(t) => OptionValue::Integer(t),
    };
    replace(source, STARTING_OFFSETS, v)
}

/// Sets the consumer group the source commits to.
pub fn set_group_id(source: &mut ConnectorSpec, group: &str) -> &'static str {
    replace(source, GROUP_ID, group.into())
}

/// Sets the micro-batch's record limit (`None`: the default).
pub fn set_max_records_per_trigger(source: &mut ConnectorSpec, n: Option<u64>) -> &'static str {
    match n {
        Some(n) => replace(
            source,
            MAX_RECORDS,
            OptionValue::Integer(i64::try_from(n).unwrap_or(i64::MAX)),
        ),
        None => {
            for k in MAX_RECORDS {
                source.options.remove(*k);
            }
            MAX_RECORDS[0]
        }
    }
}

/// Sets the dead-letter topic.
pub fn set_dlq_topic(source: &mut ConnectorSpec, topic: &str) -> &'static str {
    replace(source, DLQ_TOPIC, topic.into())
}

/// Sets the fields the source's records are keyed by (`key_fields`).
pub fn set_key_fields(source: &mut ConnectorSpec, fields: &[String]) -> &'static str {
    replace(source, KEY_FIELDS, OptionValue::List(fields.to_vec()))
}

/// Sets the source's client (`native` or `librdkafka`).
pub fn set_client(
    source: &mut ConnectorSpec,
    client: &str,
) -> std::result::Result<&'static str, String> {
    if !matches!(client, "native" | "librdkafka") {
        return Err(format!("expected native or librdkafka, got `{client}`"));
    }
    Ok(replace(source, CLIENT, client.into()))
}

/// A source spec for `brokers` and `topics` with the defaults otherwise.
pub fn source_spec(brokers: &str, topics: &[String]) -> ConnectorSpec {
    let mut s = ConnectorSpec::new(NAME);
    set_brokers(&mut s, brokers);
    set_topics(&mut s, topics);
    s
}

/// A Kafka sink spec into `topic` through the source's connection.
pub fn sink_spec(topic: &str) -> ConnectorSpec {
    ConnectorSpec::new(NAME).with(SINK_TOPIC[0], topic)
}

/// The Kafka sink's options.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkOptions {
    pub topic: String,
    /// Its own connection; `None`: the source's.
    pub connection: Option<KafkaConnection>,
}

impl SinkOptions {
    pub fn parse(spec: &ConnectorSpec) -> std::result::Result<SinkOptions, Vec<String>> {
        let mut r = OptionReader::new(spec);
        let topic = r.required_text(SINK_TOPIC);
        let connection = connection(&mut r);
        check_format(&mut r);
        let problems = r.finish();
        match topic {
            Some(topic) if problems.is_empty() => Ok(SinkOptions { topic, connection }),
            _ => Err(problems),
        }
    }

    /// The connection the sink writes through: its own, else the source's.
    pub fn connection_in(&self, plan: &Plan) -> Result<KafkaConnection> {
        match &self.connection {
            Some(c) => Ok(c.clone()),
            None => Ok(SourceOptions::of(&plan.source)?.connection),
        }
    }
}

/// The Kafka sink connector.
#[derive(Debug)]
pub struct KafkaSinkConnector;

impl SinkConnector for KafkaSinkConnector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn shorthand(&self, value: &str) -> Option<ConnectorSpec> {
        let topic = value.strip_prefix("kafka:")?;
        Some(ConnectorSpec::new(NAME).with(SINK_TOPIC[0], topic))
    }

    fn check_options(&self, spec: &ConnectorSpec) -> Vec<String> {
        SinkOptions::parse(spec).err().unwrap_or_default()
    }

    fn describe(&self, spec: &ConnectorSpec, plan: &Plan) -> Result<String> {
        let o = sink_options(spec)?;
        Ok(format!(
            "kafka topic {} at {}",
            o.topic,
            o.connection_in(plan)?.describe()
        ))
    }

    fn target(&self, spec: &ConnectorSpec, plan: &Plan) -> Result<Option<String>> {
        let o = sink_options(spec)?;
        Ok(Some(format!(
            "kafka topic `{}` at {}",
            o.topic,
            o.connection_in(plan)?.bootstrap_servers
        )))
    }

    fn redact(&self, spec: &ConnectorSpec) -> ConnectorSpec {
        redact_properties(spec)
    }

    fn open(&self, spec: &ConnectorSpec, ctx: &SinkContext<'_>) -> Result<Box<dyn Sink>> {
        let o = sink_options(spec)?;
        let connection = o.connection_in(ctx.plan)?;
        Ok(Box::new(KafkaSink::connect(
            &connection,
            &o.topic,
            &ctx.plan.group_by,
            ctx.kafka_writer(&format!("sink/{}/{}", ctx.plan.name, o.topic)),
        )?))
    }
}

fn sink_options(spec: &ConnectorSpec) -> Result<SinkOptions> {
    SinkOptions::parse(spec).map_err(|p| RuntimeError::Plan(prefixed("kafka sink: ", &p)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn source(opts: &[(&str, &str)]) -> std::result::Result<SourceOptions, Vec<String>> {
        let mut s = ConnectorSpec::new(NAME);
        for (k, v) in opts {
            s.set(*k, *v);
        }
        SourceOptions::parse(&s)
    }

    /// Issue 15: `${ENV_VAR}` in client property values; what the native client cannot speak
    /// is refused at plan time, naming the property.
    #[test]
    fn property_values_take_environment_variables() {
        std::env::set_var("RIVULET_TEST_KAFKA_PW_7", "from-env");
        let s = source(&[
            ("topic", "t"),
            ("properties.security.protocol", "SASL_PLAINTEXT"),
            ("properties.sasl.mechanism", "PLAIN"),
            ("properties.sasl.username", "u"),
            ("properties.sasl.password", "${RIVULET_TEST_KAFKA_PW_7}"),
        ])
        .unwrap();
        assert_eq!(s.connection.properties["sasl.password"], "from-env");
        let p = source(&[
            ("topic", "t"),
            ("properties.sasl.password", "${RIVULET_TEST_UNSET_9}"),
        ])
        .unwrap_err();
        assert!(p[0].contains("RIVULET_TEST_UNSET_9 is not set"), "{p:?}");
        let p = source(&[
            ("topic", "t"),
            ("properties.security.protocol", "SASL_SSL"),
            ("properties.sasl.mechanism", "GSSAPI"),
        ])
        .unwrap_err();
        assert!(
            p[0].contains("GSSAPI") && p[0].contains("librdkafka"),
            "{p:?}"
        );
        // librdkafka takes what the native client cannot.
        assert!(source(&[
            ("topic", "t"),
            ("client", "librdkafka"),
            ("properties.security.protocol", "SASL_SSL"),
            ("properties.sasl.mechanism", "GSSAPI"),
        ])
        .is_ok());
    }

    #[test]
    fn source_options_and_their_sql_aliases() {
        let s = source(&[
            ("topic", "a, b"),
            ("properties.bootstrap.servers", "k:9092"),
            ("properties.security.protocol", "SASL_SSL"),
            ("properties.sasl.password", "hunter2"),
            ("scan.startup.mode", "timestamp"),
            ("scan.startup.timestamp-millis", "1700000000000"),
            ("max.records.per.trigger", "400"),
            ("group.id", "g"),
            ("client", "librdkafka"),
            ("format", "json"),
        ])
        .unwrap();
        assert_eq!(s.topics, ["a", "b"]);
        assert_eq!(s.connection.bootstrap_servers, "k:9092");
        assert_eq!(s.connection.properties.len(), 2);
        assert_eq!(
            s.starting_offsets,
            StartingOffsets::Timestamp(1_700_000_000_000)
        );
        assert_eq!(s.max_records(), 400);
        assert_eq!(s.group_id("q"), "g");
        assert_eq!(s.client, SourceClient::Librdkafka);
        let d = s.connection.describe();
        assert!(
            d.contains("sasl.password=***") && !d.contains("hunter2"),
            "{d}"
        );
        let defaults = source(&[("topics", "events")]).unwrap();
        assert_eq!(defaults.connection.bootstrap_servers, DEFAULT_BROKERS);
        assert_eq!(defaults.group_id("q"), "rivulet-q");
        assert_eq!(defaults.dlq_topic_for("events"), "events.dlq");
    }

    #[test]
    fn source_problems_name_the_option() {
        let p = source(&[]).unwrap_err();
        assert_eq!(p, ["topics: at least one topic is required"]);
        let p = source(&[("topics", "a"), ("max_records_per_trigger", "0")]).unwrap_err();
        assert_eq!(p, ["max_records_per_trigger: must be > 0"]);
        let p = source(&[("topics", "a"), ("client", "java")]).unwrap_err();
        assert!(
            p[0].starts_with("client: `java` is not valid; expected one of"),
            "{p:?}"
        );
        let p = source(&[("topics", "a"), ("scan.startup.mode", "timestamp")]).unwrap_err();
        assert!(
            p[0].contains("needs scan.startup.timestamp-millis"),
            "{p:?}"
        );
        let p = source(&[("topics", "a"), ("topis", "b")]).unwrap_err();
        assert!(
            p[0].starts_with("topis: unknown option `topis` (did you mean"),
            "{p:?}"
        );
        let p = source(&[("topics", "a"), ("dlq_topic", " ")]).unwrap_err();
        assert_eq!(p, ["dlq_topic: must not be empty"]);
    }

    #[test]
    fn sink_options() {
        let spec = KafkaSinkConnector.shorthand("kafka:out").unwrap();
        let o = SinkOptions::parse(&spec).unwrap();
        assert_eq!(o.topic, "out");
        assert!(o.connection.is_none());
        let p = SinkOptions::parse(&ConnectorSpec::new(NAME).with("topic", "")).unwrap_err();
        assert_eq!(p, ["topic: must not be empty"]);
        let p = SinkOptions::parse(&ConnectorSpec::new(NAME)).unwrap_err();
        assert_eq!(p, ["topic: required"]);
    }
}
