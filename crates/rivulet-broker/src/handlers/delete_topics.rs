//! DeleteTopics by name (all versions) or by topic id (v6).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{Reply, RequestContext};
use crate::error::log_error_code;

pub(crate) fn handle(ctx: RequestContext, req: DeleteTopicsRequest) -> Reply {
    let v = ctx.version();
    let logs = &ctx.broker.logs;
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
    let mut resp = DeleteTopicsResponse::default();
    for (name, id) in targets {
        let mut r = DeletableTopicResult::default();
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
        r.name = resolved.map(|n| TopicName(StrBytes::from_string(n)));
        match result {
            Ok(topic_id) => {
                tracing::info!(topic = ?r.name, "deleted topic");
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
    Reply::now(resp)
}
