//! DescribeConfigs for topics (effective values, overrides marked as dynamic topic configs) and
//! for the broker (its log defaults under Kafka's broker config names, read-only).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Reply, RequestContext};
use crate::error::log_error_code;

pub(crate) const RESOURCE_TOPIC: i8 = 2;
pub(crate) const RESOURCE_BROKER: i8 = 4;

// Kafka's DescribeConfigs config_source values.
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// Kafka's ConfigType for a topic config key (DescribeConfigs v3+).
/// Read-only entries Rivulet adds for a topic when they are asked for by name: per partition
/// (`partition:value,…`), the offset below which the cleaner has cleaned, the share of the
/// cleanable bytes not cleaned yet, and the time of its last pass (ms, -1: never).
pub(crate) const CLEANED_UP_TO: &str = "rivulet.cleaner.cleaned.up.to";
pub(crate) const DIRTY_RATIO: &str = "rivulet.cleaner.dirty.ratio";
pub(crate) const LAST_CLEAN_MS: &str = "rivulet.cleaner.last.clean.ms";
const CLEANER_KEYS: [&str; 3] = [CLEANED_UP_TO, DIRTY_RATIO, LAST_CLEAN_MS];

/// DescribeConfigs' type codes (v3+): BOOLEAN 1, STRING 2, INT 3, LONG 5, DOUBLE 6, LIST 7.
fn config_type(key: &str) -> i8 {
    use rivulet_log::config::ConfigKind;
    match rivulet_log::config::config_kind(key) {
        Some(ConfigKind::Bool) => 1,
        Some(ConfigKind::Enum(_) | ConfigKind::Text) => 2,
        Some(ConfigKind::Int { .. }) => 3,
        Some(ConfigKind::Long { .. }) => 5,
        Some(ConfigKind::Double { .. }) => 6,
        Some(ConfigKind::List) => 7,
        None => 0,
    }
}

pub(crate) fn handle(ctx: RequestContext, req: DescribeConfigsRequest) -> Reply {
    let v = ctx.version();
    let broker = &ctx.broker;
    let mut resp = DescribeConfigsResponse::default();
    for res in req.resources {
        let mut out = DescribeConfigsResult::default();
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name.clone();
        let wanted = |k: &str| {
            res.configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|w| w.as_str() == k))
        };
        let entry = |name: String, value: String, source: i8, read_only: bool, ty: i8| {
            let mut e = DescribeConfigsResourceResult::default();
            e.name = StrBytes::from_string(name);
            e.value = Some(StrBytes::from_string(value));
            e.config_source = source;
            e.read_only = read_only;
            if v >= 3 {
                e.config_type = ty;
            }
            e
        };
        let (rtype, rname) = if res.resource_type == RESOURCE_TOPIC {
            (crate::acl::ResourceType::Topic, res.resource_name.as_str())
        } else {
            (crate::acl::ResourceType::Cluster, crate::acl::CLUSTER_NAME)
        };
        if !ctx.allowed(crate::acl::Operation::DescribeConfigs, rtype, rname) {
            out.error_code = crate::error::codes::authorization_failed(rtype);
            resp.results.push(out);
            continue;
        }
        match res.resource_type {
            RESOURCE_TOPIC => {
                let name = res.resource_name.to_string();
                match (broker.logs.topic(&name), broker.logs.topic_config(&name)) {
                    (Some(topic), Ok(cfg)) => {
                        let overrides = topic.overrides.read().clone();
                        // The cleaner's progress, per partition, only when asked for by
                        // name (so listings of every config stay Kafka's).
                        let asked = |k: &str| {
                            res.configuration_keys
                                .as_ref()
                                .is_some_and(|keys| keys.iter().any(|w| w.as_str() == k))
                        };
                        if CLEANER_KEYS.iter().any(|k| asked(k)) {
                            let now = rivulet_time::now_ms();
                            let status: Vec<(i32, rivulet_log::CleanerStatus)> = topic
                                .partitions
                                .read()
                                .iter()
                                .map(|p| (p.index, p.log.lock().cleaner_status(now)))
                                .collect();
                            for key in CLEANER_KEYS.iter().filter(|k| asked(k)) {
                                let value = status
                                    .iter()
                                    .map(|(p, s)| match *key {
                                        CLEANED_UP_TO => format!("{p}:{}", s.cleaned_up_to),
                                        DIRTY_RATIO => format!("{p}:{:.4}", s.dirty_ratio),
                                        _ => format!("{p}:{}", s.last_clean_ms.unwrap_or(-1)),
                                    })
                                    .collect::<Vec<_>>()
                                    .join(",");
                                out.configs.push(entry(
                                    key.to_string(),
                                    value,
                                    SOURCE_DEFAULT,
                                    true,
                                    2,
                                ));
                            }
                        }
                        for (k, val) in cfg.entries() {
                            if wanted(k) {
                                let source = if overrides.contains_key(k) {
                                    SOURCE_DYNAMIC_TOPIC
                                } else {
                                    SOURCE_DEFAULT
                                };
                                out.configs.push(entry(
                                    k.to_string(),
                                    val,
                                    source,
                                    false,
                                    config_type(k),
                                ));
                            }
                        }
                    }
                    (_, Err(e)) => {
                        out.error_code = log_error_code(&e);
                        out.error_message = Some(StrBytes::from_string(e.to_string()));
                    }
                    (None, _) => {
                        out.error_code = ResponseError::UnknownTopicOrPartition.code();
                        out.error_message = Some(StrBytes::from_string(format!(
                            "unknown topic {}",
                            rivulet_log::Quoted(&name)
                        )));
                    }
                }
            }
            RESOURCE_BROKER => {
                let cfg = &broker.config;
                let d = broker.logs.defaults();
                let entries: Vec<(&str, String, i8)> = vec![
                    (
                        "auto.create.topics.enable",
                        cfg.auto_create_topics.to_string(),
                        1,
                    ),
                    ("num.partitions", cfg.default_partitions.to_string(), 3),
                    (
                        "socket.request.max.bytes",
                        cfg.max_frame_bytes.to_string(),
                        3,
                    ),
                    ("max.connections", cfg.max_connections.to_string(), 3),
                    (
                        "max.connections.per.ip",
                        cfg.max_connections_per_ip.to_string(),
                        3,
                    ),
                    (
                        "connections.max.idle.ms",
                        cfg.connections_max_idle.as_millis().to_string(),
                        5,
                    ),
                    (
                        "queued.max.request.bytes",
                        cfg.queued_max_request_bytes.to_string(),
                        3,
                    ),
                    ("fetch.max.bytes", cfg.fetch_max_bytes.to_string(), 3),
                    ("log.cleanup.policy", d.cleanup_policy.clone(), 7),
                    (
                        "log.index.interval.bytes",
                        d.index_interval_bytes.to_string(),
                        3,
                    ),
                    ("log.retention.bytes", d.retention_bytes.to_string(), 5),
                    ("log.retention.ms", d.retention_ms.to_string(), 5),
                    ("log.roll.ms", d.segment_ms.to_string(), 5),
                    ("log.segment.bytes", d.segment_bytes.to_string(), 3),
                    (
                        "log.message.timestamp.type",
                        d.message_timestamp_type.clone(),
                        2,
                    ),
                    ("message.max.bytes", d.max_message_bytes.to_string(), 3),
                ];
                for (k, val, ty) in entries {
                    if wanted(k) {
                        out.configs
                            .push(entry(k.to_string(), val, SOURCE_STATIC_BROKER, true, ty));
                    }
                }
            }
            other => {
                out.error_code = ResponseError::InvalidRequest.code();
                out.error_message = Some(StrBytes::from_string(format!(
                    "resource type {other} is not supported (topics: 2, broker: 4)"
                )));
            }
        }
        resp.results.push(out);
    }
    Reply::now(resp)
}
