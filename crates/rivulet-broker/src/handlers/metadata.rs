//! Metadata: the broker list (just us), and topics with their partitions, auto-creating
//! requested topics when the broker and the request allow it.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rivulet_log::{LogError, Topic};

use super::{Reply, RequestContext};
use crate::error::log_error_code;

pub(crate) fn handle(ctx: RequestContext, req: MetadataRequest) -> Reply {
    let v = ctx.version();
    let broker = &ctx.broker;
    let cfg = &broker.config;
    let mut resp = MetadataResponse::default();
    let mut b = MetadataResponseBroker::default();
    b.node_id = BrokerId(cfg.node_id);
    b.host = StrBytes::from_string(cfg.advertised_host.clone());
    b.port = i32::from(cfg.advertised_port);
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
    if all {
        for topic in broker.logs.topics() {
            resp.topics.push(describe(&ctx, &topic));
        }
        return Reply::now(resp);
    }
    let auto_create = cfg.auto_create_topics && (v < 4 || req.allow_auto_topic_creation);
    for t in req.topics.unwrap_or_default() {
        let found = match &t.name {
            Some(name) => {
                let name = name.0.to_string();
                match broker.logs.topic(&name) {
                    Some(topic) => Ok(topic),
                    None if auto_create => broker
                        .logs
                        .create_topic(&name, cfg.default_partitions, BTreeMap::new(), false)
                        .inspect(|_| tracing::info!(topic = %name, "auto-created topic"))
                        .or_else(|e| match e {
                            // Created concurrently by another request: fine.
                            LogError::TopicAlreadyExists(_) => broker
                                .logs
                                .topic(&name)
                                .ok_or(ResponseError::UnknownTopicOrPartition.code()),
                            e => Err(log_error_code(&e)),
                        }),
                    None => Err(match rivulet_log::validate_topic_name(&name) {
                        Ok(()) => ResponseError::UnknownTopicOrPartition.code(),
                        Err(e) => log_error_code(&e),
                    }),
                }
            }
            None => broker
                .logs
                .topic_by_id(t.topic_id)
                .ok_or(ResponseError::UnknownTopicId.code()),
        };
        match found {
            Ok(topic) => resp.topics.push(describe(&ctx, &topic)),
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
    Reply::now(resp)
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
