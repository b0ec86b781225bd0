//! DeleteTopics by name (all versions) or by topic id (v6). At most `--max-topics-per-request`
//! topics; the storage work runs on the blocking pool (see `admin.rs`).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::admin::{blocking, check_topic_count};
use super::{Reply, RequestContext};
use crate::error::{codes, log_error_code};

pub(crate) fn handle(ctx: RequestContext, req: DeleteTopicsRequest) -> Reply {
    let v = ctx.version();
    // (name as given, topic id as given)
    let targets: Vec<(Option<String>, uuid::Uuid)> = if v >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    // By id (v6): the topic's name, when known, is what ACLs name.
    let names: Vec<String> = targets
        .iter()
        .map(|(name, id)| match name {
            Some(n) => n.clone(),
            None => ctx
                .broker
                .logs
                .topic_by_id(*id)
                .map(|t| t.name.clone())
                .unwrap_or_default(),
        })
        .collect();
    if let Err(refusal) = check_topic_count(targets.len(), &ctx.broker.config).and_then(|()| {
        ctx.authorize_each(
            crate::acl::Operation::Delete,
            crate::acl::ResourceType::Topic,
            names.iter().map(String::as_str),
        )
    }) {
        let results = vec![Err(refusal); targets.len()];
        return Reply::now(answer(v, targets, results));
    }
    Reply::later(async move {
        let for_fallback: Vec<(Option<String>, uuid::Uuid)> = targets.clone();
        let work = move || {
            let logs = &ctx.broker.logs;
            let mut named = Vec::with_capacity(targets.len());
            let mut results = Vec::with_capacity(targets.len());
            for (name, id) in targets {
                let resolved = match &name {
                    Some(n) => Some(n.clone()),
                    None => logs.topic_by_id(id).map(|t| t.name.clone()),
                };
                let result = match &resolved {
                    Some(n) => logs
                        .delete_topic(n)
                        .map_err(|e| (log_error_code(&e), e.to_string())),
                    None => Err((
                        ResponseError::UnknownTopicId.code(),
                        format!("unknown topic id {id}"),
                    )),
                };
                if let (Ok(_), Some(n)) = (&result, &resolved) {
                    // Only existing topics are deleted, and their names are plain ASCII.
                    tracing::info!(topic = %n, "deleted topic");
                }
                named.push((resolved, id));
                results.push(result);
            }
            (named, results)
        };
        match blocking(work).await {
            Ok((named, results)) => answer(v, named, results),
            Err(e) => {
                tracing::error!("{e}");
                let results = vec![Err((codes::unknown_server_error(), e)); for_fallback.len()];
                answer(v, for_fallback, results)
            }
        }
    })
}

/// The response: one result per (name, id) as resolved, in request order.
fn answer(
    v: i16,
    targets: Vec<(Option<String>, uuid::Uuid)>,
    results: Vec<Result<uuid::Uuid, (i16, String)>>,
) -> DeleteTopicsResponse {
    let mut resp = DeleteTopicsResponse::default();
    for ((name, id), result) in targets.into_iter().zip(results) {
        let mut r = DeletableTopicResult::default();
        r.name = name.map(|n| TopicName(StrBytes::from_string(n)));
        match result {
            Ok(topic_id) => {
                if v >= 6 {
                    r.topic_id = topic_id;
                }
            }
            Err((code, msg)) => {
                r.error_code = code;
                if v >= 5 {
                    r.error_message = Some(StrBytes::from_string(msg));
                }
                if v >= 6 {
                    r.topic_id = id;
                }
            }
        }
        resp.responses.push(r);
    }
    resp
}
