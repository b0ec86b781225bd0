//! CreateTopics: validates names, partition counts and configs; replication factor must be -1
//! or 1 on a single node.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Reply, RequestContext};
use crate::error::log_error_code;

pub(crate) fn handle(ctx: RequestContext, req: CreateTopicsRequest) -> Reply {
    let v = ctx.version();
    let logs = &ctx.broker.logs;
    let mut resp = CreateTopicsResponse::default();
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut r = CreatableTopicResult::default();
        r.name = t.name.clone();
        let partitions = if t.num_partitions == -1 {
            ctx.broker.config.default_partitions
        } else {
            t.num_partitions
        };
        let mut overrides = BTreeMap::new();
        for c in &t.configs {
            if let Some(value) = &c.value {
                overrides.insert(c.name.to_string(), value.to_string());
            }
        }
        let outcome = if t.replication_factor != -1 && t.replication_factor != 1 {
            Err((
                ResponseError::InvalidReplicationFactor.code(),
                format!(
                    "replication factor {} is larger than the 1 available broker",
                    t.replication_factor
                ),
            ))
        } else if !t.assignments.is_empty() {
            Err((
                ResponseError::InvalidReplicaAssignment.code(),
                "manual replica assignment is not supported on a single node".to_string(),
            ))
        } else {
            logs.create_topic(&name, partitions, overrides, req.validate_only)
                .map_err(|e| (log_error_code(&e), e.to_string()))
        };
        match outcome {
            Ok(topic) => {
                tracing::info!(topic = %name, partitions, validate_only = req.validate_only, "created topic");
                if v >= 7 && !req.validate_only {
                    r.topic_id = topic.id;
                }
                if v >= 5 {
                    r.num_partitions = partitions;
                    r.replication_factor = 1;
                    if let Ok(cfg) = logs.topic_config(&name) {
                        r.configs = Some(
                            cfg.entries()
                                .into_iter()
                                .map(|(k, val)| {
                                    let mut c = CreatableTopicConfigs::default();
                                    c.name = StrBytes::from_static_str(k);
                                    c.value = Some(StrBytes::from_string(val));
                                    c.config_source = if topic.overrides.read().contains_key(k) {
                                        1
                                    } else {
                                        5
                                    };
                                    c
                                })
                                .collect(),
                        );
                    }
                }
            }
            Err((code, msg)) => {
                r.error_code = code;
                r.error_message = Some(StrBytes::from_string(msg));
                if v >= 5 {
                    r.num_partitions = -1;
                    r.replication_factor = -1;
                }
            }
        }
        resp.topics.push(r);
    }
    Reply::now(resp)
}
