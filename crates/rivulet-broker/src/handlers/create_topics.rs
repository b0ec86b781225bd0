//! CreateTopics: validates names, partition counts and configs; replication factor must be -1
//! or 1 on a single node. Request-level limits (topics and partitions per request, config
//! entries, the same name twice) are checked first; the storage work runs on the blocking pool
//! (see `admin.rs`).

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use super::admin::{blocking, check_config_entries, check_partition_total, check_topic_count};
use super::{Reply, RequestContext};
use crate::error::{codes, log_error_code};

pub(crate) fn handle(ctx: RequestContext, req: CreateTopicsRequest) -> Reply {
    let v = ctx.version();
    let cfg = &ctx.broker.config;
    // Topics over the per-topic limit are refused one by one (INVALID_PARTITIONS): they do not
    // count against the request.
    let per_topic = i64::from(cfg.topic_limits.max_partitions_per_topic);
    let count = |t: &CreatableTopic| {
        let n = if t.num_partitions == -1 {
            i64::from(cfg.default_partitions)
        } else {
            i64::from(t.num_partitions.max(0))
        };
        if n > per_topic {
            0
        } else {
            n
        }
    };
    let partitions: i64 = req.topics.iter().map(count).sum();
    // Before any work: a request over a limit is answered with its error for every topic.
    if let Err(refusal) = check_topic_count(req.topics.len(), cfg)
        .and_then(|()| check_partition_total(partitions, cfg))
        .and_then(|()| ctx.authorize_create(req.topics.iter().map(|t| t.name.0.as_str())))
    {
        let mut resp = CreateTopicsResponse::default();
        resp.topics = req
            .topics
            .iter()
            .map(|t| failed(v, t, refusal.clone()))
            .collect();
        return Reply::now(resp);
    }
    // Kafka answers every entry of a name given twice with INVALID_REQUEST.
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = req
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.as_str()))
        .map(|t| t.name.0.to_string())
        .collect();
    let fallback = req.topics.clone();
    Reply::later(async move {
        let work = move || {
            let mut resp = CreateTopicsResponse::default();
            for t in req.topics {
                let r = if duplicates.contains(t.name.0.as_str()) {
                    failed(
                        v,
                        &t,
                        (
                            codes::invalid_request(),
                            "the topic is named more than once in the request".into(),
                        ),
                    )
                } else {
                    create_one(&ctx, v, req.validate_only, t)
                };
                resp.topics.push(r);
            }
            resp
        };
        match blocking(work).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::error!("{e}");
                let mut resp = CreateTopicsResponse::default();
                resp.topics = fallback
                    .iter()
                    .map(|t| failed(v, t, (codes::unknown_server_error(), e.clone())))
                    .collect();
                resp
            }
        }
    })
}

fn failed(v: i16, t: &CreatableTopic, (code, msg): (i16, String)) -> CreatableTopicResult {
    let mut r = CreatableTopicResult::default();
    r.name = t.name.clone();
    r.error_code = code;
    r.error_message = Some(StrBytes::from_string(msg));
    if v >= 5 {
        r.num_partitions = -1;
        r.replication_factor = -1;
    }
    r
}

fn create_one(
    ctx: &RequestContext,
    v: i16,
    validate_only: bool,
    t: CreatableTopic,
) -> CreatableTopicResult {
    let logs = &ctx.broker.logs;
    let name = t.name.0.to_string();
    let partitions = if t.num_partitions == -1 {
        ctx.broker.config.default_partitions
    } else {
        t.num_partitions
    };
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
        check_config_entries(t.configs.len()).and_then(|()| {
            let overrides: BTreeMap<String, String> = t
                .configs
                .iter()
                .filter_map(|c| {
                    c.value
                        .as_ref()
                        .map(|v| (c.name.to_string(), v.to_string()))
                })
                .collect();
            logs.create_topic(&name, partitions, overrides, validate_only)
                .map_err(|e| (log_error_code(&e), e.to_string()))
        })
    };
    let topic = match outcome {
        Ok(topic) => topic,
        Err(refusal) => return failed(v, &t, refusal),
    };
    // Valid topic names are plain ASCII: safe to log as they are.
    tracing::info!(topic = %name, partitions, validate_only, "created topic");
    let mut r = CreatableTopicResult::default();
    r.name = t.name.clone();
    if v >= 7 && !validate_only {
        r.topic_id = topic.id;
    }
    if v >= 5 {
        r.num_partitions = partitions;
        r.replication_factor = 1;
        if let Ok(cfg) = logs.topic_config(&name) {
            let overrides = topic.overrides.read().clone();
            r.configs = Some(
                cfg.entries()
                    .into_iter()
                    .map(|(k, val)| {
                        let mut c = CreatableTopicConfigs::default();
                        c.name = StrBytes::from_static_str(k);
                        c.value = Some(StrBytes::from_string(val));
                        c.config_source = if overrides.contains_key(k) { 1 } else { 5 };
                        c
                    })
                    .collect(),
            );
        }
    }
    r
}
