//! CreatePartitions: grow a topic's partition count. The new partitions of the whole request
//! count against `--max-partitions-per-request` before any work; the storage work runs on the
//! blocking pool (see `admin.rs`).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;

use super::admin::{blocking, check_partition_total, check_topic_count};
use super::{Reply, RequestContext};
use crate::error::{codes, log_error_code};

pub(crate) fn handle(ctx: RequestContext, req: CreatePartitionsRequest) -> Reply {
    let cfg = &ctx.broker.config;
    let logs = &ctx.broker.logs;
    // Counts over the per-topic limit are refused one by one (INVALID_PARTITIONS): they do not
    // count against the request.
    let per_topic = cfg.topic_limits.max_partitions_per_topic;
    let new: i64 = req
        .topics
        .iter()
        .filter(|t| t.count <= per_topic)
        .map(|t| {
            let current = logs.topic(&t.name.0).map_or(0, |t| t.partition_count());
            (i64::from(t.count) - i64::from(current)).max(0)
        })
        .sum();
    let names: Vec<_> = req.topics.iter().map(|t| t.name.clone()).collect();
    let answer = move |results: Vec<Result<(), (i16, String)>>| {
        let mut resp = CreatePartitionsResponse::default();
        for (name, result) in names.into_iter().zip(results) {
            let mut r = CreatePartitionsTopicResult::default();
            r.name = name;
            if let Err((code, msg)) = result {
                r.error_code = code;
                r.error_message = Some(StrBytes::from_string(msg));
            }
            resp.results.push(r);
        }
        resp
    };
    let n = req.topics.len();
    if let Err(refusal) = check_topic_count(n, cfg)
        .and_then(|()| check_partition_total(new, cfg))
        .and_then(|()| {
            ctx.authorize_each(
                crate::acl::Operation::Alter,
                crate::acl::ResourceType::Topic,
                req.topics.iter().map(|t| t.name.0.as_str()),
            )
        })
    {
        return Reply::now(answer(vec![Err(refusal); n]));
    }
    Reply::later(async move {
        let work = move || {
            req.topics
                .iter()
                .map(|t| {
                    if t.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
                        return Err((
                            ResponseError::InvalidReplicaAssignment.code(),
                            "manual replica assignment is not supported on a single node"
                                .to_string(),
                        ));
                    }
                    ctx.broker
                        .logs
                        .create_partitions(&t.name.0, t.count, req.validate_only)
                        .map_err(|e| (log_error_code(&e), e.to_string()))
                })
                .collect::<Vec<_>>()
        };
        match blocking(work).await {
            Ok(results) => answer(results),
            Err(e) => {
                tracing::error!("{e}");
                answer(vec![Err((codes::unknown_server_error(), e)); n])
            }
        }
    })
}
