//! Metadata and admin operations through librdkafka's AdminClient: CreateTopics (overrides,
//! duplicates, invalid names), DeleteTopics, CreatePartitions, DescribeConfigs, auto topic
//! creation on produce, legacy AlterConfigs (rdkafka's `alter_configs`). IncrementalAlterConfigs
//! is driven with raw frames (kafka-protocol) because rdkafka 0.39 only wraps the legacy
//! AlterConfigs API; rdkafka also drops per-resource errors of DescribeConfigs/AlterConfigs, so
//! those error codes are checked on the wire too.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiKey, DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{
    AlterConfig, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;

async fn partitions_of(bootstrap: &str, topic: &str) -> Option<usize> {
    let (b, t) = (bootstrap.to_string(), topic.to_string());
    blocking(move || partition_count(&b, &t)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_topics_duplicates_and_invalid_names() {
    let broker = TestBroker::start().await;
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    let opts = admin_opts();

    let a = NewTopic::new("adm-a", 3, TopicReplication::Fixed(1))
        .set("retention.ms", "3600000")
        .set("max.message.bytes", "200000");
    let b = NewTopic::new("adm-b", 2, TopicReplication::Fixed(1));
    let res = admin
        .create_topics([&a, &b], &opts)
        .await
        .expect("create_topics");
    assert_eq!(res, vec![Ok("adm-a".to_string()), Ok("adm-b".to_string())]);

    // Metadata (for these topics) lists them with their partition counts.
    assert_eq!(partitions_of(&bootstrap, "adm-a").await, Some(3));
    assert_eq!(partitions_of(&bootstrap, "adm-b").await, Some(2));

    // Creating again fails with TopicAlreadyExists.
    let res = admin
        .create_topics(
            [&NewTopic::new("adm-a", 1, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .expect("create_topics");
    assert_eq!(
        res,
        vec![Err((
            "adm-a".to_string(),
            RDKafkaErrorCode::TopicAlreadyExists
        ))]
    );

    // Invalid names.
    let long = "x".repeat(250);
    for bad in [
        "bad/name",
        ".",
        "..",
        "spaces are bad",
        "ümlaut",
        long.as_str(),
    ] {
        let res = admin
            .create_topics([&NewTopic::new(bad, 1, TopicReplication::Fixed(1))], &opts)
            .await
            .expect("create_topics");
        assert_eq!(
            res,
            vec![Err((bad.to_string(), RDKafkaErrorCode::InvalidTopic))],
            "name {bad:?}"
        );
    }
    // Bad partition counts / replication factors / configs.
    let res = admin
        .create_topics(
            [&NewTopic::new("zero-parts", 0, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .expect("create");
    assert_eq!(
        res,
        vec![Err((
            "zero-parts".to_string(),
            RDKafkaErrorCode::InvalidPartitions
        ))]
    );
    let res = admin
        .create_topics(
            [&NewTopic::new("rf3", 1, TopicReplication::Fixed(3))],
            &opts,
        )
        .await
        .expect("create");
    assert_eq!(
        res,
        vec![Err((
            "rf3".to_string(),
            RDKafkaErrorCode::InvalidReplicationFactor
        ))]
    );
    let bad_cfg =
        NewTopic::new("bad-cfg", 1, TopicReplication::Fixed(1)).set("retention.ms", "soon");
    let res = admin
        .create_topics([&bad_cfg], &opts)
        .await
        .expect("create");
    assert_eq!(
        res,
        vec![Err((
            "bad-cfg".to_string(),
            RDKafkaErrorCode::InvalidConfig
        ))]
    );
    let unknown_cfg =
        NewTopic::new("unknown-cfg", 1, TopicReplication::Fixed(1)).set("no.such.config", "1");
    let res = admin
        .create_topics([&unknown_cfg], &opts)
        .await
        .expect("create");
    assert_eq!(
        res,
        vec![Err((
            "unknown-cfg".to_string(),
            RDKafkaErrorCode::InvalidConfig
        ))]
    );
    for t in ["zero-parts", "rf3", "bad-cfg", "unknown-cfg"] {
        assert_eq!(
            partitions_of(&bootstrap, t).await,
            None,
            "{t} must not exist after a failed create"
        );
    }

    // validate_only creates nothing.
    let vo = admin_opts().validate_only(true);
    let res = admin
        .create_topics(
            [&NewTopic::new(
                "validate-only",
                2,
                TopicReplication::Fixed(1),
            )],
            &vo,
        )
        .await
        .expect("create");
    assert_eq!(res, vec![Ok("validate-only".to_string())]);
    // Metadata for a missing topic from a consumer must not auto-create it.
    assert_eq!(
        partitions_of(&bootstrap, "validate-only").await,
        None,
        "validate_only created the topic"
    );
}

/// Kafka allows topic names up to 249 characters: create, use and delete one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn longest_legal_topic_name() {
    let broker = TestBroker::start().await;
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    let opts = admin_opts();
    // Longest legal name (249 chars) is fine.
    let ok = "y".repeat(249);
    let res = admin
        .create_topics([&NewTopic::new(&ok, 1, TopicReplication::Fixed(1))], &opts)
        .await
        .expect("create_topics");
    assert_eq!(res, vec![Ok(ok.clone())]);
    assert_eq!(partitions_of(&bootstrap, &ok).await, Some(1));
    let p = producer(&bootstrap);
    let d = p
        .send(
            FutureRecord::<str, str>::to(&ok).payload("long"),
            Timeout::After(WAIT),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("produce to the 249-char topic");
    assert_eq!(d.offset, 0);
    assert_eq!(read_all(&bootstrap, &ok, 0).await.len(), 1);
    let res = admin
        .delete_topics(&[ok.as_str()], &opts)
        .await
        .expect("delete_topics");
    assert_eq!(res, vec![Ok(ok.clone())], "deleting the 249-char topic");

    assert_eq!(partitions_of(&bootstrap, &ok).await, None);
}

/// librdkafka's "all topics" Metadata request (rd_kafka_metadata with no topic, also used by
/// regex subscriptions and full refreshes).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metadata_for_all_topics() {
    let broker = TestBroker::start().await;
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "all-a", 3, &[]).await;
    create_topic(&bootstrap, "all-b", 2, &[]).await;
    let bs = bootstrap.clone();
    let (brokers, topics) = blocking(move || {
        let c: BaseConsumer = plain_consumer_config(&bs).create().expect("consumer");
        let md = c
            .fetch_metadata(None, Duration::from_secs(20))
            .expect("metadata for all topics");
        let brokers: Vec<(i32, String, i32)> = md
            .brokers()
            .iter()
            .map(|b| (b.id(), b.host().to_string(), b.port()))
            .collect();
        let mut topics: Vec<(String, usize, Vec<i32>)> = md
            .topics()
            .iter()
            .map(|t| {
                (
                    t.name().to_string(),
                    t.partitions().len(),
                    t.partitions().iter().map(|p| p.leader()).collect(),
                )
            })
            .collect();
        topics.sort();
        (brokers, topics)
    })
    .await;
    assert_eq!(
        brokers,
        vec![(0, "127.0.0.1".to_string(), i32::from(broker.port))]
    );
    assert_eq!(
        topics,
        vec![
            ("all-a".to_string(), 3, vec![0, 0, 0]),
            ("all-b".to_string(), 2, vec![0, 0])
        ],
        "all-topics metadata (internal topics must not be listed)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_topic_and_recreate() {
    let broker = TestBroker::start().await;
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    let opts = admin_opts();
    create_topic(&bootstrap, "doomed", 2, &[]).await;
    let p = producer(&bootstrap);
    for i in 0..10 {
        let v = format!("old-{i}");
        p.send(
            FutureRecord::<str, str>::to("doomed")
                .payload(&v)
                .partition(i % 2),
            Timeout::After(WAIT),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("send");
    }
    let res = admin
        .delete_topics(&["doomed"], &opts)
        .await
        .expect("delete_topics");
    assert_eq!(res, vec![Ok("doomed".to_string())]);
    assert_eq!(
        partitions_of(&bootstrap, "doomed").await,
        None,
        "deleted topic still in metadata"
    );
    // Deleting again / a never-existing topic: UnknownTopicOrPartition.
    let res = admin
        .delete_topics(&["doomed", "never-was"], &opts)
        .await
        .expect("delete_topics");
    assert_eq!(
        res,
        vec![
            Err((
                "doomed".to_string(),
                RDKafkaErrorCode::UnknownTopicOrPartition
            )),
            Err((
                "never-was".to_string(),
                RDKafkaErrorCode::UnknownTopicOrPartition
            )),
        ]
    );
    // Recreate with one partition: empty, offsets from 0, no old data.
    create_topic(&bootstrap, "doomed", 1, &[]).await;
    assert_eq!(partitions_of(&bootstrap, "doomed").await, Some(1));
    let b = bootstrap.clone();
    assert_eq!(blocking(move || watermarks(&b, "doomed", 0)).await, (0, 0));
    let d = p
        .send(
            FutureRecord::<str, str>::to("doomed")
                .payload("new")
                .partition(0),
            Timeout::After(WAIT),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("send after recreate");
    assert_eq!(d.offset, 0);
    let msgs = read_all(&bootstrap, "doomed", 0).await;
    assert_eq!(
        msgs.iter().map(payload_str).collect::<Vec<_>>(),
        vec![Some("new".to_string())]
    );
    // The deleted topic's directory content does not come back after a restart.
    let mut broker = broker;
    broker.restart().await;
    assert_eq!(partitions_of(&bootstrap, "doomed").await, Some(1));
    let msgs = read_all(&bootstrap, "doomed", 0).await;
    assert_eq!(
        msgs.iter().map(payload_str).collect::<Vec<_>>(),
        vec![Some("new".to_string())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_partitions_grows_topic() {
    let broker = TestBroker::start().await;
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    let opts = admin_opts();
    create_topic(&bootstrap, "growing", 2, &[]).await;
    let res = admin
        .create_partitions([&NewPartitions::new("growing", 5)], &opts)
        .await
        .expect("create_partitions");
    assert_eq!(res, vec![Ok("growing".to_string())]);
    assert_eq!(partitions_of(&bootstrap, "growing").await, Some(5));
    // Shrinking or keeping the count is InvalidPartitions; unknown topic is UnknownTopicOrPartition.
    let res = admin
        .create_partitions([&NewPartitions::new("growing", 3)], &opts)
        .await
        .expect("create_partitions");
    assert_eq!(
        res,
        vec![Err((
            "growing".to_string(),
            RDKafkaErrorCode::InvalidPartitions
        ))]
    );
    let res = admin
        .create_partitions([&NewPartitions::new("growing", 5)], &opts)
        .await
        .expect("create_partitions");
    assert_eq!(
        res,
        vec![Err((
            "growing".to_string(),
            RDKafkaErrorCode::InvalidPartitions
        ))]
    );
    let res = admin
        .create_partitions([&NewPartitions::new("nope", 5)], &opts)
        .await
        .expect("create_partitions");
    assert_eq!(
        res,
        vec![Err((
            "nope".to_string(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))]
    );
    // The new partition is usable.
    let p = producer(&bootstrap);
    let d = p
        .send(
            FutureRecord::<str, str>::to("growing")
                .payload("p4")
                .partition(4),
            Timeout::After(WAIT),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("send to new partition");
    assert_eq!((d.partition, d.offset), (4, 0));
    let msgs = read_all(&bootstrap, "growing", 4).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].partition(), 4);
}

async fn describe_topic(
    bootstrap: &str,
    topic: &str,
) -> Vec<(String, Option<String>, bool, ConfigSource)> {
    let admin = admin(bootstrap);
    let res = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &admin_opts())
        .await
        .expect("describe_configs");
    assert_eq!(res.len(), 1);
    let r = res
        .into_iter()
        .next()
        .unwrap()
        .expect("describe_configs resource error");
    r.entries
        .into_iter()
        .map(|e| (e.name, e.value, e.is_default, e.source))
        .collect()
}

fn entry<'a>(
    entries: &'a [(String, Option<String>, bool, ConfigSource)],
    key: &str,
) -> &'a (String, Option<String>, bool, ConfigSource) {
    entries
        .iter()
        .find(|e| e.0 == key)
        .unwrap_or_else(|| panic!("{key} missing from DescribeConfigs: {entries:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn describe_configs_and_incremental_alter() {
    let mut broker = TestBroker::start().await;
    let bootstrap = broker.bootstrap();
    create_topic(
        &bootstrap,
        "cfg",
        1,
        &[("retention.ms", "3600000"), ("cleanup.policy", "compact")],
    )
    .await;
    let entries = describe_topic(&bootstrap, "cfg").await;
    // Overrides: values as set, not default, dynamic topic config.
    for (k, v) in [("retention.ms", "3600000"), ("cleanup.policy", "compact")] {
        let e = entry(&entries, k);
        assert_eq!(e.1.as_deref(), Some(v), "{k}");
        assert!(!e.2, "{k} is overridden and must not be flagged default");
        assert!(
            matches!(e.3, ConfigSource::DynamicTopic),
            "{k} source {:?}",
            e.3
        );
    }
    // Kafka's defaults for the rest.
    for (k, v) in [
        ("segment.bytes", "1073741824"),
        ("max.message.bytes", "1048588"),
        ("retention.bytes", "-1"),
        ("segment.ms", "604800000"),
        ("message.timestamp.type", "CreateTime"),
    ] {
        let e = entry(&entries, k);
        assert_eq!(e.1.as_deref(), Some(v), "{k}");
        assert!(e.2, "{k} not overridden, should be default: {e:?}");
    }
    // Unknown topic: an error for that resource. rdkafka 0.39 drops per-resource errors of
    // DescribeConfigs (it returns Ok with no entries), so check the error code on the wire.
    let admin = admin(&bootstrap);
    let res = admin
        .describe_configs([&ResourceSpecifier::Topic("no-such-topic")], &admin_opts())
        .await
        .expect("describe_configs");
    assert!(
        matches!(res.as_slice(), [Ok(r)] if r.entries.is_empty()),
        "got {res:?}"
    );
    let mut s = raw::connect(&bootstrap).await;
    let mut dr = DescribeConfigsResource::default();
    dr.resource_type = 2;
    dr.resource_name = StrBytes::from_static_str("no-such-topic");
    dr.configuration_keys = None;
    let mut dreq = DescribeConfigsRequest::default();
    dreq.resources = vec![dr];
    let dresp: DescribeConfigsResponse =
        raw::call(&mut s, ApiKey::DescribeConfigs, 4, 6, &dreq).await;
    assert_eq!(dresp.results.len(), 1);
    assert_eq!(
        dresp.results[0].error_code, 3,
        "UNKNOWN_TOPIC_OR_PARTITION for an unknown topic"
    );

    // IncrementalAlterConfigs (raw frames): SET retention.ms, DELETE cleanup.policy, SET
    // max.message.bytes; then an invalid value is refused and changes nothing.
    let alter = |ops: &[(&'static str, i8, Option<&'static str>)], validate_only: bool| {
        let mut res = AlterConfigsResource::default();
        res.resource_type = 2; // TOPIC
        res.resource_name = StrBytes::from_static_str("cfg");
        res.configs = ops
            .iter()
            .map(|(k, op, v)| {
                let mut c = AlterableConfig::default();
                c.name = StrBytes::from_static_str(k);
                c.config_operation = *op; // 0 SET, 1 DELETE
                c.value = v.map(StrBytes::from_static_str);
                c
            })
            .collect();
        let mut req = IncrementalAlterConfigsRequest::default();
        req.resources = vec![res];
        req.validate_only = validate_only;
        req
    };
    let req = alter(
        &[
            ("retention.ms", 0, Some("7200000")),
            ("cleanup.policy", 1, None),
            ("max.message.bytes", 0, Some("5000")),
        ],
        false,
    );
    let resp: IncrementalAlterConfigsResponse =
        raw::call(&mut s, ApiKey::IncrementalAlterConfigs, 1, 7, &req).await;
    assert_eq!(resp.responses.len(), 1);
    assert_eq!(
        resp.responses[0].error_code, 0,
        "alter failed: {:?}",
        resp.responses[0].error_message
    );

    let check_altered = |entries: Vec<(String, Option<String>, bool, ConfigSource)>| {
        assert_eq!(
            entry(&entries, "retention.ms").1.as_deref(),
            Some("7200000")
        );
        assert!(!entry(&entries, "retention.ms").2);
        assert_eq!(
            entry(&entries, "cleanup.policy").1.as_deref(),
            Some("delete"),
            "DELETE restores the default"
        );
        assert!(
            entry(&entries, "cleanup.policy").2,
            "deleted override is default again"
        );
        assert_eq!(
            entry(&entries, "max.message.bytes").1.as_deref(),
            Some("5000")
        );
        assert!(!entry(&entries, "max.message.bytes").2);
    };
    check_altered(describe_topic(&bootstrap, "cfg").await);

    let bad = alter(&[("retention.ms", 0, Some("not-a-number"))], false);
    let resp: IncrementalAlterConfigsResponse =
        raw::call(&mut s, ApiKey::IncrementalAlterConfigs, 1, 8, &bad).await;
    assert_eq!(resp.responses[0].error_code, 40, "INVALID_CONFIG expected");
    let vo = alter(&[("retention.ms", 0, Some("1"))], true);
    let resp: IncrementalAlterConfigsResponse =
        raw::call(&mut s, ApiKey::IncrementalAlterConfigs, 1, 9, &vo).await;
    assert_eq!(resp.responses[0].error_code, 0);
    check_altered(describe_topic(&bootstrap, "cfg").await);

    // The altered max.message.bytes is enforced.
    let p = producer_config(&bootstrap)
        .set("compression.type", "none")
        .create::<rdkafka::producer::FutureProducer>()
        .expect("producer");
    let big = "z".repeat(8000);
    let r = p
        .send(
            FutureRecord::<str, str>::to("cfg").payload(&big),
            Timeout::After(WAIT),
        )
        .await;
    assert!(
        matches!(
            r,
            Err((
                KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge),
                _
            ))
        ),
        "expected MessageSizeTooLarge, got {:?}",
        r.map_err(|(e, _)| e)
    );

    // Overrides survive a restart.
    drop(s);
    drop(p);
    broker.restart().await;
    check_altered(describe_topic(&bootstrap, "cfg").await);
}

/// rdkafka's `alter_configs` is the legacy AlterConfigs API: the given set *replaces* all of a
/// topic's overrides (unlisted ones revert to defaults), as in Kafka. rdkafka 0.39 does not
/// surface per-resource errors of AlterConfigs, so a refused change is checked by describing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn legacy_alter_configs_via_rdkafka() {
    let broker = TestBroker::start().await;
    let bootstrap = broker.bootstrap();
    create_topic(
        &bootstrap,
        "legacy",
        1,
        &[("retention.ms", "3600000"), ("cleanup.policy", "compact")],
    )
    .await;
    let admin = admin(&bootstrap);
    let res = admin
        .alter_configs(
            [&AlterConfig::new(ResourceSpecifier::Topic("legacy"))
                .set("retention.ms", "7200000")
                .set("segment.bytes", "1048576")],
            &admin_opts(),
        )
        .await
        .expect("alter_configs");
    assert_eq!(res.len(), 1);
    assert!(res[0].is_ok(), "{res:?}");
    let entries = describe_topic(&bootstrap, "legacy").await;
    assert_eq!(
        entry(&entries, "retention.ms").1.as_deref(),
        Some("7200000")
    );
    assert!(!entry(&entries, "retention.ms").2);
    assert_eq!(
        entry(&entries, "segment.bytes").1.as_deref(),
        Some("1048576")
    );
    assert!(!entry(&entries, "segment.bytes").2);
    assert_eq!(
        entry(&entries, "cleanup.policy").1.as_deref(),
        Some("delete"),
        "legacy AlterConfigs replaces the whole override set"
    );
    assert!(entry(&entries, "cleanup.policy").2);

    // An invalid value changes nothing.
    let _ = admin
        .alter_configs(
            [&AlterConfig::new(ResourceSpecifier::Topic("legacy")).set("retention.ms", "later")],
            &admin_opts(),
        )
        .await
        .expect("alter_configs");
    let again = describe_topic(&bootstrap, "legacy").await;
    assert_eq!(entry(&again, "retention.ms").1.as_deref(), Some("7200000"));
    assert_eq!(entry(&again, "segment.bytes").1.as_deref(), Some("1048576"));
}

fn set_default_partitions(cfg: &mut rivulet_broker::BrokerConfig) {
    cfg.default_partitions = 4;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auto_create_topic_on_produce_with_default_partitions() {
    let broker = TestBroker::start_with(set_default_partitions).await;
    let bootstrap = broker.bootstrap();
    assert_eq!(
        partitions_of(&bootstrap, "auto-created").await,
        None,
        "consumer metadata must not auto-create"
    );
    let p = producer(&bootstrap);
    let d = p
        .send(
            FutureRecord::<str, str>::to("auto-created")
                .key("k")
                .payload("v"),
            Timeout::After(WAIT),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("produce to a new topic");
    assert!((0..4).contains(&d.partition));
    assert_eq!(d.offset, 0);
    assert_eq!(partitions_of(&bootstrap, "auto-created").await, Some(4));
    let msgs = read_all(&bootstrap, "auto-created", d.partition).await;
    assert_eq!(msgs.len(), 1);
    // Auto-created topics get the broker defaults.
    let entries = describe_topic(&bootstrap, "auto-created").await;
    assert_eq!(
        entry(&entries, "retention.ms").1.as_deref(),
        Some("604800000")
    );
    assert!(entry(&entries, "retention.ms").2);
}

/// Each listener tells its clients its own address (Kafka's advertised.listeners): one for a
/// container network, one for the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_listener_advertises_its_address() {
    use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
    let dir = tempfile::tempdir().unwrap();
    let inside = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let outside = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (a, b) = (inside.local_addr().unwrap(), outside.local_addr().unwrap());
    let mut cfg = rivulet_broker::BrokerConfig::new(dir.path(), "127.0.0.1", a.port());
    cfg.listener_addresses = vec![
        ("broker".to_string(), 9092),
        ("localhost".to_string(), b.port()),
    ];
    let handle = rivulet_broker::start(cfg, vec![inside, outside])
        .await
        .unwrap();
    for (addr, host, port) in [(a, "broker", 9092), (b, "localhost", i32::from(b.port()))] {
        let mut s = raw::connect(&addr.to_string()).await;
        let md: MetadataResponse =
            raw::call(&mut s, ApiKey::Metadata, 9, 1, &MetadataRequest::default()).await;
        assert_eq!(
            (md.brokers[0].host.as_str(), md.brokers[0].port),
            (host, port)
        );
    }
    handle.shutdown().await.unwrap();
}
