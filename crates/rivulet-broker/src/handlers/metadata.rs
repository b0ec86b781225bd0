//! Metadata: the broker list (just us), and topics with their partitions, auto-creating
//! requested topics when the broker and the request allow it (on the blocking pool, at most
//! `--max-topics-per-request` per request).

use std::collections::{BTreeMap, HashMap, HashSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rivulet_log::{LogError, Topic};

use super::admin::blocking;
use super::{Reply, RequestContext};
use crate::error::{codes, log_error_code};

pub(crate) fn handle(ctx: RequestContext, req: MetadataRequest) -> Reply {
    let v = ctx.version();
    let broker = &ctx.broker;
    let cfg = &broker.config;
    let mut resp = MetadataResponse::default();
    let mut b = MetadataResponseBroker::default();
    b.node_id = BrokerId(cfg.node_id);
    b.host = StrBytes::from_string(ctx.advertised.0.clone());
    b.port = i32::from(ctx.advertised.1);
    resp.brokers = vec![b];
    if v >= 2 {
        resp.cluster_id = Some(StrBytes::from_string(broker.logs.cluster_id().to_string()));
    }
    if v >= 1 {
        resp.controller_id = BrokerId(cfg.node_id);
    }
    // v0: an empty list means all topics; v1+: null means all topics.
    let all = match &req.topics {
        None => true,
        Some(t) => v == 0 && t.is_empty(),
    };
    let describable = |name: &str| {
        ctx.allowed(
            crate::acl::Operation::Describe,
            crate::acl::ResourceType::Topic,
            name,
        )
    };
    if all {
        for topic in broker.logs.topics() {
            if describable(&topic.name) {
                resp.topics.push(describe(&ctx, &topic));
            }
        }
        return Reply::now(resp);
    }
    let auto_create = cfg.auto_create_topics && (v < 4 || req.allow_auto_topic_creation);
    let requested = req.topics.unwrap_or_default();
    // Topics to create first: missing, valid names (an invalid one gets its error below).
    let mut missing: Vec<String> = Vec::new();
    if auto_create {
        let mut seen = HashSet::new();
        for t in &requested {
            if let Some(name) = &t.name {
                let name = name.0.as_str();
                if broker.logs.topic(name).is_none()
                    && rivulet_log::validate_topic_name(name).is_ok()
                    && describable(name)
                    && ctx.authorize_create([name]).is_ok()
                    && seen.insert(name)
                {
                    missing.push(name.to_string());
                }
            }
        }
    }
    if missing.is_empty() {
        answer(&ctx, &mut resp, requested, &Default::default());
        return Reply::now(resp);
    }
    // Creating topics touches the disk and the admin lock: the blocking pool (see `admin.rs`),
    // and no more of them than one CreateTopics request may create.
    Reply::later(async move {
        let limit = ctx.broker.config.max_topics_per_request;
        let c = ctx.clone();
        let created = blocking(move || {
            let cfg = &c.broker.config;
            missing
                .into_iter()
                .enumerate()
                .map(|(i, name)| {
                    let outcome = if i >= limit {
                        Err(codes::policy_violation())
                    } else {
                        c.broker
                            .logs
                            .create_topic(&name, cfg.default_partitions, BTreeMap::new(), false)
                            .map(|_| tracing::info!(topic = %name, "auto-created topic"))
                            .or_else(|e| match e {
                                // Created concurrently by another request: fine.
                                LogError::TopicAlreadyExists(_) => Ok(()),
                                e => Err(log_error_code(&e)),
                            })
                    };
                    (name, outcome)
                })
                .collect::<HashMap<String, Result<(), i16>>>()
        })
        .await
        .unwrap_or_else(|e| {
            tracing::error!("{e}");
            HashMap::new()
        });
        answer(&ctx, &mut resp, requested, &created);
        resp
    })
}

/// Adds the requested topics to `resp`: existing ones described, the others with the error of
/// their auto-creation, if it failed, or why they do not exist.
fn answer(
    ctx: &RequestContext,
    resp: &mut MetadataResponse,
    requested: Vec<MetadataRequestTopic>,
    created: &HashMap<String, Result<(), i16>>,
) {
    let v = ctx.version();
    let logs = &ctx.broker.logs;
    for t in requested {
        let found = match &t.name {
            Some(name) => {
                let name = name.0.as_str();
                match logs.topic(name) {
                    Some(topic) => Ok(topic),
                    None => Err(match created.get(name) {
                        Some(Err(code)) => *code,
                        _ => match rivulet_log::validate_topic_name(name) {
                            Ok(()) => ResponseError::UnknownTopicOrPartition.code(),
                            Err(e) => log_error_code(&e),
                        },
                    }),
                }
            }
            None => logs
                .topic_by_id(t.topic_id)
                .ok_or(ResponseError::UnknownTopicId.code()),
        };
        let name = match (&t.name, &found) {
            (Some(n), _) => n.0.to_string(),
            (None, Ok(topic)) => topic.name.clone(),
            (None, Err(_)) => String::new(),
        };
        let found = if ctx.allowed(
            crate::acl::Operation::Describe,
            crate::acl::ResourceType::Topic,
            &name,
        ) {
            found
        } else {
            Err(ResponseError::TopicAuthorizationFailed.code())
        };
        match found {
            Ok(topic) => resp.topics.push(describe(ctx, &topic)),
            Err(code) => {
                let mut r = MetadataResponseTopic::default();
                r.error_code = code;
                r.name = t.name.clone();
                if v >= 10 {
                    r.topic_id = t.topic_id;
                }
                resp.topics.push(r);
            }
        }
    }
}

fn describe(ctx: &RequestContext, topic: &Topic) -> MetadataResponseTopic {
    let v = ctx.version();
    let node = BrokerId(ctx.broker.config.node_id);
    let mut r = MetadataResponseTopic::default();
    r.name = Some(TopicName(StrBytes::from_string(topic.name.clone())));
    if v >= 10 {
        r.topic_id = topic.id;
    }
    r.partitions = (0..topic.partition_count())
        .map(|i| {
            let mut p = MetadataResponsePartition::default();
            p.partition_index = i;
            p.leader_id = node;
            if v >= 7 {
                p.leader_epoch = 0;
            }
            p.replica_nodes = vec![node];
            p.isr_nodes = vec![node];
            p
        })
        .collect();
    r
}
